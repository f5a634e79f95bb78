"""Tests of vqaudio.codec.entropy: frequency tables, static and adaptive rANS, corrupted streams."""

from __future__ import annotations

import heapq
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vqaudio.codec.entropy import (
    MODELS,
    ORDER1_MAX_SYMBOLS,
    EntropyError,
    FrequencyTable,
    decode_codes,
    encode_codes,
    rans_decode,
    rans_encode,
)
from vqaudio.errors import UserError

K = 1024


def zipf_probs(k: int, a: float = 1.1) -> np.ndarray:
    p = 1.0 / np.arange(1, k + 1) ** a
    return p / p.sum()


def markov_codes(n: int, k: int, seed: int) -> np.ndarray:
    """Speech-like codes: each code is mostly followed by one of 4 successors, 10% of the time by any."""
    rng = np.random.default_rng(seed)
    succ = rng.choice(k, (k, 4), p=zipf_probs(k))
    pick = rng.choice(4, n, p=[0.6, 0.2, 0.1, 0.1])
    escape = rng.random(n) < 0.1
    anywhere = rng.choice(k, n, p=zipf_probs(k))
    out = np.empty(n, np.int64)
    s = 0
    for i in range(n):
        s = anywhere[i] if escape[i] else succ[s, pick[i]]
        out[i] = s
    return out


def table_for(codes: np.ndarray, k: int = K, precision_bits: int = 16) -> FrequencyTable:
    return FrequencyTable.from_counts(np.bincount(codes, minlength=k), precision_bits)


