"""Entropy coding of one level's codes with a :class:`~vqaudio.prior.model.CodePrior`.

rANS (:func:`vqaudio.codec.entropy.rans_encode_intervals`) with every code's own distribution: the
prior's next-code logits, turned into integer frequencies by
:func:`vqaudio.codec.entropy.quantise_probabilities`. The decoder must reproduce the encoder's logits
bit for bit, so both run the very same computation: :meth:`CodePrior.step` one code at a time (batch 1,
float32, on the CPU, one intra-op thread, whatever the caller's settings), each logit row quantised
alone. A stream therefore decodes with the same prior weights on the same platform (CPU kind, torch
and numpy builds) that encoded it; the stream records the prior's fingerprint so that another prior is
refused. Another platform (torch build, CPU instruction set: AVX2 and AVX-512 give different logits)
computes other logits: :meth:`PriorCoder.probe` hashes a fixed computation with the prior, the stream
records the encoder's, and a decoder whose probe differs refuses the stream up front; the rANS end-state
check catches what the probe misses.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property

import numpy as np
import torch
from torch import Tensor

from vqaudio.codec.bitstream import PRIOR_GROUP, StreamError
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

__all__ = ["PriorCoder", "decode_rows", "decode_with_prior", "encode_rows", "encode_with_prior"]


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


def _conditions(
    prior: CodePrior, speaker: int | None, upper: np.ndarray | None, rows: int
) -> tuple[Tensor, Tensor | None]:
    """The speaker (``"none"``: index ``num_speakers``) and coarser codes of every row."""
    spk = torch.full((rows,), prior.num_speakers if speaker is None else speaker, dtype=torch.long)
    up = None if upper is None else torch.from_numpy(np.asarray(upper, dtype=np.int64))[None].expand(rows, -1)
    return spk, up


def _check_codes(prior: CodePrior, codes: np.ndarray) -> np.ndarray:
    c = np.asarray(codes, dtype=np.int64)
    if c.ndim != 1 or (c.size and (c.min() < 0 or c.max() >= prior.num_codes)):
        raise ValueError(f"codes must be [N] in [0, {prior.num_codes})")
    return c


def encode_rows(
    prior: CodePrior, rows: Sequence[np.ndarray], speaker: int | None = None, upper: np.ndarray | None = None
) -> list[bytes]:
    """rANS bytes of each row of codes (``[N_r]`` each; one per chunk of a group), coded as one batch:
    :meth:`CodePrior.step` runs on all ``B = len(rows)`` rows together for ``max(N_r)`` steps, each row's
    input its own previous code (code 0 once the row has ended: a dead row, whose logits are not used),
    and every step's ``[B, K]`` logits go through :func:`quantise_probabilities` as one array. A row
    depends on the others only through ``B``: :func:`decode_rows` must be given the same rows."""
    codes = [_check_codes(prior, r) for r in rows]
    b, steps = len(codes), max((len(c) for c in codes), default=0)
    table = np.zeros((b, steps), np.int64)  # the codes, dead positions 0
    for r, c in enumerate(codes):
        table[r, : len(c)] = c
    starts, freqs = np.zeros((b, steps), np.int64), np.zeros((b, steps), np.int64)
    spk, up = _conditions(prior, speaker, upper, b)
    with _deterministic(prior):
        state, previous = PriorState(), None
        for t in range(steps):
            f = quantise_probabilities(prior.step(previous, state, spk, up).numpy())
            chosen = table[:, t]
            freqs[:, t] = f[np.arange(b), chosen]
            starts[:, t] = np.cumsum(f, axis=1)[np.arange(b), chosen] - freqs[:, t]
            previous = torch.from_numpy(chosen.copy())
    scale = interval_scale(prior.num_codes)
    return [
        rans_encode_intervals(starts[r, : len(c)], freqs[r, : len(c)], scale) for r, c in enumerate(codes)
    ]


def decode_rows(
    prior: CodePrior,
    rows: Sequence[bytes | np.ndarray],
    counts: Sequence[int],
    speaker: int | None = None,
    upper: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Inverse of :func:`encode_rows`: each row's ``counts[r]`` codes (int64), from its rANS bytes, or,
    for a row given as its codes (a chunk the stream stores with another model), those codes, which the
    batch needs all the same. Corrupted data raises :class:`~vqaudio.codec.entropy.EntropyError` (or,
    rarely, decodes to other valid codes)."""
    b, steps = len(rows), max(counts, default=0)
    table = np.zeros((b, steps), np.int64)
    decoders: dict[int, RansDecoder] = {}
    for r, (row, n) in enumerate(zip(rows, counts, strict=True)):
        if isinstance(row, np.ndarray):
            if len(row) != n:
                raise ValueError(f"row {r}: {len(row)} codes given for {n}")
            table[r, :n] = _check_codes(prior, row)
        else:
            decoders[r] = RansDecoder(row, interval_scale(prior.num_codes))
    spk, up = _conditions(prior, speaker, upper, b)
    with _deterministic(prior):
        state, previous = PriorState(), None
        for t in range(steps):
            logits = prior.step(previous, state, spk, up).numpy()
            if live := [r for r in decoders if t < counts[r]]:
                cdf = np.cumsum(quantise_probabilities(logits), axis=1)
                for r in live:
                    code = int(np.searchsorted(cdf[r], decoders[r].slot(), side="right"))
                    start = int(cdf[r, code - 1]) if code else 0
                    decoders[r].advance(start, int(cdf[r, code]) - start)
                    table[r, t] = code
            previous = torch.from_numpy(table[:, t].copy())
    for d in decoders.values():
        d.finish()
    return [table[r, :n].copy() for r, n in enumerate(counts)]


