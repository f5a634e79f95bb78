"""Codec2 / Opus baselines: round trips keep the length and rate, payload bits exclude the containers, and
the decoded audio scores as a low-rate codec should (worse than a copy, far better than silence)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soxr
import torch

from vqaudio.data.synthetic import toy_utterance
from vqaudio.eval.baselines import (
    BASELINES,
    available_baselines,
    codec2_roundtrip,
    ogg_payload_bytes,
    opus_roundtrip,
)
from vqaudio.spectral import mel_distance

try:
    from pesq import pesq as pesq_wb
except ImportError:  # optional (the metrics extra)
    pesq_wb = None
try:
    from pystoi import stoi
except ImportError:
    stoi = None

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


def _mel(estimate: np.ndarray, reference: np.ndarray) -> float:
    return float(mel_distance(torch.from_numpy(estimate)[None], torch.from_numpy(reference)[None], SR)[0])


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


@pytest.mark.skipif(not available_baselines(), reason="neither codec2 nor opus-tools installed")
def test_standard_baselines_resemble_their_input_but_score_below_it() -> None:
    """Each installed standard baseline (through ``Baseline.run``, delay removed) gives audio of the
    input's length and level, its payload near its nominal rate, and scores between a perfect copy and
    junk: mel distance well above 0 and well below silence's, PESQ above noise at 0 dB SNR (~1.0) and
    below the identity's (4.64), STOI high (time-aligned); Codec2 at 3200 bit/s beats it at 1200."""
    x = _speech(2.0).astype(np.float32)
    silence = _mel(np.zeros_like(x), x)
    pesq_of = {}
    for b in available_baselines():
        assert b in BASELINES and b.codec in ("codec2", "opus")
        y, bits = b.run(x, SR)
        assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all(), b.name
        assert 0.3 < _rms(y) / _rms(x) < 2.0, b.name
        assert 0.7 < bits / 2.0 / b.rate <= 1.05, b.name
        mel = _mel(y, x)
        assert 0.3 < mel < 0.5 * silence, (b.name, mel, silence)
        if pesq_wb is not None:
            pesq_of[b.name] = pesq_wb(SR, x, y, "wb")
            assert 1.2 < pesq_of[b.name] < 4.0 < pesq_wb(SR, x, x, "wb"), (b.name, pesq_of[b.name])
        if stoi is not None:
            assert stoi(x, y, SR) > 0.6, b.name
    if {"Codec2 3200", "Codec2 1200"} <= pesq_of.keys():
        assert pesq_of["Codec2 3200"] > pesq_of["Codec2 1200"]


@pytest.mark.skipif(not available_baselines(), reason="neither codec2 nor opus-tools installed")
@pytest.mark.parametrize("sr", [8000, 44100])
def test_baselines_return_audio_at_the_inputs_rate_and_length(sr: int) -> None:
    x = soxr.resample(_speech(1.0), SR, sr).astype(np.float32)[: sr - 7]  # not a whole number of frames
    band = slice(int(50 * x.size / sr), int(1000 * x.size / sr))

    def peak_hz(v: np.ndarray) -> float:
        return (band.start + int(np.argmax(np.abs(np.fft.rfft(v))[band]))) * sr / v.size

    for b in {b.codec: b for b in available_baselines()}.values():  # one per codec
        y, _ = b.run(x, sr)
        assert y.shape == x.shape and 0.3 < _rms(y) / _rms(x) < 2.0, b.name
        # the same sound: its spectrum peaks where the input's does (below 1 kHz, its strongest harmonic)
        assert abs(peak_hz(y) - peak_hz(x)) < 30, b.name


def test_align_removes_a_pure_delay() -> None:
    from vqaudio.eval.baselines import align

    x = _speech(1.0).astype(np.float32)
    delayed = np.concatenate([np.zeros(107, np.float32), x[:-107]])
    y = align(delayed, x, max_lag=800)
    np.testing.assert_array_equal(y[: x.size - 107], x[: x.size - 107])
    assert np.array_equal(align(x, x, 800), x)
