"""Tests of the ``.vqa`` container: bit packing, round trips, and rejection of every kind of bad input."""

from __future__ import annotations

import io
import json
import math
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vqaudio.codec.bitstream import (
    MAGIC,
    MAX_HEADER_BYTES,
    ChecksumError,
    LevelInfo,
    StreamError,
    StreamHeader,
    StreamReader,
    StreamWriter,
    decode_stream,
    encode_stream,
    pack_codes,
    read_header,
    unpack_codes,
)

REPO = Path(__file__).resolve().parents[1]
SHA = "ab" * 32


def header(
    num_samples: int, levels: list[tuple[int, int, int]], chunk_samples: int, **kw: Any
) -> StreamHeader:
    """A header with ``levels`` given as (level, hop, K) triples."""
    infos = tuple(LevelInfo(*lv) for lv in levels)
    return StreamHeader(SHA, 16000, num_samples, infos, chunk_samples, **kw)


def random_codes(h: StreamHeader, seed: int = 0, top: bool = True) -> list[np.ndarray]:
    """Random codes for every level; with ``top`` the first code of each level is K - 1."""
    rng = np.random.default_rng(seed)
    codes = [rng.integers(0, lv.codebook_size, h.num_frames(i)) for i, lv in enumerate(h.levels)]
    for c, lv in zip(codes, h.levels, strict=True):
        if top and c.size:
            c[0] = lv.codebook_size - 1
    return codes


def small_stream() -> bytes:
    """2 levels (K=5 and K=3), 3 chunks, the last one partial: 321 bytes, almost all of it header."""
    h = header(1500, [(0, 320, 5), (1, 640, 3)], 640)
    return encode_stream(h, random_codes(h))


def crafted(header_bytes: bytes, version: int = 1) -> bytes:
    """A stream prefix with an arbitrary header and a valid header CRC (no chunks)."""
    prefix = MAGIC + struct.pack("<HI", version, len(header_bytes)) + header_bytes
    return prefix + struct.pack("<I", zlib.crc32(prefix))


def chunk(payload: bytes) -> bytes:
    """A chunk with a valid length and CRC."""
    length = struct.pack("<I", len(payload))
    return length + payload + struct.pack("<I", zlib.crc32(length + payload))


# --- bit packing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", range(1, 17))
def test_pack_unpack_round_trip_every_width(bits: int) -> None:
    rng = np.random.default_rng(bits)
    for count in (0, 1, 7, 8, 9, 1000):
        codes = rng.integers(0, 1 << bits, count)
        if count:
            codes[-1] = (1 << bits) - 1  # the largest value sets every bit
        data = pack_codes(codes, bits)
        assert len(data) == math.ceil(count * bits / 8)
        out = unpack_codes(data, bits, count)
        assert out.dtype == np.int64 and out.shape == (count,)
        np.testing.assert_array_equal(out, codes)


def test_pack_known_vectors() -> None:
    # bits=3, codes [1, 2, 7]: stream bits (LSB first) 100 010 111 -> byte 0 = bits 0..7 = 1,0,0,0,1,0,1,1
    # = 1 + 16 + 64 + 128 = 0xD1; byte 1 = bit 8 = 1 -> 0x01 (i.e. 1 | 2 << 3 | 7 << 6 = 0x1D1, little-endian)
    assert pack_codes(np.array([1, 2, 7]), 3) == b"\xd1\x01"
    # bits=10, codes [1000, 3]: 1000 | 3 << 10 = 0x0FE8 over 20 bits -> E8 0F 00
    assert pack_codes(np.array([1000, 3]), 10) == b"\xe8\x0f\x00"
    assert pack_codes(np.array([1, 0, 1, 1, 0, 0, 0, 0, 1]), 1) == b"\x0d\x01"
    np.testing.assert_array_equal(unpack_codes(b"\xd1\x01", 3, 3), [1, 2, 7])


@pytest.mark.parametrize(
    ("codes", "bits"),
    [([8], 3), ([-1], 3), ([1.0], 3), ([[1]], 3), ([1], 0), ([1], 17), ([65536], 16)],
)
def test_pack_rejects_caller_bugs(codes: list[Any], bits: int) -> None:
    with pytest.raises(ValueError):
        pack_codes(np.array(codes), bits)


