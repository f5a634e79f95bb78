"""Audio <-> codes <-> ``.vqa`` code streams with a model, in chunks, in bounded memory.

The core works on audio as float32 blocks (a :class:`vqaudio.audio.AudioSource`, from an array or read
from a file block by block, downmixed and stream-resampled): it encodes ``chunk_samples`` at a time with
enough audio on both sides to cover the encoder's receptive field (:meth:`VQVAE.receptive_field`), so
the codes equal those of a whole-signal encode (up to float rounding; see ``tests/test_compress.py``)
while memory stays bounded for any length; decoding takes one chunk of codes at a time with
neighbouring frames as context, likewise.

Python API: :func:`encode_audio` / :func:`decode_audio` (arrays <-> codes), :func:`round_trip` (audio
coded and decoded, no stream), :func:`compress` / :func:`decompress` (arrays <-> ``.vqa`` bytes),
:func:`encode_file` / :func:`decode_file` (files, streaming; thin layers over the same core).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

import numpy as np
import torch

from vqaudio.audio import AudioSource, atomic_write, output_format, resample_blocks, write_blocks
from vqaudio.checkpoint import model_sha256
from vqaudio.codec.bitstream import (
    MODEL_ID_HEX,
    PRIOR_GROUP,
    SOURCE_KEYS,
    LevelInfo,
    StreamError,
    StreamHeader,
    StreamReader,
    StreamWriter,
)
from vqaudio.codec.entropy import MODELS, FrequencyTable, decode_codes, encode_codes
from vqaudio.config import config_to_dict
from vqaudio.errors import UserError
from vqaudio.models import VQVAE

__all__ = [
    "EncodeResult",
    "LevelCoder",
    "code_tables",
    "compress",
    "decode_audio",
    "decompress",
    "encode_audio",
    "encode_file",
    "decode_file",
    "encoder_context",
    "model_fingerprint",
    "round_trip",
]

log = logging.getLogger(__name__)

_ENTROPY_MODELS = MODELS  # byte 0 of each level's entropy-coded payload indexes this tuple (stream format)
PRIOR_MODEL = len(MODELS)  # byte 0 of a payload coded with the stream's prior (version 3, see bitstream)
Progress = Callable[[int, int], None]
T = TypeVar("T")


class LevelCoder(Protocol):
    """Entropy coding of one level's codes by a model the codec does not own (a prior over the codes:
    :class:`vqaudio.prior.coding.PriorCoder`). ``coder_id`` (16 hex digits) is stored as the stream's
    ``prior_id``, and ``probe`` (8 hex digits: what this machine computes with it) as its ``prior_probe``;
    ``speaker`` is the stream's speaker, on both sides."""

    level: int
    coder_id: str

    @property
    def probe(self) -> str: ...

    def encode(self, rows: Sequence[np.ndarray], speaker: str | None) -> list[bytes]:
        """The payload bytes of each chunk's codes of one group of chunks (``PRIOR_GROUP`` of them, fewer
        in the last group): the chunks are coded together, so :meth:`decode` needs the same group."""
        ...

    def decode(
        self, rows: Sequence[bytes | np.ndarray], counts: Sequence[int], speaker: str | None
    ) -> list[np.ndarray]:
        """Each chunk's ``counts[c]`` codes of one group: from its payload bytes, or, for a chunk whose
        payload another model coded, its codes as given (the group still needs them)."""
        ...


Speaker = str | int | torch.Tensor | None


@dataclass
class EncodeResult:
    header: StreamHeader
    num_bytes: int


# --------------------------------------------------------------------------- encoding


def _chunk_samples(model: VQVAE, levels: Sequence[int], chunk_seconds: float) -> int:
    lcm = math.lcm(*(model.input_multiple(level) for level in levels))
    return max(1, round(chunk_seconds * model.sample_rate / lcm)) * lcm


