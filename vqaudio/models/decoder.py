"""Per-level decoder: speaker-conditioned gated residual stacks and transposed-conv upsampling, ending
either in a waveform convolution or in an inverse-STFT head (Vocos, Siuzdak 2023)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqaudio.models.blocks import ResidualStack, Upsample, chain_span, one_sided
from vqaudio.models.encoder import channel_plan

__all__ = ["Decoder", "ISTFTHead"]

_MAX_LOG_MAGNITUDE = 8.0  # exp(8) ~ 3000: far above any STFT magnitude of audio in [-1, 1] at these sizes


class ISTFTHead(nn.Module):
    """Activated frames ``[B, C, n]`` -> waveform ``[B, 1, n * hop]`` through an inverse STFT (Vocos's head).

    A 1x1 convolution predicts, per frame, a log magnitude and a phase for each of the ``n_fft // 2 + 1``
    bins (``n_fft = 4 * hop``, Hann window); ``torch.istft`` overlap-adds them. The network then only
    runs at the frame rate, and harmonics are placed as spectral peaks rather than built sample by
    sample. The projection and the inverse transform run in float32 with autocast off.
    """

    window: Tensor

    def __init__(self, channels: int, hop: int) -> None:
        super().__init__()
        self.hop = hop
        self.n_fft = 4 * hop
        self.bins = self.n_fft // 2 + 1
        self.proj = nn.Conv1d(channels, 2 * self.bins, 1)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[-1]
        # torch.istft (centred) turns n + 1 frames into exactly n * hop samples
        x = F.pad(x, (0, 1), mode="replicate")
        # float32 from the projection on: a phase of tens of radians in bfloat16 is off by a quarter radian
        with torch.autocast(device_type=x.device.type, enabled=False):
            log_mag, phase = self.proj(x.float()).chunk(2, dim=1)
            mag = torch.exp(log_mag.clamp(max=_MAX_LOG_MAGNITUDE))
            spec = torch.polar(mag, phase)
            wav = torch.istft(
                spec, self.n_fft, self.hop, self.n_fft, self.window.float(), center=True, length=n * self.hop
            )
        return wav.unsqueeze(1)

    def input_span(self, lo: int, hi: int) -> tuple[int, int]:
        """Frames that samples ``lo..hi`` read: the centred inverse STFT puts frame ``m``'s window
        (zero at its first sample) on samples ``m*hop - 2*hop .. m*hop + 2*hop - 1``."""
        h = self.hop
        return -(-(lo + 1) // h) - 2, (hi - 1) // h + 2


class Decoder(nn.Module):
    """Quantised latents ``[B, code_dim, n]`` + speaker vector ``[B, cond_dim]`` -> ``[B, 1, n*hop]``.

    The speaker vector enters every gated block (WaveNet global conditioning), so the same codes can
    be rendered in another voice (VQ-VAE speaker conversion, van den Oord et al., 2017). With
    ``istft_strides = j > 0`` the first ``j`` strides (those at the waveform end) are not upsampled by
    convolutions: an :class:`ISTFTHead` with hop ``prod(strides[:j])`` makes the waveform instead.
    ``hop``: output samples per latent frame (the product of the strides).
    """

    def __init__(
        self,
        strides: list[int],
        code_dim: int,
        channels: int,
        max_channels: int,
        blocks_per_scale: int,
        bottleneck_blocks: int,
        dilations: list[int],
        kernel_size: int,
        cond_dim: int,
        istft_strides: int = 0,
    ) -> None:
        super().__init__()
        chans = channel_plan(len(strides), channels, max_channels)
        self.hop = math.prod(strides)
        self.proj = nn.Conv1d(code_dim, chans[-1], kernel_size, padding=kernel_size // 2)
        self.bottleneck = ResidualStack(chans[-1], bottleneck_blocks, dilations, kernel_size, cond_dim)
        self.ups = nn.ModuleList()
        self.stacks = nn.ModuleList()
        for i in reversed(range(istft_strides, len(strides))):
            self.ups.append(Upsample(chans[i + 1], chans[i], strides[i]))
            self.stacks.append(ResidualStack(chans[i], blocks_per_scale, dilations, kernel_size, cond_dim))
        self.out: nn.Module
        if istft_strides > 0:
            self.out = ISTFTHead(chans[istft_strides], math.prod(strides[:istft_strides]))
        else:
            self.out = nn.Conv1d(chans[0], 1, 7, padding=3)

    def forward(self, z: Tensor, cond: Tensor | None) -> Tensor:
        x = self.bottleneck(self.proj(z), cond)
        for up, stack in zip(self.ups, self.stacks, strict=True):
            x = stack(up(x), cond)
        return self.out(F.gelu(x))

    def input_span(self, lo: int, hi: int) -> tuple[int, int]:
        """Latent frames that output samples ``lo..hi`` read."""
        upsampling = [m for pair in zip(self.ups, self.stacks, strict=True) for m in pair]
        return chain_span([self.proj, self.bottleneck, *upsampling, self.out], lo, hi)

    @property
    def receptive_field(self) -> tuple[int, int]:
        """``(left, right)``: how many latent frames before and after frame ``f`` the audio of frame ``f``
        (its ``hop`` samples) depends on, from the layers' kernels, dilations and strides."""
        return one_sided(self.input_span, up=self.hop)
