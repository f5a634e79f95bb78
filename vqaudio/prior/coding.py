"""Entropy coding of one level's codes with a :class:`~vqaudio.prior.model.CodePrior`.

rANS (:func:`vqaudio.codec.entropy.rans_encode_intervals`) with every code's own distribution: the
prior's next-code logits, turned into integer frequencies by
:func:`vqaudio.codec.entropy.quantise_probabilities`. The decoder must reproduce the encoder's logits
bit for bit, so both run the very same computation: :meth:`CodePrior.step` one code at a time (batch 1,
float32, on the CPU, one intra-op thread, whatever the caller's settings), each logit row quantised
alone. A stream therefore decodes with the same prior weights on the same platform (CPU kind, torch
and numpy builds) that encoded it; the stream records the prior's fingerprint so that another prior is
refused, and the rANS end-state check catches most other divergence.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from vqaudio.codec.bitstream import StreamError
from vqaudio.codec.entropy import (
    EntropyError,
    RansDecoder,
    interval_scale,
    quantise_probabilities,
    rans_encode_intervals,
)
from vqaudio.errors import UserError
from vqaudio.prior.checkpoint import PriorMeta, prior_fingerprint
from vqaudio.prior.model import CodePrior, PriorState

__all__ = ["PriorCoder", "decode_with_prior", "encode_with_prior"]


@contextmanager
def _deterministic(prior: CodePrior) -> Iterator[None]:
    """CPU, one thread, eval mode, no autograd, for the duration (restored after)."""
    if prior.head.weight.device.type != "cpu" or prior.head.weight.dtype != torch.float32:
        raise ValueError("coding with a prior runs on a float32 CPU copy of it (prior.float().cpu())")
    threads, training = torch.get_num_threads(), prior.training
    torch.set_num_threads(1)
    prior.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        torch.set_num_threads(threads)
        prior.train(training)


def _frequencies(logits: torch.Tensor) -> np.ndarray:
    return quantise_probabilities(logits.numpy())[0]  # one row [K]


def _conditions(
    speaker: int | None, upper: np.ndarray | None
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    spk = None if speaker is None else torch.tensor([speaker])
    up = None if upper is None else torch.from_numpy(np.asarray(upper, dtype=np.int64))[None]
    return spk, up


def encode_with_prior(
    prior: CodePrior, codes: np.ndarray, speaker: int | None = None, upper: np.ndarray | None = None
) -> bytes:
    """rANS bytes of ``codes`` ``[N]`` under ``prior`` (given the speaker index and the coarser level's
    codes when the prior is conditioned on them); :func:`decode_with_prior` needs ``N`` and the same
    conditions."""
    c = np.asarray(codes, dtype=np.int64)
    if c.ndim != 1 or (c.size and (c.min() < 0 or c.max() >= prior.num_codes)):
        raise ValueError(f"codes must be [N] in [0, {prior.num_codes})")
    spk, up = _conditions(speaker, upper)
    starts, freqs = np.zeros(c.size, np.int64), np.zeros(c.size, np.int64)
    with _deterministic(prior):
        state, previous = PriorState(), None
        for t, code in enumerate(c):
            f = _frequencies(prior.step(previous, state, spk, up))
            starts[t], freqs[t] = int(f[:code].sum()), int(f[code])
            previous = torch.tensor([code])
    return rans_encode_intervals(starts, freqs, interval_scale(prior.num_codes))


def decode_with_prior(
    prior: CodePrior, data: bytes, count: int, speaker: int | None = None, upper: np.ndarray | None = None
) -> np.ndarray:
    """Inverse of :func:`encode_with_prior`: ``count`` codes (int64 ``[count]``). Corrupted data raises
    :class:`~vqaudio.codec.entropy.EntropyError` (or, rarely, decodes to other valid codes)."""
    out = np.zeros(count, np.int64)
    decoder = RansDecoder(data, interval_scale(prior.num_codes))
    spk, up = _conditions(speaker, upper)
    with _deterministic(prior):
        state, previous = PriorState(), None
        for t in range(count):
            cdf = np.cumsum(_frequencies(prior.step(previous, state, spk, up)))
            code = int(np.searchsorted(cdf, decoder.slot(), side="right"))
            start = int(cdf[code - 1]) if code else 0
            decoder.advance(start, int(cdf[code]) - start)
            out[t] = code
            previous = torch.tensor([code])
    decoder.finish()
    return out


class PriorCoder:
    """A prior as the codec's :class:`~vqaudio.codec.compress.LevelCoder`: codes its level of a stream
    (``vqaudio encode --prior``), conditioned on the stream's speaker when the prior knows it (else the
    "none" speaker). Works on a float32 CPU copy of ``prior``, whatever device that one is on.
    Upsampler priors (``prior.upper``) are not supported for coding: they would need the coarser level
    decoded first."""

    def __init__(self, prior: CodePrior, meta: PriorMeta) -> None:
        if meta.config.prior.upper:
            raise UserError(
                "coding with an upsampler prior (prior.upper) is not supported; use a prior of one level"
            )
        self.prior = copy.deepcopy(prior).float().cpu().eval()
        self.meta = meta
        self.level = meta.config.prior.level
        self.coder_id = prior_fingerprint(meta)[:16]

    def _speaker(self, name: str | None) -> int | None:
        if name is None or not self.meta.config.prior.speaker or name not in self.meta.speakers:
            return None
        return self.meta.speakers.index(name)

    def encode(self, codes: np.ndarray, speaker: str | None) -> bytes:
        return encode_with_prior(self.prior, codes, self._speaker(speaker))

    def decode(self, data: bytes, count: int, speaker: str | None) -> np.ndarray:
        try:
            return decode_with_prior(self.prior, data, count, self._speaker(speaker))
        except EntropyError as err:
            raise StreamError(f"corrupted prior-coded payload ({err})") from None
