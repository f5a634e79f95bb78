"""Reconstruction quality of a model, per level, on held-out utterances.

Per level: nominal bitrate, log-mel distance, SI-SDR (Le Roux et al., 2019), and, when the optional
``pesq`` and ``pystoi`` packages are installed (``pip install vqaudio[metrics]``), wide-band PESQ
(ITU-T P.862.2) and STOI (Taal et al., 2011).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from vqaudio.audio import read_audio
from vqaudio.data import Utterance
from vqaudio.models import VQVAE
from vqaudio.train.losses import mel_distance

__all__ = ["LevelScore", "si_sdr", "evaluate_reconstruction"]


@dataclass
class LevelScore:
    level: int
    bitrate: float
    utterances: int
    mel_distance: float
    si_sdr: float
    pesq: float | None
    stoi: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant SDR in dB of ``estimate`` ``[T]`` against ``reference`` ``[T]``."""
    ref = reference - reference.mean()
    est = estimate - estimate.mean()
    alpha = float(np.dot(est, ref) / max(np.dot(ref, ref), 1e-12))
    target = alpha * ref
    noise = est - target
    return float(10 * np.log10(max(np.dot(target, target), 1e-12) / max(np.dot(noise, noise), 1e-12)))


def _optional_metrics(sample_rate: int) -> tuple[Callable[..., float] | None, Callable[..., float] | None]:
    pesq_fn = stoi_fn = None
    try:
        from pesq import pesq as _pesq

        if sample_rate == 16000:
            pesq_fn = lambda ref, est: float(_pesq(16000, ref, est, "wb"))  # noqa: E731
    except ImportError:
        pass
    try:
        from pystoi import stoi as _stoi

        stoi_fn = lambda ref, est: float(_stoi(ref, est, sample_rate, extended=False))  # noqa: E731
    except ImportError:
        pass
    return pesq_fn, stoi_fn


@torch.no_grad()
def evaluate_reconstruction(
    model: VQVAE,
    utts: Sequence[Utterance],
    levels: Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[LevelScore]:
    """Encode and decode every utterance at every level (decoding with its own speaker when known)."""
    levels = list(range(model.num_levels)) if levels is None else list(levels)
    device = next(model.parameters()).device
    sr = model.sample_rate
    pesq_fn, stoi_fn = _optional_metrics(sr)
    sums: dict[int, dict[str, list[float]]] = {
        lv: {"mel": [], "sisdr": [], "pesq": [], "stoi": []} for lv in levels
    }
    for n, utt in enumerate(utts):
        ref = read_audio(utt.path, sr)
        x = torch.from_numpy(ref).to(device)
        speaker = model.speakers.index(utt.speaker) if utt.speaker in model.speakers else 0
        for lv in levels:
            y = model.decode(model.encode(x, level=lv), level=lv, speaker=speaker).clamp(-1, 1)
            est = y.reshape(-1).float().cpu().numpy()
            s = sums[lv]
            s["mel"].append(float(mel_distance(y.reshape(1, 1, -1), x.reshape(1, 1, -1), sr)[0]))
            s["sisdr"].append(si_sdr(est, ref))
            if pesq_fn is not None:
                try:
                    s["pesq"].append(pesq_fn(ref, est))
                except Exception:  # noqa: BLE001 - pesq rejects silent / too short files
                    pass
            if stoi_fn is not None and len(ref) > sr // 4:
                s["stoi"].append(stoi_fn(ref, est))
        if progress is not None:
            progress(n + 1, len(utts))

    def mean(values: list[float]) -> float | None:
        return float(np.mean(values)) if values else None

    def mean_or_nan(values: list[float]) -> float:
        return float(np.mean(values)) if values else math.nan

    scores = []
    for lv in levels:
        s = sums[lv]
        scores.append(
            LevelScore(
                lv,
                model.config.bitrate(lv),
                len(s["mel"]),
                mean_or_nan(s["mel"]),
                mean_or_nan(s["sisdr"]),
                mean(s["pesq"]),
                mean(s["stoi"]),
            )
        )
    return scores