def test_unpack_rejects_wrong_length() -> None:
    with pytest.raises(ValueError):
        unpack_codes(b"\x00\x00\x00", 3, 3)  # 9 bits need 2 bytes


# --- header ------------------------------------------------------------------------------------------


def test_header_derived_values_and_json() -> None:
    h = header(1000, [(0, 80, 2), (1, 320, 1000), (2, 640, 1024), (3, 640, 1025), (4, 640, 65536)], 640)
    assert [lv.bits for lv in h.levels] == [1, 10, 10, 11, 16]
    assert h.num_chunks == 2 and h.duration == 1000 / 16000
    assert [h.frames_in_chunk(c, 0) for c in range(2)] == [8, 5]  # 640 / 80, ceil(360 / 80)
    assert [h.frames_in_chunk(c, 1) for c in range(2)] == [2, 2]  # ceil(360 / 320) = 2
    assert [h.num_frames(i) for i in range(2)] == [13, 4]
    assert header(0, [(0, 80, 4)], 80).num_chunks == 0
    text = h.to_json()
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert StreamHeader.from_json(text) == h
    uni = header(5, [(0, 1, 4)], 1, speaker="Zoë", extra={"note": "日本", "n": [1, 2.5, None]})
    assert "Zoë" in uni.to_json() and StreamHeader.from_json(uni.to_json().encode()) == uni


def test_golden_bytes() -> None:
    """The exact bytes of a tiny stream, so that a silent format change fails."""
    h = StreamHeader("00" * 32, 8000, 3, (LevelInfo(0, 1, 5),), 2, speaker="p225")
    text = (
        '{"chunk_samples":2,"coding":"packed","extra":{},"levels":[{"codebook_size":5,"hop":1,"level":0}],'
        '"model_sha256":"' + "0" * 64 + '","num_samples":3,"sample_rate":8000,"speaker":"p225"}'
    )
    expected = (
        b"VQA\x1a\x01\x00" + struct.pack("<I", len(text)) + text.encode() + bytes.fromhex("ef6181b1")
        # chunk 0: codes [1, 4] -> 1 | 4 << 3 = 0x21; chunk 1: code [2] -> 0x02
        + bytes.fromhex("01000000" "21" "f3ce2bb7")
        + bytes.fromhex("01000000" "02" "81bf4c15")
    )  # fmt: skip
    assert encode_stream(h, [np.array([1, 4, 2])]) == expected
    assert read_header(io.BytesIO(expected)) == (h, 14 + len(text))
    decoded = decode_stream(expected)
    assert decoded[0] == h
    np.testing.assert_array_equal(decoded[1][0], [1, 4, 2])


# --- round trips -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_samples", "levels", "chunk_samples"),
    [
        (5000, [(0, 80, 1024), (1, 320, 512), (2, 640, 256)], 1280),  # several chunks, partial last
        (0, [(0, 80, 1024), (1, 640, 1024)], 640),
        (1, [(0, 80, 1024), (1, 640, 1024)], 640),
        (3333, [(1, 320, 1000)], 640),
        (999, [(0, 1, 2)], 100),
        (777, [(2, 7, 65536), (0, 1, 3)], 70),
    ],
)
def test_stream_round_trip(
    tmp_path: Path, num_samples: int, levels: list[tuple[int, int, int]], chunk_samples: int
) -> None:
    h = header(num_samples, levels, chunk_samples, speaker="p226")
    codes = random_codes(h)
    path = tmp_path / "x.vqa"
    path.write_bytes(encode_stream(h, codes))
    with path.open("rb") as f:
        reader = StreamReader(f)
        assert reader.header == h
        out = reader.read_all()
    for got, want in zip(out, codes, strict=True):
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, want)


