"""The ``.vqa`` code stream: a small, checksummed container for the codes of a hierarchical VQ-VAE.

Imports no torch (stdlib and numpy only), so streams can be inspected without the model. Writers emit
version 2, or version 3 when a level is coded with a prior; readers accept versions 1, 2 and 3. Every
fixed-width integer is little-endian and unsigned.
A ``varint`` is unsigned LEB128: 7 bits per byte, least significant group first, the high bit set on
every byte but the last; at most 9 bytes (values < 2**63) and minimal (no final 0x00 byte after the
first), so every value has exactly one spelling.

Format, version 2 (and 3)::

    magic        4 bytes  b"VQA\\x1a"
    version      uint16   2
    header_len   varint   rejected if > MAX_HEADER_BYTES (65536), before the header is read
    header       bytes    the fields below, exactly header_len bytes
    header_crc   uint32   zlib.crc32(magic + version + header_len + header)
    num_chunks times, chunk c:
        body     bytes    packed: the packed codes (their length follows from the header)
                          entropy: for each level in header order, varint n, then n bytes; every n and
                          their running sum are rejected if > MAX_CHUNK_BYTES (1 << 26), before reading
        crc      uint32   zlib.crc32(uint32(c) + body): a chunk is bound to its position
    end of file           any byte after the last chunk is an error ("trailing data")

    header (version 2):
        flags          uint8    bit 0: coding (0 "packed", 1 "entropy"); bit 1: a speaker follows;
                                bit 2: a source follows; bit 3: extra follows; bits 4-7 are zero
        model_id       8 bytes  the first 8 bytes of the model's fingerprint (below)
        sample_rate    varint   > 0
        num_samples    varint
        chunk_samples  varint   > 0
        num_levels     varint   1..255, then for each level: level varint, hop varint >= 1,
                                codebook_size - 2 varint (so 2 <= K <= 65536)
        speaker        varint length (<= 255) + UTF-8 name                       (if flag bit 1)
        source         varint rate > 0, varint length, varint channels > 0   (if flag bit 2)
        extra          varint length + canonical JSON object, non-empty, without the three
                       source keys below                                          (if flag bit 3)

    Version 3 is version 2 with one more header flag: bit 4 set means that an 8-byte ``prior_id`` and a
    4-byte ``prior_probe`` end the header (coding must be "entropy"), and bits 5-7 are zero; everything
    else is laid out as above.

CRC32 is zlib's (ISO-HDLC: polynomial 0x04C11DB7 reflected, init and final xor 0xFFFFFFFF).

The fields, as :class:`StreamHeader` holds them (both versions):

- ``model_id``: lowercase hex. Version 2: 16 characters, the first 8 bytes of the model fingerprint
  (:func:`vqaudio.codec.compress.model_fingerprint`: SHA-256 over the weights, the model's config, its
  speaker names, sample rate and code tables, so that a model whose behaviour differs is another model).
  Version 1: 64 characters, the SHA-256 of the weights only. A decoder refuses a stream whose model_id
  is not its model's.
- ``sample_rate``: int > 0, in Hz. ``num_samples``: int >= 0, the length of the audio.
- ``levels``: non-empty, ``(level >= 0, hop >= 1, codebook_size K)`` with 2 <= K <= 65536 and no level
  twice; payloads store levels in this order.
- ``chunk_samples``: int > 0, a multiple of every level's ``hop``.
- ``speaker``: a name or None. ``coding``: ``"packed"`` or ``"entropy"``. ``extra``: a JSON object whose
  ``source_sample_rate``, ``source_num_samples`` and ``source_channels`` (ints: the input file's rate,
  length and channels, used to restore them on decoding) version 2 stores as its ``source`` field when
  all three are present, and the rest as JSON.
- Every int is at most 2**63 - 1; after decoding, a header is validated as a whole (caps, multiples).

Derived, never stored: a level's bits per code ``b = ceil(log2(K))`` (K = 2 gives 1);
``num_chunks = ceil(num_samples / chunk_samples)`` (0 when num_samples is 0); chunk ``c`` covers the
``s_c`` samples ``[c * chunk_samples, min((c + 1) * chunk_samples, num_samples))`` and holds
``n = ceil(s_c / hop)`` frames of each level (so a level has ``ceil(num_samples / hop)`` frames in all).

Payload of coding "packed": for each level in header order, ``ceil(n * b / 8)`` bytes holding its ``n``
codes for the chunk: bit ``j`` of code ``i`` (bit 0 = least significant) is bit ``(i * b + j) % 8`` of the
level's byte ``(i * b + j) // 8``, and the bits left over in the last byte are zero. E.g. b = 3, codes
[1, 2, 7] -> 1 | 2 << 3 | 7 << 6 = 0x1D1 -> bytes D1 01. Every code must be < K.

Payload of coding "entropy", one level of one chunk (the ``n`` bytes above): byte 0 names the model,
an index into :data:`vqaudio.codec.entropy.MODELS` (0 ``"order0"``: static rANS with the level's
frequency table; 1 ``"order1"``: adaptive, the previous code as context, the table as its prior), then
the rANS bytes of the chunk's ``n`` codes of that level, coded alone (each chunk and level starts from
a fresh model). The table is the model's, not the stream's: the checkpoint's metadata holds it as
``code_tables[level]`` (base64 of :meth:`vqaudio.codec.entropy.FrequencyTable.to_bytes`), covered by
the fingerprint. :mod:`vqaudio.codec.entropy` specifies rANS and both models in integer arithmetic, so a
decoder in any language reproduces the codes exactly.

Model byte 2, ``"prior"`` (version 3 only, with ``prior_id`` set): the rANS bytes of the codes under a
:class:`vqaudio.prior.CodePrior` whose fingerprint (:func:`vqaudio.prior.checkpoint.prior_fingerprint`:
SHA-256 over its weights' SHA-256, its config and its VQ-VAE's fingerprint) starts with ``prior_id``,
and only for that prior's level. Each chunk's codes are rANS-coded alone, from a fresh prior state
(position 0), conditioned on the stream's speaker when the prior knows it (its row in the VQ-VAE's
table, else the "none" speaker), but the prior runs on groups of ``PRIOR_GROUP`` (8) consecutive chunks
at once: chunks ``[8 g, 8 g + 8)`` (fewer in the last group) are the rows of one batch, ``B`` = chunks
in the group, stepped together until the longest row ends; a row's input is its own previous code, and
code 0 once the row has ended. Every chunk of a group is a row, including one whose payload chose model
0 or 1 (its codes are known once that payload is decoded). Every step's frequencies are
:func:`vqaudio.codec.entropy.quantise_probabilities` of that step's ``[B, K]`` logits of
:meth:`CodePrior.step`, computed in float32 on the CPU with one intra-op thread
(:func:`vqaudio.prior.coding.encode_rows`), then rANS with
:func:`vqaudio.codec.entropy.interval_scale` of K: a decoder must
reproduce those logits bit for bit, so it must run the same prior weights with the same torch CPU
kernels (same torch build and CPU instruction set); a mismatch is caught by the rANS end state or gives
other codes, never a crash. ``prior_probe`` says which kernels the encoder's machine ran: the first 4
bytes of the SHA-256 of a fixed computation with the prior (:meth:`vqaudio.prior.PriorCoder.probe`: its
float32 logits and their quantised frequencies over ``context + 1`` steps of fixed codes, speaker
"none"); a decoder whose own probe differs refuses the stream before decoding it ("platform mismatch").

Format, version 1 (read only): ``magic``, ``version`` uint16 = 1, ``header_len`` uint32 (same cap), the
header as UTF-8 JSON (canonical: ``json.dumps(obj, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)``; no duplicate keys, no NaN; keys ``model_sha256`` (= model_id), ``sample_rate``,
``num_samples``, ``levels`` (objects ``{"level", "hop", "codebook_size"}``), ``chunk_samples``,
``speaker`` (string or null), ``coding``, optional ``extra``; any other key is an error),
``header_crc`` as above; then each chunk as ``payload_len`` uint32 (same cap; a packed chunk's must be
exact), ``payload``, ``crc32(payload_len bytes + payload)``. An entropy payload holds, per level, a
uint32 size and that many bytes (laid out as in version 2), with nothing left over.
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
VERSION = 2  # what a stream is written in unless it needs version 3 (coded with a prior)
SUPPORTED_VERSIONS = (1, 2, 3)
MODEL_ID_HEX = {1: 64, 2: 16, 3: 16}  # hex characters of a stream's model_id, per version
PRIOR_ID_HEX = 16  # hex characters of a version 3 stream's prior_id
PRIOR_PROBE_HEX = 8  # ... and of its prior_probe
PRIOR_GROUP = 8  # consecutive chunks whose prior-coded level is coded as one batch (version 3)
MAX_HEADER_BYTES = 65536
MAX_CHUNK_BYTES = 1 << 26
MAX_LEVELS = 255
MAX_SPEAKER_BYTES = 255
CODINGS = ("packed", "entropy")
SOURCE_KEYS = ("source_sample_rate", "source_num_samples", "source_channels")
_MAX_INT = 2**63 - 1
_U32 = struct.Struct("<I")
_HEX = re.compile(r"[0-9a-f]+")


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


def _json(raw: bytes, what: str) -> Any:
    try:  # NaN fails the 'extra' check later; duplicate keys fail here
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_strict_object)
    except (ValueError, RecursionError) as exc:  # includes JSONDecodeError and UnicodeDecodeError
        raise StreamError(f"{what} is not valid JSON: {' '.join(str(exc).split()):.80}") from None


def varint(value: int) -> bytes:
    """``value`` (0 <= value < 2**63) as a minimal unsigned LEB128 varint."""
    if not 0 <= value <= _MAX_INT:
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(read: Callable[[int], bytes], what: str) -> int:
    """A minimal varint from ``read(1)`` calls (at most 9 bytes)."""
    value = 0
    for i in range(9):
        byte = read(1)[0]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if byte == 0 and i:
                raise StreamError(f"{what}: varint is not minimal")
            return value
    raise StreamError(f"{what}: varint longer than 9 bytes")


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
    """The header of a ``.vqa`` stream (see the module docstring for each field); invalid values raise.

    ``version`` is the format the stream is (to be) written in; ``model_id`` has ``MODEL_ID_HEX[version]``
    hex digits."""

    model_id: str
    sample_rate: int
    num_samples: int
    levels: tuple[LevelInfo, ...]
    chunk_samples: int
    speaker: str | None = None
    coding: str = "packed"
    extra: dict[str, Any] = field(default_factory=dict)
    version: int = VERSION
    prior_id: str | None = None
    prior_probe: str | None = None

    def __post_init__(self) -> None:
        if self.version not in SUPPORTED_VERSIONS or isinstance(self.version, bool):
            raise StreamError(f"unsupported .vqa version {self.version!r} (supported: {SUPPORTED_VERSIONS})")
        if self.prior_id is not None:
            if self.version < 3 or self.coding != "entropy":
                raise StreamError("header field 'prior_id' needs version 3 and coding 'entropy'")
            if (
                not isinstance(self.prior_id, str)
                or len(self.prior_id) != PRIOR_ID_HEX
                or not _HEX.fullmatch(self.prior_id)
            ):
                raise StreamError(f"header field 'prior_id' must be {PRIOR_ID_HEX} lowercase hex characters")
        if (self.prior_probe is None) != (self.prior_id is None):
            raise StreamError("header fields 'prior_id' and 'prior_probe' go together")
        if self.prior_probe is not None and (
            not isinstance(self.prior_probe, str)
            or len(self.prior_probe) != PRIOR_PROBE_HEX
            or not _HEX.fullmatch(self.prior_probe)
        ):
            raise StreamError(
                f"header field 'prior_probe' must be {PRIOR_PROBE_HEX} lowercase hex characters"
            )
        hex_digits = MODEL_ID_HEX[self.version]
        if (
            not isinstance(self.model_id, str)
            or len(self.model_id) != hex_digits
            or not _HEX.fullmatch(self.model_id)
        ):
            raise StreamError(f"header field 'model_id' must be {hex_digits} lowercase hex characters")
        for name, lo in (("sample_rate", 1), ("num_samples", 0), ("chunk_samples", 1)):
            object.__setattr__(self, name, _int(getattr(self, name), name, lo))
        levels = tuple(self.levels) if isinstance(self.levels, (list, tuple)) else ()
        if not 0 < len(levels) <= MAX_LEVELS or not all(isinstance(x, LevelInfo) for x in levels):
            raise StreamError(f"header field 'levels' must be a list of 1 to {MAX_LEVELS} levels")
        object.__setattr__(self, "levels", levels)
        if len({lv.level for lv in levels}) != len(levels):
            raise StreamError("header field 'levels' names a level twice")
        if bad := [lv.hop for lv in levels if self.chunk_samples % lv.hop]:
            raise StreamError(f"header: chunk_samples {self.chunk_samples} is not a multiple of hop {bad[0]}")
        if self.speaker is not None:
            if not isinstance(self.speaker, str):
                raise StreamError("header field 'speaker' must be a string or null")
            try:
                size = len(self.speaker.encode("utf-8"))
            except UnicodeEncodeError:
                raise StreamError("header field 'speaker' is not valid Unicode") from None
            if size > MAX_SPEAKER_BYTES:
                raise StreamError(f"header field 'speaker' is over {MAX_SPEAKER_BYTES} bytes of UTF-8")
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

    @property
    def nominal_bitrate(self) -> float:
        """Bits per second of the codes at ``log2(K)`` bits each (what no framing or header adds to)."""
        return sum(self.sample_rate / lv.hop * np.log2(lv.codebook_size) for lv in self.levels)

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

    def to_bytes(self) -> bytes:
        """The header's bytes as its version stores them (between ``header_len`` and ``header_crc``)."""
        return _v2_header(self) if self.version >= 2 else self.to_json().encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes, version: int) -> StreamHeader:
        """Parse and validate header bytes of ``version``; any problem raises :class:`StreamError`."""
        return _parse_v2(raw, version) if version >= 2 else cls.from_json(raw)

    def to_json(self) -> str:
        """A version 1 header as canonical JSON text (what version 1 stores)."""
        if self.version != 1:
            raise ValueError("only a version 1 header is stored as JSON; use to_bytes()")
        levels = [{"level": lv.level, "hop": lv.hop, "codebook_size": lv.codebook_size} for lv in self.levels]
        fields = {k: getattr(self, k) for k in _V1_FIELDS if k not in ("levels", "model_sha256")}
        return _canonical(fields | {"levels": levels, "model_sha256": self.model_id})

    @classmethod
    def from_json(cls, text: str | bytes) -> StreamHeader:
        """Parse and validate version 1 header JSON (UTF-8 if bytes); problems raise :class:`StreamError`."""
        obj = _json(text.encode("utf-8") if isinstance(text, str) else bytes(text), "header")
        _check_keys(obj, "header", set(_V1_FIELDS) - {"extra"}, ("extra",))
        if not isinstance(obj["levels"], list):
            raise StreamError("header field 'levels' must be a non-empty list of levels")
        for entry in obj["levels"]:
            _check_keys(entry, "header level entry", {"level", "hop", "codebook_size"})
        levels = tuple(LevelInfo(**entry) for entry in obj["levels"])
        if not isinstance(obj["model_sha256"], str):
            raise StreamError("header field 'model_sha256' must be 64 lowercase hex characters")
        model_id = obj.pop("model_sha256")
        return cls(**(obj | {"levels": levels, "model_id": model_id, "version": 1}))


