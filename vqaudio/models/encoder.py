"""Per-level encoder: strided downsampling with dilated gated residual stacks (WaveNet/Jukebox)."""

from __future__ import annotations

import math

from torch import Tensor, nn

from vqaudio.models.blocks import Downsample, ResidualStack, chain_span, one_sided

__all__ = ["Encoder", "channel_plan"]


def channel_plan(num_strides: int, channels: int, max_channels: int) -> list[int]:
    """Channels at each time resolution: doubling after every stride, capped (narrow at high rates)."""
    return [min(channels * 2**i, max_channels) for i in range(num_strides + 1)]


class Encoder(nn.Module):
    """Waveform ``[B, 1, n*hop]`` -> latents ``[B, code_dim, n]`` with ``hop = prod(strides)``.

    Jukebox (Dhariwal et al., 2020) uses one such encoder per level; the residual stacks use
    WaveNet's gated activations with non-causal dilations.

    With ``front = (s, c)`` the encoder does not read the waveform: it starts from another encoder's
    :meth:`features` (``c`` channels after the first ``s`` of ``strides``), with a 1x1 input convolution,
    and runs only its own remaining strides (``model.shared_front``).

    ``hop``: inputs per latent frame (the product of the strides this encoder runs).
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
        front: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        chans = channel_plan(len(strides), channels, max_channels)
        start = 0 if front is None else front[0]
        self.inp = (
            nn.Conv1d(1, chans[0], 7, padding=3) if front is None else nn.Conv1d(front[1], chans[start], 1)
        )
        layers: list[nn.Module] = []
        for i in range(start, len(strides)):
            layers.append(ResidualStack(chans[i], blocks_per_scale, dilations, kernel_size))
            layers.append(Downsample(chans[i], chans[i + 1], strides[i]))
        self.down = nn.Sequential(*layers)
        self.bottleneck = ResidualStack(chans[-1], bottleneck_blocks, dilations, kernel_size)
        self.proj = nn.Conv1d(chans[-1], code_dim, 1)
        self.feature_channels = chans[-1]
        self.hop = math.prod(strides[start:])

    def features(self, x: Tensor) -> Tensor:
        """Input -> features after the last stride, before the bottleneck: ``[B, feature_channels, n]``."""
        return self.down(self.inp(x))

    def latents(self, features: Tensor) -> Tensor:
        """:meth:`features` -> latents ``[B, code_dim, n]`` (bottleneck and projection)."""
        return self.proj(self.bottleneck(features))

    def forward(self, x: Tensor) -> Tensor:
        return self.latents(self.features(x))

    def features_span(self, lo: int, hi: int) -> tuple[int, int]:
        """Input indices that :meth:`features` frames ``lo..hi`` read."""
        return chain_span([self.inp, self.down], lo, hi)

    def input_span(self, lo: int, hi: int) -> tuple[int, int]:
        """Input indices that latent frames ``lo..hi`` read."""
        return self.features_span(*chain_span([self.bottleneck, self.proj], lo, hi))

    def receptive_field(self, front: Encoder | None = None) -> tuple[int, int]:
        """``(left, right)``: how many input samples before and after a latent frame's own ``hop`` its
        value depends on, from the layers' kernels, dilations and strides.

        ``front``: the encoder whose :meth:`features` this one reads (``model.shared_front``); the field
        is then in samples of that encoder's input, through its layers too.
        """
        if front is None:
            return one_sided(self.input_span, down=self.hop)
        fed: Encoder = front
        return one_sided(lambda lo, hi: fed.features_span(*self.input_span(lo, hi)), down=fed.hop * self.hop)
