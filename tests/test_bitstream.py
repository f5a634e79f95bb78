"""Tests of the ``.vqa`` container: bit packing, round trips, and rejection of every kind of bad input."""

from __future__ import annotations

import dataclasses
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
    MAX_CHUNK_BYTES,
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
    varint,
)

REPO = Path(__file__).resolve().parents[1]
SHA = "ab" * 32
VERSIONS = [1, 2]


def header(
    num_samples: int, levels: list[tuple[int, int, int]], chunk_samples: int, version: int = 1, **kw: Any
) -> StreamHeader:
    """A header with ``levels`` given as (level, hop, K) triples, in format ``version``."""
    infos = tuple(LevelInfo(*lv) for lv in levels)
    model_id = SHA if version == 1 else SHA[:16]
    return StreamHeader(model_id, 16000, num_samples, infos, chunk_samples, version=version, **kw)


def random_codes(h: StreamHeader, seed: int = 0, top: bool = True) -> list[np.ndarray]:
    """Random codes for every level; with ``top`` the first code of each level is K - 1."""
    rng = np.random.default_rng(seed)
    codes = [rng.integers(0, lv.codebook_size, h.num_frames(i)) for i, lv in enumerate(h.levels)]
    for c, lv in zip(codes, h.levels, strict=True):
        if top and c.size:
            c[0] = lv.codebook_size - 1
    return codes


def small_stream(version: int = 1, **kw: Any) -> bytes:
    """2 levels (K=5 and K=3), 3 chunks, the last one partial: 321 bytes in version 1, almost all of it
    header, 53 in version 2."""
    h = header(1500, [(0, 320, 5), (1, 640, 3)], 640, version, **kw)
    return encode_stream(h, random_codes(h))


def crafted(header_bytes: bytes, version: int = 1) -> bytes:
    """A stream prefix with an arbitrary header and a valid header CRC (no chunks)."""
    size = struct.pack("<I", len(header_bytes)) if version == 1 else varint(len(header_bytes))
    prefix = MAGIC + struct.pack("<H", version) + size + header_bytes
    return prefix + struct.pack("<I", zlib.crc32(prefix))


def chunk(payload: bytes, version: int = 1, index: int = 0) -> bytes:
    """A chunk with a valid length (version 1) and CRC around ``payload`` (v2: a packed payload, or an
    entropy chunk's varint-framed levels)."""
    if version == 2:
        return payload + struct.pack("<I", zlib.crc32(struct.pack("<I", index) + payload))
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
    assert h.nominal_bitrate == pytest.approx(200 + 50 * math.log2(1000) + 25 * (10 + math.log2(1025)) + 400)
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
    """The exact bytes of a tiny version 1 stream, so that a silent format change fails."""
    h = StreamHeader("00" * 32, 8000, 3, (LevelInfo(0, 1, 5),), 2, speaker="p225", version=1)
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


def test_golden_bytes_v2() -> None:
    """The exact bytes of a tiny version 2 stream, worked out by hand from the module docstring."""
    extra = {"source_sample_rate": 44100, "source_num_samples": 5, "source_channels": 2, "n": 1}
    h = StreamHeader("0123456789abcdef", 8000, 3, (LevelInfo(0, 1, 5),), 2, speaker="p225", extra=extra)
    body = (
        bytes([0b1110])  # flags: packed, speaker, source, extra
        + bytes.fromhex("0123456789abcdef")
        + bytes.fromhex("c03e" "03" "02")  # sample rate 8000 = 0x1f40 -> c0 3e; 3 samples; chunks of 2
        + bytes.fromhex("01" "00" "01" "03")  # one level: level 0, hop 1, K - 2 = 3
        + b"\x04p225"
        + bytes.fromhex("c4d802" "05" "02")  # 44100 = 0b10_1011000_1000100 -> c4 d8 02; 5; 2 channels
        + b"\x07" + b'{"n":1}'
    )  # fmt: skip
    prefix = b"VQA\x1a\x02\x00" + bytes([len(body)]) + body
    expected = (
        prefix + struct.pack("<I", zlib.crc32(prefix))
        + b"\x21" + struct.pack("<I", zlib.crc32(b"\x00\x00\x00\x00\x21"))  # chunk 0: codes [1, 4]
        + b"\x02" + struct.pack("<I", zlib.crc32(b"\x01\x00\x00\x00\x02"))  # chunk 1: code [2]
    )  # fmt: skip
    assert encode_stream(h, [np.array([1, 4, 2])]) == expected
    assert read_header(io.BytesIO(expected)) == (h, len(prefix) + 4)
    decoded = decode_stream(expected)
    assert decoded[0] == h and decoded[0].extra == extra
    np.testing.assert_array_equal(decoded[1][0], [1, 4, 2])


