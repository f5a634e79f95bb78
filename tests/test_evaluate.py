"""Reconstruction metrics: SI-SDR on known signals, per-level scores of a tiny model."""

from __future__ import annotations

import math

import numpy as np
import torch
from test_models import tiny_model_config

from vqaudio.data import scan_folder
from vqaudio.evaluate import evaluate_reconstruction, si_sdr
from vqaudio.models import build_model


def test_si_sdr_known_values() -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(16000)
    ref -= ref.mean()
    noise = rng.standard_normal(16000)
    noise -= noise.mean()
    noise -= ref * np.dot(noise, ref) / np.dot(ref, ref)  # orthogonal to the reference
    noise *= np.linalg.norm(ref) / np.linalg.norm(noise) / math.sqrt(10)  # 10 dB below it
    assert abs(si_sdr(ref + noise, ref) - 10.0) < 1e-6
    assert abs(si_sdr(0.3 * ref + 0.3 * noise, ref) - 10.0) < 1e-6  # scale-invariant
    assert si_sdr(ref, ref) > 100


def test_evaluate_reconstruction_scores_every_level(toy_corpus) -> None:
    torch.manual_seed(0)
    utts = scan_folder(toy_corpus)[:3]
    model = build_model(tiny_model_config(), sorted({u.speaker for u in utts})).eval()
    scores = evaluate_reconstruction(model, utts)
    assert [s.level for s in scores] == [0, 1]
    for s in scores:
        assert s.utterances == 3
        assert s.bitrate == model.config.bitrate(s.level)
        assert math.isfinite(s.mel_distance) and s.mel_distance > 0
        assert math.isfinite(s.si_sdr)
        assert s.pesq is None or 1.0 <= s.pesq <= 4.7
        assert s.stoi is None or -1.0 <= s.stoi <= 1.0
