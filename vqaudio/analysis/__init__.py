"""Analysis of codes against phones and speakers: label readers, frame targets and metrics.

Nothing in this subpackage imports torch or the training code, so it runs on saved codes alone.
"""

from __future__ import annotations

# --- phone labels (labels.py) ---
from vqaudio.analysis.labels import (
    AUDIO_SUFFIXES,
    LABEL_FORMATS,
    SILENCE,
    SILENCE_LABELS,
    TIMIT_39_PHONES,
    TIMIT_61_TO_39,
    PhoneIntervals,
    check_coverage,
    label_frames,
    normalise,
    pair_audio_labels,
    read_htk_lab,
    read_labels,
    read_textgrid,
    read_timit_phn,
    read_tsv_labels,
    strip_stress,
)

# --- metrics (metrics.py) and figures (plots.py) ---
from vqaudio.analysis.metrics import (
    LevelAnalysis,
    PurityScores,
    UttCodes,
    analyze_level,
    cooccurrence,
    fit_mapping,
    majority_baseline,
    mapping_accuracy,
    perplexity_and_usage,
    purity_scores,
    random_code_baseline,
    run_lengths,
    speaker_probe,
)
from vqaudio.analysis.plots import plot_code_usage, plot_confusion, plot_cooccurrence, plot_durations

__all__ = [
    # labels
    "AUDIO_SUFFIXES",
    "LABEL_FORMATS",
    "SILENCE",
    "SILENCE_LABELS",
    "TIMIT_39_PHONES",
    "TIMIT_61_TO_39",
    "PhoneIntervals",
    "check_coverage",
    "label_frames",
    "normalise",
    "pair_audio_labels",
    "read_htk_lab",
    "read_labels",
    "read_textgrid",
    "read_timit_phn",
    "read_tsv_labels",
    "strip_stress",
    # metrics
    "LevelAnalysis",
    "PurityScores",
    "UttCodes",
    "analyze_level",
    "cooccurrence",
    "fit_mapping",
    "majority_baseline",
    "mapping_accuracy",
    "perplexity_and_usage",
    "purity_scores",
    "random_code_baseline",
    "run_lengths",
    "speaker_probe",
    # plots
    "plot_code_usage",
    "plot_confusion",
    "plot_cooccurrence",
    "plot_durations",
]