def test_varint() -> None:
    cases = {
        0: "00",
        1: "01",
        127: "7f",
        128: "8001",
        300: "ac02",
        16384: "808001",
        2**63 - 1: "ff" * 8 + "7f",
    }
    for value, spelled in cases.items():
        assert varint(value).hex() == spelled
        h = header(value, [(0, 1, 4)], 1, version=2)  # num_samples is a varint
        assert read_header(io.BytesIO(encode_stream_prefix(h)))[0].num_samples == value
    for bad in (-1, 2**63):
        with pytest.raises(ValueError):
            varint(bad)


def encode_stream_prefix(h: StreamHeader) -> bytes:
    """The header bytes a writer emits for ``h`` (no chunks)."""
    out = io.BytesIO()
    StreamWriter(out, h)
    return out.getvalue()


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
@pytest.mark.parametrize("version", VERSIONS)
def test_stream_round_trip(
    tmp_path: Path, num_samples: int, levels: list[tuple[int, int, int]], chunk_samples: int, version: int
) -> None:
    h = header(num_samples, levels, chunk_samples, version, speaker="p226")
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


@pytest.mark.parametrize("version", VERSIONS)
def test_streaming_chunk_by_chunk(tmp_path: Path, version: int) -> None:
    h = header(2000, [(0, 80, 1000), (1, 320, 7)], 640, version)
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
        reader = StreamReader(inp)
        chunks = list(reader)
    assert writer.bytes_written == reader.bytes_read == path.stat().st_size
    # 3 full chunks: 8 codes of 10 bits and 2 of 3 bits; the last: 1 code of each
    assert writer.payload_bytes == reader.payload_bytes == 3 * (10 + 1) + (2 + 1)
    assert len(chunks) == 4 and [len(c[0]) for c in chunks] == [8, 8, 8, 1]
    for got, want in zip(chunks, per_chunk, strict=True):
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("version", VERSIONS)
def test_entropy_round_trip(tmp_path: Path, version: int) -> None:
    h = header(1500, [(0, 80, 1024), (1, 640, 256)], 640, version, coding="entropy")
    payloads = [[b"\x00\xff" * 7, b""], [bytes(range(256)), b"\x01"], [b"", b"\x00" * 3]]
    path = tmp_path / "e.vqa"
    with path.open("wb") as f, StreamWriter(f, h) as writer:
        for p in payloads:
            writer.write_entropy_chunk(p)
    with path.open("rb") as inp:
        reader = StreamReader(inp)
        assert reader.header.coding == "entropy"
        assert list(reader) == payloads
        assert reader.payload_bytes == sum(len(x) for p in payloads for x in p)
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


@pytest.mark.parametrize("version", VERSIONS)
def test_rejects_bad_magic(version: int) -> None:
    with pytest.raises(StreamError, match="magic"):
        decode_stream(b"RIFF" + small_stream(version)[4:])


@pytest.mark.parametrize("version", [0, 4, 256])
def test_rejects_unknown_version(version: int) -> None:
    data = crafted(header(1, [(0, 1, 4)], 1).to_json().encode(), version=version)
    with pytest.raises(StreamError, match=rf"version {version} \(supported: \(1, 2, 3\)\)"):
        decode_stream(data)
    with pytest.raises(StreamError, match="unsupported"):
        header(1, [(0, 1, 4)], 1, version)


def test_model_id_length_follows_the_version() -> None:
    with pytest.raises(StreamError, match="16 lowercase hex"):
        StreamHeader(SHA, 16000, 1, (LevelInfo(0, 1, 4),), 1)  # version 2 by default
    with pytest.raises(StreamError, match="64 lowercase hex"):
        StreamHeader(SHA[:16], 16000, 1, (LevelInfo(0, 1, 4),), 1, version=1)


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