_V1_FIELDS = tuple("model_sha256 sample_rate num_samples levels chunk_samples speaker coding extra".split())


def _has_source(extra: dict[str, Any]) -> bool:
    """Whether version 2 stores ``extra``'s source keys as its ``source`` field (all three valid ints)."""
    values = [extra.get(k) for k in SOURCE_KEYS]
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _MAX_INT for v in values):
        return False
    return bool(extra["source_sample_rate"] > 0 and extra["source_channels"] > 0)


def _v2_header(h: StreamHeader) -> bytes:
    has_source = _has_source(h.extra)
    rest = {k: v for k, v in h.extra.items() if not (has_source and k in SOURCE_KEYS)}
    flags = (h.coding == "entropy") | (h.speaker is not None) << 1 | has_source << 2 | bool(rest) << 3
    flags |= (h.prior_id is not None) << 4
    out = bytearray([flags]) + bytes.fromhex(h.model_id)
    out += b"".join(map(varint, (h.sample_rate, h.num_samples, h.chunk_samples, len(h.levels))))
    for lv in h.levels:
        out += varint(lv.level) + varint(lv.hop) + varint(lv.codebook_size - 2)
    if h.speaker is not None:
        name = h.speaker.encode("utf-8")
        out += varint(len(name)) + name
    if has_source:
        out += b"".join(varint(h.extra[k]) for k in SOURCE_KEYS)
    if rest:
        text = _canonical(rest).encode("utf-8")
        out += varint(len(text)) + text
    if h.prior_id is not None and h.prior_probe is not None:
        out += bytes.fromhex(h.prior_id) + bytes.fromhex(h.prior_probe)
    return bytes(out)


