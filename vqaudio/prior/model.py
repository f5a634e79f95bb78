"""A causal Transformer over one level's VQ codes: the second stage of the VQ-VAE recipe.

``p(c_t | c_<t, speaker[, upper])``: the codes of one level, each predicted from the codes before it
(van den Oord et al., 2017, "Neural Discrete Representation Learning", arXiv:1711.00937, with a
PixelCNN; a Transformer as in Jukebox, Dhariwal et al., 2020, arXiv:2005.00341, and DALL-E), conditioned
on the speaker and optionally on the codes of the next coarser level (Jukebox's upsampler priors:
level ``l`` given level ``l + 1``, whose frame ``t // ratio`` covers frame ``t``).

Pre-norm blocks with rotary position embeddings (Su et al., 2021, "RoFormer", arXiv:2104.09864) and
sliding-window causal attention over the last ``context`` positions in every layer (so a code depends
on the last ``layers * (context - 1) + 1`` inputs, and memory stays bounded), so the full-sequence
:meth:`CodePrior.forward` (training, evaluation) and the one-code-at-a-time :meth:`CodePrior.step` with
its key/value cache (sampling, entropy coding) compute the same thing for sequences of any length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CodePrior", "PriorState"]


def _rope(x: Tensor, positions: Tensor) -> Tensor:
    """Rotary embedding of ``x`` ``[B, H, T, D]`` (D even) at integer ``positions`` ``[T]``."""
    d = x.shape[-1]
    inv = 10000.0 ** (-torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d)
    angles = positions.to(torch.float32)[:, None] * inv[None, :]  # [T, D/2]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)


class _Block(nn.Module):
    """Pre-norm self-attention + MLP block (GPT-2 style)."""

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.dropout = nn.Dropout(dropout)

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, t, _ = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        return q, k, v  # each [B, H, T, D]

    def _finish(self, x: Tensor, attended: Tensor) -> Tensor:
        b, _, t, _ = attended.shape
        x = x + self.dropout(self.proj(attended.transpose(1, 2).reshape(b, t, -1)))
        return x + self.dropout(self.mlp(self.norm2(x)))

    def forward(self, x: Tensor, positions: Tensor, mask: Tensor) -> Tensor:
        q, k, v = self._split(x)
        q, k = _rope(q, positions), _rope(k, positions)
        return self._finish(x, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))

    def step(self, x: Tensor, position: int, cache: list[Tensor], context: int) -> Tensor:
        """One position ``x`` ``[B, 1, W]``; ``cache`` holds this block's keys and values (updated)."""
        q, k, v = self._split(x)
        pos = torch.tensor([position], device=x.device)
        q, k = _rope(q, pos), _rope(k, pos)
        if cache:
            k, v = (
                torch.cat([cache[0], k], dim=2)[:, :, -context:],
                torch.cat([cache[1], v], dim=2)[:, :, -context:],
            )
        cache[:] = [k, v]
        return self._finish(x, F.scaled_dot_product_attention(q, k, v))


@dataclass
class PriorState:
    """What :meth:`CodePrior.step` carries from one position to the next: the position and each block's
    keys and values (at most ``context`` of them)."""

    position: int = 0
    caches: list[list[Tensor]] = field(default_factory=list)


