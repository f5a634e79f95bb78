"""WaveNet-style building blocks: non-causal dilated convolutions with gated activations.

Gated residual block from WaveNet (van den Oord et al., 2016, "WaveNet: A Generative Model for Raw
Audio", sec. 2.3-2.5): ``z = tanh(W_f * x + V_f h) * sigmoid(W_g * x + V_g h)`` where ``h`` is a
global conditioning vector (here: the speaker embedding), with residual and skip connections.  The
convolutions are non-causal ("same" padding) because the whole input is available when coding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["GatedResBlock", "ResidualStack", "Downsample", "Upsample"]


class GatedResBlock(nn.Module):
    """One gated, dilated residual block.

    Args:
        channels: residual channels ``C``.
        kernel_size: odd kernel size of the dilated convolution.
        dilation: dilation of that convolution.
        cond_dim: size of the global conditioning vector (0 = unconditioned).

    Shapes: ``x`` ``[B, C, T]``, ``cond`` ``[B, cond_dim]`` -> (residual ``[B, C, T]``, skip ``[B, C, T]``).
    """

    def __init__(self, channels: int, kernel_size: int = 3, dilation: int = 1, cond_dim: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv1d(
            channels, 2 * channels, kernel_size, dilation=dilation, padding=dilation * (kernel_size - 1) // 2
        )
        self.cond = nn.Linear(cond_dim, 2 * channels, bias=False) if cond_dim > 0 else None
        self.out = nn.Conv1d(channels, 2 * channels, 1)
        self.channels = channels

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = self.conv(x)
        if self.cond is not None and cond is not None:
            h = h + self.cond(cond).unsqueeze(-1)
        a, b = h.chunk(2, dim=1)
        h = torch.tanh(a) * torch.sigmoid(b)
        res, skip = self.out(h).chunk(2, dim=1)
        return x + res, skip


class ResidualStack(nn.Module):
    """``num_blocks`` gated blocks with dilations cycling through ``dilations`` (1, 3, 9, ...).

    The skip outputs are summed and projected back onto the residual stream, as in WaveNet.
    Shapes: ``x`` ``[B, C, T]``, ``cond`` ``[B, cond_dim]`` -> ``[B, C, T]``.
    """

    def __init__(
        self, channels: int, num_blocks: int, dilations: list[int], kernel_size: int = 3, cond_dim: int = 0
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            GatedResBlock(channels, kernel_size, dilations[i % len(dilations)], cond_dim)
            for i in range(num_blocks)
        )
        self.skip_out = nn.Conv1d(channels, channels, 1) if num_blocks > 0 else None

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        if self.skip_out is None:
            return x
        skips: Tensor | None = None
        for block in self.blocks:
            x, s = block(x, cond)
            skips = s if skips is None else skips + s
        assert skips is not None
        return x + self.skip_out(F.gelu(skips))


class Downsample(nn.Module):
    """Strided convolution (kernel ``2*stride``): ``[B, C_in, n*stride]`` -> ``[B, C_out, n]`` exactly."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv1d(in_channels, out_channels, 2 * stride if stride > 1 else 1, stride=stride)

    def forward(self, x: Tensor) -> Tensor:
        s = self.stride
        if s > 1:
            x = F.pad(x, (s // 2, s - s // 2))
        return self.conv(F.gelu(x))


class Upsample(nn.Module):
    """Transposed convolution (kernel ``2*stride``): ``[B, C_in, n]`` -> ``[B, C_out, n*stride]`` exactly."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv = nn.ConvTranspose1d(
            in_channels, out_channels, 2 * stride if stride > 1 else 1, stride=stride
        )

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[-1]
        y = self.conv(F.gelu(x))
        s = self.stride
        if s > 1:
            y = y[..., s // 2 : s // 2 + n * s]
        return y
