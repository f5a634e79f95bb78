"""Entropy coding of VQ code sequences: rANS with a static order-0 or an adaptive order-1 model.

Imports no torch (numpy and numba only). Codes are integers in ``[0, K)``, ``1 <= K <= 65536``.

- :class:`FrequencyTable`: the static (order-0) model, frequencies quantised to sum to ``2**precision``
  with every symbol >= 1, so codes unseen in training stay encodable.
- rANS (Duda, 2013/2014, "Asymmetric numeral systems: entropy coding combining speed of Huffman coding
  with compression rate of arithmetic coding", arXiv:1311.2540), in the byte-wise form of Giesen's
  ``ryg_rans`` (``rans_byte.h``, 2014; github.com/rygorous/ryg_rans): 32-bit state kept in ``[L, 256 L)``
  with ``L = 2**23``, bytes emitted in reverse by the encoder and read forward by the decoder. The
  decoder checks that it ends in the encoder's initial state ``L`` with every byte consumed, which
  rejects most corrupted streams; every byte read is bounds-checked.
- ``"order1"``: an adaptive model of the next code given the previous one, learnt from the stream itself
  (the decoder rebuilds it as it decodes; no side information). Context ``p`` (the previous code) keeps
  successor counts ``n[p, s]`` (``INCREMENT`` per occurrence) in a Fenwick tree (Fenwick, 1994, "A new
  data structure for cumulative frequency tables"), blended with the static table as a Dirichlet prior
  whose weight grows with the number of distinct successors seen, an escape estimate in the spirit of
  Witten & Bell (1991, "The zero-frequency problem")::

      w(p)      = PRIOR + PER_DISTINCT * distinct(p)
      cum(p, c) = w(p) * cdf0[c] + M * sum_{s < c} n[p, s]          (M = 2**table.precision_bits)
      tot(p)    = M * (w(p) + sum_s n[p, s])
      start(c)  = c + floor(cum(p, c) * (2**S - K) / tot(p))        (S = max(16, K.bit_length() + 5))

  so ``freq(s) = start(s + 1) - start(s) >= 1`` and the frequencies sum to exactly ``2**S``: plain rANS
  with a power-of-two total, whatever ``tot(p)``, in integers only. The decoder finds ``s`` by a
  Fenwick-tree descent on ``start(c) <= slot`` (``O(log K)``, no division). rANS encodes in reverse, so
  the encoder first computes every position's ``(start, freq)`` in a forward pass (the model at ``i``
  depends only on codes before ``i``), then codes the pairs backwards. The first code uses the fresh
  (all-static) model of context 0. A context's counts are halved when they sum to ``LIMIT``. Alphabets
  over ``ORDER1_MAX_SYMBOLS`` codes (the ``K x (K + 1)`` int32 counts would not fit comfortably) and
  ``K == 1`` fall back to the order-0 model.

A stream is only the rANS bytes: the caller stores the code count, the model name and the table.
"""

from __future__ import annotations

import operator
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numba import config as numba_config
from numba import njit

from vqaudio.errors import UserError

__all__ = [
    "MODELS",
    "EntropyError",
    "FrequencyTable",
    "decode_codes",
    "encode_codes",
    "RansDecoder",
    "interval_scale",
    "quantise_probabilities",
    "rans_decode",
    "rans_encode",
    "rans_encode_intervals",
]

_F = TypeVar("_F", bound=Callable[..., Any])


