"""espeak-ng (Debian package ``espeak-ng``) as a demo-corpus synthesiser, with phone labels.

A voice is named ``<language>+<variant>[-s<speed>][-p<pitch>]``: an espeak-ng English dialect
(``en-us``, ``en-gb-scotland``, ... see ``espeak-ng --voices=en``), one of its voice variants (``m3``,
``f2``, ``klatt``, ... see ``espeak-ng --voices=variant``), and optionally a speed in words per minute
(80-450, default 175) and a base pitch (0-99, default 50), e.g. ``en-gb+f2-s160-p60``. Plain names
only: the name is the speaker and a folder name of the corpus.

Phone labels. The ``espeak-ng`` command (1.51) prints phonemes (``-x``, ``-X``, ``--ipa``) but no
timings for its own voices (``--pho`` only works for MBROLA voices), so the library is called
directly (ctypes) with ``espeakINITIALIZE_PHONEME_EVENTS``: every phoneme event carries the sample
at which the phoneme starts, and each phoneme ends where the next begins (the last at the end of the
audio). Labels use **espeak-ng's phoneme mnemonics** (``h @ l oU w 3: l d``), not flite's phone set
(``hh ax l ow w er l d``); pauses (``_``, ``_:``, ...) and the silence before the first phoneme become
``pau``. The mnemonics are the same for every espeak-ng voice (the English dialects share one phoneme
table, with a few dialect-specific vowels), so labels are consistent within the espeak family but not
across families: ``vqaudio analyze`` maps codes to phones over the utterances it is given, so analyse
the flite and the espeak voices of a mixed corpus separately. (By default ``analyze`` also strips a
final 0/1/2 after a letter as an ARPAbet stress digit, which merges ``I2`` into ``I`` and ``t2`` into
``t``; ``--keep-stress`` keeps them apart.)

Synthesis runs in :mod:`vqaudio.data.espeak_worker` processes (one per worker thread) that fork for
every utterance, because the library carries state from one utterance to the next: this way an
utterance's samples depend only on its voice and text (deterministic), whatever ran before.
"""

from __future__ import annotations

import ctypes.util
import json
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import soundfile as sf

from vqaudio.data.tts import PAUSE, SynthesisError, existing_duration, save_utterance
from vqaudio.errors import UserError

__all__ = [
    "ESPEAK_VOLUME",
    "EspeakError",
    "EspeakServers",
    "EspeakVoice",
    "check_espeak",
    "is_espeak_voice",
    "make_espeak_utterance",
    "parse_espeak_voice",
    "phones_from_events",
]

ESPEAK_VOLUME = 75
"""espeak-ng amplitude (0-200, its default 100) for every voice: some variants clip at 100."""

_INSTALL_HINT = "espeak-ng not found: install it with `sudo apt-get install espeak-ng` (Debian/Ubuntu)"
_NAME_RE = re.compile(
    r"^(?P<language>[a-z]{2,3}(?:-[A-Za-z0-9]+)*)\+(?P<variant>[A-Za-z0-9_]+)"
    r"(?:-s(?P<speed>\d+))?(?:-p(?P<pitch>\d+))?$"
)
_WORKER = Path(__file__).with_name("espeak_worker.py")
_SPEED_RANGE = (80, 450)
_PITCH_RANGE = (0, 99)


class EspeakError(SynthesisError):
    """espeak-ng ran but failed or produced something unusable (not the user's fault)."""


@dataclass(frozen=True)
class EspeakVoice:
    """A parsed espeak voice name (see the module docstring): language, variant, speed (words per
    minute) and base pitch (0-99)."""

    language: str
    variant: str
    speed: int = 175
    pitch: int = 50


def is_espeak_voice(name: str) -> bool:
    """Whether a corpus voice name is meant for espeak-ng (it has a ``+variant``); flite names have none."""
    return "+" in name


def parse_espeak_voice(name: str) -> EspeakVoice:
    """``"en-gb+f2-s160-p60"`` -> ``EspeakVoice("en-gb", "f2", 160, 60)``.

    Raises:
        UserError: not of the form ``<language>+<variant>[-s<speed>][-p<pitch>]``, or out of range.
    """
    match = _NAME_RE.match(name)
    if match is None:
        raise UserError(
            f"bad espeak-ng voice {name!r}: expected <language>+<variant>[-s<speed>][-p<pitch>], "
            "e.g. en-us+m3"
        )
    voice = EspeakVoice(match["language"], match["variant"])
    speed = int(match["speed"]) if match["speed"] else voice.speed
    pitch = int(match["pitch"]) if match["pitch"] else voice.pitch
    if not _SPEED_RANGE[0] <= speed <= _SPEED_RANGE[1]:
        raise UserError(f"espeak-ng voice {name!r}: speed must be {_SPEED_RANGE[0]}-{_SPEED_RANGE[1]} wpm")
    if not _PITCH_RANGE[0] <= pitch <= _PITCH_RANGE[1]:
        raise UserError(f"espeak-ng voice {name!r}: pitch must be {_PITCH_RANGE[0]}-{_PITCH_RANGE[1]}")
    return EspeakVoice(voice.language, voice.variant, speed, pitch)


