"""What a prior's bits per code are measured against: ``log2(K)``, a unigram and a bigram model.

Pure numpy (no torch). Each model is fitted on training code sequences and scored on held-out ones as
cross-entropy in bits per code:

- unigram: ``p(c) = (n(c) + a) / (N + a K)`` (add-``a`` smoothing), ``a`` chosen as below;
- bigram: ``p(c | p) = (n(p, c) + b u(c)) / (n(p) + b)``, the unigram ``u`` as a Dirichlet prior of
  weight ``b`` (MacKay & Peto, 1995, "A hierarchical Dirichlet language model"); the first code of a
  sequence uses the unigram.

The smoothing weights are chosen from a grid by fitting on the first 90% of the training sequences and
scoring on the rest, then the model is refitted on all of them: the baselines are tuned as fairly as
the prior is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["BaselineBits", "baseline_bits", "bigram_bits", "unigram_bits"]

_GRID = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)


def _counts(seqs: Sequence[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unigram counts ``[K]``, bigram counts ``[K, K]`` and first-code counts ``[K]``."""
    uni, bi, first = np.zeros(k), np.zeros((k, k)), np.zeros(k)
    for s in seqs:
        s = np.asarray(s, dtype=np.int64)
        if s.size:
            uni += np.bincount(s, minlength=k)
            first[s[0]] += 1
            np.add.at(bi, (s[:-1], s[1:]), 1)
    return uni, bi, first


def _unigram(uni: np.ndarray, a: float) -> np.ndarray:
    return (uni + a) / (uni.sum() + a * uni.size)


def _score_unigram(p: np.ndarray, seqs: Sequence[np.ndarray]) -> tuple[float, int]:
    bits, n = 0.0, 0
    for s in seqs:
        bits -= float(np.log2(p[np.asarray(s, dtype=np.int64)]).sum())
        n += len(s)
    return bits, n


def _score_bigram(u: np.ndarray, bi: np.ndarray, b: float, seqs: Sequence[np.ndarray]) -> tuple[float, int]:
    rows = bi.sum(axis=1)
    bits, n = 0.0, 0
    for s in seqs:
        s = np.asarray(s, dtype=np.int64)
        if not s.size:
            continue
        p = (bi[s[:-1], s[1:]] + b * u[s[1:]]) / (rows[s[:-1]] + b)
        bits -= math.log2(u[s[0]]) + float(np.log2(p).sum())
        n += s.size
    return bits, n


def _check(seqs: Sequence[np.ndarray], k: int, what: str) -> None:
    for s in seqs:
        s = np.asarray(s)
        if s.ndim != 1 or (s.size and (s.min() < 0 or s.max() >= k)):
            raise ValueError(f"{what}: every sequence must be 1-D codes in [0, {k})")


def _tune(train: Sequence[np.ndarray], k: int, score) -> float:  # type: ignore[no-untyped-def]
    """The grid value that scores best on the last 10% of ``train`` when fitted on the rest."""
    cut = max(1, round(0.9 * len(train))) if len(train) > 1 else len(train)
    fit, held = train[:cut], train[cut:] or train[:cut]
    counts = _counts(fit, k)
    return min(_GRID, key=lambda w: score(counts, w, held)[0])


def unigram_bits(train: Sequence[np.ndarray], test: Sequence[np.ndarray], k: int) -> float:
    """Bits per code of ``test`` under the add-``a`` unigram fitted on ``train`` (``a`` tuned)."""
    _check(train, k, "train")
    _check(test, k, "test")
    a = _tune(train, k, lambda c, w, held: _score_unigram(_unigram(c[0], w), held))
    bits, n = _score_unigram(_unigram(_counts(train, k)[0], a), test)
    return bits / max(n, 1)


def bigram_bits(train: Sequence[np.ndarray], test: Sequence[np.ndarray], k: int) -> float:
    """Bits per code of ``test`` under the bigram fitted on ``train`` (smoothing tuned)."""
    _check(train, k, "train")
    _check(test, k, "test")
    a = _tune(train, k, lambda c, w, held: _score_unigram(_unigram(c[0], w), held))
    b = _tune(train, k, lambda c, w, held: _score_bigram(_unigram(c[0], a), c[1], w, held))
    uni, bi, _ = _counts(train, k)
    bits, n = _score_bigram(_unigram(uni, a), bi, b, test)
    return bits / max(n, 1)


@dataclass(frozen=True)
class BaselineBits:
    """Bits per code of the baselines on held-out codes of one level (``log2_k``: uniform coding)."""

    log2_k: float
    unigram_bits: float
    bigram_bits: float


def baseline_bits(train: Sequence[np.ndarray], test: Sequence[np.ndarray], k: int) -> BaselineBits:
    """All three baselines of ``test`` with models fitted on ``train``."""
    return BaselineBits(math.log2(k), unigram_bits(train, test, k), bigram_bits(train, test, k))
