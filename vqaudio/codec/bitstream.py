"""The ``.vqa`` code stream: a small, checksummed container for the codes of a hierarchical VQ-VAE.

Imports no torch (stdlib and numpy only), so streams can be inspected without the model.

Format, version 1 (every integer little-endian and unsigned)::

    magic        4 bytes  b"VQA\\x1a"
    version      uint16   1
    header_len   uint32   rejected if > MAX_HEADER_BYTES (65536), before the header is read
    header       bytes    UTF-8 JSON object, no duplicate keys, no NaN/Infinity. Writers emit canonical JSON:
                          json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    header_crc   uint32   zlib.crc32(magic + version + header_len + header)
    num_chunks times:
        payload_len  uint32   rejected if > MAX_CHUNK_BYTES (1 << 26), before the payload is read
        payload      bytes
        crc          uint32   zlib.crc32(payload_len bytes + payload)
    end of file               any byte after the last chunk is an error ("trailing data")

CRC32 is zlib's (ISO-HDLC: polynomial 0x04C11DB7 reflected, init and final xor 0xFFFFFFFF).

Header fields. All are required except ``extra``; any other key is an error (a new field needs a new
version). Every int is at most 2**63 - 1; booleans and floats are not ints.

- ``model_sha256``: 64 lowercase hex characters, the SHA-256 of the model that produced the codes.
- ``sample_rate``: int > 0, in Hz. ``num_samples``: int >= 0, the length of the audio.
- ``levels``: non-empty list of objects ``{"level": int >= 0, "hop": int >= 1, "codebook_size": K}``
  with 2 <= K <= 65536 and no ``level`` twice (and no other key); payloads store levels in this order.
- ``chunk_samples``: int > 0, a multiple of every level's ``hop``.
- ``speaker``: string or null. ``coding``: ``"packed"`` or ``"entropy"``. ``extra``: object, default {}.

Derived, never stored: a level's bits per code ``b = ceil(log2(K))`` (K = 2 gives 1);
``num_chunks = ceil(num_samples / chunk_samples)`` (0 when num_samples is 0); chunk ``c`` covers the
``s_c`` samples ``[c * chunk_samples, min((c + 1) * chunk_samples, num_samples))`` and holds
``n = ceil(s_c / hop)`` frames of each level (so a level has ``ceil(num_samples / hop)`` frames in all).

Payload of coding "packed": for each level in header order, ``ceil(n * b / 8)`` bytes holding its ``n``
codes for the chunk: bit ``j`` of code ``i`` (bit 0 = least significant) is bit ``(i * b + j) % 8`` of the
level's byte ``(i * b + j) // 8``, and the bits left over in the last byte are zero. E.g. b = 3, codes
[1, 2, 7] -> 1 | 2 << 3 | 7 << 6 = 0x1D1 -> bytes D1 01. ``payload_len`` must equal the sum over levels
exactly, and every code must be < K.

Payload of coding "entropy": for each level in header order, ``nbytes`` uint32 then ``nbytes`` opaque
bytes (an entropy coder's output, not interpreted here), with nothing left over.
"""

from __future__ import annotations

import io
import json
import re
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from vqaudio.errors import UserError

MAGIC = b"VQA\x1a"
VERSION = 1
SUPPORTED_VERSIONS = (1,)
MAX_HEADER_BYTES = 65536
MAX_CHUNK_BYTES = 1 << 26
CODINGS = ("packed", "entropy")
_MAX_INT = 2**63 - 1
_U32 = struct.Struct("<I")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class StreamError(UserError):
    """A ``.vqa`` stream that is malformed, truncated, corrupted or of an unsupported version."""


class ChecksumError(StreamError):
    """A header or chunk whose CRC32 does not match its bytes."""


