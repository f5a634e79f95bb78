"""Tests for vqaudio.analysis.frames: frame targets from phone intervals."""

from __future__ import annotations

import numpy as np
import pytest

from vqaudio.analysis.frames import check_coverage, label_frames
from vqaudio.data.labels import PhoneIntervals


def test_check_coverage(say_hi_phones) -> None:
    assert check_coverage(say_hi_phones, audio_seconds=1.2, frame_seconds=0.02) is None
    assert check_coverage(say_hi_phones, audio_seconds=1.19, frame_seconds=0.02) is None  # within a frame
    assert (
        check_coverage(say_hi_phones, audio_seconds=5.0, frame_seconds=0.02) is None
    )  # labels may end early
    message = check_coverage(say_hi_phones, audio_seconds=1.0, frame_seconds=0.02)
    assert message is not None and "1.200 s" in message and "1.000 s" in message


def test_label_frames_centre_rule() -> None:
    intervals = PhoneIntervals.from_tuples([(0, 0.1, "a"), (0.1, 0.25, "b")])
    vocab: dict[str, int] = {}
    got = label_frames(intervals, 8, 0.05, vocab)
    assert vocab == {"a": 0, "b": 1}
    assert got.dtype == np.int64
    # centres 0.025, 0.075 -> a; 0.125, 0.175, 0.225 -> b; 0.275... -> past the end
    assert got.tolist() == [0, 0, 1, 1, 1, -1, -1, -1]


def test_label_frames_gaps_boundaries_and_shared_vocab() -> None:
    # centre exactly on a boundary belongs to the interval starting there ([start, end))
    # (binary-exact times: centres 0.125 0.375 0.625 0.875 1.125 at hop 0.25)
    intervals = PhoneIntervals.from_tuples([(0.0, 0.375, "x"), (0.375, 0.5, "b"), (0.75, 1.0, "y")])
    vocab = {"b": 5}
    got = label_frames(intervals, 5, 0.25, vocab)
    assert vocab == {"b": 5, "x": 6, "y": 7}
    assert got.tolist() == [6, 5, -1, 7, -1]
    assert label_frames(PhoneIntervals.from_tuples([]), 3, 0.1, vocab).tolist() == [-1, -1, -1]
    assert label_frames(PhoneIntervals.from_tuples([(0.0, 0.125, "z")]), 1, 0.25, vocab).tolist() == [-1]
    assert label_frames(intervals, 0, 0.1, vocab).shape == (0,)
    with pytest.raises(ValueError, match="hop_seconds"):
        label_frames(intervals, 3, 0.0, vocab)


def test_label_frames_matches_loop() -> None:
    rng = np.random.default_rng(0)
    edges = np.cumsum(rng.uniform(0.01, 0.2, size=41))
    keep = rng.random(20) < 0.8  # some gaps
    rows = [(edges[2 * i], edges[2 * i + 1], f"p{i % 7}") for i in range(20) if keep[i]]
    intervals = PhoneIntervals.from_tuples(rows)
    vocab: dict[str, int] = {}
    hop = 0.0125
    got = label_frames(intervals, 500, hop, vocab)
    for i, value in enumerate(got):
        centre = (i + 0.5) * hop
        hit = [label for start, end, label in rows if start <= centre < end]
        assert value == (vocab[hit[0]] if hit else -1)
