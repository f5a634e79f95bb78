"""Audio <-> ``.vqa`` code streams with a model, in chunks, in bounded memory.

Encoding reads the input with soundfile block by block, downmixes, resamples with a streaming soxr
resampler, and encodes ``chunk_samples`` at a time with enough audio on both sides to cover the
encoder's receptive field, so the codes equal those of a whole-file encode (up to float rounding;
see ``tests/test_compress.py``) while memory stays bounded for any file length.  Decoding reads one
chunk of codes at a time and decodes it with neighbouring frames as context, likewise.

Python API: :func:`compress` / :func:`decompress` (in memory), :func:`encode_file` /
:func:`decode_file` (files, streaming).
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr
import torch

from vqaudio.audio import atomic_write
from vqaudio.checkpoint import weights_sha256
from vqaudio.codec.bitstream import LevelInfo, StreamError, StreamHeader, StreamReader, StreamWriter
from vqaudio.codec.entropy import FrequencyTable, decode_codes, encode_codes
from vqaudio.errors import AudioError, UserError
from vqaudio.models import VQVAE, LevelModel

__all__ = [
    "EncodeResult",
    "compress",
    "decompress",
    "encode_file",
    "decode_file",
    "encoder_context",
    "model_sha256",
    "output_format",
]

log = logging.getLogger(__name__)

_ENTROPY_MODELS = ("order0", "order1")  # payload byte 0 of each level in an entropy-coded chunk
Progress = Callable[[int, int], None]


@dataclass
class EncodeResult:
    header: StreamHeader
    num_bytes: int


def model_sha256(model: VQVAE) -> str:
    """The SHA-256 a stream records: from the checkpoint when loaded, else computed from the weights."""
    meta = getattr(model, "checkpoint", None)
    if meta is not None:
        return str(meta.weights_sha256)
    return weights_sha256(model.state_dict())


# --------------------------------------------------------------------------- reading audio


@dataclass
class _Source:
    blocks: Iterator[np.ndarray]  # float32 mono at the model rate
    num_samples: int  # at the model rate
    sample_rate: int  # of the file
    frames: int  # of the file
    channels: int


def _open_audio(source: str | Path | BinaryIO, sample_rate: int, block: int = 1 << 16) -> _Source:
    name = source if isinstance(source, (str, Path)) else "<stdin>"
    if isinstance(source, (str, Path)):
        p = Path(source)
        if not p.is_file():
            raise AudioError(f"{p}: no such file")
        if p.stat().st_size == 0:
            raise AudioError(f"{p}: empty file (0 bytes)")
    try:
        f = sf.SoundFile(source)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(f"{name}: not a readable audio file ({err})") from None
    if f.frames <= 0:
        f.close()
        raise AudioError(f"{name}: no audio samples")
    n_out = int(round(f.frames * sample_rate / f.samplerate)) if f.samplerate != sample_rate else f.frames
    if n_out < 1:
        f.close()
        raise AudioError(f"{name}: too short to resample to {sample_rate} Hz")

    def blocks() -> Iterator[np.ndarray]:
        rs = (
            soxr.ResampleStream(f.samplerate, sample_rate, 1, dtype="float32", quality="HQ")
            if f.samplerate != sample_rate
            else None
        )
        read = 0
        with f:
            while True:
                try:
                    x = f.read(block, dtype="float32", always_2d=True)
                except (sf.LibsndfileError, RuntimeError) as err:
                    raise AudioError(f"{name}: corrupt or truncated audio ({err})") from None
                last = x.shape[0] < block or read + x.shape[0] >= f.frames
                read += x.shape[0]
                if not np.isfinite(x).all():
                    raise AudioError(f"{name}: contains NaN or infinite samples")
                mono = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
                out = rs.resample_chunk(mono, last=last) if rs is not None else mono
                if out.size:
                    yield np.ascontiguousarray(out, dtype=np.float32)
                if last:
                    return

    return _Source(blocks(), n_out, f.samplerate, f.frames, f.channels)


# --------------------------------------------------------------------------- encoding


def _chunk_samples(model: VQVAE, levels: Sequence[int], chunk_seconds: float) -> int:
    lcm = math.lcm(*(model.input_multiple(lv) for lv in levels))
    return max(1, round(chunk_seconds * model.sample_rate / lcm)) * lcm


def encoder_context(model: VQVAE, level: int) -> int:
    """Samples of audio a chunk needs on each side for ``level``'s codes to equal a whole-file encode: the
    encoder's receptive field (:meth:`VQVAE.receptive_field`), in whole multiples of the level's input
    padding unit."""
    unit = model.input_multiple(level)
    return -(-max(model.receptive_field(level).encoder) // unit) * unit


@torch.no_grad()
def _encode_chunks(
    model: VQVAE, src: _Source, levels: Sequence[int], chunk: int, device: torch.device
) -> Iterator[list[np.ndarray]]:
    """Codes of each chunk (one array per level), computed with receptive-field context."""
    n = src.num_samples
    ctx = {lv: encoder_context(model, lv) for lv in levels}
    keep = max(ctx.values())
    buf = np.zeros(0, dtype=np.float32)
    buf_start = 0  # absolute sample index of buf[0]
    exhausted = False
    for start in range(0, n, chunk):
        end = min(start + chunk, n)
        while not exhausted and buf_start + buf.size < min(n, end + keep):
            try:
                buf = np.concatenate([buf, next(src.blocks)])
            except StopIteration:
                exhausted = True
        if buf_start + buf.size < n and exhausted:
            buf = np.concatenate([buf, np.zeros(n - buf_start - buf.size, np.float32)])  # resampler rounding
        out = []
        for lv in levels:
            level: LevelModel = model.levels[lv]  # type: ignore[assignment]
            lo, hi = max(0, start - ctx[lv]), min(n, end + ctx[lv])
            seg = torch.from_numpy(buf[lo - buf_start : hi - buf_start]).to(device)[None, None]
            codes = model.encode(seg, level=lv)[0].as_subclass(torch.Tensor)
            first = (start - lo) // level.hop
            out.append(codes[first : first + math.ceil((end - start) / level.hop)].cpu().numpy())
        yield out
        drop = max(0, end - keep - buf_start)
        buf, buf_start = buf[drop:], buf_start + drop


def _entropy_payload(codes: np.ndarray, table: FrequencyTable) -> bytes:
    """Smallest of the two models, tagged with its index in the first byte."""
    best = b""
    for i, name in enumerate(_ENTROPY_MODELS):
        data = bytes([i]) + encode_codes(codes, table, name)
        if not best or len(data) < len(best):
            best = data
    return best


def _tables(model: VQVAE, levels: Sequence[int]) -> dict[int, FrequencyTable]:
    meta = getattr(model, "checkpoint", None)
    stored = getattr(meta, "code_tables", {}) if meta is not None else {}
    missing = [lv for lv in levels if lv not in stored]
    if missing:
        raise UserError(
            "this checkpoint holds no code frequency tables for entropy coding; "
            "re-save it with this version of vqaudio, or encode without --entropy"
        )
    return {lv: FrequencyTable.from_bytes(stored[lv]) for lv in levels}


@torch.no_grad()
def _encode(
    model: VQVAE,
    src: _Source,
    out: BinaryIO,
    levels: Sequence[int],
    entropy: bool,
    speaker: str | None,
    chunk_seconds: float,
    progress: Progress | None,
) -> StreamHeader:
    model.eval()
    device = next(model.parameters()).device
    if speaker is not None:
        model.speaker_index(speaker)  # fail early on unknown names
    for lv in levels:
        model.check_level(lv)  # a UserError naming the valid levels
    levels = sorted({lv % model.num_levels for lv in levels})
    if not levels:
        raise UserError("no level to encode")
    chunk = _chunk_samples(model, levels, chunk_seconds)
    header = StreamHeader(
        model_sha256=model_sha256(model),
        sample_rate=model.sample_rate,
        num_samples=src.num_samples,
        levels=tuple(LevelInfo(lv, model.hops[lv], model.config.levels[lv].codebook_size) for lv in levels),
        chunk_samples=chunk,
        speaker=speaker,
        coding="entropy" if entropy else "packed",
        extra={
            "source_sample_rate": src.sample_rate,
            "source_num_samples": src.frames,
            "source_channels": src.channels,
        },
    )
    tables = _tables(model, levels) if entropy else {}
    with StreamWriter(out, header) as writer:
        for c, codes in enumerate(_encode_chunks(model, src, levels, chunk, device)):
            if entropy:
                writer.write_entropy_chunk(
                    [_entropy_payload(x, tables[lv]) for x, lv in zip(codes, levels, strict=True)]
                )
            else:
                writer.write_chunk(codes)
            if progress is not None:
                progress(c + 1, header.num_chunks)
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
) -> EncodeResult:
    """Encode an audio file to a ``.vqa`` stream, streaming; a path target is written atomically."""
    src = _open_audio(source, model.sample_rate)
    if isinstance(target, (str, Path)):
        with atomic_write(target) as tmp, open(tmp, "wb") as f:
            header = _encode(model, src, f, levels, entropy, speaker, chunk_seconds, progress)
        return EncodeResult(header, Path(target).stat().st_size)
    start = target.tell() if target.seekable() else 0
    header = _encode(model, src, target, levels, entropy, speaker, chunk_seconds, progress)
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
) -> bytes:
    """Audio ``[T]`` or ``[C, T]`` at ``sample_rate`` -> ``.vqa`` bytes (level 0 unless told)."""
    x = wav.detach().cpu().float().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav, np.float32)
    x = x.T if x.ndim == 2 else x.reshape(-1, 1) if x.ndim == 1 else x
    if x.ndim != 2:
        raise ValueError(f"expected audio [T] or [C, T], got shape {tuple(np.shape(wav))}")
    buf = io.BytesIO()
    sf.write(buf, x, sample_rate, format="WAV", subtype="FLOAT")
    buf.seek(0)
    out = io.BytesIO()
    chosen = list(levels) if levels is not None else [0 if level is None else level]
    encode_file(model, buf, out, chosen, entropy, speaker, chunk_seconds)
    return out.getvalue()


# --------------------------------------------------------------------------- decoding


def _check_stream(model: VQVAE, header: StreamHeader) -> None:
    sha = model_sha256(model)
    if header.model_sha256 != sha:
        raise StreamError(
            f"model mismatch: the stream was made with model {header.model_sha256[:12]}..., "
            f"this model is {sha[:12]}..."
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


def _chunk_codes(reader: StreamReader, index: int, tables: FrequencyTable | None) -> Iterator[np.ndarray]:
    """One level's codes per chunk (entropy payloads decoded)."""
    header = reader.header
    for c, parts in enumerate(reader):
        part = parts[index]
        if isinstance(part, (bytes, bytearray)):
            if not part or part[0] >= len(_ENTROPY_MODELS):
                raise StreamError(f"chunk {c}: unknown entropy model")
            assert tables is not None
            yield decode_codes(part[1:], header.frames_in_chunk(c, index), tables, _ENTROPY_MODELS[part[0]])
        else:
            yield part


