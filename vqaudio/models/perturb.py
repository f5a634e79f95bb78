"""Voice perturbation of the encoder's input: pitch and formants moved, timing kept.

Information perturbation as in NANSY (Choi et al., 2021) and ContentVec (Qian et al., 2022): during
training the encoder hears a copy of the audio whose spectrum (pitch harmonics and formants together)
is scaled by a random factor, while the decoder must still rebuild the original with the original
speaker's embedding.  What changes between the two (the voice) cannot usefully pass through the codes,
so the codes keep less of it.  Training only: encoding at inference sees the audio as it is.

The shift is a rational resampling (which scales frequencies and duration) followed by a phase-vocoder
time stretch back to the original length, so frames stay aligned with the target.
"""

from __future__ import annotations

import torch
import torchaudio.functional as AF
from torch import Tensor

__all__ = ["SHIFT_RATIOS", "perturb_voices", "shift_voice"]

SHIFT_RATIOS: tuple[tuple[int, int], ...] = (
    (10, 9),
    (9, 10),
    (8, 7),
    (7, 8),
    (6, 5),
    (5, 6),
    (5, 4),
    (4, 5),
)
"""Frequency scale factors ``a / b`` (small integers keep the resampling kernel short): +-11% to +-25%."""

_N_FFT, _HOP = 512, 128


def shift_voice(wav: Tensor, up: int, down: int) -> Tensor:
    """``[B, T]`` -> ``[B, T]`` with every frequency multiplied by ``up / down``, timing unchanged."""
    if wav.shape[-1] < _N_FFT or up == down:
        return wav
    with torch.autocast(device_type=wav.device.type, enabled=False):
        x = wav.float()
        stretched = AF.resample(x, up, down)  # down/up times as long: frequencies x up/down when played
        window = torch.hann_window(_N_FFT, device=x.device)
        spec = torch.stft(stretched, _N_FFT, _HOP, window=window, return_complex=True)
        advance = torch.linspace(0, torch.pi * _HOP, spec.shape[-2], device=x.device)[..., None]
        spec = AF.phase_vocoder(spec, stretched.shape[-1] / x.shape[-1], advance)
        out = torch.istft(spec, _N_FFT, _HOP, window=window, length=x.shape[-1])
    return out.to(wav.dtype)


def perturb_voices(wav: Tensor, prob: float) -> Tensor:
    """``[B, 1, T]``: each item, with probability ``prob``, shifted by a random :data:`SHIFT_RATIOS` ratio."""
    if prob <= 0:
        return wav
    b = wav.shape[0]
    pick = torch.rand(b, device=wav.device) < prob
    choice = torch.randint(len(SHIFT_RATIOS), (b,), device=wav.device)
    out = wav.clone()
    for r in choice[pick].unique().tolist():
        idx = pick & (choice == r)
        out[idx, 0] = shift_voice(wav[idx, 0], *SHIFT_RATIOS[r])
    return out