def test_v2_header_length_cap_checked_before_reading() -> None:
    data = MAGIC + b"\x02\x00" + varint(MAX_HEADER_BYTES + 1) + b"\x00" * 100
    with pytest.raises(StreamError, match="header length"):
        StreamReader(PrefixOnly(data))
    with pytest.raises(StreamError, match="header length"):
        read_header(io.BytesIO(MAGIC + b"\x02\x00" + b"\xff" * 9 + b"\x01"))  # over 9 varint bytes
    with pytest.raises(StreamError, match="truncated"):
        read_header(io.BytesIO(MAGIC + b"\x02\x00" + varint(MAX_HEADER_BYTES)))
    with pytest.raises(StreamError, match="not minimal"):
        read_header(io.BytesIO(MAGIC + b"\x02\x00" + b"\x85\x00"))


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
    for name in ("é" * 128, "\ud800"):  # 256 bytes of UTF-8 (version 2 stores at most 255); no UTF-8
        with pytest.raises(StreamError, match="speaker"):
            StreamHeader(SHA, 16000, 10, (LevelInfo(0, 80, 16),), 80, speaker=name, version=1)
    assert StreamHeader(SHA, 16000, 10, (LevelInfo(0, 80, 16),), 80, speaker="é" * 127 + "a", version=1)
    with pytest.raises(StreamError):
        LevelInfo(0, 80, 2.0)  # type: ignore[arg-type]
    assert type(LevelInfo(np.int64(1), 80, 16).level) is int  # type: ignore[arg-type]  # numpy ints accepted


@pytest.mark.parametrize("version", VERSIONS)
def test_rejects_header_crc_mismatch(version: int) -> None:
    data = bytearray(small_stream(version))
    h, size = read_header(io.BytesIO(data))
    data[size - 1] ^= 0x01
    with pytest.raises(ChecksumError, match="header CRC"):
        decode_stream(bytes(data))


@pytest.mark.parametrize("version", VERSIONS)
def test_rejects_trailing_data(version: int) -> None:
    with pytest.raises(StreamError, match="trailing data"):
        decode_stream(small_stream(version) + b"\x00")


@pytest.mark.parametrize("version", VERSIONS)
def test_rejects_code_out_of_range(version: int) -> None:
    h = header(80, [(0, 80, 5)], 80, version)  # one code of 3 bits; 7 fits in 3 bits but is >= K = 5
    prefix = encode_stream_prefix(h)
    with pytest.raises(StreamError, match="code out of range"):
        decode_stream(prefix + chunk(b"\x07", version))
    with pytest.raises(StreamError, match="padding"):  # code 4 with a stray bit set in the padding
        decode_stream(prefix + chunk(b"\x14", version))
    with pytest.raises(StreamError, match="length" if version == 1 else "CRC"):  # 2 bytes where 1 is due
        decode_stream(prefix + chunk(b"\x04\x00", version))
    np.testing.assert_array_equal(decode_stream(prefix + chunk(b"\x04", version))[1][0], [4])


def test_rejects_bad_entropy_payload_v1() -> None:
    prefix = encode_stream_prefix(header(80, [(0, 80, 5), (1, 80, 5)], 80, coding="entropy"))
    for payload in (b"\x01\x00\x00\x00a", b"\x00\x00\x00\x00\x02\x00\x00\x00a", b"\x00" * 9):
        with pytest.raises(StreamError):
            list(StreamReader(io.BytesIO(prefix + chunk(payload))))