@torch.no_grad()
def _decode_chunks(
    model: VQVAE,
    codes: Iterator[np.ndarray],
    level: int,
    header: StreamHeader,
    speaker: int | torch.Tensor,
    device: torch.device,
) -> Iterator[np.ndarray]:
    """Audio of each chunk, decoded with the decoder's receptive field of frames from its neighbours."""
    lv: LevelModel = model.levels[level]  # type: ignore[assignment]
    ctx = max(model.receptive_field(level).decoder)
    frames_per_chunk = header.chunk_samples // lv.hop
    total = math.ceil(header.num_samples / lv.hop)
    buf = np.zeros(0, dtype=np.int64)
    buf_start = 0
    exhausted = False
    cond = lv.condition(model.speaker_vector(speaker, 1, device))
    for f0 in range(0, total, frames_per_chunk):
        f1 = min(f0 + frames_per_chunk, total)
        while not exhausted and buf_start + buf.size < min(total, f1 + ctx):
            try:
                buf = np.concatenate([buf, next(codes)])
            except StopIteration:
                exhausted = True
        lo, hi = max(0, f0 - ctx), min(total, f1 + ctx)
        x = torch.from_numpy(buf[lo - buf_start : hi - buf_start]).to(device)[None]
        wav = lv.decoder(lv.quantizer.dequantize(x), cond)[0, 0]
        a = (f0 - lo) * lv.hop
        end = min(f1 * lv.hop, header.num_samples)
        yield wav[a : a + end - f0 * lv.hop].float().cpu().numpy()
        drop = max(0, f1 - ctx - buf_start)
        buf, buf_start = buf[drop:], buf_start + drop