def _ceil_div(a: int, b: int) -> int:
    return -(a // -b)


def _int(value: Any, name: str, lo: int, hi: int = _MAX_INT) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise StreamError(f"header field {name!r} must be an integer, not {type(value).__name__}")
    value = int(value)
    if not lo <= value <= hi:
        raise StreamError(f"header field {name!r} = {value} is outside [{lo}, {hi}]")
    return value


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _check_keys(obj: Any, what: str, required: set[str], optional: tuple[str, ...] = ()) -> None:
    if not isinstance(obj, dict):
        raise StreamError(f"{what} must be a JSON object, not {type(obj).__name__}")
    if missing := sorted(required - obj.keys()):
        raise StreamError(f"{what} is missing field {missing[0]!r}")
    if unknown := sorted(obj.keys() - required - set(optional)):
        raise StreamError(f"{what} has unknown field {unknown[0]!r:.40} (new fields need a new version)")


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len(obj := dict(pairs)) != len(pairs):
        raise ValueError("duplicate key in a JSON object")
    return obj


@dataclass(frozen=True)
class LevelInfo:
    """One stored level: its index in the model, hop length in samples and codebook size K."""

    level: int
    hop: int
    codebook_size: int

    def __post_init__(self) -> None:
        for name, lo, hi in (("level", 0, _MAX_INT), ("hop", 1, _MAX_INT), ("codebook_size", 2, 65536)):
            object.__setattr__(self, name, _int(getattr(self, name), name, lo, hi))

    @property
    def bits(self) -> int:
        """Bits per packed code, ``ceil(log2(K))``."""
        return (self.codebook_size - 1).bit_length()


@dataclass(frozen=True)
class StreamHeader:
    """The header of a ``.vqa`` stream (see the module docstring for each field); invalid values raise."""

    model_sha256: str
    sample_rate: int
    num_samples: int
    levels: tuple[LevelInfo, ...]
    chunk_samples: int
    speaker: str | None = None
    coding: str = "packed"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.model_sha256, str) or not _SHA256.fullmatch(self.model_sha256):
            raise StreamError("header field 'model_sha256' must be 64 lowercase hex characters")
        for name, lo in (("sample_rate", 1), ("num_samples", 0), ("chunk_samples", 1)):
            object.__setattr__(self, name, _int(getattr(self, name), name, lo))
        levels = tuple(self.levels) if isinstance(self.levels, (list, tuple)) else ()
        if not levels or not all(isinstance(x, LevelInfo) for x in levels):
            raise StreamError("header field 'levels' must be a non-empty list of levels")
        object.__setattr__(self, "levels", levels)
        if len({lv.level for lv in levels}) != len(levels):
            raise StreamError("header field 'levels' names a level twice")
        if bad := [lv.hop for lv in levels if self.chunk_samples % lv.hop]:
            raise StreamError(f"header: chunk_samples {self.chunk_samples} is not a multiple of hop {bad[0]}")
        if self.speaker is not None and not isinstance(self.speaker, str):
            raise StreamError("header field 'speaker' must be a string or null")
        if not isinstance(self.coding, str) or self.coding not in CODINGS:
            raise StreamError(f"header field 'coding' must be one of {CODINGS}, not {self.coding!r:.40}")
        try:
            ok = isinstance(self.extra, dict) and json.loads(_canonical(self.extra)) == self.extra
        except (TypeError, ValueError, RecursionError):
            ok = False
        if not ok:
            raise StreamError("header field 'extra' must be a JSON object (string keys, no NaN)")
        if self.coding == "packed" and self.packed_size(self.chunk_samples) > MAX_CHUNK_BYTES:
            raise StreamError(f"header field 'chunk_samples' = {self.chunk_samples} gives too large chunks")

    @property
    def num_chunks(self) -> int:
        """Chunks in the stream, ``ceil(num_samples / chunk_samples)``."""
        return _ceil_div(self.num_samples, self.chunk_samples)

    @property
    def duration(self) -> float:
        """Length of the audio in seconds."""
        return self.num_samples / self.sample_rate

    def num_frames(self, level_index: int) -> int:
        """Frames of ``levels[level_index]`` in the whole stream, ``ceil(num_samples / hop)``."""
        return _ceil_div(self.num_samples, self.levels[level_index].hop)

    def samples_in_chunk(self, chunk_index: int) -> int:
        """Audio samples covered by chunk ``chunk_index`` (``chunk_samples``, fewer in the last chunk)."""
        if not 0 <= chunk_index < self.num_chunks:
            raise ValueError(f"chunk index {chunk_index} outside [0, {self.num_chunks})")
        return min(self.chunk_samples, self.num_samples - chunk_index * self.chunk_samples)

    def frames_in_chunk(self, chunk_index: int, level_index: int) -> int:
        """Frames of ``levels[level_index]`` in chunk ``chunk_index``: ceil(samples in the chunk / hop)."""
        return _ceil_div(self.samples_in_chunk(chunk_index), self.levels[level_index].hop)

    def packed_size(self, samples: int) -> int:
        """Payload bytes of a packed chunk covering ``samples`` samples."""
        return sum(_ceil_div(_ceil_div(samples, lv.hop) * lv.bits, 8) for lv in self.levels)

    def to_json(self) -> str:
        """The header as canonical JSON text."""
        levels = [{"level": lv.level, "hop": lv.hop, "codebook_size": lv.codebook_size} for lv in self.levels]
        return _canonical({k: getattr(self, k) for k in _FIELDS} | {"levels": levels})

    @classmethod
    def from_json(cls, text: str | bytes) -> StreamHeader:
        """Parse and validate header JSON (UTF-8 if bytes); any problem raises :class:`StreamError`."""
        try:
            text = text.decode("utf-8") if isinstance(text, (bytes, bytearray)) else text
            obj = json.loads(text, object_pairs_hook=_strict_object)  # NaN in 'extra' fails its check
        except (ValueError, RecursionError) as exc:  # includes JSONDecodeError and UnicodeDecodeError
            raise StreamError(f"header is not valid JSON: {' '.join(str(exc).split()):.80}") from None
        _check_keys(obj, "header", set(_FIELDS) - {"extra"}, ("extra",))
        if not isinstance(obj["levels"], list):
            raise StreamError("header field 'levels' must be a non-empty list of levels")
        for entry in obj["levels"]:
            _check_keys(entry, "header level entry", {"level", "hop", "codebook_size"})
        return cls(**(obj | {"levels": tuple(LevelInfo(**entry) for entry in obj["levels"])}))


