"""A small espeak-ng synthesis server, run as a script by :mod:`vqaudio.data.espeak` (stdlib only).

Why a separate process that forks once per request: libespeak-ng keeps synthesis state between calls
(pitch flutter phase, wave phase, ...), so the same text said twice in one process gives different
samples, and it is not thread-safe. This server loads the library once, initialises it, and forks a
child per request, so every utterance starts from the same freshly initialised state: the audio
depends only on (voice, speed, pitch, text), never on what was synthesised before.

Protocol: one JSON object per line on stdin, one reply per line on stdout. After start-up the server
prints ``{"ok": true, "sample_rate": 22050, "version": "1.51"}`` (or ``{"ok": false, "error": ...}``).

- ``{"op": "check", "voice": "en-us", "variant": "m3"}`` -> ``{"ok": true}`` or an error.
- ``{"op": "synth", "voice": ..., "variant": ..., "speed": 175, "pitch": 50, "volume": 100,
  "text": ..., "wav": PATH}`` -> ``{"ok": true, "num_samples": N, "phones": [[sample, name], ...]}``:
  a mono 16-bit wav at ``sample_rate`` is written to PATH, and ``phones`` are espeak-ng's phoneme
  events (``espeakINITIALIZE_PHONEME_EVENTS``): each phoneme's first sample and its mnemonic.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import wave
from typing import Any

_PHONEME_EVENTS = 0x0001  # espeakINITIALIZE_PHONEME_EVENTS
_DONT_EXIT = 0x8000  # espeakINITIALIZE_DONT_EXIT: return an error instead of exit() without data
_SYNCHRONOUS = 2  # AUDIO_OUTPUT_SYNCHRONOUS
_EVENT_PHONEME = 7
_RATE, _VOLUME, _PITCH = 1, 2, 3  # espeak_PARAMETER
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_TIMEOUT_S = 120


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):  # espeak_EVENT of speak_lib.h
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):  # espeak_VOICE of speak_lib.h
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # (priority byte, language, NUL) pairs, then a NUL
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


def _load(name: str) -> tuple[ctypes.CDLL, int, str, str]:
    """Load and initialise libespeak-ng; return (library, sample rate, version, data folder)."""
    lib = ctypes.CDLL(name)
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
    rate = lib.espeak_Initialize(_SYNCHRONOUS, 0, None, _PHONEME_EVENTS | _DONT_EXIT)
    if rate <= 0:
        raise RuntimeError(f"espeak_Initialize failed ({rate}): is espeak-ng-data installed?")
    data = ctypes.c_char_p()
    version = lib.espeak_Info(ctypes.byref(data)).decode()
    return lib, rate, version, (data.value or b"").decode()


def _languages(voice: _Voice) -> list[str]:
    """The languages a voice lists (its ``languages`` field, without the priority bytes)."""
    out: list[str] = []
    address = voice.languages or 0
    while address and ctypes.string_at(address, 1) != b"\0":
        name = ctypes.string_at(address + 1)
        out.append(name.decode("utf-8", "replace"))
        address += len(name) + 2
    return out


def _voice_file(lib: ctypes.CDLL, language: str) -> str | None:
    """The built-in (not MBROLA) voice file for a language, best first as espeak-ng ranks them
    (``en-gb`` -> ``gmw/en``), or ``None``."""
    wanted = ctypes.create_string_buffer(language.encode())  # alive until the call returns
    spec = _Voice(languages=ctypes.addressof(wanted))
    found = lib.espeak_ListVoices(ctypes.byref(spec))
    i = 0
    while found and found[i]:
        voice = found[i].contents
        identifier = (voice.identifier or b"").decode()
        if not identifier.startswith(("mb/", "!v/")) and language in _languages(voice):
            return identifier
        i += 1
    return None


def _set_voice(lib: ctypes.CDLL, data_dir: str, req: dict[str, Any]) -> str | None:
    """Select the request's voice; return an error message, or ``None`` when it is usable."""
    language, variant = str(req["voice"]), str(req["variant"])
    if not os.path.isfile(os.path.join(data_dir, "voices", "!v", variant)):
        return f"espeak-ng has no voice variant {variant!r} (see `espeak-ng --voices=variant`)"
    identifier = _voice_file(lib, language)
    if identifier is None:
        return f"espeak-ng has no built-in voice for language {language!r} (see `espeak-ng --voices`)"
    if lib.espeak_SetVoiceByName(f"{identifier}+{variant}".encode()) != 0:
        return f"espeak-ng cannot load voice {identifier}+{variant}"
    return None


def _synth(lib: ctypes.CDLL, rate: int, req: dict[str, Any]) -> dict[str, Any]:
    """Synthesise the request's text (voice already set) into its wav file."""
    chunks: list[bytes] = []
    phones: list[list[Any]] = []

    def collect(wav: Any, num_samples: int, events: Any) -> int:
        if wav and num_samples > 0:
            chunks.append(ctypes.string_at(wav, 2 * num_samples))
        i = 0
        while events[i].type != 0:  # espeakEVENT_LIST_TERMINATED
            if events[i].type == _EVENT_PHONEME:
                phones.append([events[i].sample, events[i].id.string.decode("utf-8", "replace")])
            i += 1
        return 0

    callback = _Callback(collect)
    lib.espeak_SetSynthCallback(callback)
    for param, value in ((_RATE, req["speed"]), (_PITCH, req["pitch"]), (_VOLUME, req["volume"])):
        lib.espeak_SetParameter(param, int(value), 0)
    text = str(req["text"]).encode("utf-8") + b"\0"
    status = lib.espeak_Synth(text, len(text), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
    if status != 0 or lib.espeak_Synchronize() != 0:
        return {"ok": False, "error": f"espeak_Synth failed (status {status})"}
    pcm = b"".join(chunks)
    with wave.open(str(req["wav"]), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
    return {"ok": True, "num_samples": len(pcm) // 2, "phones": phones}


def _in_child(lib: ctypes.CDLL, rate: int, data_dir: str, req: dict[str, Any]) -> dict[str, Any]:
    """Run one request in a forked child (fresh synthesis state); the parent relays its reply."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: answer, then leave without running the parent's cleanup
        os.close(read_fd)
        signal.alarm(_TIMEOUT_S)
        try:
            error = _set_voice(lib, data_dir, req)
            if error is not None:
                reply: dict[str, Any] = {"ok": False, "error": error}
            else:
                reply = _synth(lib, rate, req) if req.get("op") == "synth" else {"ok": True}
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which reports it
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(json.dumps(reply).encode())
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        raw = pipe.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or not raw:
        return {"ok": False, "error": f"espeak-ng synthesis process died (wait status {status})"}
    result: dict[str, Any] = json.loads(raw)
    return result


def main() -> int:
    """Serve requests from stdin until it closes."""
    try:
        lib, rate, version, data_dir = _load(sys.argv[1] if len(sys.argv) > 1 else "libespeak-ng.so.1")
    except (OSError, RuntimeError) as exc:
        print(json.dumps({"ok": False, "error": str(exc)}), flush=True)
        return 1
    print(json.dumps({"ok": True, "sample_rate": rate, "version": version}), flush=True)
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(_in_child(lib, rate, data_dir, json.loads(line))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
