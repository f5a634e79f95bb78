"""Reading, inspecting and (atomically) writing audio files.

Everything in vqaudio works on float32 mono waveforms ``[T]``. :func:`read_audio` turns any file that
libsndfile can decode (WAV, FLAC, OGG/Vorbis, MP3, ...) into that form, downmixing and resampling
(soxr, "HQ") on the way; every way a file can be unusable ends in one-line :class:`AudioError` that
names the file, never in a raw libsndfile traceback. :func:`write_audio` never leaves a half-written
file behind: it writes to a temporary file in the target folder and renames it into place
(:func:`atomic_write`, which checkpoints reuse).

For audio of any length, :class:`AudioSource` reads a file (or splits an array) into mono float32
blocks at a target rate, stream-resampling as it goes, and :func:`write_blocks` writes blocks as they
come: the codec's chunked coding reads and writes through them in bounded memory.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import soundfile as sf
import soxr

from vqaudio.errors import AudioError, UserError

if TYPE_CHECKING:
    import torch

__all__ = [
    "AUDIO_EXTENSIONS",
    "WRITE_EXTENSIONS",
    "AudioInfo",
    "AudioSource",
    "atomic_write",
    "atomic_write_text",
    "audio_info",
    "output_format",
    "read_audio",
    "resample_blocks",
    "write_audio",
    "write_blocks",
]

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3")
"""File extensions (lower case) that corpus scanners treat as audio."""

# Extension -> (libsndfile major format, default subtype) for writing.
_WRITE_FORMATS: dict[str, tuple[str, str]] = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
}
WRITE_EXTENSIONS: tuple[str, ...] = tuple(_WRITE_FORMATS)
"""File extensions :func:`write_audio` can write."""

# Everything soundfile/libsndfile raise for a file it cannot decode. LibsndfileError is a
# RuntimeError; MemoryError covers corrupt headers announcing absurd frame counts.
_DECODE_ERRORS = (sf.SoundFileError, RuntimeError, ValueError, TypeError, OSError, EOFError, MemoryError)

_BLOCK = 1 << 16  # frames an AudioSource reads (and resamples) at a time

# The process umask, read once, so atomically written files get normal permissions (mkstemp uses 0600).
_UMASK = os.umask(0)
os.umask(_UMASK)


@dataclass(frozen=True)
class AudioInfo:
    """Header information of an audio file (no samples decoded)."""

    sample_rate: int
    num_frames: int
    channels: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.num_frames / self.sample_rate


def _check_file(path: str | os.PathLike[str]) -> Path:
    """Reject paths that cannot be an audio file before libsndfile sees them."""
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{path}: file does not exist")
    if p.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if p.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty (0 bytes)")
    return p


def _reason(err: BaseException) -> str:
    """libsndfile's message on one line, without the redundant "Error opening '<path>':" prefix."""
    msg = " ".join(str(err).split()) or type(err).__name__
    if msg.startswith("Error opening"):
        msg = msg.split(":", 1)[-1].strip() or msg
    return msg


def audio_info(path: str | os.PathLike[str]) -> AudioInfo:
    """Read an audio file's header (sample rate, length, channels) without decoding it.

    Raises:
        AudioError: missing file, directory, empty or unreadable file, or a file with 0 frames.
    """
    p = _check_file(path)
    try:
        info = sf.info(str(p))
    except _DECODE_ERRORS as err:
        raise AudioError(f"{path}: not a readable audio file ({_reason(err)})") from err
    if info.frames <= 0:
        raise AudioError(f"{path}: audio file contains no samples")
    return AudioInfo(
        sample_rate=int(info.samplerate), num_frames=int(info.frames), channels=int(info.channels)
    )


def read_audio(path: str | os.PathLike[str], sample_rate: int | None = None) -> np.ndarray:
    """Read an audio file as a float32 mono waveform.

    Args:
        path: any file libsndfile decodes (wav/flac/ogg/mp3...), any sample rate and channel count.
        sample_rate: resample (soxr, quality "HQ") to this rate when given and different from the file's.

    Returns:
        ``[T]`` float32 in the file's scale (``[-1, 1]`` for integer PCM), channels averaged.

    Raises:
        AudioError: missing, empty, unreadable, truncated beyond decoding, 0 samples (also after
            resampling a file of a few samples), or NaN/Inf samples.
    """
    if sample_rate is not None and sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    p = _check_file(path)
    try:
        handle = sf.SoundFile(str(p))
    except _DECODE_ERRORS as err:
        raise AudioError(f"{path}: not a readable audio file ({_reason(err)})") from err
    with handle:
        file_rate = handle.samplerate
        try:
            data = handle.read(dtype="float32", always_2d=True)
        except _DECODE_ERRORS as err:
            raise AudioError(f"{path}: corrupt or truncated audio data ({_reason(err)})") from err
    if data.shape[0] == 0:
        raise AudioError(f"{path}: audio file contains no samples")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    wav = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    if sample_rate is not None and sample_rate != file_rate:
        wav = soxr.resample(np.ascontiguousarray(wav), file_rate, sample_rate, quality="HQ")
        if wav.shape[0] == 0:
            raise AudioError(
                f"{path}: too short to resample ({data.shape[0]} samples at {file_rate} Hz "
                f"give none at {sample_rate} Hz)"
            )
    return np.ascontiguousarray(wav, dtype=np.float32)


@contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Write a file atomically: yield a temporary path next to ``path``, rename it over ``path`` on success.

    The temporary file lives in the same folder (so the final :func:`os.replace` is atomic) and has the
    same extension (so format sniffing by extension still works). On any exception it is deleted and
    an existing ``path`` is left untouched.

    Example::

        with atomic_write("ckpt.pt") as tmp:
            torch.save(state, tmp)

    Raises:
        UserError: the target folder does not exist or is not writable.
    """
    target = Path(path)
    folder = target.parent
    if not folder.is_dir():
        raise UserError(f"{path}: output folder {folder} does not exist")
    try:
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}")
    except OSError as err:
        raise UserError(f"{path}: cannot create a file in {folder} ({err.strerror or err})") from err
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        mode = target.stat().st_mode & 0o7777 if target.is_file() else 0o666 & ~_UMASK
        os.chmod(tmp, mode)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; leave the file and its mtime alone if it matches.

    Re-running a pipeline then rewrites nothing that did not change, so mtime-based "up to date" checks hold.
    """
    target = Path(path)
    try:
        if target.read_text(encoding="utf-8") == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    with atomic_write(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _to_numpy(wav: np.ndarray | torch.Tensor) -> np.ndarray:
    """A numpy copy of ``wav`` (numpy array or torch tensor on any device)."""
    if hasattr(wav, "detach"):
        wav = wav.detach().cpu().float().numpy()
    return np.asarray(wav, dtype=np.float32)


def write_audio(
    path: str | os.PathLike[str],
    wav: np.ndarray | torch.Tensor,
    sample_rate: int,
    *,
    subtype: str | None = None,
) -> None:
    """Write a mono waveform, atomically, in the format named by the extension.

    Args:
        path: ``.wav`` (PCM_16 by default), ``.flac`` (PCM_16) or ``.ogg`` (VORBIS).
        wav: ``[T]`` or ``[1, T]`` float waveform, numpy or torch. Values are clamped to ``[-1, 1]``;
            a warning is logged when that changes anything.
        sample_rate: samples per second.
        subtype: libsndfile subtype overriding the default, e.g. ``"PCM_24"`` or ``"FLOAT"``.

    Raises:
        AudioError: unsupported extension, missing output folder, or libsndfile failing to write.
        ValueError: a waveform of the wrong shape or with NaN/Inf values (a bug in the caller).
    """
    ext = Path(path).suffix.lower()
    if ext not in _WRITE_FORMATS:
        supported = ", ".join(_WRITE_FORMATS)
        raise AudioError(f"{path}: cannot write {ext or 'files without extension'}; use one of {supported}")
    if sample_rate <= 0:
        raise ValueError(f"{path}: sample_rate must be positive, got {sample_rate}")
    data = _to_numpy(wav)
    if data.ndim == 2 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 1:
        raise ValueError(f"{path}: expected a mono waveform [T] or [1, T], got shape {tuple(data.shape)}")
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: waveform contains NaN or infinite values")
    clipped = int(np.count_nonzero(np.abs(data) > 1.0))
    if clipped:
        peak = float(np.abs(data).max())
        logger.warning("%s: clipped %d of %d samples to [-1, 1] (peak %.3f)", path, clipped, data.size, peak)
        data = np.clip(data, -1.0, 1.0)
    major, default_subtype = _WRITE_FORMATS[ext]
    try:
        with atomic_write(path) as tmp:
            sf.write(str(tmp), data, sample_rate, subtype=subtype or default_subtype, format=major)
    except UserError as err:
        raise AudioError(str(err)) from err
    except _DECODE_ERRORS as err:
        raise AudioError(f"{path}: cannot write audio ({_reason(err)})") from err


# --------------------------------------------------------------------------- streaming, in blocks


@dataclass
class AudioSource:
    """Mono float32 audio at a target rate as blocks, read lazily (bounded memory), and what the
    original was: its rate, length and channels (a ``.vqa`` header records them, so that decoding can
    restore the rate and length). Make one with :meth:`read` (a file) or :meth:`of_array`."""

    blocks: Iterator[np.ndarray]  # float32 [n] each, at the target rate, num_samples in all
    num_samples: int  # at the target rate
    sample_rate: int  # of the original
    frames: int  # of the original
    channels: int

    @classmethod
    def read(cls, source: str | Path | BinaryIO, rate: int) -> AudioSource:
        """An audio file or file object (anything libsndfile reads), read block by block, at ``rate``.

        Raises:
            AudioError: missing, empty or unreadable, no samples, or too short for ``rate``; while
                reading the blocks: corrupt or truncated data, NaN or infinite samples.
        """
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

        def blocks() -> Iterator[np.ndarray]:
            read = 0
            with f:
                while True:
                    try:
                        x = f.read(_BLOCK, dtype="float32", always_2d=True)
                    except (sf.LibsndfileError, RuntimeError) as err:
                        raise AudioError(f"{name}: corrupt or truncated audio ({err})") from None
                    read += x.shape[0]
                    if not np.isfinite(x).all():
                        raise AudioError(f"{name}: contains NaN or infinite samples")
                    yield _mono(x)
                    if x.shape[0] < _BLOCK or read >= f.frames:
                        return

        try:
            return _at_rate(name, blocks(), f.samplerate, f.frames, f.channels, rate)
        except AudioError:
            f.close()
            raise

    @classmethod
    def of_array(cls, wav: np.ndarray | torch.Tensor, sample_rate: int, rate: int) -> AudioSource:
        """Audio ``[T]`` or ``[C, T]`` (numpy or torch) at ``sample_rate``, at ``rate``: downmixed and
        resampled in the blocks a file is read in, so an array codes exactly as its float WAV does."""
        x = _to_numpy(wav)
        if x.ndim not in (1, 2):
            raise ValueError(f"expected audio [T] or [C, T], got shape {tuple(x.shape)}")
        frames = x.reshape(-1, 1) if x.ndim == 1 else x.T  # [T, C], as a file reads
        if not np.isfinite(frames).all():
            raise AudioError("<array>: contains NaN or infinite samples")
        blocks = (_mono(frames[i : i + _BLOCK]) for i in range(0, frames.shape[0], _BLOCK))
        return _at_rate("<array>", blocks, sample_rate, frames.shape[0], frames.shape[1], rate)


def _mono(x: np.ndarray) -> np.ndarray:
    """Frames ``[n, C]`` -> ``[n]`` float32, channels averaged."""
    return np.ascontiguousarray(x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0])