def test_rejects_bad_entropy_chunks_v2() -> None:
    prefix = encode_stream_prefix(header(80, [(0, 80, 5), (1, 80, 5)], 80, 2, coding="entropy"))
    assert list(StreamReader(io.BytesIO(prefix + chunk(b"\x01a\x00", 2)))) == [[b"a", b""]]
    for body, match in [
        (b"\x01a\x02a", "truncated"),  # level 1 says 2 bytes, 1 left before the CRC ...
        (b"\x01a", "truncated"),  # ... level 1's size missing
        (b"\x80\x00" + b"\x00", "not minimal"),
        (varint(MAX_CHUNK_BYTES + 1), "invalid length"),  # refused before reading
        (varint(MAX_CHUNK_BYTES) + b"", "truncated"),
    ]:
        with pytest.raises(StreamError, match=match):
            list(StreamReader(io.BytesIO(prefix + chunk(body, 2))))
    sizes = varint(MAX_CHUNK_BYTES // 2 + 1)  # two levels together over the cap: refused at the second
    with pytest.raises(StreamError, match="invalid length"):
        list(StreamReader(io.BytesIO(prefix + sizes + b"\x00" * (MAX_CHUNK_BYTES // 2 + 1) + sizes)))


def test_v2_chunks_are_bound_to_their_position() -> None:
    """Two chunks of the same size swapped: every CRC is right for its bytes, but not for its index."""
    h = header(1280, [(0, 320, 5)], 640, 2)
    data = encode_stream(h, [np.array([0, 1, 2, 3])])
    size = len(encode_stream_prefix(h))
    one, two = data[size : size + 5], data[size + 5 :]  # 2 codes of 3 bits in a byte, and a CRC
    assert len(one) == len(two) == 5 and one[0] != two[0]
    with pytest.raises(ChecksumError, match="chunk 0"):
        decode_stream(data[:size] + two + one)


def sized(data: bytes) -> bytes:
    return varint(len(data)) + data


def crafted_v2(**fields: Any) -> bytes:
    """A version 2 header body from a tiny stream's fields, some of them replaced by raw bytes."""
    parts = {
        "flags": b"\x00",
        "model_id": b"\xab" * 8,
        "numbers": varint(16000) + varint(80) + varint(80),
        "levels": b"\x01" + b"\x00" + varint(80) + varint(1022),
        "tail": b"",
    } | fields
    return b"".join(parts.values())


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (crafted_v2(flags=b"\x10"), "unknown bits"),
        (crafted_v2(numbers=varint(0) + varint(80) + varint(80)), "sample_rate"),
        (crafted_v2(numbers=varint(16000) + varint(80) + varint(0)), "chunk_samples"),
        (crafted_v2(numbers=varint(16000) + varint(80) + varint(70)), "multiple"),
        (crafted_v2(levels=b"\x00"), "num_levels"),
        (crafted_v2(levels=varint(256)), "num_levels"),
        (crafted_v2(levels=b"\x01\x00\x00" + varint(1022)), "hop"),
        (crafted_v2(levels=b"\x01\x00" + varint(80) + varint(65535)), "codebook_size"),
        (crafted_v2(levels=b"\x02" + (b"\x00" + varint(80) + varint(1022)) * 2), "twice"),
        (crafted_v2(tail=b"\x00"), "after its last field"),
        (crafted_v2()[:-1], "truncated"),
        (crafted_v2(flags=b"\x02", tail=varint(256) + b"a" * 256), "speaker length"),
        (crafted_v2(flags=b"\x02", tail=b"\x02\xff\xfe"), "UTF-8"),
        (crafted_v2(flags=b"\x04", tail=varint(0) + varint(1) + varint(1)), "source_sample_rate"),
        (crafted_v2(flags=b"\x04", tail=varint(8000) + varint(1) + varint(0)), "source_channels"),
        (crafted_v2(flags=b"\x08", tail=b"\x02{}"), "non-empty"),
        (crafted_v2(flags=b"\x08", tail=b"\x02[]"), "non-empty"),
        (crafted_v2(flags=b"\x08", tail=b"\x03{x}"), "not valid JSON"),
        (crafted_v2(flags=b"\x08", tail=b'\x0d{"a":1,"a":2}'), "not valid JSON"),
        (crafted_v2(flags=b"\x08", tail=sized(b'{"a":NaN}')), "extra"),
        (crafted_v2(flags=b"\x08", tail=varint(MAX_HEADER_BYTES + 1)), "extra length"),
        (crafted_v2(flags=b"\x0c", tail=b"\x01\x01\x01" + sized(b'{"source_channels":1}')), "source keys"),
    ],
)
def test_rejects_bad_v2_headers(body: bytes, match: str) -> None:
    assert decode_stream(crafted(crafted_v2(), 2) + chunk(bytes(2), 2))[0].num_samples == 80  # base: valid
    with pytest.raises(StreamError, match=match):
        decode_stream(crafted(body, 2))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("coding", ["packed", "entropy"])
def test_every_single_bit_flip_is_rejected(coding: str, version: int) -> None:
    if coding == "packed":
        data = small_stream(version)
    else:
        h = header(1500, [(0, 320, 5), (1, 640, 3)], 640, version, coding="entropy")
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


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("speaker", [None, "p225"])
def test_every_truncation_is_rejected(version: int, speaker: str | None) -> None:
    data = small_stream(
        version,
        speaker=speaker,
        extra={"source_sample_rate": 8000, "source_num_samples": 750, "source_channels": 1, "x": [1]},
    )
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
    levels = [(i, hop, k) for i, (hop, k) in enumerate(zip(hops, sizes, strict=True))]
    speaker = draw(st.one_of(st.none(), st.text(max_size=20)))
    h = header(num_samples, levels, chunk_samples, draw(st.sampled_from(VERSIONS)), speaker=speaker)
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


@pytest.mark.parametrize("version", VERSIONS)
def test_committed_golden_file_decodes_to_its_expected_header_and_codes(version: int) -> None:
    """tests/data/golden_v{1,2}.vqa are committed: a silent change of either format fails here, and a
    version-1 file written by an older vqaudio still decodes."""
    data_dir = Path(__file__).parent / "data"
    expected = json.loads((data_dir / f"golden_v{version}.json").read_text())
    raw = (data_dir / f"golden_v{version}.vqa").read_bytes()
    header, codes = decode_stream(raw)
    assert header.version == version
    if version == 1:
        assert json.loads(header.to_json()) == expected["header"]
    else:
        fields = dataclasses.asdict(header)
        assert fields.pop("prior_id") is None  # fields of version 3 streams; the golden v2 has none
        assert fields.pop("prior_probe") is None
        assert json.loads(json.dumps(fields)) == expected["header"]
    assert [c.tolist() for c in codes] == expected["codes"]
    assert encode_stream(header, codes) == raw  # writing the same content again gives the same bytes
    assert len(raw) == (402 if version == 1 else 73)


def test_version_3_adds_a_prior_id_after_the_version_2_header() -> None:
    """Version 3 is version 2's header with flag bit 4, then 8 bytes of prior id and 4 of prior probe."""
    v2 = StreamHeader("0123456789abcdef", 8000, 3, (LevelInfo(0, 1, 5),), 2, coding="entropy")
    v3 = dataclasses.replace(v2, version=3, prior_id="fedcba9876543210", prior_probe="0a1b2c3d")
    assert v3.to_bytes() == bytes([v2.to_bytes()[0] | 0x10]) + v2.to_bytes()[1:] + bytes.fromhex(
        "fedcba98765432100a1b2c3d"
    )
    assert StreamHeader.from_bytes(v3.to_bytes(), 3) == v3
    assert StreamHeader.from_bytes(dataclasses.replace(v2, version=3).to_bytes(), 3).prior_id is None
    with pytest.raises(StreamError, match="unknown bits"):
        StreamHeader.from_bytes(v3.to_bytes(), 2)  # a version 2 reader knows no bit 4
    for bad in (dict(version=2), dict(coding="packed"), dict(prior_id="ABC")):
        with pytest.raises(StreamError, match="prior_id"):
            dataclasses.replace(v3, **bad)
    for bad in (dict(prior_probe=None), dict(prior_probe="0A1B2C3D"), dict(prior_probe="0a1b")):
        with pytest.raises(StreamError, match="prior_probe"):
            dataclasses.replace(v3, **bad)
    with pytest.raises(StreamError, match="header has 4 bytes after its last field|truncated"):
        StreamHeader.from_bytes(v3.to_bytes()[:-4], 3)  # no room for the probe: a v3 header's end is fixed
    with pytest.raises(StreamError, match="unknown bits"):
        StreamHeader.from_bytes(bytes([v3.to_bytes()[0] | 0x20]) + v3.to_bytes()[1:], 3)