def test_streaming_chunk_by_chunk(tmp_path: Path) -> None:
    h = header(2000, [(0, 80, 1000), (1, 320, 7)], 640)
    codes = random_codes(h, seed=3)
    per_chunk = [
        [c[k * (640 // lv.hop) : (k + 1) * (640 // lv.hop)] for c, lv in zip(codes, h.levels, strict=True)]
        for k in range(4)
    ]
    path = tmp_path / "s.vqa"
    with path.open("wb") as f, StreamWriter(f, h) as writer:
        for parts in per_chunk:
            writer.write_chunk(parts)
    with path.open("rb") as inp:
        chunks = list(StreamReader(inp))
    assert len(chunks) == 4 and [len(c[0]) for c in chunks] == [8, 8, 8, 1]
    for got, want in zip(chunks, per_chunk, strict=True):
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)


def test_entropy_round_trip(tmp_path: Path) -> None:
    h = header(1500, [(0, 80, 1024), (1, 640, 256)], 640, coding="entropy")
    payloads = [[b"\x00\xff" * 7, b""], [bytes(range(256)), b"\x01"], [b"", b"\x00" * 3]]
    path = tmp_path / "e.vqa"
    with path.open("wb") as f, StreamWriter(f, h) as writer:
        for p in payloads:
            writer.write_entropy_chunk(p)
    with path.open("rb") as inp:
        reader = StreamReader(inp)
        assert reader.header.coding == "entropy"
        assert list(reader) == payloads
    with pytest.raises(StreamError, match="entropy"):
        decode_stream(path.read_bytes())


# --- writer misuse (caller bugs: ValueError) ---------------------------------------------------------


def test_writer_rejects_caller_bugs() -> None:
    h = header(1000, [(0, 80, 5), (1, 320, 1000)], 640)
    w = StreamWriter(io.BytesIO(), h)
    with pytest.raises(ValueError):
        w.write_chunk([np.zeros(7, int), np.zeros(2, int)])  # chunk 0 needs 8 and 2 frames
    with pytest.raises(ValueError):
        w.write_chunk([np.full(8, 5), np.zeros(2, int)])  # code 5 >= K=5 (it would fit in 3 bits)
    with pytest.raises(ValueError):
        w.write_chunk([np.zeros(8, int)])  # one level missing
    with pytest.raises(ValueError):
        w.write_entropy_chunk([b"", b""])  # wrong coding
    w.write_chunk([np.zeros(8, int), np.zeros(2, int)])
    with pytest.raises(ValueError):
        w.close()  # one of two chunks
    w.write_chunk([np.zeros(5, int), np.zeros(2, int)])
    with pytest.raises(ValueError):
        w.write_chunk([np.zeros(5, int), np.zeros(2, int)])  # a third chunk
    w.close()
    with pytest.raises(ValueError):
        with StreamWriter(io.BytesIO(), h):
            pass
    with pytest.raises(ValueError):
        encode_stream(h, [np.zeros(13, int), np.zeros(3, int)])  # level 1 has ceil(1000 / 320) = 4 frames


# --- rejection of bad streams ------------------------------------------------------------------------


def test_rejects_bad_magic() -> None:
    with pytest.raises(StreamError, match="magic"):
        decode_stream(b"RIFF" + small_stream()[4:])


def test_rejects_unknown_version() -> None:
    data = crafted(header(1, [(0, 1, 4)], 1).to_json().encode(), version=2)
    with pytest.raises(StreamError, match=r"version 2 \(supported: \(1,\)\)"):
        decode_stream(data)


class PrefixOnly(io.BytesIO):
    """A file that fails the test if anything past its first 10 bytes is read."""

    def read(self, n: int | None = -1) -> bytes:
        assert n is not None and n >= 0 and self.tell() + n <= 10, "read past the 10-byte prefix"
        return super().read(n)


def test_header_length_cap_checked_before_reading() -> None:
    data = MAGIC + struct.pack("<HI", 1, MAX_HEADER_BYTES + 1) + b"{}" * 100
    with pytest.raises(StreamError, match="header length"):
        StreamReader(PrefixOnly(data))
    with pytest.raises(StreamError, match="header length"):
        read_header(io.BytesIO(MAGIC + struct.pack("<HI", 1, 0xFFFFFFFF)))
    with pytest.raises(StreamError, match="truncated"):  # exactly the cap is allowed (then truncated here)
        read_header(io.BytesIO(MAGIC + struct.pack("<HI", 1, MAX_HEADER_BYTES)))


def good_header_obj() -> dict[str, Any]:
    return json.loads(header(100, [(0, 80, 1024), (1, 320, 16)], 640).to_json())


def mutate(path: str, value: Any) -> dict[str, Any]:
    obj = good_header_obj()
    target, *rest = path.split(".")
    if rest:
        obj["levels"][0][rest[0]] = value
    elif value is KeyError:
        del obj[target]
    else:
        obj[target] = value
    return obj


BAD_HEADERS = [
    mutate("sample_rate", "16000"),
    mutate("sample_rate", 16000.0),
    mutate("sample_rate", True),
    mutate("sample_rate", 0),
    mutate("num_samples", -1),
    mutate("num_samples", 2**63),
    mutate("num_samples", KeyError),
    mutate("model_sha256", "AB" * 32),
    mutate("model_sha256", "ab" * 31),
    mutate("model_sha256", None),
    mutate("levels", []),
    mutate("levels", {"level": 0}),
    mutate("levels", [1]),
    mutate("levels.hop", 0),
    mutate("levels.hop", 7),  # 640 is not a multiple of 7
    mutate("levels.codebook_size", 1),
    mutate("levels.codebook_size", 65537),
    mutate("levels.level", 1),  # level 1 twice
    mutate("levels.level", -1),
    mutate("levels.bits", 10),  # derived values are never stored
    mutate("chunk_samples", 0),
    mutate("chunk_samples", 640 * 2**30),  # chunks over MAX_CHUNK_BYTES
    mutate("speaker", 5),
    mutate("coding", "zip"),
    mutate("coding", ["packed"]),
    mutate("extra", []),
    mutate("num_chunks", 2),  # unknown key
    mutate("version", 1),  # unknown key
    [],
    "header",
]


@pytest.mark.parametrize("obj", BAD_HEADERS, ids=range(len(BAD_HEADERS)))
def test_rejects_bad_header_fields(obj: Any) -> None:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    with pytest.raises(StreamError, match="header"):
        decode_stream(crafted(text.encode()))
    with pytest.raises(StreamError):
        StreamHeader.from_json(text)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"not json",
        b"\xff\xfe{}",  # not UTF-8
        json.dumps(good_header_obj()).encode("utf-16"),
        b"[" * 100_000 + b"]" * 100_000,  # deep nesting (over the cap anyway) ...
        b"[" * 30_000 + b"]" * 30_000,  # ... and under it
        json.dumps(good_header_obj() | {"extra": {"x": float("nan")}}).encode(),
        json.dumps(good_header_obj())[:-1].encode() + b',"speaker":"a"}',  # duplicate key
    ],
)
def test_rejects_headers_that_are_not_json(raw: bytes) -> None:
    with pytest.raises(StreamError):
        decode_stream(crafted(raw))


