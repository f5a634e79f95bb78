"""Codec2 / Opus baselines: round trips keep the length, payload bits exclude the containers."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from vqaudio.data.synthetic import toy_utterance
from vqaudio.eval.baselines import BASELINES, codec2_roundtrip, ogg_payload_bytes, opus_roundtrip

SR = 16000
needs_c2 = pytest.mark.skipif(shutil.which("c2enc") is None, reason="codec2 not installed")
needs_opus = pytest.mark.skipif(shutil.which("opusenc") is None, reason="opus-tools not installed")


def _speech(seconds: float) -> np.ndarray:
    return toy_utterance(np.random.default_rng(0), SR, seconds, 120.0, 1.0) * 0.5


def test_ogg_payload_counts_packets_after_the_headers() -> None:
    def page(packets: list[bytes]) -> bytes:
        lacing = b"".join(bytes([255] * (len(p) // 255) + [len(p) % 255]) for p in packets)
        return b"OggS" + bytes(22) + bytes([len(lacing)]) + lacing + b"".join(packets)

    data = page([b"H" * 19, b"T" * 300]) + page([b"a" * 40, b"b" * 510])
    assert ogg_payload_bytes(data) == 550
    assert ogg_payload_bytes(data, skip_packets=0) == 869
    with pytest.raises(ValueError):
        ogg_payload_bytes(b"not ogg" * 10)


@needs_c2
@pytest.mark.parametrize("mode", [3200, 2400, 1200])
def test_codec2_round_trip(mode: int) -> None:
    x = _speech(2.0)
    y, bits = codec2_roundtrip(x, SR, mode)
    assert y.shape == x.shape
    assert abs(bits / 2.0 - mode) / mode < 0.05  # payload bit rate = the mode


@needs_opus
def test_opus_round_trip() -> None:
    x = _speech(3.0)
    y, bits = opus_roundtrip(x, SR, 6000)
    assert y.shape == x.shape and np.abs(y).max() > 0.01
    assert 3000 < bits / 3.0 < 9000


def test_the_standard_baselines_are_listed() -> None:
    assert [b.name for b in BASELINES] == ["Codec2 3200", "Codec2 2400", "Codec2 1200", "Opus 6 kbit/s"]


def test_align_removes_a_pure_delay() -> None:
    from vqaudio.eval.baselines import align

    x = _speech(1.0).astype(np.float32)
    delayed = np.concatenate([np.zeros(107, np.float32), x[:-107]])
    y = align(delayed, x, max_lag=800)
    np.testing.assert_array_equal(y[: x.size - 107], x[: x.size - 107])
    assert np.array_equal(align(x, x, 800), x)