def encoder_context(model: VQVAE, level: int) -> int:
    """Samples of audio a chunk needs on each side for ``level``'s codes to equal a whole-file encode: the
    encoder's receptive field (:meth:`VQVAE.receptive_field`), in whole multiples of the level's input
    padding unit."""
    unit = model.input_multiple(level)
    return -(-max(model.receptive_field(level).encoder) // unit) * unit


@torch.no_grad()
def _encode_chunks(
    model: VQVAE, src: AudioSource, levels: Sequence[int], chunk: int
) -> Iterator[list[np.ndarray]]:
    """Codes ``[ceil(chunk / hop)]`` of each chunk (one array per level), with receptive-field context."""
    n = src.num_samples
    ctx = {level: encoder_context(model, level) for level in levels}
    keep = max(ctx.values())
    buf = np.zeros(0, dtype=np.float32)
    buf_start = 0  # absolute sample index of buf[0]
    for start in range(0, n, chunk):
        end = min(start + chunk, n)
        while buf_start + buf.size < min(n, end + keep):
            buf = np.concatenate([buf, next(src.blocks)])  # the source holds exactly n samples
        out = []
        for level in levels:
            hop = model.hops[level]
            lo, hi = max(0, start - ctx[level]), min(n, end + ctx[level])
            codes = model.encode(torch.from_numpy(buf[lo - buf_start : hi - buf_start]), level=level)[0]
            first = (start - lo) // hop
            out.append(codes[first : first + math.ceil((end - start) / hop)].cpu().numpy())
        yield out
        drop = max(0, end - keep - buf_start)
        buf, buf_start = buf[drop:], buf_start + drop


def _levels(model: VQVAE, levels: Sequence[int]) -> list[int]:
    """``levels`` checked (a UserError names the valid ones), as sorted, distinct indices."""
    checked = sorted({model.check_level(level) for level in levels})
    if not checked:
        raise UserError("no level to encode")
    return checked


def encode_audio(
    model: VQVAE,
    wav: np.ndarray | torch.Tensor,
    sample_rate: int,
    level: int = 0,
    chunk_seconds: float = 10.0,
) -> np.ndarray:
    """Audio ``[T]`` or ``[C, T]`` (downmixed) at ``sample_rate`` -> ``level``'s codes ``[ceil(T' / hop)]``
    (int64; ``T'``: the length at the model's rate), encoded ``chunk_seconds`` at a time: the codes of a
    whole-signal :meth:`VQVAE.encode`, in bounded memory."""
    model.eval()
    (level,) = _levels(model, [level])
    src = AudioSource.of_array(wav, sample_rate, model.sample_rate)
    parts = [c[0] for c in _encode_chunks(model, src, [level], _chunk_samples(model, [level], chunk_seconds))]
    return np.concatenate(parts)


# --------------------------------------------------------------------------- decoding


@torch.no_grad()
def _decode_chunks(
    model: VQVAE, codes: Iterator[np.ndarray], level: int, num_samples: int, chunk: int, speaker: Speaker
) -> Iterator[np.ndarray]:
    """Audio ``[chunk]`` of each chunk of ``level``'s codes (``chunk // hop`` frames; ``num_samples`` in
    all), decoded with the decoder's receptive field of frames from its neighbours as context."""
    hop = model.hops[level]
    ctx = max(model.receptive_field(level).decoder)
    frames_per_chunk = chunk // hop
    total = math.ceil(num_samples / hop)
    buf = np.zeros(0, dtype=np.int64)
    buf_start = 0
    exhausted = False
    for f0 in range(0, total, frames_per_chunk):
        f1 = min(f0 + frames_per_chunk, total)
        while not exhausted and buf_start + buf.size < min(total, f1 + ctx):
            try:
                buf = np.concatenate([buf, next(codes)])
            except StopIteration:
                exhausted = True
        lo, hi = max(0, f0 - ctx), min(total, f1 + ctx)
        wav = model.decode(torch.from_numpy(buf[lo - buf_start : hi - buf_start]), level, speaker)[0, 0]
        a = (f0 - lo) * hop
        end = min(f1 * hop, num_samples)
        yield wav[a : a + end - f0 * hop].float().cpu().numpy()
        drop = max(0, f1 - ctx - buf_start)
        buf, buf_start = buf[drop:], buf_start + drop
    for _ in codes:  # read the source to its end, so its own checks run (a stream's trailing bytes)
        pass


def _clamped(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    clipped = 0
    for b in blocks:
        clipped += int(np.count_nonzero(np.abs(b) > 1.0))
        yield np.clip(b, -1.0, 1.0)
    if clipped:
        log.warning("%d samples were outside [-1, 1] and were clamped", clipped)


def _joined(blocks: Iterable[np.ndarray]) -> np.ndarray:
    """Blocks -> one float32 array ``[T]``."""
    parts = list(blocks)
    return np.concatenate(parts).astype(np.float32, copy=False) if parts else np.zeros(0, np.float32)


def decode_audio(
    model: VQVAE,
    codes: np.ndarray | torch.Tensor,
    level: int = 0,
    speaker: Speaker = None,
    num_samples: int | None = None,
    chunk_seconds: float = 10.0,
) -> np.ndarray:
    """``level``'s codes ``[frames]`` -> audio ``[num_samples]`` (default ``frames * hop``) float32 in
    [-1, 1] at the model's rate, decoded ``chunk_seconds`` at a time: a whole-signal :meth:`VQVAE.decode`
    in ``speaker``'s voice, clamped, in bounded memory."""
    model.eval()
    level = model.check_level(level)
    c = codes.detach().cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
    if c.ndim != 1:
        raise ValueError(f"expected codes [frames], got shape {tuple(c.shape)}")
    hop = model.hops[level]
    n = c.size * hop if num_samples is None else num_samples
    if math.ceil(n / hop) != c.size:
        raise ValueError(f"{c.size} frames of hop {hop} do not make {n} samples")
    chunk = _chunk_samples(model, [level], chunk_seconds)
    frames = chunk // hop
    parts = (c[i : i + frames].astype(np.int64) for i in range(0, c.size, frames))
    return _joined(_clamped(_decode_chunks(model, parts, level, n, chunk, speaker)))


def round_trip(
    model: VQVAE, src: AudioSource, level: int, speaker: Speaker = None, chunk_seconds: float = 10.0
) -> Iterator[np.ndarray]:
    """``src`` coded with ``level``'s codes and decoded in ``speaker``'s voice, chunk by chunk, with no
    stream in between: float32 blocks in [-1, 1] at the source's own rate and length (what
    :func:`decode_file` with ``sample_rate=0`` makes of :func:`encode_file`'s stream, less the WAV)."""
    model.eval()
    (level,) = _levels(model, [level])
    chunk = _chunk_samples(model, [level], chunk_seconds)
    codes = (c[0] for c in _encode_chunks(model, src, [level], chunk))
    audio = _decode_chunks(model, codes, level, src.num_samples, chunk, speaker)
    return _clamped(resample_blocks(audio, model.sample_rate, src.sample_rate, src.frames))


# --------------------------------------------------------------------------- streams


def _coding_tables(
    model: VQVAE, levels: Sequence[int], coder: LevelCoder | None
) -> dict[int, FrequencyTable]:
    """The checkpoint's tables of ``levels``; the prior's level may go without (the prior codes it)."""
    if coder is None:
        return _tables(model, levels)
    others = _tables(model, [level for level in levels if level != coder.level])
    stored = model.checkpoint.code_tables if model.checkpoint is not None else {}
    if coder.level in stored:
        others[coder.level] = FrequencyTable.from_bytes(stored[coder.level])
    return others


def _entropy_chunks(
    group: list[list[np.ndarray]],
    levels: Sequence[int],
    tables: dict[int, FrequencyTable],
    coder: LevelCoder | None,
    speaker: str | None,
) -> list[list[bytes]]:
    """The entropy payloads of a group of chunks (each a list of codes per level): per level and chunk
    the smallest of the table's models and, at the prior's level, the prior (which codes the group's
    chunks as one batch)."""
    prior: list[bytes] = []
    if coder is not None:
        prior = [
            bytes([PRIOR_MODEL]) + b
            for b in coder.encode([c[levels.index(coder.level)] for c in group], speaker)
        ]
    out = []
    for i, chunk in enumerate(group):
        payloads = []
        for codes, level in zip(chunk, levels, strict=True):
            candidates = [_entropy_payload(codes, tables[level])] if level in tables else []
            if coder is not None and level == coder.level:
                candidates.append(prior[i])
            payloads.append(min(candidates, key=len))
        out.append(payloads)
    return out


def _groups(chunks: Iterable[T], size: int) -> Iterator[list[T]]:
    """``chunks`` in lists of ``size`` (the last one shorter)."""
    group: list[T] = []
    for chunk in chunks:
        group.append(chunk)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def _entropy_payload(codes: np.ndarray, table: FrequencyTable) -> bytes:
    """Smallest of the two models, tagged with its index in the first byte."""
    best = b""
    for i, name in enumerate(_ENTROPY_MODELS):
        data = bytes([i]) + encode_codes(codes, table, name)
        if not best or len(data) < len(best):
            best = data
    return best


def code_tables(model: VQVAE) -> dict[int, bytes]:
    """The entropy coder's frequency table of each level (serialised), made from the codes' usage in
    training (:meth:`VQVAE.code_counts`): what a producer hands :func:`~vqaudio.checkpoint.save_checkpoint`
    for ``--entropy`` coding."""
    tables = {}
    for level in range(model.num_levels):
        counts = model.code_counts(level).double().cpu().numpy().clip(min=0)
        tables[level] = FrequencyTable.from_counts(counts).to_bytes()
    return tables


def model_fingerprint(model: VQVAE) -> str:
    """SHA-256 (hex) of everything decoding a stream depends on: the weights' SHA-256, the model section
    of the config, the speaker names in index order, the sample rate and the entropy coder's code tables
    (a checkpoint's stored ones; a model not loaded from a checkpoint: :func:`code_tables`, what saving
    it stores). A checkpoint whose weights are the same but whose speakers, config or tables were edited
    is another model. A version-2 stream stores its first 16 hex digits."""
    meta = model.checkpoint
    tables = meta.code_tables if meta is not None else code_tables(model)
    doc = {
        "weights_sha256": model_sha256(model),
        "model": config_to_dict(model.config),
        "speakers": list(model.speakers),
        "sample_rate": model.sample_rate,
        "code_tables": {str(level): hashlib.sha256(t).hexdigest() for level, t in sorted(tables.items())},
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _model_id(model: VQVAE, version: int) -> str:
    """What a stream of ``version`` records of ``model``: v1 the weights' SHA-256, v2 the fingerprint's
    first 16 hex digits."""
    return model_sha256(model) if version == 1 else model_fingerprint(model)[: MODEL_ID_HEX[version]]


def _source_extra(src: AudioSource, model: VQVAE) -> dict[str, int]:
    """The input's rate, length and channels, stored only when they differ from the stream's own (a mono
    file at the model's rate needs none: decoding restores it from the header alone)."""
    if src.sample_rate == model.sample_rate and src.channels == 1 and src.frames == src.num_samples:
        return {}
    return dict(zip(SOURCE_KEYS, (src.sample_rate, src.frames, src.channels), strict=True))


def _has_table(model: VQVAE, level: int) -> bool:
    return model.checkpoint is not None and level in model.checkpoint.code_tables


def _tables(model: VQVAE, levels: Sequence[int]) -> dict[int, FrequencyTable]:
    """The stored tables of ``levels``, from the model's checkpoint."""
    stored = model.checkpoint.code_tables if model.checkpoint is not None else {}
    missing = [level for level in levels if level not in stored]
    if missing:
        raise UserError(
            "this checkpoint holds no code frequency tables for entropy coding; "
            "re-save it with this version of vqaudio, or encode without --entropy"
        )
    return {level: FrequencyTable.from_bytes(stored[level]) for level in levels}


@torch.no_grad()
def _encode(
    model: VQVAE,
    src: AudioSource,
    out: BinaryIO,
    levels: Sequence[int],
    entropy: bool,
    speaker: str | None,
    chunk_seconds: float,
    progress: Progress | None,
    coder: LevelCoder | None = None,
) -> StreamHeader:
    model.eval()
    if speaker is not None:
        model.speaker_index(speaker)  # fail early on unknown names
    levels = _levels(model, levels)
    if coder is not None and coder.level not in levels:
        raise UserError(f"the prior codes level {coder.level}: encode that level (--level {coder.level})")
    chunk = _chunk_samples(model, levels, chunk_seconds)
    version = 3 if coder is not None else 2
    entropy = entropy or coder is not None
    header = StreamHeader(
        model_id=_model_id(model, version),
        sample_rate=model.sample_rate,
        num_samples=src.num_samples,
        levels=tuple(
            LevelInfo(level, model.hops[level], model.config.levels[level].codebook_size) for level in levels
        ),
        chunk_samples=chunk,
        speaker=speaker,
        coding="entropy" if entropy else "packed",
        extra=_source_extra(src, model),
        version=version,
        prior_id=coder.coder_id if coder is not None else None,
        prior_probe=coder.probe if coder is not None else None,
    )
    tables = _coding_tables(model, levels, coder) if entropy else {}
    done = 0
    with StreamWriter(out, header) as writer:
        for group in _groups(_encode_chunks(model, src, levels, chunk), PRIOR_GROUP if coder else 1):
            if entropy:
                for payloads in _entropy_chunks(group, levels, tables, coder, speaker):
                    writer.write_entropy_chunk(payloads)
            else:
                for codes in group:
                    writer.write_chunk(codes)
            done += len(group)
            if progress is not None:
                progress(done, header.num_chunks)
    return header


def encode_file(
    model: VQVAE,
    source: str | Path | BinaryIO,
    target: str | Path | BinaryIO,
    levels: Sequence[int] = (0,),
    entropy: bool = False,
    speaker: str | None = None,
    chunk_seconds: float = 10.0,
    progress: Progress | None = None,
    coder: LevelCoder | None = None,
) -> EncodeResult:
    """Encode an audio file to a ``.vqa`` stream, streaming; a path target is written atomically.
    ``coder`` (a prior's, see :class:`LevelCoder`) entropy-codes its level (stream version 3)."""
    src = AudioSource.read(source, model.sample_rate)
    if isinstance(target, (str, Path)):
        with atomic_write(target) as tmp, open(tmp, "wb") as f:
            header = _encode(model, src, f, levels, entropy, speaker, chunk_seconds, progress, coder)
        return EncodeResult(header, Path(target).stat().st_size)
    start = target.tell() if target.seekable() else 0
    header = _encode(model, src, target, levels, entropy, speaker, chunk_seconds, progress, coder)
    return EncodeResult(header, (target.tell() - start) if target.seekable() else -1)


def compress(
    model: VQVAE,
    wav: np.ndarray | torch.Tensor,
    sample_rate: int,
    level: int | None = None,
    levels: Sequence[int] | None = None,
    entropy: bool = False,
    speaker: str | None = None,
    chunk_seconds: float = 10.0,
    coder: LevelCoder | None = None,
) -> bytes:
    """Audio ``[T]`` or ``[C, T]`` at ``sample_rate`` -> ``.vqa`` bytes (level 0 unless told; ``coder``
    as :func:`encode_file` takes it)."""
    src = AudioSource.of_array(wav, sample_rate, model.sample_rate)
    out = io.BytesIO()
    chosen = list(levels) if levels is not None else [0 if level is None else level]
    _encode(model, src, out, chosen, entropy, speaker, chunk_seconds, None, coder)
    return out.getvalue()


def _check_stream(model: VQVAE, header: StreamHeader) -> None:
    if header.model_id != (ours := _model_id(model, header.version)):
        raise StreamError(
            f"model mismatch: the stream was made with model {header.model_id[:12]}..., "
            f"this model is {ours[:12]}..."
        )
    for info in header.levels:
        if (
            info.level >= model.num_levels
            or model.hops[info.level] != info.hop
            or model.config.levels[info.level].codebook_size != info.codebook_size
        ):
            raise StreamError(f"model mismatch: level {info.level} of the stream does not fit this model")
    if header.sample_rate != model.sample_rate:
        raise StreamError("model mismatch: sample rate differs")


def _chunk_codes(
    reader: StreamReader, index: int, tables: FrequencyTable | None, coder: LevelCoder | None = None
) -> Iterator[np.ndarray]:
    """One level's codes per chunk (entropy payloads decoded; ``coder``: the stream's prior for this
    level, checked by the caller, which decodes ``PRIOR_GROUP`` chunks at a time)."""
    header = reader.header

    def table_codes(c: int, part: bytes) -> np.ndarray:
        if not part or part[0] >= len(_ENTROPY_MODELS):
            raise StreamError(f"chunk {c}: unknown entropy model")
        if tables is None:
            raise StreamError("this checkpoint holds no code frequency tables for this stream's coding")
        return decode_codes(part[1:], header.frames_in_chunk(c, index), tables, _ENTROPY_MODELS[part[0]])

    c = 0
    for group in _groups(reader, PRIOR_GROUP if coder is not None else 1):
        parts = [chunk[index] for chunk in group]
        counts = [header.frames_in_chunk(c + i, index) for i in range(len(parts))]
        if header.coding == "packed":
            yield from (np.asarray(part) for part in parts)  # codes already
        elif coder is not None and any(part and part[0] == PRIOR_MODEL for part in parts):
            rows = [
                bytes(part[1:]) if part and part[0] == PRIOR_MODEL else table_codes(c + i, bytes(part))
                for i, part in enumerate(parts)
            ]
            yield from coder.decode(rows, counts, header.speaker)
        else:
            yield from (table_codes(c + i, bytes(part)) for i, part in enumerate(parts))
        c += len(parts)


def _stream_coder(header: StreamHeader, level: int, coder: LevelCoder | None) -> LevelCoder | None:
    """The coder that decodes ``level`` of a stream: required when the stream was coded with a prior,
    refused when it is another prior."""
    if header.prior_id is None:  # a prior given for a stream that needs none is not used
        return None
    if coder is None:
        raise UserError(
            f"this stream was coded with prior {header.prior_id}...: give that prior (--prior) to decode it"
        )
    if coder.coder_id != header.prior_id:
        raise StreamError(
            f"prior mismatch: the stream was coded with prior {header.prior_id}..., not {coder.coder_id}..."
        )
    if coder.probe != header.prior_probe:
        raise StreamError(
            f"platform mismatch: this machine computes prior {header.prior_id}... differently from the "
            f"one that encoded the stream (probe {coder.probe}, stream {header.prior_probe}; the torch "
            "build or the CPU instruction set differs): decode it on a machine like the encoder's"
        )
    return coder if coder.level == level else None


def _decode(
    model: VQVAE,
    reader: StreamReader,
    level: int | None,
    speaker: Speaker,
    progress: Progress | None,
    coder: LevelCoder | None = None,
) -> tuple[StreamHeader, Iterator[np.ndarray]]:
    """The stream's header and its audio blocks at the model's rate (not clamped)."""
    model.eval()
    header = reader.header
    _check_stream(model, header)
    stored = [info.level for info in header.levels]
    if level is None:
        level = stored[0]
    if level not in stored:
        raise UserError(
            f"level {level} is not in this stream (it holds levels {', '.join(map(str, stored))})"
        )
    index = stored.index(level)
    who = speaker if speaker is not None else header.speaker
    if who is not None and not isinstance(who, torch.Tensor):
        model.speaker_index(who)  # fail early on unknown names
    level_coder = _stream_coder(header, level, coder)
    tables = None
    if header.coding == "entropy" and (level_coder is None or _has_table(model, level)):
        tables = _tables(model, [level])[level]

    def counted() -> Iterator[np.ndarray]:
        for c, x in enumerate(_chunk_codes(reader, index, tables, level_coder)):
            yield x
            if progress is not None:
                progress(c + 1, header.num_chunks)

    return header, _decode_chunks(model, counted(), level, header.num_samples, header.chunk_samples, who)


def _output_rate(header: StreamHeader, sample_rate: int | None) -> tuple[int, int]:
    """(rate, length) of the decoded audio: the model's, the original file's (``0``) or ``sample_rate``."""
    if sample_rate is None:
        return header.sample_rate, header.num_samples
    src_rate = int(header.extra.get("source_sample_rate", header.sample_rate))
    rate = src_rate if sample_rate == 0 else sample_rate
    if rate == src_rate and "source_num_samples" in header.extra:
        return rate, int(header.extra["source_num_samples"])
    return rate, int(round(header.num_samples * rate / header.sample_rate))


def decode_file(
    model: VQVAE,
    source: str | Path | BinaryIO,
    target: str | Path | BinaryIO,
    level: int | None = None,
    speaker: Speaker = None,
    sample_rate: int | None = None,
    progress: Progress | None = None,
    coder: LevelCoder | None = None,
) -> StreamHeader:
    """Decode a ``.vqa`` stream to audio (wav/flac/ogg by extension; wav for file objects), streaming.

    ``sample_rate`` resamples the output (``0`` = the original file's rate); a path target is written
    atomically, and the output never exceeds [-1, 1]. A stream coded with a prior needs its ``coder``.
    """
    if isinstance(target, (str, Path)):
        output_format(Path(target))  # an unwritable format fails before any work
    if isinstance(source, (str, Path)):
        if not Path(source).is_file():
            raise UserError(f"{source}: no such file")
        f: BinaryIO = open(source, "rb")  # noqa: SIM115 - closed below
    else:
        f = source
    try:
        header, blocks = _decode(model, StreamReader(f), level, speaker, progress, coder)
        rate, length = _output_rate(header, sample_rate)
        write_blocks(_clamped(resample_blocks(blocks, header.sample_rate, rate, length)), target, rate)
        return header
    finally:
        if isinstance(source, (str, Path)):
            f.close()


def decompress(
    model: VQVAE,
    data: bytes,
    level: int | None = None,
    speaker: str | int | None = None,
    coder: LevelCoder | None = None,
) -> tuple[np.ndarray, int]:
    """``.vqa`` bytes -> (audio ``[T]`` float32 in [-1, 1], sample rate) at the model rate."""
    header, blocks = _decode(model, StreamReader(io.BytesIO(data)), level, speaker, None, coder)
    return _joined(_clamped(blocks)), header.sample_rate
