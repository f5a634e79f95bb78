"""Sampling codes from a :class:`~vqaudio.prior.model.CodePrior`: temperature, top-k and top-p (nucleus,
Holtzman et al., 2020, "The Curious Case of Neural Text Degeneration", arXiv:1904.09751), optionally
continuing a prompt (codes of a recording), reproducible with a seed on a given device."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from vqaudio.codec.compress import decode_audio, encode_audio
from vqaudio.errors import UserError
from vqaudio.models import VQVAE
from vqaudio.prior.checkpoint import PriorMeta
from vqaudio.prior.model import CodePrior, PriorState

__all__ = ["Sampled", "check_chain", "filter_logits", "sample_audio", "sample_codes"]


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


@dataclass(frozen=True)
class Sampled:
    """What :func:`sample_audio` made: the audio at the VQ-VAE's rate and the codes of every level it
    sampled (``[frames]`` each, the prompt's included)."""

    audio: np.ndarray
    codes: dict[int, np.ndarray]


def check_chain(chain: Sequence[tuple[CodePrior, PriorMeta]]) -> list[tuple[CodePrior, PriorMeta]]:
    """The priors of a hierarchical sample, coarsest first: consecutive levels, the coarsest one
    unconditioned on a coarser level, every other one an upsampler prior of the level above it."""
    ordered = sorted(chain, key=lambda pm: -pm[1].config.prior.level)
    levels = [m.config.prior.level for _, m in ordered]
    if len(set(levels)) != len(levels):
        raise UserError(f"two priors of the same level ({levels})")
    for i, (_, meta) in enumerate(ordered):
        upper = meta.config.prior.upper
        if i == 0 and upper:
            raise UserError(
                f"the prior of level {levels[0]} is conditioned on level {levels[0] + 1}: give that level's "
                "prior too (--prior), or sample with an unconditioned one"
            )
        if i > 0 and (not upper or levels[i] != levels[i - 1] - 1):
            raise UserError(
                f"priors of levels {levels}: below the coarsest, each must be the upsampler prior "
                "(prior.upper) of the level just above it"
            )
    return ordered


@torch.no_grad()
def sample_audio(
    chain: Sequence[tuple[CodePrior, PriorMeta]],
    vqvae: VQVAE,
    seconds: float,
    speaker: str | None = None,
    prompt: np.ndarray | None = None,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int = 0,
) -> Sampled:
    """Sample ``seconds`` of audio: codes of the coarsest prior's level first, then each upsampler prior's
    given the level above, decoded by ``vqvae`` at the finest level sampled, in ``speaker``'s voice (a
    name in the VQ-VAE's table; the priors are conditioned on it when they can, else on "none").
    ``prompt`` (audio ``[T]`` at the VQ-VAE's rate, shorter than ``seconds``) is encoded at every level and
    continued. Reproducible on one device: ``seed`` (and the level) seed a generator on the prior's device."""
    ordered = check_chain(chain)
    if speaker is not None and speaker not in vqvae.speakers:
        raise UserError(f"unknown speaker {speaker!r}; this model knows: {', '.join(vqvae.speakers)}")
    n = round(seconds * vqvae.sample_rate)
    if prompt is not None and len(prompt) >= n:
        raise UserError(
            f"the prompt is {len(prompt) / vqvae.sample_rate:.2f} s: ask for more --seconds than that"
        )
    codes: dict[int, np.ndarray] = {}
    for prior, meta in ordered:
        level = meta.config.prior.level
        frames = math.ceil(n / vqvae.hops[level])
        device = prior.head.weight.device
        given = None
        if prompt is not None:
            given = torch.from_numpy(encode_audio(vqvae, prompt, vqvae.sample_rate, level=level))[None]
            given = given[:, : frames - 1]
        spk = None
        if speaker is not None and meta.config.prior.speaker:
            spk = torch.tensor([meta.speakers.index(speaker)], device=device)
        upper = torch.from_numpy(codes[level + 1])[None].to(device) if meta.config.prior.upper else None
        generator = torch.Generator(device=device).manual_seed(seed + 1000 * level)
        out = sample_codes(prior, frames, spk, upper, given, temperature, top_k, top_p, generator)
        codes[level] = out[0].cpu().numpy()
    finest = ordered[-1][1].config.prior.level
    audio = decode_audio(vqvae, codes[finest], level=finest, speaker=speaker, num_samples=n)
    return Sampled(audio, codes)