def test_header_construction_validates() -> None:
    with pytest.raises(StreamError):
        StreamHeader(SHA, 16000, 10, (), 80)
    with pytest.raises(StreamError):
        StreamHeader(SHA, 16000, 10, (LevelInfo(0, 80, 16),), 80, extra={1: "int key"})  # type: ignore[dict-item]
    with pytest.raises(StreamError):
        LevelInfo(0, 80, 2.0)  # type: ignore[arg-type]
    assert type(LevelInfo(np.int64(1), 80, 16).level) is int  # type: ignore[arg-type]  # numpy ints accepted


def test_rejects_header_crc_mismatch() -> None:
    data = bytearray(small_stream())
    h, size = read_header(io.BytesIO(data))
    data[size - 1] ^= 0x01
    with pytest.raises(ChecksumError, match="header CRC"):
        decode_stream(bytes(data))


def test_rejects_trailing_data() -> None:
    with pytest.raises(StreamError, match="trailing data"):
        decode_stream(small_stream() + b"\x00")


def test_rejects_code_out_of_range() -> None:
    h = header(80, [(0, 80, 5)], 80)  # one code of 3 bits; 7 fits in 3 bits but is >= K = 5
    out = io.BytesIO()
    StreamWriter(out, h)  # writes the header only
    with pytest.raises(StreamError, match="code out of range"):
        decode_stream(out.getvalue() + chunk(b"\x07"))
    with pytest.raises(StreamError, match="padding"):  # code 4 with a stray bit set in the padding
        decode_stream(out.getvalue() + chunk(b"\x14"))
    with pytest.raises(StreamError, match="length"):  # 2 bytes where 1 is derivable
        decode_stream(out.getvalue() + chunk(b"\x04\x00"))
    np.testing.assert_array_equal(decode_stream(out.getvalue() + chunk(b"\x04"))[1][0], [4])