def _parse_v2(raw: bytes, version: int = 2) -> StreamHeader:
    f = io.BytesIO(raw)

    def take(n: int) -> bytes:
        return _read(f, n, "header field")

    def number(name: str, lo: int = 0, hi: int = _MAX_INT) -> int:
        return _int(_read_varint(take, f"header field {name!r}"), name, lo, hi)

    flags = take(1)[0]
    if flags >> (4 if version == 2 else 5):
        raise StreamError(f"header flags 0x{flags:02x} set unknown bits")
    model_id = take(8).hex()
    sample_rate = number("sample_rate")
    num_samples = number("num_samples")
    chunk_samples = number("chunk_samples")
    levels = tuple(
        LevelInfo(number("level"), number("hop"), number("codebook_size", 0, 65534) + 2)
        for _ in range(number("num_levels", 1, MAX_LEVELS))
    )
    speaker = None
    if flags & 2:
        try:
            speaker = take(number("speaker length", 0, MAX_SPEAKER_BYTES)).decode("utf-8")
        except UnicodeDecodeError:
            raise StreamError("header field 'speaker' is not UTF-8") from None
    extra: dict[str, Any] = {}
    if flags & 4:
        extra = {k: number(k, 1 if k != "source_num_samples" else 0) for k in SOURCE_KEYS}
    if flags & 8:
        rest = _json(take(number("extra length", 1, MAX_HEADER_BYTES)), "header field 'extra'")
        if not isinstance(rest, dict) or not rest or (flags & 4 and rest.keys() & set(SOURCE_KEYS)):
            raise StreamError("header field 'extra' must be a non-empty JSON object (source keys apart)")
        extra |= rest
    prior_id = take(PRIOR_ID_HEX // 2).hex() if flags & 16 else None
    prior_probe = take(PRIOR_PROBE_HEX // 2).hex() if flags & 16 else None
    if f.tell() != len(raw):
        raise StreamError(f"header has {len(raw) - f.tell()} bytes after its last field")
    coding = CODINGS[flags & 1]
    return StreamHeader(
        model_id,
        sample_rate,
        num_samples,
        levels,
        chunk_samples,
        speaker,
        coding,
        extra,
        version,
        prior_id,
        prior_probe,
    )


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
    """Read and validate the header; returns it and its size in bytes (prefix, header and CRC)."""
    magic = _read(fileobj, 4, "magic")
    if magic != MAGIC:
        raise StreamError(f"not a .vqa stream (magic {magic!r}, expected {MAGIC!r})")
    version_bytes = _read(fileobj, 2, "version")
    if (version := struct.unpack("<H", version_bytes)[0]) not in SUPPORTED_VERSIONS:
        raise StreamError(f"unsupported .vqa version {version} (supported: {SUPPORTED_VERSIONS})")
    if version == 1:
        header_len = _U32.unpack(len_bytes := _read(fileobj, 4, "header length"))[0]
    else:
        recorder = _Recorder(fileobj, "header length")
        header_len = _read_varint(recorder.read, "header length")
        len_bytes = bytes(recorder.seen)
    if header_len > MAX_HEADER_BYTES:
        raise StreamError(f".vqa header length {header_len} exceeds the limit of {MAX_HEADER_BYTES} bytes")
    raw = _read(fileobj, header_len, "header")
    (crc,) = _U32.unpack(_read(fileobj, 4, "header CRC"))
    if zlib.crc32(magic + version_bytes + len_bytes + raw) != crc:
        raise ChecksumError(".vqa header CRC mismatch (corrupted header)")
    return StreamHeader.from_bytes(raw, version), 10 + len(len_bytes) + header_len


def _header_prefix(header: StreamHeader) -> bytes:
    raw = header.to_bytes()
    if len(raw) > MAX_HEADER_BYTES:
        raise ValueError(f"header is {len(raw)} bytes, over the limit of {MAX_HEADER_BYTES}")
    size = struct.pack("<I", len(raw)) if header.version == 1 else varint(len(raw))
    prefix = MAGIC + struct.pack("<H", header.version) + size + raw
    return prefix + _U32.pack(zlib.crc32(prefix))


class StreamWriter:
    """Write a ``.vqa`` stream to ``fileobj`` (left open) in ``header.version``'s format: the header at
    once, then chunk by chunk. ``.bytes_written`` and ``.payload_bytes`` count what went out."""

    def __init__(self, fileobj: BinaryIO, header: StreamHeader) -> None:
        prefix = _header_prefix(header)
        fileobj.write(prefix)
        self.fileobj, self.header, self.chunks_written = fileobj, header, 0
        self.header_bytes = self.bytes_written = len(prefix)
        self.payload_bytes = 0

    def _frame(self, parts: list[bytes]) -> bytes:
        """A chunk's bytes around its levels' payloads (one per level), as the version frames them."""
        entropy, index = self.header.coding == "entropy", self.chunks_written
        if self.header.version == 1:
            size = _U32.pack
            payload = b"".join(size(len(p)) + p for p in parts) if entropy else b"".join(parts)
            body = size(len(payload)) + payload
            return body + _U32.pack(zlib.crc32(body))
        body = b"".join(varint(len(p)) + p for p in parts) if entropy else b"".join(parts)
        return body + _U32.pack(zlib.crc32(_U32.pack(index) + body))

    def _write(self, coding: str, parts: Sequence[Any], pack: Callable[[int, LevelInfo, Any], bytes]) -> None:
        index, h = self.chunks_written, self.header
        if h.coding != coding or index >= h.num_chunks or len(parts) != len(h.levels):
            raise ValueError(f"chunk {index} of {h.num_chunks}: need {len(h.levels)} {h.coding} levels")
        payloads = [pack(i, lv, x) for i, (lv, x) in enumerate(zip(h.levels, parts, strict=True))]
        if (total := sum(map(len, payloads))) > MAX_CHUNK_BYTES:
            raise ValueError(f"chunk payload of {total} bytes exceeds {MAX_CHUNK_BYTES}")
        framed = self._frame(payloads)
        self.fileobj.write(framed)
        self.chunks_written += 1
        self.bytes_written += len(framed)
        self.payload_bytes += total

    def _pack(self, i: int, lv: LevelInfo, codes: np.ndarray) -> bytes:
        arr, want = np.asarray(codes), self.header.frames_in_chunk(self.chunks_written, i)
        if arr.shape != (want,) or (arr.size and arr.max() >= lv.codebook_size):
            raise ValueError(f"level {lv.level}: need {want} codes < {lv.codebook_size}, not {arr.shape}")
        return pack_codes(arr, lv.bits)

    def write_chunk(self, codes: Sequence[np.ndarray]) -> None:
        """Write the next packed chunk: one 1-D array of codes ``[frames_in_chunk]`` per level."""
        self._write("packed", codes, self._pack)

    def write_entropy_chunk(self, payloads: Sequence[bytes]) -> None:
        """Write the next entropy-coded chunk: one byte string per level (model byte + rANS bytes)."""
        self._write("entropy", payloads, lambda i, lv, data: bytes(memoryview(data)))

    def close(self) -> None:
        """Check that the stream is complete (``num_chunks`` chunks written); does not close ``fileobj``."""
        if self.chunks_written != self.header.num_chunks:
            raise ValueError(f"wrote {self.chunks_written} of {self.header.num_chunks} chunks")

    def __enter__(self) -> StreamWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            self.close()


class _Recorder:
    """Reads from a file (a short read is a :class:`StreamError` naming ``what``) and keeps the bytes."""

    def __init__(self, fileobj: BinaryIO, what: str) -> None:
        self.fileobj, self.what, self.seen = fileobj, what, bytearray()

    def read(self, n: int) -> bytes:
        data = _read(self.fileobj, n, self.what)
        self.seen += data
        return data


class StreamReader:
    """Read a ``.vqa`` stream: ``.header`` (of ``.header_bytes`` bytes) at once, then chunk by chunk;
    ``.bytes_read`` and ``.payload_bytes`` (the levels' code bytes, without framing) count what was read."""

    def __init__(self, fileobj: BinaryIO) -> None:
        self.fileobj = fileobj
        self.header, self.header_bytes = read_header(fileobj)
        self.chunks_read, self.bytes_read, self.payload_bytes = 0, self.header_bytes, 0

    def _chunk(self) -> list[np.ndarray] | list[bytes]:
        index, h = self.chunks_read, self.header
        f = _Recorder(self.fileobj, f"chunk {index}")
        if h.version == 1:
            (n,) = _U32.unpack(f.read(4))
            exact = h.packed_size(h.samples_in_chunk(index)) if h.coding == "packed" else n
            if n > MAX_CHUNK_BYTES or n != exact:
                raise StreamError(f"chunk {index} has an invalid length ({n} bytes)")
            payload = f.read(n)
            parts = self._split_v1(index, payload) if h.coding == "entropy" else [payload]
            seed = b""
        elif h.coding == "packed":
            parts, seed = [f.read(h.packed_size(h.samples_in_chunk(index)))], _U32.pack(index)
        else:
            parts, seed = self._read_levels(f, index), _U32.pack(index)
        body = bytes(f.seen)
        if zlib.crc32(seed + body) != _U32.unpack(_read(self.fileobj, 4, f"chunk {index} CRC"))[0]:
            raise ChecksumError(f".vqa chunk {index} CRC mismatch (corrupted data)")
        self.chunks_read += 1
        self.bytes_read += len(body) + 4
        self.payload_bytes += sum(map(len, parts))
        return self._unpack(index, parts[0]) if h.coding == "packed" else parts

    def _read_levels(self, f: _Recorder, index: int) -> list[bytes]:
        out, total = [], 0
        for lv in self.header.levels:
            n = _read_varint(f.read, f"chunk {index} level {lv.level} size")
            if (total := total + n) > MAX_CHUNK_BYTES:
                raise StreamError(f"chunk {index} has an invalid length (over {MAX_CHUNK_BYTES} bytes)")
            out.append(f.read(n))
        return out

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

    def _split_v1(self, index: int, payload: bytes) -> list[bytes]:
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