_FIELDS = tuple("model_sha256 sample_rate num_samples levels chunk_samples speaker coding extra".split())


def pack_codes(codes: np.ndarray, bits: int) -> bytes:
    """Pack codes ``[N]`` (ints in ``[0, 2**bits)``) LSB-first into ``ceil(N * bits / 8)`` bytes."""
    if not 1 <= bits <= 16:
        raise ValueError(f"bits must be in 1..16, not {bits}")
    arr = np.asarray(codes)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"codes must be a 1-D integer array, not {arr.dtype} of shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= 1 << bits):
        raise ValueError(f"codes must be in [0, {1 << bits}) for {bits} bits")
    matrix = (arr.astype(np.int64)[:, None] >> np.arange(bits)) & 1  # [N, bits]: bit j of code i
    return np.packbits(matrix.astype(np.uint8).reshape(-1), bitorder="little").tobytes()


def unpack_codes(data: bytes, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: ``count`` codes as an int64 array ``[count]``."""
    if not 1 <= bits <= 16 or count < 0 or len(data) != _ceil_div(count * bits, 8):
        raise ValueError(f"{len(data)} bytes cannot hold exactly {count} codes of {bits} bits")
    flat = np.unpackbits(np.frombuffer(data, np.uint8), count=count * bits, bitorder="little")
    return flat.reshape(count, bits).astype(np.int64) @ (np.int64(1) << np.arange(bits, dtype=np.int64))


def _read(f: BinaryIO, n: int, what: str) -> bytes:
    parts, got = [], 0
    while got < n:
        if not (part := f.read(n - got)):
            raise StreamError(f"truncated .vqa stream: {what} needs {n} bytes, only {got} left")
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def read_header(fileobj: BinaryIO) -> tuple[StreamHeader, int]:
    """Read and validate the header; returns it and its size in bytes (prefix, JSON and CRC)."""
    magic = _read(fileobj, 4, "magic")
    if magic != MAGIC:
        raise StreamError(f"not a .vqa stream (magic {magic!r}, expected {MAGIC!r})")
    version_bytes = _read(fileobj, 2, "version")
    if (version := struct.unpack("<H", version_bytes)[0]) not in SUPPORTED_VERSIONS:
        raise StreamError(f"unsupported .vqa version {version} (supported: {SUPPORTED_VERSIONS})")
    len_bytes = _read(fileobj, 4, "header length")
    if (header_len := _U32.unpack(len_bytes)[0]) > MAX_HEADER_BYTES:
        raise StreamError(f".vqa header length {header_len} exceeds the limit of {MAX_HEADER_BYTES} bytes")
    raw = _read(fileobj, header_len, "header")
    (crc,) = _U32.unpack(_read(fileobj, 4, "header CRC"))
    if zlib.crc32(magic + version_bytes + len_bytes + raw) != crc:
        raise ChecksumError(".vqa header CRC mismatch (corrupted header)")
    return StreamHeader.from_json(raw), 14 + header_len


class StreamWriter:
    """Write a ``.vqa`` stream to ``fileobj`` (left open): the header at once, then chunk by chunk."""

    def __init__(self, fileobj: BinaryIO, header: StreamHeader) -> None:
        raw = header.to_json().encode("utf-8")
        if len(raw) > MAX_HEADER_BYTES:
            raise ValueError(f"header is {len(raw)} bytes, over the limit of {MAX_HEADER_BYTES}")
        prefix = MAGIC + struct.pack("<HI", VERSION, len(raw)) + raw
        fileobj.write(prefix + _U32.pack(zlib.crc32(prefix)))
        self.fileobj, self.header, self.chunks_written = fileobj, header, 0

    def _write(self, coding: str, parts: Sequence[Any], pack: Callable[[int, LevelInfo, Any], bytes]) -> None:
        index, h = self.chunks_written, self.header
        if h.coding != coding or index >= h.num_chunks or len(parts) != len(h.levels):
            raise ValueError(f"chunk {index} of {h.num_chunks}: need {len(h.levels)} {h.coding} levels")
        payload = b"".join(pack(i, lv, x) for i, (lv, x) in enumerate(zip(h.levels, parts, strict=True)))
        if len(payload) > MAX_CHUNK_BYTES:
            raise ValueError(f"chunk payload of {len(payload)} bytes exceeds {MAX_CHUNK_BYTES}")
        length = _U32.pack(len(payload))
        self.fileobj.write(length + payload + _U32.pack(zlib.crc32(length + payload)))
        self.chunks_written += 1

    def _pack(self, i: int, lv: LevelInfo, codes: np.ndarray) -> bytes:
        arr, want = np.asarray(codes), self.header.frames_in_chunk(self.chunks_written, i)
        if arr.shape != (want,) or (arr.size and arr.max() >= lv.codebook_size):
            raise ValueError(f"level {lv.level}: need {want} codes < {lv.codebook_size}, not {arr.shape}")
        return pack_codes(arr, lv.bits)

    def write_chunk(self, codes: Sequence[np.ndarray]) -> None:
        """Write the next packed chunk: one 1-D array of codes ``[frames_in_chunk]`` per level."""
        self._write("packed", codes, self._pack)

    def write_entropy_chunk(self, payloads: Sequence[bytes]) -> None:
        """Write the next entropy-coded chunk: one opaque byte string per level."""
        self._write("entropy", payloads, lambda i, lv, data: _U32.pack(len(data)) + bytes(memoryview(data)))

    def close(self) -> None:
        """Check that the stream is complete (``num_chunks`` chunks written); does not close ``fileobj``."""
        if self.chunks_written != self.header.num_chunks:
            raise ValueError(f"wrote {self.chunks_written} of {self.header.num_chunks} chunks")

    def __enter__(self) -> StreamWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            self.close()


class StreamReader:
    """Read a ``.vqa`` stream: ``.header`` (of ``.header_bytes`` bytes) at once, then chunk by chunk."""

    def __init__(self, fileobj: BinaryIO) -> None:
        self.fileobj = fileobj
        self.header, self.header_bytes = read_header(fileobj)
        self.chunks_read = 0

    def _chunk(self) -> list[np.ndarray] | list[bytes]:
        index, h = self.chunks_read, self.header
        (n,) = _U32.unpack(length := _read(self.fileobj, 4, f"chunk {index} length"))
        if n > MAX_CHUNK_BYTES or (h.coding == "packed" and n != h.packed_size(h.samples_in_chunk(index))):
            raise StreamError(f"chunk {index} has an invalid length ({n} bytes)")
        payload = _read(self.fileobj, n, f"chunk {index}")
        if zlib.crc32(length + payload) != _U32.unpack(_read(self.fileobj, 4, f"chunk {index} CRC"))[0]:
            raise ChecksumError(f".vqa chunk {index} CRC mismatch (corrupted data)")
        self.chunks_read += 1
        return self._unpack(index, payload) if h.coding == "packed" else self._split(index, payload)

    def _unpack(self, index: int, payload: bytes) -> list[np.ndarray]:
        out, pos = [], 0
        for i, lv in enumerate(self.header.levels):
            count = self.header.frames_in_chunk(index, i)
            data = payload[pos : (pos := pos + _ceil_div(count * lv.bits, 8))]
            if (count * lv.bits) % 8 and data[-1] >> (count * lv.bits) % 8:
                raise StreamError(f"chunk {index} level {lv.level}: nonzero padding bits")
            if (codes := unpack_codes(data, lv.bits, count)).size and codes.max() >= lv.codebook_size:
                raise StreamError(f"chunk {index} level {lv.level}: code out of range (K={lv.codebook_size})")
            out.append(codes)
        return out

    def _split(self, index: int, payload: bytes) -> list[bytes]:
        out, view = [], io.BytesIO(payload)
        for lv in self.header.levels:
            (n,) = _U32.unpack(_read(view, 4, f"chunk {index} level {lv.level} size"))
            out.append(_read(view, n, f"chunk {index} level {lv.level}"))
        if view.tell() != len(payload):
            raise StreamError(f"chunk {index}: {len(payload) - view.tell()} bytes left after the last level")
        return out

    def __iter__(self) -> Iterator[list[np.ndarray] | list[bytes]]:
        """Yield each remaining chunk: int64 arrays (packed) or byte strings (entropy), one per level."""
        while self.chunks_read < self.header.num_chunks:
            yield self._chunk()
        if self.fileobj.read(1):
            raise StreamError("trailing data after the last chunk of the .vqa stream")

    def read_all(self) -> list[np.ndarray]:
        """All (remaining) codes of a packed stream, concatenated per level: int64 arrays ``[frames]``."""
        if self.header.coding != "packed":
            raise StreamError(f"cannot unpack codes of a {self.header.coding!r}-coded stream")
        chunks, empty = list(self), np.zeros(0, np.int64)
        return [np.concatenate([empty, *(c[i] for c in chunks)]) for i in range(len(self.header.levels))]


def encode_stream(header: StreamHeader, codes_per_level: Sequence[np.ndarray]) -> bytes:
    """Encode whole-file codes (one array ``[num_frames(i)]`` per level) as a packed stream."""
    arrays = [np.asarray(c) for c in codes_per_level]
    want = [header.num_frames(i) for i in range(len(header.levels))]
    if [a.shape for a in arrays] != [(n,) for n in want]:
        raise ValueError(f"need one code array per level, of lengths {want}")
    out = io.BytesIO()
    with StreamWriter(out, header) as writer:
        steps = [header.chunk_samples // lv.hop for lv in header.levels]
        for c in range(header.num_chunks):
            writer.write_chunk([a[c * n : (c + 1) * n] for a, n in zip(arrays, steps, strict=True)])
    return out.getvalue()


def decode_stream(data: bytes) -> tuple[StreamHeader, list[np.ndarray]]:
    """Decode a whole packed stream: its header and one int64 code array ``[num_frames(i)]`` per level."""
    reader = StreamReader(io.BytesIO(data))
    return reader.header, reader.read_all()
