"""Sampling codes from a :class:`~vqaudio.prior.model.CodePrior`: temperature, top-k and top-p (nucleus,
Holtzman et al., 2020, "The Curious Case of Neural Text Degeneration", arXiv:1904.09751), optionally
continuing a prompt (codes of a recording), reproducible with a seed on a given device."""

from __future__ import annotations

import torch
from torch import Tensor

from vqaudio.prior.model import CodePrior, PriorState

__all__ = ["filter_logits", "sample_codes"]


def filter_logits(logits: Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """``logits`` ``[B, K]`` divided by ``temperature``, with every code outside the ``top_k`` most likely
    (0: no limit) and outside the smallest set whose probability reaches ``top_p`` set to -inf (the most
    likely code always stays)."""
    if temperature <= 0 or top_k < 0 or not 0 < top_p <= 1:
        raise ValueError("need temperature > 0, top_k >= 0 and 0 < top_p <= 1")
    x = logits.float() / temperature
    if 0 < top_k < x.shape[-1]:
        kth = torch.topk(x, top_k, dim=-1).values[..., -1:]
        x = x.masked_fill(x < kth, float("-inf"))
    if top_p < 1:
        sorted_x, order = torch.sort(x, dim=-1, descending=True)
        probs = torch.softmax(sorted_x, dim=-1)
        before = torch.cumsum(probs, dim=-1) - probs  # probability of the codes ranked above
        drop = torch.zeros_like(x, dtype=torch.bool).scatter(-1, order, before >= top_p)
        x = x.masked_fill(drop, float("-inf"))
    return x


@torch.no_grad()
def sample_codes(
    prior: CodePrior,
    length: int,
    speaker: Tensor | None = None,
    upper: Tensor | None = None,
    prompt: Tensor | None = None,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Codes ``[B, length]``: ``prompt`` ``[B, P]`` (P <= length; kept as it is) continued by sampling one
    code at a time. ``B`` comes from ``prompt``, ``speaker`` ``[B]`` or ``upper`` (1 when none is given);
    ``upper`` (``[B, ceil(length / upper_ratio)]``) when the prior is conditioned on a coarser level."""
    device = prior.head.weight.device
    batch = next((x.shape[0] for x in (prompt, speaker, upper) if x is not None), 1)
    fixed = prompt.shape[1] if prompt is not None else 0
    if length < fixed:
        raise ValueError(f"length {length} is shorter than the prompt ({fixed} codes)")
    out = torch.zeros(batch, length, dtype=torch.long, device=device)
    if prompt is not None:
        out[:, :fixed] = prompt.to(device)
    state = PriorState()
    was_training = prior.training
    prior.eval()
    try:
        for t in range(length):
            logits = prior.step(out[:, t - 1] if t else None, state, speaker, upper)
            if t >= fixed:
                probs = torch.softmax(filter_logits(logits, temperature, top_k, top_p), dim=-1)
                out[:, t] = torch.multinomial(probs, 1, generator=generator)[:, 0]
    finally:
        prior.train(was_training)
    return out
