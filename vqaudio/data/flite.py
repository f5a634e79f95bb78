"""flite (http://cmuflite.org, Debian package ``flite``) as a demo-corpus synthesiser.

flite's ``-psdur`` option prints the phone segmentation it used, which becomes the utterance's label
file (flite's US English phone set: ``hh ax l ow ...``, silence ``pau``). Derived voices
``<voice>-v<k>`` (:data:`VOICE_VARIANTS`) change a voice's pitch and vocal-tract length.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import threading
from pathlib import Path

import soundfile as sf

from vqaudio.data.tts import SynthesisError, existing_duration, save_utterance
from vqaudio.errors import UserError

__all__ = [
    "VOICE_VARIANTS",
    "FliteError",
    "check_flite",
    "flite_voices",
    "make_flite_utterance",
    "parse_psdur",
    "split_variant",
]

VOICE_VARIANTS: tuple[tuple[float, float], ...] = (
    (1.12, 190.0),
    (0.90, 100.0),
    (1.20, 230.0),
    (1.05, 150.0),
    (0.94, 120.0),
    (1.16, 210.0),
)
"""Derived voices ``<voice>-v<k>`` (k = 1, 2, ...): (spectral scale, mean f0 in Hz).  A variant is
synthesised with its durations stretched and its pitch lowered by the scale, then played faster by
the same scale (resampling): durations come back, while formants and the whole spectrum move by the
scale (a vocal-tract-length change) and the pitch lands on the given mean.  They give a speaker
encoder many more voices to learn from than flite's four."""

_FLITE_INSTALL_HINT = "flite not found: install it with `sudo apt-get install flite` (Debian/Ubuntu)"
_FLITE_TIMEOUT_S = 300.0


class FliteError(SynthesisError):
    """flite ran but failed or produced something unusable (not the user's fault)."""


def check_flite() -> str:
    """Return the path of the ``flite`` executable, or raise :class:`UserError` saying how to install it."""
    flite = shutil.which("flite")
    if flite is None:
        raise UserError(_FLITE_INSTALL_HINT)
    return flite


def flite_voices(flite: str | None = None) -> tuple[str, ...]:
    """Voices compiled into ``flite``, from ``flite -lv`` (e.g. ``("kal", "awb_time", "kal16", ...)``)."""
    flite = check_flite() if flite is None else flite
    proc = subprocess.run(
        [flite, "-lv"], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60, check=False
    )
    _, sep, names = proc.stdout.partition(":")
    if proc.returncode != 0 or not sep:
        raise FliteError(f"`{flite} -lv` failed (exit {proc.returncode}): {proc.stderr.strip()[:200]}")
    return tuple(names.split())


def parse_psdur(stdout: str) -> list[tuple[float, float, str]]:
    """Parse ``flite -psdur`` output into phone intervals.

    flite prints one line of ``phone:end_time`` tokens separated by spaces, e.g.
    ``pau:0.254 hh:0.296 ax:0.341 ... pau:0.979``; the first phone starts at 0. Silence stays ``pau``.

    Returns:
        ``[(start_s, end_s, phone), ...]``, contiguous and in time order. Zero-length phones are kept.

    Raises:
        ValueError: a malformed token, a negative/non-finite time, or times going backwards.
    """
    intervals: list[tuple[float, float, str]] = []
    start = 0.0
    for token in stdout.split():
        phone, sep, time_text = token.rpartition(":")
        if not sep or not phone:
            raise ValueError(f"malformed flite -psdur token {token!r} (expected phone:end_time)")
        try:
            end = float(time_text)
        except ValueError:
            raise ValueError(f"malformed time in flite -psdur token {token!r}") from None
        if not math.isfinite(end) or end < start:
            raise ValueError(f"flite -psdur times not monotonic at {token!r} (previous end {start})")
        intervals.append((start, end, phone))
        start = end
    return intervals


def split_variant(speaker: str) -> tuple[str, tuple[float, float] | None]:
    """``"awb-v2"`` -> ``("awb", VOICE_VARIANTS[1])``; a plain voice -> ``(voice, None)``."""
    base, sep, tag = speaker.rpartition("-v")
    if sep and base and tag.isdigit() and 1 <= int(tag) <= len(VOICE_VARIANTS):
        return base, VOICE_VARIANTS[int(tag) - 1]
    return speaker, None


def _run_flite(
    flite: str, voice: str, text: str, wav_path: Path, variant: tuple[float, float] | None = None
) -> str:
    """Synthesise ``text`` with ``voice`` into ``wav_path``; return flite's ``-psdur`` stdout.

    ``variant`` = (scale, f0): durations stretched and the mean f0 set to ``f0 / scale``, ready to be
    resampled by ``scale`` (see :data:`VOICE_VARIANTS`).
    """
    cmd = [flite, "-voice", voice, "-psdur"]
    if variant is not None:
        scale, f0 = variant
        cmd += ["--setf", f"duration_stretch={scale:g}", "--setf", f"int_f0_target_mean={f0 / scale:.1f}"]
    cmd += ["-t", text, "-o", str(wav_path)]
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=_FLITE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise FliteError(f"flite -voice {voice} timed out after {_FLITE_TIMEOUT_S:.0f} s") from exc
    if proc.returncode != 0 or not wav_path.is_file():
        raise FliteError(f"flite -voice {voice} failed (exit {proc.returncode}): {proc.stderr.strip()[:300]}")
    return proc.stdout


def make_flite_utterance(
    flite: str, speaker: str, text: str, wav_path: Path, label_path: Path, sample_rate: int, scratch: Path
) -> float:
    """Generate one (speaker, sentence) wav + labels unless valid ones exist; return its duration (s).

    ``speaker`` is a flite voice or a derived voice ``<voice>-v<k>`` (:data:`VOICE_VARIANTS`); the
    raw flite wav goes through ``scratch`` (a folder) and is resampled to ``sample_rate``.
    """
    existing = existing_duration(wav_path, label_path, sample_rate)
    if existing is not None:
        return existing
    voice, variant = split_variant(speaker)
    raw_path = scratch / f"{speaker}-{wav_path.stem}-{threading.get_ident()}.wav"
    try:
        stdout = _run_flite(flite, voice, text, raw_path, variant)
        try:
            audio, flite_rate = sf.read(str(raw_path), dtype="float32", always_2d=True)
        except (OSError, RuntimeError) as exc:
            raise FliteError(f"flite -voice {voice} wrote an unreadable wav: {exc}") from exc
    finally:
        raw_path.unlink(missing_ok=True)
    scale = 1.0 if variant is None else variant[0]  # a variant plays ``scale`` times faster
    try:
        phones = [(a / scale, b / scale, p) for a, b, p in parse_psdur(stdout)]
        return save_utterance(
            audio.mean(axis=1), flite_rate * scale, phones, wav_path, label_path, sample_rate
        )
    except (ValueError, SynthesisError) as exc:
        raise FliteError(f"flite -voice {voice}: {wav_path.stem}: {exc}") from exc
