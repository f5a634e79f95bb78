"""WaveNet-style building blocks: non-causal dilated convolutions with gated activations.

Gated residual block from WaveNet (van den Oord et al., 2016, "WaveNet: A Generative Model for Raw
Audio", sec. 2.3-2.5): ``z = tanh(W_f * x + V_f h) * sigmoid(W_g * x + V_g h)`` where ``h`` is a
global conditioning vector (here: the speaker embedding), with residual and skip connections.  The
convolutions are non-causal ("same" padding) because the whole input is available when coding.

Every layer reports its receptive field from its own kernel sizes, dilations, strides and padding:
``input_span(lo, hi)`` is the inclusive range of input indices that outputs ``lo..hi`` read, and
:func:`chain_span` composes layers applied one after another, so a stack's field is never derived
by hand elsewhere (the codec's chunk context comes from here).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "GatedResBlock",
    "ResidualStack",
    "Downsample",
    "Upsample",
    "Spanned",
    "chain_span",
    "conv_span",
    "one_sided",
]


@runtime_checkable
class Spanned(Protocol):
    """A layer that says which of its inputs each output reads."""

    def input_span(self, lo: int, hi: int) -> tuple[int, int]:
        """Inclusive range of input indices that outputs ``lo..hi`` depend on."""
        ...


def conv_span(conv: nn.Conv1d, lo: int, hi: int) -> tuple[int, int]:
    """Input indices ``[lo', hi']`` that outputs ``lo..hi`` of ``conv`` read (kernel, dilation, stride and
    zero padding; indices outside the input are the padding's)."""
    assert not isinstance(conv.padding, str), "explicit padding only"
    (k,), (d,), (s,), (p,) = conv.kernel_size, conv.dilation, conv.stride, conv.padding
    return lo * s - p, hi * s - p + d * (k - 1)


def chain_span(layers: Iterable[nn.Module], lo: int, hi: int) -> tuple[int, int]:
    """Input indices that outputs ``lo..hi`` of ``layers``, applied in order, read (the last layer's span
    first). ``nn.Conv1d`` is read by :func:`conv_span`, ``nn.Sequential`` layer by layer, and any other
    layer must be :class:`Spanned`; pointwise functions between layers add nothing."""
    for layer in reversed(list(layers)):
        if isinstance(layer, nn.Conv1d):
            lo, hi = conv_span(layer, lo, hi)
        elif isinstance(layer, nn.Sequential):
            lo, hi = chain_span(layer, lo, hi)
        elif isinstance(layer, Spanned):
            lo, hi = layer.input_span(lo, hi)
        else:
            raise TypeError(f"{type(layer).__name__} does not report its receptive field")
    return lo, hi


def one_sided(span: Callable[[int, int], tuple[int, int]], down: int = 1, up: int = 1) -> tuple[int, int]:
    """Receptive field as one-sided context ``(left, right)`` in input samples, of a layer that turns
    ``down`` inputs into ``up`` outputs: how far before and after their own ``down`` inputs the outputs
    ``0..up - 1`` read (the same for every such group of outputs, all layers being shift-equivariant)."""
    lo, hi = span(0, up - 1)
    return -lo, hi - (down - 1)


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

    def input_span(self, lo: int, hi: int) -> tuple[int, int]:
        """The dilated convolution's span (the residual path and the 1x1 output read no further)."""
        return conv_span(self.conv, lo, hi)

    @property
    def receptive_field(self) -> tuple[int, int]:
        """``(left, right)`` context in input samples: ``dilation * (kernel_size - 1) / 2`` each side."""
        return one_sided(self.input_span)


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

    def input_span(self, lo: int, hi: int) -> tuple[int, int]:
        """The blocks' spans composed (each skip output reads no further than the last block's)."""
        return chain_span(self.blocks, lo, hi)

    @property
    def receptive_field(self) -> tuple[int, int]:
        """``(left, right)`` context in input samples: the sum of the blocks' (0 for an empty stack)."""
        return one_sided(self.input_span)


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

    def input_span(self, lo: int, hi: int) -> tuple[int, int]:
        """Output ``j`` reads inputs ``j*s - s//2 .. j*s + 2s - 1 - s//2`` (the kernel after the padding)."""
        left_pad = self.stride // 2 if self.stride > 1 else 0
        lo, hi = conv_span(self.conv, lo, hi)
        return lo - left_pad, hi - left_pad

    @property
    def receptive_field(self) -> tuple[int, int]:
        """``(left, right)`` input samples beyond an output's own ``stride``: ``(s // 2, s - s // 2)``
        (none for stride 1)."""
        return one_sided(self.input_span, down=self.stride)


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

    def input_span(self, lo: int, hi: int) -> tuple[int, int]:
        """Output ``t`` is the transposed convolution's ``u = t + s//2`` (the crop), which input ``j``
        reaches when ``j*s <= u <= j*s + kernel - 1``."""
        k, s = self.conv.kernel_size[0], self.stride
        crop = s // 2 if s > 1 else 0
        return -((k - 1 - lo - crop) // s), (hi + crop) // s

    @property
    def receptive_field(self) -> tuple[int, int]:
        """``(left, right)`` input frames around the frame whose ``stride`` outputs are wanted: 1 each
        (none for stride 1)."""
        return one_sided(self.input_span, up=self.stride)
