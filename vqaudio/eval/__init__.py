"""Model-driven evaluation: a model run over a corpus and scored (``vqaudio evaluate``, ``eval-convert``,
``analyze``), and the report that gathers the scores (``vqaudio report``).

- :mod:`~vqaudio.eval.reconstruction`: per-level reconstruction quality (mel distance, SI-SDR, PESQ,
  STOI), seen and held-out voices apart (``vqaudio evaluate``);
- :mod:`~vqaudio.eval.baselines`: the classical codecs (Codec2, Opus) scored on the same audio;
- :mod:`~vqaudio.eval.conversion`: voice conversion on a parallel corpus, speaker similarity, MCD and
  phones kept (``vqaudio eval-convert``);
- :mod:`~vqaudio.eval.phones`: each level's codes against phone labels (``vqaudio analyze``);
- :mod:`~vqaudio.eval.report`: one markdown page for an experiment folder (``vqaudio report``).

This layer runs the model and reads corpora; the pure metrics that need no model (purity, PNMI, mapping
accuracy, frame targets, figures) are in :mod:`vqaudio.analysis`, and corpora and label files are read
by :mod:`vqaudio.data`. Nothing here imports the training code. The names below are imported lazily, so
``import vqaudio.eval.report`` (json and markdown only) does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vqaudio._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "vqaudio.eval.baselines": (
            "BASELINES",
            "Baseline",
            "available_baselines",
            "codec2_roundtrip",
            "ogg_payload_bytes",
            "opus_roundtrip",
        ),
        "vqaudio.eval.conversion": (
            "ConversionScores",
            "evaluate_conversion",
            "mel_cepstral_distortion",
            "summarise",
        ),
        "vqaudio.eval.phones": (
            "METRICS_SCHEMA",
            "VOICE_GROUPS",
            "AnalysisResult",
            "analyze_corpus",
            "write_report",
        ),
        "vqaudio.eval.reconstruction": (
            "HELDOUT",
            "SEEN",
            "CodecScore",
            "evaluate_baselines",
            "evaluate_reconstruction",
            "first_per_speaker",
            "paired_differences",
            "si_sdr",
            "voice_kinds",
        ),
        "vqaudio.eval.report": ("experiment_report",),
    },
)

if TYPE_CHECKING:
    from vqaudio.eval.baselines import (
        BASELINES,
        Baseline,
        available_baselines,
        codec2_roundtrip,
        ogg_payload_bytes,
        opus_roundtrip,
    )
    from vqaudio.eval.conversion import (
        ConversionScores,
        evaluate_conversion,
        mel_cepstral_distortion,
        summarise,
    )
    from vqaudio.eval.phones import (
        METRICS_SCHEMA,
        VOICE_GROUPS,
        AnalysisResult,
        analyze_corpus,
        write_report,
    )
    from vqaudio.eval.reconstruction import (
        HELDOUT,
        SEEN,
        CodecScore,
        evaluate_baselines,
        evaluate_reconstruction,
        first_per_speaker,
        paired_differences,
        si_sdr,
        voice_kinds,
    )
    from vqaudio.eval.report import experiment_report

__all__ = [
    # baselines
    "BASELINES",
    "Baseline",
    "available_baselines",
    "codec2_roundtrip",
    "ogg_payload_bytes",
    "opus_roundtrip",
    # conversion
    "ConversionScores",
    "evaluate_conversion",
    "mel_cepstral_distortion",
    "summarise",
    # phones
    "METRICS_SCHEMA",
    "VOICE_GROUPS",
    "AnalysisResult",
    "analyze_corpus",
    "write_report",
    # reconstruction
    "HELDOUT",
    "SEEN",
    "CodecScore",
    "evaluate_baselines",
    "evaluate_reconstruction",
    "first_per_speaker",
    "paired_differences",
    "si_sdr",
    "voice_kinds",
    # report
    "experiment_report",
]
