"""What the demo corpus's speech synthesisers (flite, espeak-ng) share: phone-label files and saving
one synthesised utterance (resampled wav + labels that end exactly where the wav ends).

Label files are Audacity labels, one ``start<TAB>end<TAB>phone`` line per phone (seconds, 6 decimals),
contiguous from 0 to the end of the wav; silence is ``pau``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from vqaudio.audio import atomic_write_text, write_audio
from vqaudio.data.labels import read_tsv_rows
from vqaudio.errors import UserError

__all__ = [
    "LABEL_TOLERANCE_S",
    "PAUSE",
    "SynthesisError",
    "existing_duration",
    "fit_labels",
    "format_labels",
    "read_labels",
    "save_utterance",
]

LABEL_TOLERANCE_S = 0.05
"""How far a synthesiser's last phone end may be from the wav's length before we call it a bug."""

PAUSE = "pau"
"""The silence label of every label file written here (flite's name for it)."""

PhoneIntervals = list[tuple[float, float, str]]


class SynthesisError(RuntimeError):
    """A synthesiser ran but failed or produced something unusable (not the user's fault)."""


def format_labels(intervals: Iterable[tuple[float, float, str]]) -> str:
    """Label-file text for ``[(start_s, end_s, phone), ...]``."""
    return "".join(f"{start:.6f}\t{end:.6f}\t{label}\n" for start, end, label in intervals)


def read_labels(path: Path) -> PhoneIntervals:
    """Read a label file as written here: Audacity labels (``start<TAB>end<TAB>label`` in seconds, parsed
    by :func:`vqaudio.data.labels.read_tsv_rows`), every line labelled, the intervals non-empty, in time
    order and not overlapping; labels as written (``pau`` stays ``pau``).

    Raises:
        ValueError: an unreadable file, a malformed line or one without a label, or intervals that are
            empty, overlapping or out of order (:func:`existing_duration` makes such an utterance again).
    """
    try:
        rows = read_tsv_rows(path)
    except UserError as err:
        raise ValueError(str(err)) from None
    intervals: PhoneIntervals = []
    prev_end = 0.0
    for lineno, start, end, label in rows:
        if not label:
            raise ValueError(f"{path}:{lineno}: expected start<TAB>end<TAB>label")
        if not (math.isfinite(start) and math.isfinite(end)) or start < prev_end - 1e-9 or end <= start:
            raise ValueError(f"{path}:{lineno}: intervals must be non-empty and in time order")
        intervals.append((start, end, label))
        prev_end = end
    return intervals


def fit_labels(intervals: PhoneIntervals, duration_s: float) -> PhoneIntervals:
    """Make the labels end exactly at the audio's end.

    flite's diphone voices (kal, kal16) print the full duration of the final ``pau`` but only
    synthesise its first half (~0.11 s shorter audio), so a trailing ``pau`` is clipped; small rounding
    gaps (printed milliseconds, resampling) are closed by moving the last end. Zero-length phones are
    dropped.

    Raises:
        ValueError: no phones, or timings that end more than :data:`LABEL_TOLERANCE_S` away from the audio.
    """
    if not intervals:
        raise ValueError("the synthesiser reported no phones")
    out = [iv for iv in intervals if iv[1] > iv[0]]
    if not out:
        raise ValueError("the synthesiser reported only zero-length phones")
    start, end, last = out[-1]
    if end > duration_s + LABEL_TOLERANCE_S and last == PAUSE and start < duration_s - 1e-3:
        end = duration_s  # the diphone voices' half-synthesised final pause
    if abs(end - duration_s) > LABEL_TOLERANCE_S:
        raise ValueError(f"phone timings end at {end:.3f} s but the audio lasts {duration_s:.3f} s")
    if duration_s <= start:
        raise ValueError(f"audio ({duration_s:.3f} s) ends before the last phone starts ({start:.3f} s)")
    out[-1] = (start, duration_s, last)
    return out


def existing_duration(wav_path: Path, label_path: Path, sample_rate: int) -> float | None:
    """Duration (s) of an already generated utterance if its wav and labels are valid, else ``None``."""
    try:
        info = sf.info(str(wav_path))
        if info.samplerate != sample_rate or info.channels != 1 or info.frames <= 0:
            return None
        intervals = read_labels(label_path)
    except (OSError, RuntimeError, ValueError):  # soundfile raises LibsndfileError (a RuntimeError)
        return None
    duration = info.frames / sample_rate
    if not intervals or abs(intervals[-1][1] - duration) > 1e-3:
        return None
    return duration


def save_utterance(
    audio: np.ndarray,
    rate: float,
    phones: PhoneIntervals,
    wav_path: Path,
    label_path: Path,
    sample_rate: int,
) -> float:
    """Resample a synthesised utterance to ``sample_rate`` and write its wav and labels atomically.

    Args:
        audio: ``[T]`` float32 waveform as the synthesiser wrote it.
        rate: the rate ``audio`` is played at (Hz; a derived voice plays its samples faster than they
            were made, so this need not be an integer).
        phones: ``[(start_s, end_s, phone), ...]`` in the time of ``audio`` played at ``rate``.
        wav_path, label_path: outputs (mono PCM_16 wav; Audacity labels fitted to the wav's length).
        sample_rate: the corpus rate (Hz).

    Returns:
        The duration of the written wav, in seconds.

    Raises:
        SynthesisError: empty audio, or phone timings that do not match it.
    """
    if audio.size == 0:
        raise SynthesisError("the synthesiser wrote no audio")
    if rate != sample_rate:
        audio = soxr.resample(audio, rate, sample_rate, quality="HQ")
    duration = audio.shape[0] / sample_rate
    try:
        labels = fit_labels(phones, duration)
    except ValueError as exc:
        raise SynthesisError(str(exc)) from exc
    write_audio(wav_path, audio, sample_rate, subtype="PCM_16")
    atomic_write_text(label_path, format_labels(labels))
    return duration
