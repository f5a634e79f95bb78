"""Tests for espeak-ng synthesis with phone labels (vqaudio.data.espeak)."""

from __future__ import annotations

import ctypes.util
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf

from vqaudio.data.espeak import (
    EspeakError,
    EspeakServers,
    EspeakVoice,
    check_espeak,
    is_espeak_voice,
    make_espeak_utterance,
    parse_espeak_voice,
    phones_from_events,
)
from vqaudio.data.tts import read_labels
from vqaudio.errors import UserError

needs_espeak = pytest.mark.skipif(
    ctypes.util.find_library("espeak-ng") is None, reason="espeak-ng is not installed"
)

TEXT = "Author of the danger trail, Philip Steels, etc."


# ----------------------------------------------------------------------------------------- names


def test_voice_names() -> None:
    assert parse_espeak_voice("en-us+m3") == EspeakVoice("en-us", "m3", 175, 50)
    assert parse_espeak_voice("en-gb-x-rp+Alex-s185") == EspeakVoice("en-gb-x-rp", "Alex", 185, 50)
    assert parse_espeak_voice("en-gb+f2-s160-p60") == EspeakVoice("en-gb", "f2", 160, 60)
    assert parse_espeak_voice("en-029+f2-p0") == EspeakVoice("en-029", "f2", 175, 0)
    assert is_espeak_voice("en-us+m3") and not is_espeak_voice("awb-v2") and not is_espeak_voice("kal16")


@pytest.mark.parametrize(
    "name",
    ["en-us", "en-us+", "+m3", "en-us+m3-s79", "en-us+m3-s451", "en-us+m3-p100", "en us+m3", "en-us+m3-x1"],
)
def test_bad_voice_names(name: str) -> None:
    with pytest.raises(UserError):
        parse_espeak_voice(name)


# ---------------------------------------------------------------------------------------- events


def test_phones_from_events() -> None:
    events = [(100, "h"), (300, "@"), (500, "_:"), (600, "_"), (700, "l"), (1000, "_")]
    phones = phones_from_events(events, 1000, 1000)
    assert phones == [
        (0.0, 0.1, "pau"),  # the lead-in before the first phoneme
        (0.1, 0.3, "h"),
        (0.3, 0.5, "@"),
        (0.5, 0.7, "pau"),  # `_:` and `_` merged
        (0.7, 1.0, "l"),  # the final zero-length `_` dropped; the last phone ends at the audio's end
    ]
    assert phones_from_events([(0, "a"), (0, "b")], 10, 10) == [(0.0, 1.0, "b")]


@pytest.mark.parametrize("events", [[(5, "a"), (3, "b")], [(20, "a")]])
def test_phones_from_bad_events(events: list[tuple[int, str]]) -> None:
    with pytest.raises(EspeakError):
        phones_from_events(events, 10, 10)


def test_missing_espeak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    with pytest.raises(
        UserError, match=r"espeak-ng not found: install it with `sudo apt-get install espeak-ng`"
    ):
        check_espeak()


# ----------------------------------------------------------------------------------- synthesis


@pytest.fixture(scope="module")
def servers() -> Iterator[EspeakServers]:
    if ctypes.util.find_library("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    with EspeakServers() as s:
        yield s


@needs_espeak
@pytest.mark.parametrize("sample_rate", [16000, 24000])
def test_synthesis_writes_wav_and_labels(servers: EspeakServers, tmp_path: Path, sample_rate: int) -> None:
    wav, lab = tmp_path / "a.wav", tmp_path / "a.tsv"
    duration = make_espeak_utterance(servers, "en-us+m3", TEXT, wav, lab, sample_rate, tmp_path)
    info = sf.info(str(wav))
    assert (info.samplerate, info.channels, info.subtype) == (sample_rate, 1, "PCM_16")
    assert 1.5 < info.duration < 6.0 and duration == pytest.approx(info.frames / sample_rate)
    audio, _ = sf.read(str(wav))
    assert 0.05 < abs(audio).max() < 1.0  # speech, not clipped
    labels = read_labels(lab)
    assert labels[0][0] == 0.0 and labels[-1][1] == pytest.approx(info.frames / sample_rate, abs=1e-6)
    for (_, end, _), (start, _, _) in zip(labels[:-1], labels[1:], strict=True):
        assert start == pytest.approx(end, abs=1e-6)
    phones = [p for _, _, p in labels]
    assert len([p for p in phones if p != "pau"]) > 20
    assert {"T", "D", "@"} <= set(phones)  # espeak-ng's mnemonics: authOR, THe, schwa
    assert not list(tmp_path.glob("en-us+m3-*"))  # the raw espeak wav is removed


@needs_espeak
def test_synthesis_is_deterministic_and_voices_differ(servers: EspeakServers, tmp_path: Path) -> None:
    def say(voice: str, name: str) -> bytes:
        wav = tmp_path / f"{name}.wav"
        make_espeak_utterance(servers, voice, TEXT, wav, tmp_path / f"{name}.tsv", 16000, tmp_path)
        return wav.read_bytes()

    first = say("en-gb+f2-s160-p60", "a")
    say("en-us+klatt", "b")  # something else in between: the library's state must not leak
    assert say("en-gb+f2-s160-p60", "c") == first
    assert (tmp_path / "a.tsv").read_bytes() == (tmp_path / "c.tsv").read_bytes()
    slow = sf.info(str(tmp_path / "a.wav")).duration
    assert say("en-gb+f2", "d") != first and sf.info(str(tmp_path / "d.wav")).duration < slow  # 175 wpm


@needs_espeak
@pytest.mark.parametrize(
    ("name", "message"),
    [("xx-yy+m3", "no built-in voice for language 'xx-yy'"), ("en-us+nosuch", "no voice variant 'nosuch'")],
)
def test_unknown_voice(servers: EspeakServers, name: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        servers.check([name])