class CodePrior(nn.Module):
    """Next-code distribution over one level's codes.

    Args:
        num_codes: the level's codebook size K.
        num_speakers: speakers of the VQ-VAE (0: no speaker conditioning); index ``num_speakers`` is
            "no speaker" (unconditional).
        width, layers, heads: the Transformer's size (``width`` divisible by ``heads``, head size even).
        context: positions each code attends to (itself included: its input is the previous code).
        upper_codes: the coarser level's codebook size when conditioned on it (0: not), and
        upper_ratio: frames of this level per frame of the coarser one.
    """

    def __init__(
        self,
        num_codes: int,
        num_speakers: int = 0,
        width: int = 256,
        layers: int = 4,
        heads: int = 4,
        context: int = 512,
        dropout: float = 0.0,
        upper_codes: int = 0,
        upper_ratio: int = 1,
    ) -> None:
        super().__init__()
        if width % heads or (width // heads) % 2:
            raise ValueError(f"width {width} must split into {heads} heads of an even size")
        if num_codes < 2 or context < 1 or upper_ratio < 1:
            raise ValueError("need num_codes >= 2, context >= 1 and upper_ratio >= 1")
        self.num_codes, self.num_speakers, self.context = num_codes, num_speakers, context
        self.upper_codes, self.upper_ratio = upper_codes, upper_ratio
        self.code_embedding = nn.Embedding(num_codes + 1, width)  # index num_codes: start of sequence
        self.speaker_embedding = nn.Embedding(num_speakers + 1, width)
        self.upper_embedding: nn.Embedding | None = nn.Embedding(upper_codes, width) if upper_codes else None
        self.blocks = nn.ModuleList(_Block(width, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, num_codes)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def _speaker(self, speaker: Tensor | None, batch: int, device: torch.device) -> Tensor:
        if speaker is None:
            speaker = torch.full((batch,), self.num_speakers, dtype=torch.long, device=device)
        if speaker.shape != (batch,) or bool(((speaker < 0) | (speaker > self.num_speakers)).any()):
            raise ValueError(f"speaker must be [B] indices in [0, {self.num_speakers}]")
        return self.speaker_embedding(speaker)[:, None, :]  # [B, 1, W]

    def _upper(self, upper: Tensor | None, frames: Tensor) -> Tensor | int:
        """The coarser level's embedding at each of this level's frame indices ``frames`` ``[T]``."""
        if self.upper_embedding is None:
            if upper is not None:
                raise ValueError("this prior is not conditioned on a coarser level")
            return 0
        if upper is None:
            raise ValueError("this prior needs the coarser level's codes (upper)")
        index = torch.clamp(frames // self.upper_ratio, max=upper.shape[1] - 1)
        return self.upper_embedding(upper[:, index])

    def _inputs(self, codes: Tensor, speaker: Tensor | None, upper: Tensor | None) -> Tensor:
        b, t = codes.shape
        start = torch.full((b, 1), self.num_codes, dtype=torch.long, device=codes.device)
        shifted = torch.cat([start, codes[:, :-1]], dim=1)  # position t sees codes < t
        frames = torch.arange(t, device=codes.device)
        return (
            self.code_embedding(shifted)
            + self._speaker(speaker, b, codes.device)
            + self._upper(upper, frames)
        )

    def forward(self, codes: Tensor, speaker: Tensor | None = None, upper: Tensor | None = None) -> Tensor:
        """Logits ``[B, T, K]`` of every code of ``codes`` ``[B, T]`` given the codes before it (and the
        speaker ``[B]``, the coarser level's codes ``[B, ceil(T / upper_ratio)]``)."""
        if codes.ndim != 2 or codes.shape[1] == 0:
            raise ValueError(f"codes must be [B, T] with T >= 1, got {tuple(codes.shape)}")
        x = self._inputs(codes, speaker, upper)
        t = codes.shape[1]
        i = torch.arange(t, device=codes.device)
        mask = (i[None, :] <= i[:, None]) & (i[:, None] - i[None, :] < self.context)  # [T, T] sliding window
        for block in self.blocks:
            x = block(x, i, mask)
        return self.head(self.norm(x))

    def step(
        self,
        previous: Tensor | None,
        state: PriorState,
        speaker: Tensor | None = None,
        upper: Tensor | None = None,
    ) -> Tensor:
        """Logits ``[B, K]`` of the code at ``state.position`` given the code before it (``previous`` ``[B]``;
        None at position 0) and ``state`` (updated); the same as :meth:`forward`'s at that position."""
        t = state.position
        if (previous is None) != (t == 0):
            raise ValueError("previous is None exactly at position 0")
        b = next((x.shape[0] for x in (previous, speaker, upper) if x is not None), 1)
        device = self.head.weight.device
        token = (
            torch.full((b,), self.num_codes, dtype=torch.long, device=device)
            if previous is None
            else previous
        )
        frame = torch.tensor([t], device=device)
        x = (
            self.code_embedding(token)[:, None, :]
            + self._speaker(speaker, b, device)
            + self._upper(upper, frame)
        )
        if not state.caches:
            state.caches = [[] for _ in self.blocks]
        for block, cache in zip(self.blocks, state.caches, strict=True):
            assert isinstance(block, _Block)
            x = block.step(x, t, cache, self.context)
        state.position += 1
        return self.head(self.norm(x))[:, 0]

    def bits_per_code(
        self, codes: Tensor, speaker: Tensor | None = None, upper: Tensor | None = None
    ) -> Tensor:
        """Cross-entropy in bits of each code ``[B, T]`` under the prior."""
        logits = self.forward(codes, speaker, upper)
        nll = F.cross_entropy(logits.transpose(1, 2).float(), codes, reduction="none")
        return nll / math.log(2)