@torch.no_grad()
def _decode(
    model: VQVAE,
    reader: StreamReader,
    level: int | None,
    speaker: str | int | torch.Tensor | None,
    progress: Progress | None,
) -> tuple[StreamHeader, Iterator[np.ndarray]]:
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
    spk: int | torch.Tensor = (
        who if isinstance(who, torch.Tensor) else (model.speaker_index(who) if who is not None else 0)
    )
    tables = _tables(model, [level])[level] if header.coding == "entropy" else None
    device = next(model.parameters()).device

    def counted() -> Iterator[np.ndarray]:
        for c, x in enumerate(_chunk_codes(reader, index, tables)):
            yield x
            if progress is not None:
                progress(c + 1, header.num_chunks)

    return header, _decode_chunks(model, counted(), level, header, spk, device)


def _clamped(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    clipped = 0
    for b in blocks:
        clipped += int(np.count_nonzero(np.abs(b) > 1.0))
        yield np.clip(b, -1.0, 1.0)
    if clipped:
        log.warning("%d samples were outside [-1, 1] and were clamped", clipped)


def _resampled(blocks: Iterator[np.ndarray], sr_in: int, sr_out: int, length: int) -> Iterator[np.ndarray]:
    """Stream-resample and trim / zero-pad to exactly ``length`` samples."""
    rs = soxr.ResampleStream(sr_in, sr_out, 1, dtype="float32", quality="HQ") if sr_in != sr_out else None
    written = 0
    pending = next(blocks, None)
    while pending is not None:
        nxt = next(blocks, None)
        out = rs.resample_chunk(pending, last=nxt is None) if rs is not None else pending
        out = out[: max(0, length - written)]
        written += out.size
        if out.size:
            yield out
        pending = nxt
    if written < length:
        yield np.zeros(length - written, dtype=np.float32)


def decode_file(
    model: VQVAE,
    source: str | Path | BinaryIO,
    target: str | Path | BinaryIO,
    level: int | None = None,
    speaker: str | int | torch.Tensor | None = None,
    sample_rate: int | None = None,
    progress: Progress | None = None,
) -> StreamHeader:
    """Decode a ``.vqa`` stream to audio (wav/flac/ogg by extension; wav for file objects), streaming.

    ``sample_rate`` resamples the output (``0`` = the original file's rate); a path target is written
    atomically, and the output never exceeds [-1, 1].
    """
    fmt = output_format(Path(target)) if isinstance(target, (str, Path)) else {}
    if isinstance(source, (str, Path)):
        if not Path(source).is_file():
            raise UserError(f"{source}: no such file")
        f: BinaryIO = open(source, "rb")  # noqa: SIM115 - closed below
    else:
        f = source
    try:
        reader = StreamReader(f)
        header, blocks = _decode(model, reader, level, speaker, progress)
        sr_out, length = header.sample_rate, header.num_samples
        if sample_rate is not None:
            src_rate = int(header.extra.get("source_sample_rate", header.sample_rate))
            sr_out = src_rate if sample_rate == 0 else sample_rate
            if sr_out == src_rate and "source_num_samples" in header.extra:
                length = int(header.extra["source_num_samples"])
            else:
                length = int(round(header.num_samples * sr_out / header.sample_rate))
        audio = _clamped(_resampled(blocks, header.sample_rate, sr_out, length))
        if isinstance(target, (str, Path)):
            with atomic_write(target) as tmp, sf.SoundFile(tmp, "w", sr_out, 1, **fmt) as out:
                for b in audio:
                    out.write(b)
        else:
            data = io.BytesIO()
            with sf.SoundFile(data, "w", sr_out, 1, format="WAV", subtype="PCM_16") as out:
                for b in audio:
                    out.write(b)
            target.write(data.getvalue())
        return header
    finally:
        if isinstance(source, (str, Path)):
            f.close()


def output_format(path: Path) -> dict[str, str]:
    ext = path.suffix.lower()
    formats = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS")}
    if ext not in formats:
        raise UserError(f"{path}: unsupported output format '{ext or '(none)'}' (use .wav, .flac or .ogg)")
    fmt, subtype = formats[ext]
    return {"format": fmt, "subtype": subtype}


def decompress(
    model: VQVAE, data: bytes, level: int | None = None, speaker: str | int | None = None
) -> tuple[np.ndarray, int]:
    """``.vqa`` bytes -> (audio ``[T]`` float32 in [-1, 1], sample rate) at the model rate."""
    header, blocks = _decode(model, StreamReader(io.BytesIO(data)), level, speaker, None)
    parts = list(_clamped(blocks))
    wav = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    return wav.astype(np.float32, copy=False), header.sample_rate
