"""Waveform discriminators for adversarial training.

* :class:`MultiPeriodDiscriminator`: HiFi-GAN's MPD (Kong et al. 2020, sec. 2.2), waveform folded into
  ``[T / p, p]`` and judged by 2-D convolutions with kernels ``(k, 1)``.
* :class:`MultiScaleSTFTDiscriminator`: EnCodec's MS-STFTD (Défossez et al. 2022, sec. 3.4), 2-D
  convolutions over the complex STFT (real and imaginary parts as two channels) at several FFT sizes.
* :class:`CombinedDiscriminator`: both, with their outputs concatenated.

Every discriminator takes ``[B, 1, T]`` with any ``T >= 1`` and returns a :class:`DiscriminatorOutput`:
one logits tensor ``[B, N_k]`` and one list of hidden feature maps (for feature matching) per
sub-discriminator. Convolutions use weight normalisation (Salimans & Kingma 2016).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

__all__ = [
    "CombinedDiscriminator",
    "DiscriminatorOutput",
    "MultiPeriodDiscriminator",
    "MultiScaleSTFTDiscriminator",
]


@dataclass
class DiscriminatorOutput:
    """What a (multi-)discriminator returns.

    Attributes:
        logits: one tensor ``[B, N_k]`` per sub-discriminator ``k`` (``N_k`` depends on ``T``).
        features: one list per sub-discriminator of its hidden activations (after the nonlinearity),
            for feature matching; shapes ``[B, C, H, W]``.
    """

    logits: list[Tensor]
    features: list[list[Tensor]]


def _check_input(x: Tensor) -> None:
    if x.dim() != 3 or x.shape[1] != 1:
        raise ValueError(f"discriminator input must be [B, 1, T], got shape {tuple(x.shape)}")
    if x.shape[-1] < 1:
        raise ValueError("discriminator input is empty (T = 0)")


def _conv2d(
    in_ch: int,
    out_ch: int,
    kernel: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
) -> nn.Module:
    """Weight-normalised ``Conv2d`` with 'same' padding for odd kernels."""
    padding = ((kernel[0] - 1) * dilation[0] // 2, (kernel[1] - 1) * dilation[1] // 2)
    return weight_norm(nn.Conv2d(in_ch, out_ch, kernel, stride=stride, dilation=dilation, padding=padding))


class _PeriodDiscriminator(nn.Module):
    """One MPD branch: ``[B, 1, T]`` -> ``[B, 1, ceil(T / p), p]`` -> 2-D conv stack -> logits ``[B, N]``.

    Widths ``min(channels * 2**i, max_channels)`` for five ``(kernel, 1)`` convolutions, the first four
    with stride 3 along time, then a ``(3, 1)`` output convolution; LeakyReLU(0.1) as in HiFi-GAN.
    """

    def __init__(self, period: int, channels: int, max_channels: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.period = period
        widths = [min(channels * 2**i, max_channels) for i in range(5)]
        convs = []
        in_ch = 1
        for i, width in enumerate(widths):
            stride = 3 if i < len(widths) - 1 else 1
            convs.append(_conv2d(in_ch, width, (kernel_size, 1), stride=(stride, 1)))
            in_ch = width
        self.convs = nn.ModuleList(convs)
        self.post = _conv2d(in_ch, 1, (3, 1))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        batch, _, length = x.shape
        n_pad = (-length) % self.period
        if n_pad:
            # Reflect needs more samples than it pads; very short inputs fall back to zeros.
            x = F.pad(x, (0, n_pad), mode="reflect" if n_pad < length else "constant")
        h = x.reshape(batch, 1, -1, self.period)
        features = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.1)
            features.append(h)
        return self.post(h).flatten(1), features

    def extra_repr(self) -> str:
        return f"period={self.period}"


def _run_all(discriminators: nn.ModuleList, x: Tensor) -> DiscriminatorOutput:
    """Run every sub-discriminator on ``x`` ``[B, 1, T]`` and collect logits and features."""
    _check_input(x)
    out = DiscriminatorOutput(logits=[], features=[])
    for disc in discriminators:
        logits, feats = disc(x)
        out.logits.append(logits)
        out.features.append(feats)
    return out


class MultiPeriodDiscriminator(nn.Module):
    """HiFi-GAN multi-period discriminator (Kong et al. 2020, sec. 2.2).

    One branch per period; a branch pads ``T`` to a multiple of its period, folds the waveform into
    ``[T / p, p]`` and applies 2-D convolutions that never mix columns, so each branch sees the samples
    ``p`` apart. Channel widths double per layer from ``channels`` up to ``max_channels`` (HiFi-GAN
    quadruples them up to 1024; this keeps the default at about 4.4 M parameters).

    Args:
        periods: the periods (primes in HiFi-GAN, so branches overlap little).
        channels: width of the first convolution.
        max_channels: cap on the width.
    """

    def __init__(
        self, periods: Sequence[int] = (2, 3, 5, 7, 11), channels: int = 32, max_channels: int = 512
    ) -> None:
        super().__init__()
        periods = list(periods)
        if not periods or any(p < 1 for p in periods):
            raise ValueError(f"periods must be a non-empty list of positive ints, got {periods}")
        if channels < 1 or max_channels < 1:
            raise ValueError(f"channels and max_channels must be positive, got {channels}, {max_channels}")
        self.periods = periods
        self.discriminators = nn.ModuleList(_PeriodDiscriminator(p, channels, max_channels) for p in periods)

    def forward(self, x: Tensor) -> DiscriminatorOutput:
        """``x``: waveform ``[B, 1, T]`` -> one logits tensor and feature list per period."""
        return _run_all(self.discriminators, x)


class _STFTDiscriminator(nn.Module):
    """One MS-STFTD branch (EnCodec sec. 3.4).

    ``[B, 1, T]`` -> normalised complex STFT (Hann, hop ``n_fft // 4``) as ``[B, 2, frames, n_fft//2+1]``
    -> conv ``(3, 9)`` -> three convs ``(3, 9)`` with dilations 1, 2, 4 in time and stride 2 in frequency
    -> conv ``(3, 3)`` -> output conv ``(3, 3)`` to logits ``[B, N]``; LeakyReLU(0.2).
    """

    window: Tensor

    def __init__(self, n_fft: int, channels: int, dilations: Sequence[int] = (1, 2, 4)) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        convs = [_conv2d(2, channels, (3, 9))]
        for d in dilations:
            convs.append(_conv2d(channels, channels, (3, 9), stride=(1, 2), dilation=(d, 1)))
        convs.append(_conv2d(channels, channels, (3, 3)))
        self.convs = nn.ModuleList(convs)
        self.post = _conv2d(channels, 1, (3, 3))

    def spectrogram(self, x: Tensor) -> Tensor:
        """``[B, 1, T]`` -> float32 ``[B, 2, frames, n_fft // 2 + 1]`` (real, imag), outside autocast."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            wav = x[:, 0].float()
            mode = "reflect" if wav.shape[-1] > self.n_fft // 2 else "constant"
            spec = torch.stft(
                wav,
                self.n_fft,
                hop_length=self.hop_length,
                window=self.window.float(),
                center=True,
                pad_mode=mode,
                normalized=True,
                return_complex=True,
            )
            return torch.view_as_real(spec).permute(0, 3, 2, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        h = self.spectrogram(x)
        features = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.2)
            features.append(h)
        return self.post(h).flatten(1), features

    def extra_repr(self) -> str:
        return f"n_fft={self.n_fft}, hop_length={self.hop_length}"


class MultiScaleSTFTDiscriminator(nn.Module):
    """EnCodec multi-scale STFT discriminator (Défossez et al. 2022, sec. 3.4).

    One branch per FFT size, each judging the complex STFT (real and imaginary parts as channels) with
    2-D convolutions dilated in time. EnCodec uses window sizes 2048..128 at 24 kHz; the default
    (1024, 512, 256) covers similar durations at 16 kHz.

    Args:
        fft_sizes: FFT (and window) sizes, each >= 4; hop is ``n_fft // 4``.
        channels: width of every convolution.
    """

    def __init__(self, fft_sizes: Sequence[int] = (1024, 512, 256), channels: int = 32) -> None:
        super().__init__()
        fft_sizes = list(fft_sizes)
        if not fft_sizes or any(n < 4 for n in fft_sizes):
            raise ValueError(f"fft_sizes must be a non-empty list of ints >= 4, got {fft_sizes}")
        if channels < 1:
            raise ValueError(f"channels must be positive, got {channels}")
        self.fft_sizes = fft_sizes
        self.discriminators = nn.ModuleList(_STFTDiscriminator(n, channels) for n in fft_sizes)

    def forward(self, x: Tensor) -> DiscriminatorOutput:
        """``x``: waveform ``[B, 1, T]`` -> one logits tensor and feature list per FFT size."""
        return _run_all(self.discriminators, x)


class CombinedDiscriminator(nn.Module):
    """Multi-period (HiFi-GAN) and multi-scale STFT (EnCodec) discriminators side by side.

    ``forward`` returns the MPD outputs first (one per period), then the MS-STFTD outputs (one per FFT
    size). ``sample_rate`` is recorded for reference (the defaults suit 16 kHz speech).

    Args:
        sample_rate: audio sample rate in Hz.
        periods: MPD periods.
        fft_sizes: MS-STFTD FFT sizes.
        channels: base width of both discriminators.
    """

    def __init__(
        self,
        sample_rate: int,
        periods: Sequence[int] = (2, 3, 5, 7, 11),
        fft_sizes: Sequence[int] = (1024, 512, 256),
        channels: int = 32,
    ) -> None:
        super().__init__()
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.sample_rate = sample_rate
        self.mpd = MultiPeriodDiscriminator(periods, channels=channels)
        self.msstftd = MultiScaleSTFTDiscriminator(fft_sizes, channels=channels)

    def forward(self, x: Tensor) -> DiscriminatorOutput:
        """``x``: waveform ``[B, 1, T]`` -> ``len(periods) + len(fft_sizes)`` logits and feature lists."""
        mpd, stft = self.mpd(x), self.msstftd(x)
        return DiscriminatorOutput(logits=mpd.logits + stft.logits, features=mpd.features + stft.features)