def encode_with_prior(
    prior: CodePrior, codes: np.ndarray, speaker: int | None = None, upper: np.ndarray | None = None
) -> bytes:
    """rANS bytes of ``codes`` ``[N]`` under ``prior`` (given the speaker index and the coarser level's
    codes when the prior is conditioned on them): :func:`encode_rows` of one row."""
    return encode_rows(prior, [codes], speaker, upper)[0]


def decode_with_prior(
    prior: CodePrior, data: bytes, count: int, speaker: int | None = None, upper: np.ndarray | None = None
) -> np.ndarray:
    """Inverse of :func:`encode_with_prior`: ``count`` codes (int64 ``[count]``)."""
    return decode_rows(prior, [data], [count], speaker, upper)[0]


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

    @cached_property
    def probe(self) -> str:
        """8 hex digits naming what this machine computes with the prior: the SHA-256 of the float32 logits
        and quantised frequencies of ``context + 1`` steps of batch 1 (the whole key/value window, and one
        step past it) and 16 steps of batch ``PRIOR_GROUP``, over the fixed codes ``(7919 t + r) mod K``
        (row ``r``) with the "none" speaker."""
        digest = hashlib.sha256()
        k = self.prior.num_codes
        with _deterministic(self.prior):
            for rows, steps in ((1, self.prior.context + 1), (PRIOR_GROUP, 16)):
                state, previous = PriorState(), None
                none = torch.full((rows,), self.prior.num_speakers, dtype=torch.long)
                for t in range(steps):
                    logits = self.prior.step(previous, state, none).numpy()
                    digest.update(logits.tobytes())
                    digest.update(quantise_probabilities(logits).tobytes())
                    previous = (7919 * t + torch.arange(rows)) % k
        return digest.hexdigest()[:8]

    def _speaker(self, name: str | None) -> int | None:
        if name is None or not self.meta.config.prior.speaker or name not in self.meta.speakers:
            return None
        return self.meta.speakers.index(name)

    def encode(self, rows: Sequence[np.ndarray], speaker: str | None) -> list[bytes]:
        """The rANS bytes of each chunk's codes of a group of chunks (:func:`encode_rows`)."""
        return encode_rows(self.prior, rows, self._speaker(speaker))

    def decode(
        self, rows: Sequence[bytes | np.ndarray], counts: Sequence[int], speaker: str | None
    ) -> list[np.ndarray]:
        """The codes of each chunk of a group (:func:`decode_rows`); a corrupted payload is a
        :class:`~vqaudio.codec.bitstream.StreamError`."""
        try:
            return decode_rows(self.prior, rows, counts, self._speaker(speaker))
        except EntropyError as err:
            raise StreamError(f"corrupted prior-coded payload ({err})") from None