def _at_rate(
    name: object, blocks: Iterator[np.ndarray], sr: int, frames: int, channels: int, rate: int
) -> AudioSource:
    """Mono blocks of ``frames`` samples at ``sr`` -> an :class:`AudioSource` at ``rate``."""
    if frames <= 0:
        raise AudioError(f"{name}: no audio samples")
    n_out = int(round(frames * rate / sr)) if sr != rate else frames
    if n_out < 1:
        raise AudioError(f"{name}: too short to resample to {rate} Hz")
    return AudioSource(resample_blocks(blocks, sr, rate, n_out), n_out, sr, frames, channels)


def resample_blocks(
    blocks: Iterator[np.ndarray], sr_in: int, sr_out: int, length: int
) -> Iterator[np.ndarray]:
    """Mono float32 blocks at ``sr_in`` -> blocks at ``sr_out`` (soxr "HQ", streaming), trimmed or
    zero-padded to exactly ``length`` samples in all."""
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


def output_format(path: Path) -> dict[str, str]:
    """soundfile's ``format`` and ``subtype`` for writing ``path``, by its extension.

    Raises:
        UserError: an extension :func:`write_audio` cannot write.
    """
    ext = path.suffix.lower()
    if ext not in _WRITE_FORMATS:
        supported = ", ".join(_WRITE_FORMATS)
        raise UserError(f"{path}: unsupported output format '{ext or '(none)'}' (use {supported})")
    fmt, subtype = _WRITE_FORMATS[ext]
    return {"format": fmt, "subtype": subtype}


def write_blocks(blocks: Iterable[np.ndarray], target: str | Path | BinaryIO, sample_rate: int) -> None:
    """Write mono float blocks ``[n]`` as they come: to a path (wav/flac/ogg by its extension, 16-bit or
    Vorbis, atomically), or to a file object as 16-bit WAV (written whole at the end: WAV states its
    length up front, and the object may be a pipe)."""
    if isinstance(target, (str, Path)):
        fmt = output_format(Path(target))
        with atomic_write(target) as tmp, sf.SoundFile(tmp, "w", sample_rate, 1, **fmt) as out:
            for b in blocks:
                out.write(b)
        return
    data = io.BytesIO()
    with sf.SoundFile(data, "w", sample_rate, 1, format="WAV", subtype="PCM_16") as out:
        for b in blocks:
            out.write(b)
    target.write(data.getvalue())