def optimal_freqs(counts: np.ndarray, precision_bits: int) -> np.ndarray:
    """Exact integer optimum of sum c log f (separable concave): give units one at a time by best gain."""
    f = np.ones(len(counts), np.int64)
    heap = [(-c * np.log1p(1.0), i) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    for _ in range((1 << precision_bits) - len(counts)):
        _, i = heapq.heappop(heap)
        f[i] += 1
        heapq.heappush(heap, (-counts[i] * np.log1p(1.0 / f[i]), i))
    return f


# ----------------------------------------------------------------------------------------------------
# FrequencyTable


@pytest.mark.parametrize(
    "k, precision", [(1, 0), (1, 16), (2, 1), (2, 16), (7, 3), (300, 9), (1024, 16), (4096, 12)]
)
def test_table_sums_to_total_with_every_symbol_at_least_one(k: int, precision: int) -> None:
    rng = np.random.default_rng(k)
    counts = rng.zipf(1.3, k).astype(np.float64) * (rng.random(k) < 0.7)  # ~30% never seen
    table = FrequencyTable.from_counts(counts, precision)
    assert table.freqs.dtype == np.uint32 and table.cdf.dtype == np.uint32
    assert table.freqs.shape == (k,) and table.cdf.shape == (k + 1,)
    assert int(table.freqs.sum()) == 1 << precision and table.freqs.min() >= 1
    assert table.cdf[0] == 0 and table.cdf[-1] == 1 << precision
    assert np.array_equal(np.diff(table.cdf.astype(np.int64)), table.freqs)
    with pytest.raises(ValueError):
        table.freqs[0] = 5  # read-only


@pytest.mark.parametrize("k, precision, seed", [(50, 10, 0), (200, 12, 1), (30, 6, 2)])
def test_table_is_the_integer_optimum(k: int, precision: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    counts = rng.zipf(1.2, k).astype(np.float64) * (rng.random(k) < 0.8)
    table = FrequencyTable.from_counts(counts, precision)
    best = optimal_freqs(counts, precision)
    best_bits = float((counts * (precision - np.log2(best))).sum() / counts.sum())
    assert table.cross_entropy_bits(counts) == pytest.approx(best_bits, abs=1e-9)


def test_table_close_to_empirical() -> None:
    rng = np.random.default_rng(0)
    counts = np.bincount(rng.choice(K, 200_000, p=zipf_probs(K)), minlength=K)
    p = counts / counts.sum()
    entropy = -float((p[p > 0] * np.log2(p[p > 0])).sum())
    kl = FrequencyTable.from_counts(counts).cross_entropy_bits(counts) - entropy
    assert 0 <= kl < 2e-3


def test_table_two_symbols_and_zero_counts() -> None:
    assert FrequencyTable.from_counts(np.array([3, 1]), 4).freqs.tolist() == [12, 4]
    assert FrequencyTable.from_counts(np.array([1, 0]), 16).freqs.tolist() == [65535, 1]
    assert FrequencyTable.from_counts(np.zeros(4), 8).freqs.tolist() == [64] * 4  # no data: uniform
    assert FrequencyTable.uniform(3, 4).freqs.tolist() in ([6, 5, 5], [5, 6, 5], [5, 5, 6])


def test_table_full_alphabet_and_too_many_symbols() -> None:
    full = FrequencyTable.from_counts(np.arange(65536), 16)
    assert np.all(full.freqs == 1)
    assert np.all(FrequencyTable.uniform(256, 8).freqs == 1)
    with pytest.raises(ValueError):
        FrequencyTable.from_counts(np.ones(65537), 16)
    with pytest.raises(ValueError):
        FrequencyTable.uniform(257, 8)
    for bad in (np.array([1.0, -1.0]), np.array([np.nan, 1.0]), np.ones((2, 2)), np.array([])):
        with pytest.raises(ValueError):
            FrequencyTable.from_counts(bad)


def test_cross_entropy_bits() -> None:
    table = FrequencyTable.uniform(256, 16)
    assert table.cross_entropy_bits(np.arange(256)) == pytest.approx(8.0)
    assert table.cross_entropy_bits(np.zeros(256)) == 0.0
    skewed = FrequencyTable.from_counts(np.array([3, 1]), 2)
    assert skewed.cross_entropy_bits(np.array([3, 1])) == pytest.approx(
        -(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25))
    )


@pytest.mark.parametrize(
    "table",
    [
        FrequencyTable.from_counts(np.array([5, 3, 1, 0]), 8),
        FrequencyTable.from_counts(np.arange(1000) ** 2, 16),  # 2-byte entries
        FrequencyTable.uniform(65536, 16),
        FrequencyTable.from_counts(np.ones(1), 16),  # K = 1: freq 65536
    ],
)
def test_table_serialisation_round_trip(table: FrequencyTable) -> None:
    again = FrequencyTable.from_bytes(table.to_bytes())
    assert again == table and again.precision_bits == table.precision_bits
    assert np.array_equal(again.cdf, table.cdf)


def test_table_serialisation_golden() -> None:
    table = FrequencyTable.from_counts(np.array([5, 3, 1, 0]), 8)
    assert table.freqs.tolist() == [142, 85, 28, 1]
    assert table.to_bytes().hex() == "56514654010801040000008d541b005490797f"


def test_table_rejects_corrupted_bytes() -> None:
    data = FrequencyTable.from_counts(np.array([5, 3, 1, 0, 9, 2]), 10).to_bytes()
    for i in range(len(data)):
        for value in (data[i] ^ 0x01, data[i] ^ 0x80, (data[i] + 77) % 256):
            with pytest.raises(EntropyError):
                FrequencyTable.from_bytes(data[:i] + bytes([value]) + data[i + 1 :])
    for end in range(len(data)):
        with pytest.raises(EntropyError):
            FrequencyTable.from_bytes(data[:end])
    with pytest.raises(EntropyError):
        FrequencyTable.from_bytes(data + b"\0")
    # a consistent checksum does not make a bad table valid: entries that do not sum to 2**precision
    body = struct.pack("<4sBBBI", b"VQFT", 1, 4, 1, 2) + bytes([7, 6])
    with pytest.raises(EntropyError, match="sum"):
        FrequencyTable.from_bytes(body + struct.pack("<I", zlib.crc32(body)))
    assert issubclass(EntropyError, UserError)


# ----------------------------------------------------------------------------------------------------
# Round trips


def _sources() -> dict[str, tuple[np.ndarray, FrequencyTable]]:
    rng = np.random.default_rng(42)
    zipf = rng.choice(K, 50_000, p=zipf_probs(K))
    markov = markov_codes(50_000, K, seed=1)
    uniform = rng.integers(0, K, 50_000)
    trained = np.bincount(rng.choice(K // 2, 10_000), minlength=K)  # codes >= K/2 never seen
    return {
        "empty": (np.zeros(0, np.int64), FrequencyTable.uniform(K)),
        "one": (np.array([K - 1]), FrequencyTable.uniform(K)),
        "all_same": (np.full(5000, 7), table_for(np.full(5000, 7))),
        "uniform": (uniform, table_for(uniform)),
        "zipf": (zipf, table_for(zipf)),
        "markov": (markov, table_for(markov)),
        "unseen": (rng.integers(0, K, 20_000), FrequencyTable.from_counts(trained)),
        "k1": (np.zeros(100, np.int64), FrequencyTable.uniform(1)),
        "k2": (rng.integers(0, 2, 1000), FrequencyTable.from_counts(np.array([9, 1]), 6)),
    }


SOURCES = _sources()


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("name", list(SOURCES))
def test_round_trip(name: str, model: str) -> None:
    codes, table = SOURCES[name]
    data = encode_codes(codes, table, model)
    out = decode_codes(data, len(codes), table, model)
    assert out.dtype == np.int64 and np.array_equal(out, codes)


def test_static_functions_match_order0_and_accept_any_int_dtype() -> None:
    codes, table = SOURCES["zipf"]
    data = rans_encode(codes.astype(np.uint16), table)
    assert data == encode_codes(codes, table, "order0")
    assert np.array_equal(rans_decode(bytearray(data), len(codes), table), codes)


def test_large_alphabet_order1_falls_back_to_order0() -> None:
    k = ORDER1_MAX_SYMBOLS + 1
    codes = np.random.default_rng(3).integers(0, k, 3000)
    table = FrequencyTable.uniform(k)
    data = encode_codes(codes, table, "order1")
    assert data == encode_codes(codes, table, "order0")
    assert np.array_equal(decode_codes(data, len(codes), table, "order1"), codes)


def test_golden_streams() -> None:
    """A silent change of the stream format (or of the order-1 model) must fail here."""
    table = FrequencyTable.from_counts(np.array([5, 3, 1, 0]), 8)
    codes = np.array([0, 0, 1, 2, 3, 1, 1, 0, 0, 0, 2, 1, 1, 0])
    golden = {"order0": "5d096d05ffa4f9", "order1": "888109376339d8"}
    for model, hexdata in golden.items():
        assert encode_codes(codes, table, model).hex() == hexdata
        assert np.array_equal(decode_codes(bytes.fromhex(hexdata), len(codes), table, model), codes)


def test_bad_arguments() -> None:
    table = FrequencyTable.uniform(16)
    with pytest.raises(EntropyError):
        encode_codes(np.array([0, 16]), table)
    with pytest.raises(EntropyError):
        encode_codes(np.array([-1]), table, "order1")
    with pytest.raises(ValueError):
        encode_codes(np.zeros((2, 2), np.int64), table)
    with pytest.raises(ValueError):
        encode_codes(np.array([0.5]), table)
    with pytest.raises(ValueError):
        encode_codes(np.array([1]), table, "order2")
    with pytest.raises(ValueError):
        decode_codes(b"\0\0\x80\0", -1, table)


# ----------------------------------------------------------------------------------------------------
# Compression


def test_order0_close_to_cross_entropy() -> None:
    codes, table = SOURCES["zipf"]
    bits = table.cross_entropy_bits(np.bincount(codes, minlength=K))
    nbytes = len(encode_codes(codes, table, "order0"))
    assert nbytes <= len(codes) * bits / 8 * 1.01 + 32


def test_order1_beats_order0_on_markov_codes() -> None:
    codes, table = SOURCES["markov"]
    order0 = len(encode_codes(codes, table, "order0"))
    order1 = len(encode_codes(codes, table, "order1"))
    assert order1 <= 0.8 * order0


# ----------------------------------------------------------------------------------------------------
# Corrupted and truncated streams


def _assert_rejected_or_in_range(data: bytes, count: int, table: FrequencyTable, model: str) -> bool:
    """True if rejected with EntropyError; any other exception fails the test."""
    try:
        out = decode_codes(data, count, table, model)
    except EntropyError as exc:
        assert "\n" not in str(exc)
        return True
    assert out.shape == (count,) and out.dtype == np.int64
    assert out.min(initial=0) >= 0 and out.max(initial=0) < table.num_symbols
    return False


@pytest.mark.parametrize("model", MODELS)
def test_every_single_byte_corruption(model: str) -> None:
    codes = markov_codes(80, 16, seed=5)
    table = table_for(codes, 16, 12)
    data = encode_codes(codes, table, model)
    rejected = total = 0
    for i in range(len(data)):
        for value in range(256):
            if value != data[i]:
                rejected += _assert_rejected_or_in_range(
                    data[:i] + bytes([value]) + data[i + 1 :], 80, table, model
                )
                total += 1
    assert rejected >= 0.9 * total  # the final-state check catches most corruptions


@pytest.mark.parametrize("model", MODELS)
def test_truncation_and_extra_bytes(model: str) -> None:
    codes = markov_codes(300, 64, seed=6)
    table = table_for(codes, 64, 14)
    data = encode_codes(codes, table, model)
    for end in range(len(data)):
        _assert_rejected_or_in_range(data[:end], len(codes), table, model)
    for end in range(4):
        with pytest.raises(EntropyError, match="truncated"):
            decode_codes(data[:end], len(codes), table, model)
    with pytest.raises(EntropyError, match="trailing"):
        decode_codes(data + b"\0", len(codes), table, model)
    for wrong in (len(codes) - 1, len(codes) + 1):
        with pytest.raises(EntropyError):
            decode_codes(data, wrong, table, model)
    _assert_rejected_or_in_range(bytes(4 * len(data)), len(codes), table, model)
    _assert_rejected_or_in_range(b"\xff" * len(data), len(codes), table, model)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    k=st.integers(1, 300),
    extra_bits=st.integers(0, 7),
    data=st.data(),
    model=st.sampled_from(MODELS),
)
def test_round_trip_property(k: int, extra_bits: int, data: st.DataObject, model: str) -> None:
    precision = min(16, max(0, (k - 1).bit_length()) + extra_bits)
    counts = data.draw(st.lists(st.integers(0, 1000), min_size=k, max_size=k))
    table = FrequencyTable.from_counts(np.array(counts, np.float64), precision)
    codes = np.array(data.draw(st.lists(st.integers(0, k - 1), max_size=400)), np.int64)
    encoded = encode_codes(codes, table, model)
    assert np.array_equal(decode_codes(encoded, len(codes), table, model), codes)
    assert FrequencyTable.from_bytes(table.to_bytes()) == table
