"""How well conversion works on a parallel corpus: speaker similarity and content (``vqaudio eval-convert``).

For N source sentences and every ordered pair of voices (source != target):

- speaker similarity of the converted audio to the target and to the source speaker, with an
  independent speaker-verification embedding (Resemblyzer's GE2E d-vector, Wan et al., 2018; optional
  extra ``vqaudio[eval]``, weights ship with the package, nothing is downloaded).  Each speaker is
  represented by the mean embedding of up to ``ref_utts`` of their *other* utterances, so matching
  words cannot inflate the score.  Reported: mean cosine to target and to source, and the fraction of
  outputs closer to the target than to the source; next to it, the unconverted source's cosine to the
  target (what doing nothing scores).
- mel-cepstral distortion (MCD, dB) after DTW alignment against the target speaker's own rendition of
  the same sentence, next to the source-vs-target MCD (what doing nothing scores).
- with phone labels: content kept, as the phone accuracy of the converted audio's codes (re-encoded at
  the conversion level, read through a many-to-one code->phone mapping fit on the original renditions
  of the evaluated sentences) against the source sentence's labels, next to the same accuracy of the
  source audio itself.

Targets are training speakers or, with ``reference``, voices given by reference clips (enrolment).
Each voice is ``seen`` (a training speaker) or ``heldout`` (never trained on: marked so by the manifest,
or absent from the model's speaker table), and the summary is also given per kind of pair
(``groups``: ``seen->seen``, ``seen->heldout``, ...), so conversion into voices the model never heard is
reported apart from conversion among its training voices.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import torch

from vqaudio.analysis import label_frames
from vqaudio.analysis.metrics import cooccurrence, fit_mapping, mapping_accuracy
from vqaudio.audio import audio_info, read_audio
from vqaudio.convert import conversion_level, convert
from vqaudio.data import PhoneIntervals, Utterance, is_heldout_voice
from vqaudio.data.labels import read_labels
from vqaudio.data.pairing import find_pairs
from vqaudio.errors import UserError
from vqaudio.models import VQVAE
from vqaudio.voices import reference_embedding

__all__ = [
    "ConversionScores",
    "conversion_voices",
    "enrol_from_corpus",
    "evaluate_conversion",
    "labels_by_sentence",
    "mel_cepstral_distortion",
    "sentence_ids",
    "summarise",
]


_SUMMARY_KEYS = {
    "similarity_to_target": "sim_target",
    "similarity_to_source": "sim_source",
    "unconverted_similarity_to_target": "sim_target_unconverted",
    "mcd_converted": "mcd",
    "mcd_source_baseline": "mcd_source",
    "phone_accuracy_converted": "phones_converted",
    "phone_accuracy_source": "phones_source",
}


@dataclass
class ConversionScores:
    """Means over every conversion (``pairs`` holds each one), and the same per kind of pair (``groups``,
    keyed ``<source kind>-><target kind>`` with kinds ``seen`` / ``heldout``: :func:`summarise`)."""

    conversions: int
    level: int
    similarity_to_target: float | None
    similarity_to_source: float | None
    closer_to_target: float | None
    unconverted_similarity_to_target: float | None
    mcd_converted: float
    mcd_source_baseline: float
    phone_accuracy_converted: float | None
    phone_accuracy_source: float | None
    pairs: list[dict[str, Any]]
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: int = 2  # of convert.json (as_dict): 2 added ``groups``, each pair's ``group`` and this field

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mcep(wav: np.ndarray, sr: int, n: int = 25) -> np.ndarray:
    """Mel-cepstra ``[frames, n-1]`` of the log mel amplitude (c0, the energy, dropped).

    An MFCC-style approximation (40 mel bands, DCT-II): good for comparing systems on the same data,
    not numerically comparable with SPTK mel-cepstral MCDs reported in papers.
    """
    mel = librosa.feature.melspectrogram(y=wav, sr=sr, n_fft=1024, hop_length=sr // 200, n_mels=40)
    logmel = 0.5 * np.log(np.maximum(mel, 1e-10))
    c = librosa.feature.mfcc(S=logmel, n_mfcc=n, dct_type=2, norm="ortho")
    return c[1:].T


def mel_cepstral_distortion(a: np.ndarray, b: np.ndarray, sr: int) -> float:
    """MCD in dB between two renditions of the same sentence, DTW-aligned (Kubichek, 1993)."""
    ca, cb = _mcep(a, sr), _mcep(b, sr)
    if len(ca) == 0 or len(cb) == 0:
        return math.nan
    _, path = librosa.sequence.dtw(X=ca.T, Y=cb.T, metric="euclidean")
    diff = ca[path[:, 0]] - cb[path[:, 1]]
    return float(np.mean(10.0 / np.log(10.0) * np.sqrt(2.0 * np.sum(diff**2, axis=1))))


def _speaker_embedder() -> Callable[[np.ndarray, int], np.ndarray] | None:
    try:
        from resemblyzer import VoiceEncoder, preprocess_wav
    except ImportError:
        return None
    encoder = VoiceEncoder("cpu", verbose=False)
    return lambda wav, sr: encoder.embed_utterance(preprocess_wav(wav, source_sr=sr))


@dataclass(frozen=True)
class _SpeakerSimilarity:
    """Unit speaker embeddings (:func:`_speaker_embedder`) and each voice's centroid: the normalised mean
    embedding of up to ``ref_utts`` of its utterances outside the evaluated sentences."""

    embed: Callable[[np.ndarray, int], np.ndarray]
    sample_rate: int
    centroid: dict[str, np.ndarray]

    def unit(self, wav: np.ndarray) -> np.ndarray:
        e = self.embed(wav, self.sample_rate)
        return e / np.linalg.norm(e)

    def to(self, embedding: np.ndarray, voice: str) -> float:
        """Cosine of a unit embedding to ``voice``'s centroid."""
        return float(embedding @ self.centroid[voice])