def test_rejects_bad_entropy_payload() -> None:
    h = header(80, [(0, 80, 5), (1, 80, 5)], 80, coding="entropy")
    out = io.BytesIO()
    StreamWriter(out, h)
    for payload in (b"\x01\x00\x00\x00a", b"\x00\x00\x00\x00\x02\x00\x00\x00a", b"\x00" * 9):
        with pytest.raises(StreamError):
            list(StreamReader(io.BytesIO(out.getvalue() + chunk(payload))))


@pytest.mark.parametrize("coding", ["packed", "entropy"])
def test_every_single_bit_flip_is_rejected(coding: str) -> None:
    if coding == "packed":
        data = small_stream()
    else:
        h = header(1500, [(0, 320, 5), (1, 640, 3)], 640, coding="entropy")
        out = io.BytesIO()
        with StreamWriter(out, h) as w:
            for k in range(3):
                w.write_entropy_chunk([bytes([k, 1]), b"z"])
        data = out.getvalue()
    assert len(data) <= 350
    decode = decode_stream if coding == "packed" else lambda d: list(StreamReader(io.BytesIO(d)))
    decode(data)
    for i in range(len(data)):
        for bit in range(8):
            flipped = bytearray(data)
            flipped[i] ^= 1 << bit
            with pytest.raises(StreamError):
                decode(bytes(flipped))


def test_every_truncation_is_rejected() -> None:
    data = small_stream()
    for n in range(len(data)):
        with pytest.raises(StreamError, match="truncated"):
            decode_stream(data[:n])


@st.composite
def streams(draw: st.DrawFn) -> tuple[StreamHeader, list[np.ndarray]]:
    n = draw(st.integers(1, 3))
    hops = draw(st.lists(st.sampled_from([1, 2, 3, 5, 8, 16]), min_size=n, max_size=n))
    sizes = draw(
        st.lists(st.sampled_from([2, 3, 5, 255, 256, 1000, 1024, 40000, 65536]), min_size=n, max_size=n)
    )
    chunk_samples = math.lcm(*hops) * draw(st.integers(1, 4))
    num_samples = draw(st.integers(0, 600))
    h = header(
        num_samples, [(i, hop, k) for i, (hop, k) in enumerate(zip(hops, sizes, strict=True))], chunk_samples
    )
    return h, random_codes(h, seed=draw(st.integers(0, 2**32 - 1)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams(), data=st.data())
def test_random_streams(stream: tuple[StreamHeader, list[np.ndarray]], data: st.DataObject) -> None:
    h, codes = stream
    encoded = encode_stream(h, codes)
    decoded_header, decoded = decode_stream(encoded)
    assert decoded_header == h
    for got, want in zip(decoded, codes, strict=True):
        np.testing.assert_array_equal(got, want)

    cut = data.draw(st.integers(0, len(encoded) - 1), label="cut")
    with pytest.raises(StreamError, match="truncated"):
        decode_stream(encoded[:cut])

    corrupt = bytearray(encoded)
    corrupt[data.draw(st.integers(0, len(encoded) - 1), label="at")] ^= data.draw(
        st.integers(1, 255), label="xor"
    )
    with pytest.raises(StreamError):  # a burst of <= 8 bits is always caught by CRC32 or the framing
        decode_stream(bytes(corrupt))

    for _ in range(data.draw(st.integers(1, 4), label="writes")):
        at = data.draw(st.integers(0, len(encoded) - 1), label="at")
        corrupt[at] = data.draw(st.integers(0, 255), label="byte")
    try:
        decode_stream(bytes(corrupt))
    except StreamError:
        pass


def test_import_does_not_import_torch() -> None:
    code = "import sys, vqaudio.codec.bitstream, vqaudio.codec; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_committed_golden_file_decodes_to_its_expected_header_and_codes() -> None:
    """tests/data/golden_v1.vqa is committed: a silent change of format version 1 fails here."""
    import json
    from pathlib import Path

    data_dir = Path(__file__).parent / "data"
    expected = json.loads((data_dir / "golden_v1.json").read_text())
    header, codes = decode_stream((data_dir / "golden_v1.vqa").read_bytes())
    assert json.loads(header.to_json()) == expected["header"]
    assert [c.tolist() for c in codes] == expected["codes"]
    # and writing the same content again reproduces the committed bytes exactly
    assert encode_stream(header, codes) == (data_dir / "golden_v1.vqa").read_bytes()
