"""Frame targets from phone labels: which phone each code frame stands for (``vqaudio analyze``,
``vqaudio eval-convert --labels``). The label files themselves are read by :mod:`vqaudio.data.labels`.
"""

from __future__ import annotations

import numpy as np

from vqaudio.data.labels import PhoneIntervals

__all__ = ["check_coverage", "label_frames"]


def check_coverage(intervals: PhoneIntervals, audio_seconds: float, frame_seconds: float) -> str | None:
    """A one-line message if the labels end more than one frame after the audio does, or before its first
    frame (labels read in the wrong format or units: no frame would be labelled), else ``None`` (labels
    ending early are normal otherwise: trailing frames simply get no label)."""
    if intervals.duration < frame_seconds:
        return (
            f"the labels end at {intervals.duration:.4g} s, before the first frame ({frame_seconds:g} s), "
            f"and the audio lasts {audio_seconds:.2f} s: wrong --format?"
        )
    excess = intervals.duration - audio_seconds
    if excess > frame_seconds:
        return (
            f"labels end at {intervals.duration:.3f} s, {excess:.3f} s after the audio "
            f"({audio_seconds:.3f} s); wrong labels for this file or wrong sample rate?"
        )
    return None


def label_frames(
    intervals: PhoneIntervals, num_frames: int, hop_seconds: float, vocab: dict[str, int]
) -> np.ndarray:
    """Label each frame with the interval covering its centre.

    Frame ``i`` spans ``[i * hop, (i + 1) * hop)`` and takes the label of the interval ``[start, end)``
    containing ``(i + 0.5) * hop``. Labels missing from ``vocab`` are added to it (in time order, with
    the next index above its largest), so one dict shared across utterances gives consistent indices.

    Returns:
        ``[num_frames]`` int64 indices into ``vocab``; -1 where the centre is in a gap or past the end.
    """
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    if not hop_seconds > 0:
        raise ValueError(f"hop_seconds must be positive, got {hop_seconds}")
    ids = np.empty(len(intervals) + 1, dtype=np.int64)
    next_id = max(vocab.values(), default=-1) + 1
    for i, label in enumerate(intervals.labels):
        if label not in vocab:
            vocab[label] = next_id
            next_id += 1
        ids[i] = vocab[label]
    ids[-1] = -1
    centres = (np.arange(num_frames, dtype=np.float64) + 0.5) * hop_seconds
    which = np.searchsorted(intervals.starts, centres, side="right") - 1
    covered = which >= 0
    covered[covered] = centres[covered] < intervals.ends[which[covered]]
    return ids[np.where(covered, which, -1)]