def _speaker_similarity(
    by_key: dict[tuple[str, str], Utterance],
    voices: set[str],
    sentences: Sequence[str],
    sr: int,
    ref_utts: int,
) -> _SpeakerSimilarity | None:
    """The voices' centroids, or ``None`` without the speaker-verification model (``vqaudio[eval]``)."""
    embed = _speaker_embedder()
    if embed is None:
        return None
    centroid: dict[str, np.ndarray] = {}
    for v in voices:
        others = [u for (spk, sid), u in sorted(by_key.items()) if spk == v and sid not in set(sentences)]
        if not others:
            raise UserError(f"voice {v}: no utterances outside the evaluated sentences for its reference")
        e = np.mean([embed(read_audio(u.path, sr), sr) for u in others[:ref_utts]], axis=0)
        centroid[v] = e / np.linalg.norm(e)
    return _SpeakerSimilarity(embed, sr, centroid)


def _voice_kinds(model: VQVAE, utts: Sequence[Utterance], voices: set[str]) -> dict[str, str]:
    """``seen`` or ``heldout`` for each voice (marked so by the manifest, or unknown to the model)."""
    marked = {u.speaker for u in utts if u.heldout}
    trained_on = set(model.speakers)
    return {v: "heldout" if is_heldout_voice(v in marked, v, trained_on) else "seen" for v in voices}


