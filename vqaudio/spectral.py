"""Spectral helpers that training and evaluation share: STFTs, mel filters, cached spectra, mel distance.

Everything is computed in float32 with autocast switched off, so results are the same under
``torch.autocast(..., dtype=torch.bfloat16)`` and on any device.

* :class:`Spectra`: the centred STFTs (Hann window of ``n``, hop ``n // 4``) of a batch, each computed
  once and reused by every loss and level (:mod:`vqaudio.train.losses`).
* :func:`mel_distance`: one fixed-resolution log-mel L1 per item, for validation, evaluation and benchmarks.
"""

from __future__ import annotations

import functools
import warnings

import torch
import torchaudio.functional as AF
from torch import Tensor

__all__ = [
    "LOG_FLOOR",
    "Spectra",
    "as_signal_batch",
    "default_n_mels",
    "log_mel",
    "mel_distance",
    "mel_filters",
]

LOG_FLOOR = 1e-5  # magnitudes below this are clamped before the log (HiFi-GAN, DAC)


def mel_filters(n_fft: int, n_mels: int, sample_rate: int) -> Tensor:
    """Triangular HTK mel filters ``[n_fft // 2 + 1, n_mels]``, the ones ``torchaudio.transforms.MelScale``
    builds (0 Hz to Nyquist, no area normalisation)."""
    return AF.melscale_fbanks(n_fft // 2 + 1, 0.0, sample_rate / 2, n_mels, sample_rate)


def default_n_mels(n_fft: int, sample_rate: int) -> int:
    """Number of mel bands used for one FFT size: ``min(80, n_fft // 8)``, lowered until no filter is empty.

    Small FFTs have too few low-frequency bins for 80 triangular filters; an empty filter is a constant
    band that only wastes compute (and makes torchaudio warn). At 16 kHz this gives 32/64/80/80 bands for
    FFT sizes 256/512/1024/2048.
    """
    n_mels = max(1, min(80, n_fft // 8))
    while n_mels > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fb = mel_filters(n_fft, n_mels, sample_rate)
        if bool((fb.amax(dim=0) > 0).all()):
            break
        n_mels -= 1
    return n_mels


def as_signal_batch(x: Tensor, name: str) -> Tensor:
    """``[B, 1, T]`` or ``[B, T]`` -> float32 ``[B, T]``."""
    if x.dim() == 3:
        if x.shape[1] != 1:
            raise ValueError(f"{name} must be mono [B, 1, T] or [B, T], got shape {tuple(x.shape)}")
        x = x[:, 0]
    elif x.dim() != 2:
        raise ValueError(f"{name} must be [B, 1, T] or [B, T], got shape {tuple(x.shape)}")
    if x.shape[-1] < 1:
        raise ValueError(f"{name} is empty (T = 0)")
    return x.float()


def _check_pair(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    return as_signal_batch(pred, "pred"), as_signal_batch(target, "target")


def _stft(x: Tensor, n_fft: int, hop_length: int, window: Tensor) -> Tensor:
    """Centred complex STFT of ``x`` ``[B, T]`` -> ``[B, n_fft // 2 + 1, frames]`` (complex64).

    Frames are centred with reflect padding when the signal is long enough (``T > n_fft // 2``) and with
    zeros otherwise, so any ``T >= 1`` gives at least one frame.
    """
    mode = "reflect" if x.shape[-1] > n_fft // 2 else "constant"
    return torch.stft(
        x.float(),
        n_fft,
        hop_length=hop_length,
        win_length=window.shape[-1],
        window=window.float(),
        center=True,
        pad_mode=mode,
        return_complex=True,
    )


def _stft_magnitude(x: Tensor, n_fft: int, hop_length: int, window: Tensor) -> Tensor:
    """Magnitude of :func:`_stft`: ``[B, n_fft // 2 + 1, frames]`` (float32)."""
    return _stft(x, n_fft, hop_length, window).abs()


class Spectra:
    """The centred STFTs (Hann window of ``n``, hop ``n // 4``) of one batch of signals, each computed once.

    Every spectral loss here uses that definition, so one :class:`Spectra` of the target serves the mel
    loss, the phase loss and every level's loss in a training step, and one of a level's prediction
    serves both losses of that level (the target's STFTs used to be computed 5 times per level).

    Args:
        x: ``[B, 1, T]`` or ``[B, T]`` signals (kept as float32 ``[B, T]`` in ``signal``).
    """

    def __init__(self, x: Tensor, name: str = "signal") -> None:
        self.signal = as_signal_batch(x, name)
        self._complex: dict[int, Tensor] = {}
        self._magnitude: dict[int, Tensor] = {}
        self._log_magnitude: dict[int, Tensor] = {}

    @property
    def shape(self) -> torch.Size:
        return self.signal.shape

    def select(self, items: Tensor | None) -> Spectra:
        """The spectra of batch rows ``items`` (``None``: this object): what is computed is sliced, not
        recomputed, and whatever the subset computes later is its own."""
        if items is None:
            return self
        sub = Spectra(self.signal.index_select(0, items))
        for mine, theirs in (
            (self._complex, sub._complex),
            (self._magnitude, sub._magnitude),
            (self._log_magnitude, sub._log_magnitude),
        ):
            theirs.update({n: x.index_select(0, items) for n, x in mine.items()})
        return sub

    def complex(self, n_fft: int, window: Tensor) -> Tensor:
        """``[B, n_fft // 2 + 1, frames]`` complex64 (see :func:`_stft`); ``window`` has ``n_fft`` points."""
        if n_fft not in self._complex:
            with torch.autocast(device_type=self.signal.device.type, enabled=False):
                self._complex[n_fft] = _stft(self.signal, n_fft, n_fft // 4, window)
        return self._complex[n_fft]

    def magnitude(self, n_fft: int, window: Tensor) -> Tensor:
        """``|complex(n_fft)|`` ``[B, n_fft // 2 + 1, frames]`` float32."""
        if n_fft not in self._magnitude:
            self._magnitude[n_fft] = self.complex(n_fft, window).abs()
        return self._magnitude[n_fft]

    def log_magnitude(self, n_fft: int, window: Tensor) -> Tensor:
        """``log(clamp(|complex(n_fft)|, 1e-5))`` ``[B, n_fft // 2 + 1, frames]`` float32."""
        if n_fft not in self._log_magnitude:
            self._log_magnitude[n_fft] = torch.log(self.magnitude(n_fft, window).clamp(min=LOG_FLOOR))
        return self._log_magnitude[n_fft]


def log_mel(mag: Tensor, filters: Tensor) -> Tensor:
    """``[B, F, frames]`` magnitude and ``[F, M]`` filters -> ``[B, M, frames]`` log-mel."""
    mel = torch.matmul(mag.transpose(1, 2), filters.float()).transpose(1, 2)
    return torch.log(mel.clamp(min=LOG_FLOOR))


@functools.lru_cache(maxsize=8)
def _distance_buffers(sample_rate: int) -> tuple[Tensor, Tensor]:
    return torch.hann_window(1024), mel_filters(1024, 80, sample_rate)


def mel_distance(pred: Tensor, target: Tensor, sample_rate: int) -> Tensor:
    """Per-item log-mel L1 distance (n_fft 1024, hop 256, 80 HTK mel bands, ``log(clamp(mel, 1e-5))``).

    ``pred``, ``target``: ``[B, 1, T]`` or ``[B, T]`` -> float32 ``[B]``. A fixed single resolution, so
    numbers are comparable across runs and models (validation, benchmarks).
    """
    window, filters = _distance_buffers(sample_rate)
    with torch.autocast(device_type=pred.device.type, enabled=False):
        p, t = _check_pair(pred, target)
        window, filters = window.to(p.device), filters.to(p.device)
        diff = log_mel(_stft_magnitude(p, 1024, 256, window), filters) - log_mel(
            _stft_magnitude(t, 1024, 256, window), filters
        )
        return diff.abs().mean(dim=(1, 2))