def numba_cache_dir() -> Path:
    """Where the compiled kernels are cached: ``$NUMBA_CACHE_DIR`` when set, else
    ``$XDG_CACHE_HOME/vqaudio/numba`` (``~/.cache`` without XDG_CACHE_HOME); never inside the installed
    package, which may be read-only or shared."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vqaudio" / "numba"


def _kernel(func: _F) -> _F:
    """``njit(cache=True)`` with the cache in :func:`numba_cache_dir` (numba fixes a function's cache
    folder when it is decorated; numba's global setting is restored at once, for other libraries)."""
    saved = numba_config.CACHE_DIR  # type: ignore[attr-defined]
    numba_config.CACHE_DIR = str(numba_cache_dir())  # type: ignore[attr-defined]
    try:
        return njit(cache=True)(func)  # type: ignore[return-value]
    finally:
        numba_config.CACHE_DIR = saved  # type: ignore[attr-defined]


RANS_L = 1 << 23  # lower bound of the normalised state interval [L, 256 L) (ryg_rans' RANS_BYTE_L)
MAX_PRECISION = 16  # bits of a FrequencyTable's total
MODELS = ("order0", "order1")  # append only: a .vqa payload stores a model as its index here
ORDER1_MAX_SYMBOLS = 4096
ORDER1_PRIOR = 2  # weight(p) = PRIOR + PER_DISTINCT * distinct successors of p ...
ORDER1_PER_DISTINCT = 3
ORDER1_INCREMENT = 2  # ... against INCREMENT per occurrence: tuned on Markov and i.i.d. synthetic codes
ORDER1_LIMIT = 1 << 15  # halve a context's counts when they sum to this

_TABLE_MAGIC = b"VQFT"
_TABLE_VERSION = 1
_TABLE_HEADER = struct.Struct("<4sBBBI")  # magic, version, precision_bits, width of (freq - 1), K
_STATUS = {
    1: "entropy-coded stream is truncated",
    2: "entropy-coded stream is corrupted (bad initial state)",
    3: "entropy-coded stream is corrupted (final state check failed)",
    4: "entropy-coded stream is corrupted (trailing bytes)",
}


class EntropyError(UserError, ValueError):
    """Entropy-coded data or a frequency table that is corrupted, truncated or does not fit."""


class FrequencyTable:
    """Quantised symbol frequencies of one alphabet: ``freqs`` uint32 ``[K]`` (each >= 1) summing to
    ``2**precision_bits``, and ``cdf`` uint32 ``[K + 1]`` (``cdf[0] = 0``, ``cdf[K] = 2**precision_bits``).

    Build one with :meth:`from_counts` or :meth:`uniform`; the arrays are read-only.
    """

    def __init__(self, freqs: np.ndarray, precision_bits: int) -> None:
        if not 0 <= precision_bits <= MAX_PRECISION:
            raise ValueError(f"precision_bits must be in [0, {MAX_PRECISION}], not {precision_bits}")
        f = np.asarray(freqs)
        if f.ndim != 1 or f.size == 0 or f.dtype.kind not in "iu":
            raise ValueError("freqs must be a non-empty 1-D integer array")
        if f.min() < 1 or int(f.sum()) != 1 << precision_bits:
            raise ValueError(f"freqs must all be >= 1 and sum to 2**{precision_bits}")
        self.precision_bits = precision_bits
        self.freqs = f.astype(np.uint32)
        self.cdf = np.concatenate([[0], np.cumsum(self.freqs, dtype=np.int64)]).astype(np.uint32)
        self.freqs.setflags(write=False)
        self.cdf.setflags(write=False)
        # numba-side copies: int64 so the kernels see one type; the slot -> symbol table for decoding
        self._freqs64 = self.freqs.astype(np.int64)
        self._cdf64 = self.cdf.astype(np.int64)
        self._lookup = np.repeat(np.arange(f.size, dtype=np.int32), self.freqs)

    @property
    def num_symbols(self) -> int:
        """The alphabet size K."""
        return int(self.freqs.size)

    @classmethod
    def from_counts(cls, counts: np.ndarray, precision_bits: int = 16) -> FrequencyTable:
        """Quantise non-negative ``counts`` ``[K]`` to frequencies >= 1 summing to ``2**precision_bits``.

        Minimises the cross-entropy of the counts under the integer table: the real optimum
        ``q = max(1, lam * counts)`` (water-filling; ``lam`` makes ``sum q = 2**precision``) is floored,
        then the missing units go to the symbols where one more unit saves the most bits (in the tests,
        the exact integer optimum). All-zero counts give the uniform table. Raises ``ValueError`` if
        ``K > 2**precision_bits``.
        """
        c = np.asarray(counts, dtype=np.float64)
        if c.ndim != 1 or c.size == 0 or not np.all(np.isfinite(c)) or np.any(c < 0):
            raise ValueError("counts must be a non-empty 1-D array of finite, non-negative numbers")
        if not 0 <= precision_bits <= MAX_PRECISION:
            raise ValueError(f"precision_bits must be in [0, {MAX_PRECISION}], not {precision_bits}")
        k, m = c.size, 1 << precision_bits
        if k > m:
            raise ValueError(f"{k} symbols do not fit in a table of 2**{precision_bits} = {m}")
        c = c / c.max() if c.max() > 0 else np.ones(k)  # scaled to avoid overflow; none: uniform
        if k == m:
            return cls(np.ones(k, dtype=np.int64), precision_bits)
        # Water-filling: the n largest counts get lam * c >= 1 and the rest get 1; the valid n form a
        # prefix (c_(n) * (m - k + n) - S_n does not increase with n), so take the last valid one.
        order = np.argsort(-c, kind="stable")
        sorted_c = c[order]
        prefix = np.cumsum(sorted_c)
        n = np.arange(1, k + 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            valid = (sorted_c > 0) & (sorted_c * (m - k + n) >= prefix)
        top = int(np.count_nonzero(valid))
        lam = (m - k + top) / prefix[top - 1]
        f = np.ones(k, dtype=np.int64)
        f[order[:top]] = np.maximum(1, np.floor(lam * sorted_c[:top])).astype(np.int64)
        while (diff := m - int(f.sum())) != 0:  # one round unless rounding in lam overshot
            if diff > 0:
                gain = c * np.log1p(1.0 / f)
                pick = np.argsort(-gain, kind="stable")[: min(diff, k)]
                f[pick] += 1
            else:
                with np.errstate(divide="ignore"):
                    loss = np.where(f > 1, c * np.log(f / np.maximum(f - 1, 1)), np.inf)
                pick = np.argsort(loss, kind="stable")[: min(-diff, int(np.count_nonzero(f > 1)))]
                f[pick] -= 1
        return cls(f, precision_bits)

    @classmethod
    def uniform(cls, num_symbols: int, precision_bits: int = 16) -> FrequencyTable:
        """The table that gives every one of ``num_symbols`` codes the same frequency (to within 1)."""
        return cls.from_counts(np.ones(num_symbols), precision_bits)

    def cross_entropy_bits(self, counts: np.ndarray) -> float:
        """Expected bits per symbol of order-0 coding with this table for symbols with these counts
        ``[K]`` (rANS overhead aside); 0.0 for all-zero counts."""
        c = np.asarray(counts, dtype=np.float64)
        if c.shape != self.freqs.shape:
            raise ValueError(f"counts must have shape {self.freqs.shape}, not {c.shape}")
        total = c.sum()
        if total <= 0:
            return 0.0
        bits = self.precision_bits - np.log2(self.freqs.astype(np.float64))
        return float((c * bits).sum() / total)

    def to_bytes(self) -> bytes:
        """Serialise: ``b"VQFT"``, version u8, precision_bits u8, width u8 (1 or 2), K u32, then
        ``freq - 1`` for every symbol as little-endian uint8/uint16, then zlib.crc32 of all before, u32."""
        minus_one = self.freqs.astype(np.int64) - 1
        width = 1 if int(minus_one.max()) < 256 else 2
        body = _TABLE_HEADER.pack(_TABLE_MAGIC, _TABLE_VERSION, self.precision_bits, width, self.num_symbols)
        body += minus_one.astype("<u1" if width == 1 else "<u2").tobytes()
        return body + struct.pack("<I", zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> FrequencyTable:
        """Inverse of :meth:`to_bytes`; raises :class:`EntropyError` on any inconsistency."""
        data = bytes(data)
        if len(data) < _TABLE_HEADER.size + 4:
            raise EntropyError("frequency table is truncated")
        magic, version, precision, width, k = _TABLE_HEADER.unpack_from(data)
        if magic != _TABLE_MAGIC:
            raise EntropyError("not a frequency table (bad magic)")
        if version != _TABLE_VERSION:
            raise EntropyError(f"unsupported frequency table version {version}")
        if width not in (1, 2) or precision > MAX_PRECISION or not 1 <= k <= 1 << precision:
            raise EntropyError("frequency table has an invalid header")
        if len(data) != _TABLE_HEADER.size + k * width + 4:
            raise EntropyError(
                f"frequency table has {len(data)} bytes, expected {_TABLE_HEADER.size + k * width + 4}"
            )
        if struct.unpack_from("<I", data, len(data) - 4)[0] != zlib.crc32(data[:-4]):
            raise EntropyError("frequency table checksum mismatch")
        freqs = (
            np.frombuffer(data, "<u1" if width == 1 else "<u2", k, _TABLE_HEADER.size).astype(np.int64) + 1
        )
        if int(freqs.sum()) != 1 << precision:
            raise EntropyError(f"frequency table does not sum to 2**{precision}")
        return cls(freqs, precision)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FrequencyTable):
            return NotImplemented
        return self.precision_bits == other.precision_bits and np.array_equal(self.freqs, other.freqs)

    __hash__ = None  # type: ignore[assignment]  # mutable-looking arrays: not hashable

    def __repr__(self) -> str:
        return f"FrequencyTable(num_symbols={self.num_symbols}, precision_bits={self.precision_bits})"


# --------------------------------------------------------------------------------------------------
# numba kernels: rANS core


@_kernel
def _rans_encode_pairs(starts: np.ndarray, freqs: np.ndarray, scale: int) -> tuple[np.ndarray, int]:
    """rANS-encode the intervals ``[start, start + freq)`` of a total ``2**scale``, last first (ryg_rans'
    RansEncPut/RansEncFlush). Returns a buffer and the offset where the stream starts in it."""
    n = starts.shape[0]
    buf = np.empty(n * ((scale + 7) // 8) + 4, np.uint8)  # renormalisation emits <= ceil(scale/8) bytes
    pos = buf.shape[0]
    x = np.int64(RANS_L)
    bound = np.int64((RANS_L >> scale) << 8)
    for i in range(n - 1, -1, -1):
        f = freqs[i]
        x_max = bound * f
        while x >= x_max:
            pos -= 1
            buf[pos] = x & 0xFF
            x >>= 8
        x = ((x // f) << scale) + x % f + starts[i]
    pos -= 4
    for j in range(4):
        buf[pos + j] = (x >> (8 * j)) & 0xFF
    return buf, pos


@_kernel
def _rans_init(data: np.ndarray) -> tuple[np.int64, int]:
    """Read the initial state; status 1 if truncated, 2 if outside ``[L, 256 L)``."""
    if data.shape[0] < 4:
        return np.int64(0), 1
    x = np.int64(data[0]) | (np.int64(data[1]) << 8) | (np.int64(data[2]) << 16) | (np.int64(data[3]) << 24)
    if x < RANS_L or x >= RANS_L << 8:
        return x, 2
    return x, 0


@_kernel
def _decode_order0(
    data: np.ndarray, count: int, cdf: np.ndarray, freqs: np.ndarray, lookup: np.ndarray, scale: int
) -> tuple[np.ndarray, int]:
    """Static rANS decoding with a ``2**scale`` slot -> symbol table. Returns (codes, status)."""
    out = np.zeros(count, np.int64)
    x, status = _rans_init(data)
    if status != 0:
        return out, status
    n = data.shape[0]
    pos = 4
    mask = (1 << scale) - 1
    for i in range(count):
        slot = x & mask
        s = lookup[slot]
        x = freqs[s] * (x >> scale) + slot - cdf[s]
        while x < RANS_L:
            if pos >= n:
                return out, 1
            x = (x << 8) | data[pos]
            pos += 1
        out[i] = s
    if x != RANS_L:
        return out, 3
    return out, 0 if pos == n else 4


# --------------------------------------------------------------------------------------------------
# numba kernels: adaptive order-1 model (per-context Fenwick trees over successor counts)


@_kernel
def _prefix(tree: np.ndarray, p: int, i: int) -> int:
    """Sum of the counts of symbols ``< i`` in context ``p``."""
    total = 0
    while i > 0:
        total += tree[p, i]
        i -= i & -i
    return total


@_kernel
def _count(
    tree: np.ndarray, totals: np.ndarray, distinct: np.ndarray, p: int, s: int, new: bool, params: np.ndarray
) -> None:
    """Count ``s`` after ``p``; at ``limit``, halve the context's counts (non-zero ones stay >= 1)."""
    k = tree.shape[1] - 1
    inc = params[4]
    if new:
        distinct[p] += 1
    i = s + 1
    while i <= k:
        tree[p, i] += inc
        i += i & -i
    totals[p] += inc
    if totals[p] >= params[5]:
        row = tree[p]
        for i in range(k, 0, -1):  # Fenwick tree -> counts
            j = i + (i & -i)
            if j <= k:
                row[j] -= row[i]
        total = 0
        for i in range(1, k + 1):
            row[i] = (row[i] + 1) >> 1
            total += row[i]
        for i in range(1, k + 1):  # counts -> Fenwick tree
            j = i + (i & -i)
            if j <= k:
                row[j] += row[i]
        totals[p] = total


@_kernel
def _order1_intervals(
    symbols: np.ndarray, cdf0: np.ndarray, params: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Forward pass of the encoder: every position's ``(start, freq)`` of a total ``2**scale``.

    ``params`` = (precision, scale, prior, per_distinct, increment, limit), see :func:`_order1_params`."""
    k = cdf0.shape[0] - 1
    n = symbols.shape[0]
    starts = np.empty(n, np.int64)
    freqs = np.empty(n, np.int64)
    tree = np.zeros((k, k + 1), np.int32)
    totals = np.zeros(k, np.int64)
    distinct = np.zeros(k, np.int64)
    unit = np.int64(1) << params[0]
    r = (np.int64(1) << params[1]) - k
    prev = 0
    for i in range(n):
        s = symbols[i]
        w = params[2] + params[3] * distinct[prev]
        t = unit * w + unit * totals[prev]
        lo = _prefix(tree, prev, s)
        hi = _prefix(tree, prev, s + 1)
        g0 = s + (w * cdf0[s] + unit * lo) * r // t
        starts[i] = g0
        freqs[i] = s + 1 + (w * cdf0[s + 1] + unit * hi) * r // t - g0
        if i > 0:
            _count(tree, totals, distinct, prev, s, hi == lo, params)
        prev = s
    return starts, freqs


@_kernel
def _decode_order1(
    data: np.ndarray, count: int, cdf0: np.ndarray, params: np.ndarray
) -> tuple[np.ndarray, int]:
    """Decoder of the order-1 model (mirror of :func:`_order1_intervals`). Returns (codes, status)."""
    k = cdf0.shape[0] - 1
    out = np.zeros(count, np.int64)
    x, status = _rans_init(data)
    if status != 0:
        return out, status
    tree = np.zeros((k, k + 1), np.int32)
    totals = np.zeros(k, np.int64)
    distinct = np.zeros(k, np.int64)
    unit = np.int64(1) << params[0]
    scale = params[1]
    r = (np.int64(1) << scale) - k
    mask = (np.int64(1) << scale) - 1
    top = 1
    while top * 2 <= k:
        top *= 2
    n = data.shape[0]
    pos = 4
    prev = 0
    for i in range(count):
        slot = x & mask
        w = params[2] + params[3] * distinct[prev]
        t = unit * w + unit * totals[prev]
        # the largest c with start(c) = c + floor(cum(c) * r / t) <= slot, by Fenwick-tree descent
        s = 0
        lo = 0
        step = top
        while step > 0:
            c = s + step
            if c <= k and c <= slot:
                a = lo + tree[prev, c]
                if (w * cdf0[c] + unit * a) * r < (slot - c + 1) * t:
                    s = c
                    lo = a
            step >>= 1
        hi = _prefix(tree, prev, s + 1)
        g0 = s + (w * cdf0[s] + unit * lo) * r // t
        g1 = s + 1 + (w * cdf0[s + 1] + unit * hi) * r // t
        x = (g1 - g0) * (x >> scale) + slot - g0
        while x < RANS_L:
            if pos >= n:
                return out, 1
            x = (x << 8) | data[pos]
            pos += 1
        out[i] = s
        if i > 0:
            _count(tree, totals, distinct, prev, s, hi == lo, params)
        prev = s
    if x != RANS_L:
        return out, 3
    return out, 0 if pos == n else 4


# --------------------------------------------------------------------------------------------------
# Python API


def _check_symbols(symbols: np.ndarray, k: int) -> np.ndarray:
    arr = np.asarray(symbols)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(f"codes must be a 1-D integer array, not {arr.dtype} of shape {arr.shape}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= k):
        raise EntropyError(f"codes must be in [0, {k}) for this frequency table")
    return np.ascontiguousarray(arr)


def _as_buffer(data: bytes | bytearray | memoryview, count: int) -> np.ndarray:
    if operator.index(count) < 0:
        raise ValueError(f"count must be >= 0, not {count}")
    return np.frombuffer(bytes(data), dtype=np.uint8)


def _raise_on(status: int) -> None:
    if status:
        raise EntropyError(_STATUS[status])


def rans_encode(symbols: np.ndarray, table: FrequencyTable) -> bytes:
    """Static (order-0) rANS encoding of codes ``[N]`` with ``table``; ``4 + ~N * H / 8`` bytes."""
    sym = _check_symbols(symbols, table.num_symbols)
    buf, pos = _rans_encode_pairs(table._cdf64[sym], table._freqs64[sym], table.precision_bits)
    return buf[pos:].tobytes()


def rans_decode(data: bytes | bytearray | memoryview, count: int, table: FrequencyTable) -> np.ndarray:
    """Inverse of :func:`rans_encode`: ``count`` codes, int64 ``[count]``. Corrupted or truncated data
    raises :class:`EntropyError` (or, rarely, decodes to wrong codes that are still in ``[0, K)``)."""
    buf = _as_buffer(data, count)
    out, status = _decode_order0(
        buf, count, table._cdf64, table._freqs64, table._lookup, table.precision_bits
    )
    _raise_on(status)
    return out


def _uses_order1(model: str, table: FrequencyTable) -> bool:
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, not {model!r}")
    return model == "order1" and 1 < table.num_symbols <= ORDER1_MAX_SYMBOLS


def _order1_params(table: FrequencyTable) -> np.ndarray:
    """(precision, scale, prior, per_distinct, increment, limit) of the order-1 kernels; the scale keeps
    the ``K`` reserved units (one per symbol) at most 1/32 of the total."""
    scale = max(16, table.num_symbols.bit_length() + 5)
    return np.array(
        [table.precision_bits, scale, ORDER1_PRIOR, ORDER1_PER_DISTINCT, ORDER1_INCREMENT, ORDER1_LIMIT],
        np.int64,
    )


def encode_codes(codes: np.ndarray, table: FrequencyTable, model: str = "order0") -> bytes:
    """Entropy-code codes ``[N]`` in ``[0, K)`` with ``model`` ``"order0"`` (static ``table``) or
    ``"order1"`` (adaptive, previous code as context, ``table`` as prior). The count, the model and the
    table are not stored: :func:`decode_codes` needs them."""
    if not _uses_order1(model, table):
        return rans_encode(codes, table)
    sym = _check_symbols(codes, table.num_symbols)
    params = _order1_params(table)
    starts, freqs = _order1_intervals(sym, table._cdf64, params)
    buf, pos = _rans_encode_pairs(starts, freqs, int(params[1]))
    return buf[pos:].tobytes()


def decode_codes(
    data: bytes | bytearray | memoryview, count: int, table: FrequencyTable, model: str = "order0"
) -> np.ndarray:
    """Inverse of :func:`encode_codes`: int64 ``[count]``. Raises :class:`EntropyError` on corrupted or
    truncated data (or, rarely, returns wrong codes that are still in ``[0, K)``)."""
    if not _uses_order1(model, table):
        return rans_decode(data, count, table)
    buf = _as_buffer(data, count)
    out, status = _decode_order1(buf, count, table._cdf64, _order1_params(table))
    _raise_on(status)
    return out


# --------------------------------------------------------------------------------------------------
# Model-driven coding: a caller's model gives every position its own distribution (e.g. a prior)


def interval_scale(num_symbols: int) -> int:
    """Bits ``S`` of the total ``2**S`` that :func:`quantise_probabilities` uses for ``K`` symbols: the
    ``K`` reserved units (one per symbol) stay at most 1/32 of it, as in the order-1 model."""
    return max(16, int(num_symbols).bit_length() + 5)


def quantise_probabilities(logits: np.ndarray) -> np.ndarray:
    """Integer frequencies ``[N, K]`` (int64, each >= 1, every row summing to ``2**interval_scale(K)``)
    from float ``logits`` ``[N, K]``::

        p      = exp(l - max(l)) / sum(exp(l - max(l)))        in IEEE float64, numpy's order
        f      = 1 + floor(p * (2**S - K))
        f[argmax(f)] += 2**S - sum(f)                        (the first maximum)

    Floating point is deterministic on one machine, not across machines (libm and SIMD paths differ in
    the last bit): encoder and decoder must feed it bit-identical logits in arrays of the same shape, on
    the same platform (see :mod:`vqaudio.prior.coding`)."""
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2 or not np.all(np.isfinite(x)):
        raise ValueError(f"logits must be finite [N, K >= 2], not shape {x.shape}")
    k = x.shape[1]
    total = 1 << interval_scale(k)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    f = 1 + np.floor(p * (total - k)).astype(np.int64)
    rows = np.arange(x.shape[0])
    f[rows, np.argmax(f, axis=1)] += total - f.sum(axis=1)
    return f


def rans_encode_intervals(starts: np.ndarray, freqs: np.ndarray, scale: int) -> bytes:
    """rANS-encode one symbol per position given as its interval ``[start, start + freq)`` of a total
    ``2**scale`` (``1 <= scale <= 23``): the bytes :class:`RansDecoder` reads back."""
    st, fr = np.ascontiguousarray(starts, np.int64), np.ascontiguousarray(freqs, np.int64)
    if st.shape != fr.shape or st.ndim != 1 or not 1 <= scale <= 23:
        raise ValueError("starts and freqs must be 1-D of one length, and scale in 1..23")
    if st.size and (fr.min() < 1 or st.min() < 0 or int((st + fr).max()) > 1 << scale):
        raise ValueError(f"every interval must lie in [0, 2**{scale}) and be non-empty")
    buf, pos = _rans_encode_pairs(st, fr, scale)
    return buf[pos:].tobytes()


class RansDecoder:
    """Decodes :func:`rans_encode_intervals`'s bytes one symbol at a time, for a caller whose model needs
    each decoded symbol before it can give the next distribution: :meth:`slot` says where the next
    symbol's interval lies, :meth:`advance` consumes it, :meth:`finish` checks the end state."""

    def __init__(self, data: bytes | bytearray | memoryview, scale: int) -> None:
        self.data, self.scale = bytes(data), scale
        if len(self.data) < 4:
            raise EntropyError(_STATUS[1])
        self.x = int.from_bytes(self.data[:4], "little")
        if not RANS_L <= self.x < RANS_L << 8:
            raise EntropyError(_STATUS[2])
        self.pos = 4

    def slot(self) -> int:
        """The next symbol's slot in ``[0, 2**scale)``: the symbol whose interval holds it comes next."""
        return self.x & ((1 << self.scale) - 1)

    def advance(self, start: int, freq: int) -> None:
        """Consume the symbol of interval ``[start, start + freq)`` (the one holding :meth:`slot`)."""
        slot = self.slot()
        if not start <= slot < start + freq:
            raise ValueError("the interval does not hold the current slot")
        self.x = freq * (self.x >> self.scale) + slot - start
        while self.x < RANS_L:
            if self.pos >= len(self.data):
                raise EntropyError(_STATUS[1])
            self.x = (self.x << 8) | self.data[self.pos]
            self.pos += 1

    def finish(self) -> None:
        """Raise :class:`EntropyError` unless the decoder ended in the encoder's initial state with every
        byte read."""
        if self.x != RANS_L:
            raise EntropyError(_STATUS[3])
        if self.pos != len(self.data):
            raise EntropyError(_STATUS[4])
