"""The EnCodec 24 kHz architecture with random weights, as a speed reference for bench/encodec_speed.py.

Défossez, Copet, Synnaeve & Adi 2022, "High Fidelity Neural Audio Compression" (arXiv:2210.13438),
section 3 and figure 1; written from the paper, with the hyper-parameters checked against the
reference code (facebookresearch/encodec, ``SEANetEncoder`` / ``SEANetDecoder`` defaults and
``EncodecModel.encodec_model_24khz``).  Not their code, and no trained weights: it exists to time
the architecture.

Encoder ``[B, 1, T]`` at 24 kHz -> ``[B, 128, ceil(T / 320)]`` (75 Hz):

* causal conv 1 -> 32, kernel 7;
* per scale, strides 2, 4, 5, 8 (channels 32 -> 64 -> 128 -> 256 -> 512): one residual unit (ELU,
  conv C -> C/2 kernel 3 dilation 1, ELU, conv C/2 -> C kernel 1, plus a 1x1-conv shortcut: EnCodec's
  ``true_skip=False``), ELU, causal conv C -> 2C with kernel 2 * stride;
* a 2-layer LSTM over the 512 channels with a skip (``y = lstm(x) + x``), ELU, conv 512 -> 128,
  kernel 7.

The decoder mirrors it: conv 128 -> 512 kernel 7, the LSTM, then per scale (strides 8, 5, 4, 2)
ELU, a transposed conv C -> C/2 with kernel 2 * stride (its overlap trimmed all on the right,
``trim_right_ratio=1``), a residual unit; ELU, conv 32 -> 1 kernel 7, no final activation.

The quantiser is a residual VQ (SoundStream's RVQ): 1024 codewords of dimension 128 per stage;
``n_q = 8`` stages give 8 * 10 bit * 75 Hz = 6 kbit/s (the released model holds 32 stages for 24 kbit/s
and uses the first ``n_q``; unused stages cost no time, so only ``n_q`` are built).  Encoding picks,
stage by stage, the nearest codeword to the residual; decoding sums the chosen codewords.

Simplifications, none of which makes EnCodec slower:

* No weight norm.  EnCodec's convs recompute ``w = g * v / |v|`` at every call (one pass over the
  weights, tiny next to the convolutions); here the plain weight stands for the folded one, and the
  ``g`` vectors (one number per output channel: 4,993 in all) are not counted, so ``parameters()``
  comes to 14,846,817 against the reference implementation's 14,851,810.
* Zero padding where EnCodec reflects (the same amount of padding, on the same sides).
* Codebooks are buffers, as in EnCodec (which updates them by EMA, not by gradient), so
  ``parameters()`` counts the encoder and decoder only.

Checked once against the reference code (commit 0e2d0ae, not a test: it is not a dependency): with its
random weights copied in (weight norm folded) and its padding set to zeros, the encoder's and the
decoder's outputs on 24123 samples of noise were identical to its (largest difference 0.0).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SAMPLE_RATE = 24_000
# Parameters of the reference implementation's 24 kHz model, counted (the paper gives no figure):
# ``sum(p.numel() for p in m.parameters())`` for facebookresearch/encodec (commit 0e2d0ae)
# ``m = EncodecModel.encodec_model_24khz(pretrained=False)``: encoder 7,425,792 + decoder 7,426,018,
# weight norm's g and v included; its codebooks are buffers (32 x 1024 x 128, plus their EMA state).
REFERENCE_PARAMS = 14_851_810


class CausalConv1d(nn.Conv1d):
    """Conv1d ``[B, C_in, T] -> [B, C_out, ceil(T / stride)]`` that sees only the past: all its padding
    (``dilation * (kernel - 1) + 1 - stride``) on the left, plus on the right what completes the last
    frame (EnCodec's ``SConv1d`` with ``causal=True``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__(c_in, c_out, kernel, stride=stride, dilation=dilation)

    def forward(self, x: Tensor) -> Tensor:
        stride, span = self.stride[0], self.dilation[0] * (self.kernel_size[0] - 1) + 1
        left = span - stride
        frames = math.ceil((x.shape[-1] + left - span) / stride) + 1
        right = (frames - 1) * stride + span - (x.shape[-1] + left)
        return super().forward(F.pad(x, (left, right)))


class CausalConvTranspose1d(nn.ConvTranspose1d):
    """Transposed conv ``[B, C_in, F] -> [B, C_out, F * stride]``: the ``kernel - stride`` samples of
    overlap are trimmed on the right (EnCodec's ``SConvTranspose1d``, causal, ``trim_right_ratio=1``)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__(c_in, c_out, 2 * stride, stride=stride)

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        y = super().forward(x)
        return y[..., : y.shape[-1] - (self.kernel_size[0] - self.stride[0])]


class ResidualUnit(nn.Module):
    """SEANet residual unit ``[B, C, T] -> [B, C, T]``: ELU, conv C -> C/2 (kernel 3), ELU, conv C/2 -> C
    (kernel 1), added to a 1x1-conv shortcut."""

    def __init__(self, channels: int, kernel: int = 3, dilation: int = 1) -> None:
        super().__init__()
        hidden = channels // 2
        self.block = nn.Sequential(
            nn.ELU(),
            CausalConv1d(channels, hidden, kernel, dilation=dilation),
            nn.ELU(),
            CausalConv1d(hidden, channels, 1),
        )
        self.shortcut = CausalConv1d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + self.block(x)


class SkipLSTM(nn.Module):
    """LSTM over time with a skip, ``[B, C, T] -> [B, C, T]`` (EnCodec's ``SLSTM``)."""

    def __init__(self, channels: int, layers: int = 2) -> None:
        super().__init__()
        self.lstm = nn.LSTM(channels, channels, layers)

    def forward(self, x: Tensor) -> Tensor:
        seq = x.permute(2, 0, 1)  # [T, B, C]
        y, _ = self.lstm(seq)
        return (y + seq).permute(1, 2, 0)


def seanet_encoder(
    n_filters: int = 32, strides: tuple[int, ...] = (2, 4, 5, 8), dim: int = 128
) -> nn.Sequential:
    """Audio ``[B, 1, T]`` -> latents ``[B, dim, ceil(T / prod(strides))]``."""
    layers: list[nn.Module] = [CausalConv1d(1, n_filters, 7)]
    ch = n_filters
    for s in strides:
        layers += [ResidualUnit(ch), nn.ELU(), CausalConv1d(ch, 2 * ch, 2 * s, stride=s)]
        ch *= 2
    layers += [SkipLSTM(ch), nn.ELU(), CausalConv1d(ch, dim, 7)]
    return nn.Sequential(*layers)


def seanet_decoder(
    n_filters: int = 32, strides: tuple[int, ...] = (8, 5, 4, 2), dim: int = 128
) -> nn.Sequential:
    """Latents ``[B, dim, F]`` -> audio ``[B, 1, F * prod(strides)]``."""
    ch = n_filters * 2 ** len(strides)
    layers: list[nn.Module] = [CausalConv1d(dim, ch, 7), SkipLSTM(ch)]
    for s in strides:
        layers += [nn.ELU(), CausalConvTranspose1d(ch, ch // 2, s), ResidualUnit(ch // 2)]
        ch //= 2
    layers += [nn.ELU(), CausalConv1d(ch, 1, 7)]
    return nn.Sequential(*layers)


class ResidualVQ(nn.Module):
    """Residual vector quantiser: ``n_q`` codebooks ``[bins, dim]`` (random, as buffers)."""

    codebooks: Tensor

    def __init__(self, n_q: int = 8, bins: int = 1024, dim: int = 128) -> None:
        super().__init__()
        self.register_buffer("codebooks", torch.randn(n_q, bins, dim))

    def encode(self, z: Tensor) -> Tensor:
        """Latents ``[B, dim, F]`` -> codes ``[B, n_q, F]``: per stage, the codeword nearest the residual."""
        b, d, f = z.shape
        residual = z.transpose(1, 2).reshape(b * f, d)
        codes = []
        for book in self.codebooks:
            dist = book.pow(2).sum(1) - 2 * residual @ book.T  # |r - e|^2 - |r|^2
            idx = dist.argmin(1)
            residual = residual - book[idx]
            codes.append(idx)
        return torch.stack(codes, 1).view(b, f, -1).transpose(1, 2)

    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[B, n_q, F]`` -> latents ``[B, dim, F]``: the sum of the chosen codewords."""
        z = sum(book[c] for book, c in zip(self.codebooks, codes.unbind(1), strict=True))
        assert isinstance(z, Tensor)
        return z.transpose(1, 2)


class EncodecArch(nn.Module):
    """The EnCodec 24 kHz model at ``n_q`` codebooks (8: 6 kbit/s), random weights."""

    def __init__(self, n_q: int = 8, n_filters: int = 32, strides: tuple[int, ...] = (2, 4, 5, 8)) -> None:
        super().__init__()
        self.sample_rate = SAMPLE_RATE
        self.hop = math.prod(strides)
        self.encoder = seanet_encoder(n_filters, strides)
        self.quantizer = ResidualVQ(n_q)
        self.decoder = seanet_decoder(n_filters, tuple(reversed(strides)))

    @property
    def frame_rate(self) -> int:
        return math.ceil(self.sample_rate / self.hop)

    @property
    def bitrate(self) -> float:
        n_q, bins, _ = self.quantizer.codebooks.shape
        return self.frame_rate * n_q * math.log2(bins)

    def encode(self, wav: Tensor) -> Tensor:
        """Audio ``[B, 1, T]`` at 24 kHz -> codes ``[B, n_q, ceil(T / hop)]``."""
        return self.quantizer.encode(self.encoder(wav))

    def decode(self, codes: Tensor, length: int | None = None) -> Tensor:
        """Codes ``[B, n_q, F]`` -> audio ``[B, 1, length]`` (default ``F * hop``)."""
        wav = self.decoder(self.quantizer.decode(codes))
        return wav if length is None else wav[..., :length]