@torch.no_grad()
def evaluate_conversion(
    model: VQVAE,
    utts: Sequence[Utterance],
    sentences: Sequence[str],
    voices: Sequence[str],
    level: int | None = None,
    reference: tuple[str, torch.Tensor] | Sequence[tuple[str, torch.Tensor]] | None = None,
    ref_utts: int = 5,
    labels: dict[tuple[str, str], PhoneIntervals] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ConversionScores:
    """Convert ``sentences`` (utterance ids without the voice part) between ``voices``.

    ``utts`` is the parallel corpus: every voice's rendition of each sentence, found by
    ``(speaker, sentence id)`` where the sentence id is the last path component of ``utt_id``.
    ``reference`` = (voice name in the corpus, embedding), or a list of them, makes those voices the
    only targets (each given by its embedding) and the other ``voices`` the sources.
    """
    sr = model.sample_rate
    by_key = {(u.speaker, u.utt_id.rsplit("/", 1)[-1]): u for u in utts}
    lv = conversion_level(model) if level is None else model.check_level(level)
    if reference is not None and isinstance(reference[0], str):
        reference = [reference]  # type: ignore[list-item]
    embedding = dict(reference) if reference is not None else {}  # type: ignore[arg-type]
    targets = list(embedding) if embedding else list(voices)
    sources = [v for v in voices if v not in embedding]
    kind = _voice_kinds(model, utts, {*sources, *targets})
    pairs = [(s, t) for s, t in itertools.product(sources, targets) if s != t]
    if not pairs or not sentences:
        raise UserError("nothing to evaluate: need at least two voices and one sentence")
    speaker = _speaker_similarity(by_key, {*sources, *targets}, sentences, sr, ref_utts)
    content = _ContentProbe(model, lv, by_key, labels, sentences) if labels else None
    rows: list[dict[str, Any]] = []
    total = len(pairs) * len(sentences)
    for sid in sentences:
        # each voice's rendition of this sentence is read once, and scored once as a source
        audio = {v: read_audio(by_key[(v, sid)].path, sr) for v in {*sources, *targets} if (v, sid) in by_key}
        source_phones = {
            v: content.original_accuracy(v, sid)
            for v in sources
            if content is not None and v in audio and (v, sid) in content.phones
        }
        # the do-nothing baseline: how close the source already is to each target
        source_emb = {v: speaker.unit(audio[v]) for v in sources if v in audio} if speaker else {}
        for src, tgt in pairs:
            if src not in audio or tgt not in audio:
                continue
            x, ref = audio[src], audio[tgt]
            y = convert(model, x, sr, embedding.get(tgt, tgt), level=lv)
            row: dict[str, Any] = {
                "sentence": sid,
                "source": src,
                "target": tgt,
                "group": f"{kind[src]}->{kind[tgt]}",
                "mcd": mel_cepstral_distortion(y, ref, sr),
                "mcd_source": mel_cepstral_distortion(x, ref, sr),
            }
            if speaker is not None:
                e = speaker.unit(y)
                row["sim_target"] = speaker.to(e, tgt)
                row["sim_source"] = speaker.to(e, src)
                row["sim_target_unconverted"] = speaker.to(source_emb[src], tgt)
            if content is not None and src in source_phones:
                row["phones_converted"] = content.accuracy(y, src, sid)
                row["phones_source"] = source_phones[src]
            rows.append(row)
            if progress is not None:
                progress(len(rows), total)
    if not rows:
        raise UserError("no sentence is spoken by both voices of any pair")
    return _scores(rows, lv)


def _scores(rows: list[dict[str, Any]], level: int) -> ConversionScores:
    """The conversion rows summed up, over all pairs and per kind of pair."""
    total = summarise(rows)
    groups = {g: summarise([r for r in rows if r["group"] == g]) for g in sorted({r["group"] for r in rows})}
    return ConversionScores(
        total["conversions"],
        level,
        total["similarity_to_target"],
        total["similarity_to_source"],
        total["closer_to_target"],
        total["unconverted_similarity_to_target"],
        total["mcd_converted"] or math.nan,
        total["mcd_source_baseline"] or math.nan,
        total["phone_accuracy_converted"],
        total["phone_accuracy_source"],
        rows,
        groups,
    )


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Means of conversion rows (the keys of :class:`ConversionScores` with a mean; ``None`` when no row
    has the value), ``closer_to_target`` (share of rows more like the target than the source) and
    ``content_kept`` (converted / source phone accuracy)."""

    def mean(key: str) -> float | None:
        vals = [r[key] for r in rows if key in r and not math.isnan(r[key])]
        return float(np.mean(vals)) if vals else None

    out: dict[str, Any] = {"conversions": len(rows)}
    out.update({name: mean(key) for name, key in _SUMMARY_KEYS.items()})
    closer = [r["sim_target"] > r["sim_source"] for r in rows if "sim_target" in r]
    out["closer_to_target"] = float(np.mean(closer)) if closer else None
    conv, src = out["phone_accuracy_converted"], out["phone_accuracy_source"]
    out["content_kept"] = conv / src if conv is not None and src else None
    return out


class _ContentProbe:
    """Code -> phone mapping at one level, fit on the original renditions of the evaluated sentences."""

    def __init__(
        self,
        model: VQVAE,
        level: int,
        by_key: dict[tuple[str, str], Utterance],
        labels: dict[tuple[str, str], PhoneIntervals],
        sentences: Sequence[str],
    ) -> None:
        self.model, self.level = model, level
        self.hop_s = model.hops[level] / model.sample_rate
        self.vocab: dict[str, int] = {}
        self.phones: dict[tuple[str, str], np.ndarray] = {}
        self.codes: dict[tuple[str, str], np.ndarray] = {}
        codes, phones = [], []
        for key, intervals in labels.items():
            if key[1] not in sentences or key not in by_key:
                continue
            c = self._codes(read_audio(by_key[key].path, model.sample_rate))
            self.phones[key] = label_frames(intervals, c.size, self.hop_s, self.vocab)
            self.codes[key] = c
            codes.append(c)
            phones.append(self.phones[key])
        if not codes:
            raise UserError("no labels found for the evaluated sentences")
        k = model.config.levels[level].codebook_size
        joint = cooccurrence(np.concatenate(codes), np.concatenate(phones), k, len(self.vocab))
        self.mapping = fit_mapping(joint)

    def _codes(self, wav: np.ndarray) -> np.ndarray:
        return self.model.encode(torch.from_numpy(wav), level=self.level)[0].cpu().numpy()

    def original_accuracy(self, speaker: str, sentence: str) -> float:
        """The same accuracy for the original rendition (its codes were computed when fitting)."""
        return self._score(self.codes[(speaker, sentence)], speaker, sentence)

    def accuracy(self, wav: np.ndarray, speaker: str, sentence: str) -> float:
        """Phone accuracy of ``wav``'s codes against the labels of ``speaker``'s ``sentence``."""
        return self._score(self._codes(wav), speaker, sentence)

    def _score(self, codes: np.ndarray, speaker: str, sentence: str) -> float:
        phones = self.phones[(speaker, sentence)]
        n = min(codes.size, phones.size)
        return mapping_accuracy(self.mapping, codes[:n], phones[:n])


# ------------------------------------------------------------------ choosing what ``eval-convert`` scores


def conversion_voices(
    model: VQVAE,
    utts: Sequence[Utterance],
    voices: Sequence[str] | None,
    references: Sequence[str] = (),
    corpus: str = "the corpus",
) -> list[str]:
    """The voices to convert between: ``voices`` (default: every corpus voice in the model's speaker
    table), then the ``references`` voices not among them.

    Raises:
        UserError: a voice not in the corpus, or a non-reference voice the model does not know.
    """
    present = sorted({u.speaker for u in utts})
    chosen = list(voices) if voices else [v for v in present if v in model.speakers]
    chosen += [v for v in references if v not in chosen]
    missing = [v for v in chosen if v not in present]
    if missing:
        raise UserError(f"voices not in {corpus}: {', '.join(missing)}")
    for v in chosen:
        if v not in references:
            model.speaker_index(v)
    return chosen


def sentence_ids(utts: Sequence[Utterance], split: str | None, n: int) -> list[str]:
    """The first ``n`` sentence ids (the last part of each ``utt_id``) of ``split``, sorted."""
    return sorted({u.utt_id.rsplit("/", 1)[-1] for u in utts if split is None or u.split == split})[:n]


def enrol_from_corpus(
    model: VQVAE, utts: Sequence[Utterance], voice: str, seconds: float, corpus: str = "the corpus"
) -> tuple[torch.Tensor, int, float]:
    """``voice``'s speaker embedding from its first train-split utterances (by id) adding up to at least
    ``seconds``: ``(embedding [D], clips used, their seconds)``.

    Raises:
        UserError: ``voice`` has no train-split utterance.
    """
    clips: list[Path] = []
    total = 0.0
    for u in sorted((u for u in utts if u.speaker == voice and u.split == "train"), key=lambda u: u.utt_id):
        clips.append(u.path)
        total += audio_info(u.path).duration
        if total >= seconds:
            break
    if not clips:
        raise UserError(f"{corpus}: voice {voice} has no train-split utterances to enrol from")
    return reference_embedding(model, clips), len(clips), total


def labels_by_sentence(data: Path, labels: Path, ids: Sequence[str]) -> dict[tuple[str, str], PhoneIntervals]:
    """Phone labels of the corpus ``data`` (a manifest) for the sentences ``ids``, by (speaker, sentence
    id), paired as :func:`vqaudio.data.pairing.find_pairs` pairs them."""
    wanted = set(ids)
    found, _ = find_pairs(data, labels)
    by_sentence = {(p.speaker, p.utt_id.rsplit("/", 1)[-1]): p.labels for p in found}
    return {key: read_labels(path) for key, path in by_sentence.items() if key[1] in wanted}
