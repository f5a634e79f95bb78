"""Per-level decoder: speaker-conditioned gated residual stacks and transposed-conv upsampling."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from vqaudio.models.blocks import ResidualStack, Upsample
from vqaudio.models.encoder import channel_plan

__all__ = ["Decoder"]


class Decoder(nn.Module):
    """Quantised latents ``[B, code_dim, n]`` + speaker vector ``[B, cond_dim]`` -> ``[B, 1, n*hop]``.

    The speaker vector enters every gated block (WaveNet global conditioning), so the same codes can
    be rendered in another voice (VQ-VAE speaker conversion, van den Oord et al., 2017).
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
    ) -> None:
        super().__init__()
        chans = channel_plan(len(strides), channels, max_channels)
        self.proj = nn.Conv1d(code_dim, chans[-1], kernel_size, padding=kernel_size // 2)
        self.bottleneck = ResidualStack(chans[-1], bottleneck_blocks, dilations, kernel_size, cond_dim)
        self.ups = nn.ModuleList()
        self.stacks = nn.ModuleList()
        for i in reversed(range(len(strides))):
            self.ups.append(Upsample(chans[i + 1], chans[i], strides[i]))
            self.stacks.append(ResidualStack(chans[i], blocks_per_scale, dilations, kernel_size, cond_dim))
        self.out = nn.Conv1d(chans[0], 1, 7, padding=3)

    def forward(self, z: Tensor, cond: Tensor | None) -> Tensor:
        x = self.bottleneck(self.proj(z), cond)
        for up, stack in zip(self.ups, self.stacks, strict=True):
            x = stack(up(x), cond)
        return self.out(F.gelu(x))
