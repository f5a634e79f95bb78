"""Classical codec baselines run on the same audio: Codec2 (``c2enc``/``c2dec``) and Opus
(``opusenc``/``opusdec``), from the Debian packages ``codec2`` and ``opus-tools``.

Each round trip returns the decoded audio at the input's rate and length, and the *payload* bits
(container bytes excluded: Codec2's 7-byte ``.c2`` header; Ogg pages and Opus's two header packets), so
bitrates compare fairly with a ``.vqa`` stream's payload.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from vqaudio.errors import UserError

__all__ = [
    "Baseline",
    "BASELINES",
    "available_baselines",
    "codec2_roundtrip",
    "opus_roundtrip",
    "ogg_payload_bytes",
]

CODEC2_MODES = (3200, 2400, 1600, 1400, 1300, 1200, 700)


@dataclass(frozen=True)
class Baseline:
    name: str
    codec: str  # "codec2" or "opus"
    rate: int  # codec2 mode in bit/s, or opus target in bit/s

    def run(self, wav: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
        """Round trip, with the codec's delay removed (so time-aligned metrics like STOI are fair)."""
        if self.codec == "codec2":
            y, bits = codec2_roundtrip(wav, sample_rate, self.rate)
        else:
            y, bits = opus_roundtrip(wav, sample_rate, self.rate)
        return align(y, wav, max_lag=sample_rate // 20), bits


BASELINES = (
    Baseline("Codec2 3200", "codec2", 3200),
    Baseline("Codec2 2400", "codec2", 2400),
    Baseline("Codec2 1200", "codec2", 1200),
    Baseline("Opus 6 kbit/s", "opus", 6000),
)


def align(estimate: np.ndarray, reference: np.ndarray, max_lag: int) -> np.ndarray:
    """Shift ``estimate`` by the delay (0..``max_lag`` samples) that best matches ``reference``."""
    n = min(estimate.size, reference.size)
    if n < 2 or max_lag < 1:
        return estimate
    spec = np.fft.rfft(estimate[:n], 2 * n) * np.conj(np.fft.rfft(reference[:n], 2 * n))
    corr = np.fft.irfft(spec, 2 * n)[: max_lag + 1]
    lag = int(np.argmax(corr))
    if lag == 0:
        return estimate
    return np.concatenate([estimate[lag:], np.zeros(lag, dtype=estimate.dtype)])


def available_baselines() -> list[Baseline]:
    """The baselines whose command-line tools are installed."""
    have_c2 = shutil.which("c2enc") and shutil.which("c2dec")
    have_opus = shutil.which("opusenc") and shutil.which("opusdec")
    return [b for b in BASELINES if (have_c2 if b.codec == "codec2" else have_opus)]


def _run(cmd: list[str]) -> None:
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    except FileNotFoundError:
        raise UserError(
            f"{cmd[0]} not found: install codec2 / opus-tools (apt-get install codec2 opus-tools)"
        ) from None
    except subprocess.CalledProcessError as err:
        raise UserError(f"{cmd[0]} failed: {err.stderr.decode(errors='replace').strip()[:200]}") from None


def _fit(y: np.ndarray, sr_in: int, sr_out: int, length: int) -> np.ndarray:
    y = soxr.resample(y, sr_in, sr_out, quality="HQ") if sr_in != sr_out else y
    out = np.zeros(length, dtype=np.float32)
    out[: min(length, y.size)] = y[:length]
    return out


def codec2_roundtrip(wav: np.ndarray, sample_rate: int, mode: int = 2400) -> tuple[np.ndarray, int]:
    """Codec2 at ``mode`` bit/s (8 kHz internally): (decoded audio like ``wav``, payload bits)."""
    if mode not in CODEC2_MODES:
        raise ValueError(f"codec2 mode must be one of {CODEC2_MODES}")
    x8 = soxr.resample(wav.astype(np.float32), sample_rate, 8000, quality="HQ")
    with tempfile.TemporaryDirectory(prefix="vqaudio-c2-") as d:
        raw, bits, dec = Path(d) / "in.raw", Path(d) / "out.c2", Path(d) / "out.raw"
        (np.clip(x8, -1, 1) * 32767).astype("<i2").tofile(raw)
        _run(["c2enc", str(mode), str(raw), str(bits)])
        _run(["c2dec", str(mode), str(bits), str(dec)])
        data = bits.read_bytes()
        payload = len(data) - 7 if data[:3] == b"\xc0\xde\xc2" else len(data)
        y = np.fromfile(dec, dtype="<i2").astype(np.float32) / 32768
    return _fit(y, 8000, sample_rate, wav.size), 8 * payload


def ogg_payload_bytes(data: bytes, skip_packets: int = 2) -> int:
    """Bytes of the packets in an Ogg stream, minus its first ``skip_packets`` (Opus: OpusHead, OpusTags)."""
    pos, total, packet, packets = 0, 0, 0, 0
    while pos + 27 <= len(data):
        if data[pos : pos + 4] != b"OggS":
            raise ValueError("not an Ogg stream")
        nseg = data[pos + 26]
        lacing = data[pos + 27 : pos + 27 + nseg]
        pos += 27 + nseg
        for lace in lacing:
            packet += lace
            if lace < 255:  # end of a packet
                if packets >= skip_packets:
                    total += packet
                packets += 1
                packet = 0
        pos += sum(lacing)
    return total


def opus_roundtrip(wav: np.ndarray, sample_rate: int, bitrate: int = 6000) -> tuple[np.ndarray, int]:
    """Opus at ``bitrate`` bit/s (``opusenc --bitrate``): (decoded audio like ``wav``, payload bits)."""
    with tempfile.TemporaryDirectory(prefix="vqaudio-opus-") as d:
        src, enc, dec = Path(d) / "in.wav", Path(d) / "out.opus", Path(d) / "out.wav"
        sf.write(src, np.clip(wav, -1, 1), sample_rate, subtype="PCM_16")
        _run(["opusenc", "--quiet", "--bitrate", f"{bitrate / 1000:g}", str(src), str(enc)])
        _run(["opusdec", "--quiet", "--rate", "48000", str(enc), str(dec)])
        payload = ogg_payload_bytes(enc.read_bytes())
        y, sr = sf.read(dec, dtype="float32")
    return _fit(y.reshape(-1) if y.ndim == 1 else y.mean(1), sr, sample_rate, wav.size), 8 * payload