def check_espeak() -> str:
    """The name of the espeak-ng shared library, or :class:`UserError` saying how to install it."""
    name = ctypes.util.find_library("espeak-ng")
    if name is None:
        raise UserError(_INSTALL_HINT)
    return name


def phones_from_events(
    events: list[tuple[int, str]], num_samples: int, rate: int
) -> list[tuple[float, float, str]]:
    """Phone intervals from espeak-ng phoneme events.

    Args:
        events: ``[(first_sample, mnemonic), ...]`` in synthesis order.
        num_samples: length of the audio, in samples.
        rate: its sample rate (Hz).

    Returns:
        ``[(start_s, end_s, phone), ...]`` contiguous from 0 to ``num_samples / rate``; pauses
        (mnemonics starting with ``_``) and the lead-in before the first phoneme are ``pau``, runs of
        pauses are merged and zero-length phonemes dropped.

    Raises:
        EspeakError: events out of order or beyond the audio.
    """
    bounds = [(0, PAUSE)] + [(s, PAUSE if name.startswith("_") or not name else name) for s, name in events]
    out: list[tuple[float, float, str]] = []
    for (start, phone), (end, _) in zip(bounds, [*bounds[1:], (num_samples, "")], strict=True):
        if end < start or end > num_samples:
            raise EspeakError(
                f"phoneme events out of order at sample {start} ({phone!r}, audio {num_samples})"
            )
        if end == start:
            continue
        if out and phone == PAUSE and out[-1][2] == PAUSE:
            out[-1] = (out[-1][0], end / rate, PAUSE)
        else:
            out.append((start / rate, end / rate, phone))
    return out


class _Server:
    """One :mod:`vqaudio.data.espeak_worker` process, used by one thread at a time."""

    def __init__(self, library: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", str(_WORKER), library],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        hello = self._read()
        if not hello.get("ok"):
            self.close()
            raise UserError(f"espeak-ng does not start: {hello.get('error')} ({_INSTALL_HINT})")
        self.sample_rate = int(hello["sample_rate"])

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise EspeakError(f"the espeak-ng worker exited (status {self.proc.poll()})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def request(self, **req: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class EspeakServers:
    """espeak-ng worker processes, one per calling thread, started on first use; a context manager
    that stops them all on exit."""

    def __init__(self) -> None:
        self.library = check_espeak()
        self._local = threading.local()
        self._all: list[_Server] = []
        self._lock = threading.Lock()

    def server(self) -> _Server:
        """The calling thread's worker."""
        server: _Server | None = getattr(self._local, "server", None)
        if server is None:
            server = _Server(self.library)
            self._local.server = server
            with self._lock:
                self._all.append(server)
        return server

    def check(self, names: list[str] | tuple[str, ...]) -> None:
        """Raise :class:`UserError` for the first voice name espeak-ng cannot speak with."""
        for name in names:
            voice = parse_espeak_voice(name)
            reply = self.server().request(op="check", voice=voice.language, variant=voice.variant)
            if not reply.get("ok"):
                raise UserError(f"voice {name}: {reply.get('error')}")

    def close(self) -> None:
        with self._lock:
            servers, self._all = self._all, []
        for server in servers:
            server.close()

    def __enter__(self) -> EspeakServers:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def make_espeak_utterance(
    servers: EspeakServers,
    speaker: str,
    text: str,
    wav_path: Path,
    label_path: Path,
    sample_rate: int,
    scratch: Path,
) -> float:
    """Generate one (espeak voice, sentence) wav + labels unless valid ones exist; return its duration (s).

    The worker writes espeak-ng's own wav (22050 Hz) into ``scratch``; it is resampled to ``sample_rate``.
    """
    existing = existing_duration(wav_path, label_path, sample_rate)
    if existing is not None:
        return existing
    voice = parse_espeak_voice(speaker)
    server = servers.server()
    raw_path = scratch / f"{speaker}-{wav_path.stem}-{threading.get_ident()}.wav"
    try:
        reply = server.request(
            op="synth",
            voice=voice.language,
            variant=voice.variant,
            speed=voice.speed,
            pitch=voice.pitch,
            volume=ESPEAK_VOLUME,
            text=text,
            wav=str(raw_path),
        )
        if not reply.get("ok"):
            raise EspeakError(f"espeak-ng {speaker}: {wav_path.stem}: {reply.get('error')}")
        try:
            audio, rate = sf.read(str(raw_path), dtype="float32")
        except (OSError, RuntimeError) as exc:
            raise EspeakError(f"espeak-ng {speaker} wrote an unreadable wav: {exc}") from exc
    finally:
        raw_path.unlink(missing_ok=True)
    try:
        events = [(int(sample), str(name)) for sample, name in reply["phones"]]
        phones = phones_from_events(events, int(reply["num_samples"]), rate)
        return save_utterance(audio, rate, phones, wav_path, label_path, sample_rate)
    except SynthesisError as exc:
        raise EspeakError(f"espeak-ng {speaker}: {wav_path.stem}: {exc}") from exc
