"""Tests for vqaudio.audio: reading anything, rejecting garbage with one-line errors, atomic writes."""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from vqaudio.audio import AUDIO_EXTENSIONS, AudioInfo, atomic_write, audio_info, read_audio, write_audio
from vqaudio.errors import AudioError, UserError


def sine(sr: int, seconds: float = 0.25, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def path_in(path: Path) -> str:
    return re.escape(str(path))


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# ------------------------------------------------------------------------------------------ reading


@pytest.mark.parametrize(("subtype", "atol"), [("PCM_16", 2e-4), ("PCM_24", 1e-6), ("FLOAT", 0.0)])
def test_read_sample_formats(tmp_path: Path, subtype: str, atol: float) -> None:
    x = sine(16000)
    path = tmp_path / f"x_{subtype}.wav"
    sf.write(path, x, 16000, subtype=subtype)
    y = read_audio(path)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=atol)


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_resample_to_16k_keeps_length_and_level(tmp_path: Path, sr: int) -> None:
    x = sine(sr, seconds=0.5)
    path = tmp_path / f"x{sr}.flac"
    sf.write(path, x, sr)
    y = read_audio(path, 16000)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - len(x) * 16000 / sr) <= 1
    mid = y[len(y) // 4 : 3 * len(y) // 4]  # away from the filter's edge effects
    assert np.sqrt(np.mean(mid**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_same_rate_is_not_resampled(tmp_path: Path) -> None:
    x = sine(16000)
    path = tmp_path / "x.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(read_audio(path, 16000), x)


def test_stereo_and_six_channel_downmix_by_mean(tmp_path: Path) -> None:
    x = sine(16000)
    stereo = np.stack([x, 0.5 * x], axis=1)
    sf.write(tmp_path / "st.wav", stereo, 16000, subtype="FLOAT")
    np.testing.assert_allclose(read_audio(tmp_path / "st.wav"), 0.75 * x, atol=1e-7)

    six = np.tile(np.arange(6, dtype=np.float32) / 10, (100, 1))  # channel k holds k/10
    sf.write(tmp_path / "six.flac", six, 16000, subtype="PCM_24")
    np.testing.assert_allclose(read_audio(tmp_path / "six.flac"), np.full(100, 0.25), atol=1e-5)


def test_ogg_and_mp3_are_read(tmp_path: Path) -> None:
    x = sine(16000, seconds=0.5)
    sf.write(tmp_path / "x.ogg", x, 16000, subtype="VORBIS")
    sf.write(tmp_path / "x.mp3", x, 16000, subtype="MPEG_LAYER_III")
    ogg = read_audio(tmp_path / "x.ogg")
    assert len(ogg) == len(x)
    assert np.sqrt(np.mean(ogg**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)
    mp3 = read_audio(tmp_path / "x.mp3", 8000)
    assert abs(len(mp3) - len(x) // 2) < 1200  # mp3 pads with encoder delay
    assert 0.2 < np.sqrt(np.mean(mp3**2)) < 0.5


def test_one_sample_file(tmp_path: Path) -> None:
    for sr in (8000, 48000):
        sf.write(tmp_path / f"one{sr}.wav", np.array([0.25], dtype=np.float32), sr, subtype="FLOAT")
    np.testing.assert_array_equal(read_audio(tmp_path / "one8000.wav"), [0.25])
    assert len(read_audio(tmp_path / "one8000.wav", 16000)) == 2
    with pytest.raises(AudioError, match=path_in(tmp_path / "one48000.wav") + ".*too short"):
        read_audio(tmp_path / "one48000.wav", 16000)


def test_unusable_files_raise_one_line_audio_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("these are not the samples you are looking for\n" * 20)
    header_only = tmp_path / "header.wav"
    sf.write(header_only, np.zeros(0, np.float32), 16000)
    assert header_only.stat().st_size == 44
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    cases = {
        tmp_path / "missing.wav": "does not exist",
        folder: "directory",
        empty: "empty",
        text: "not a readable audio file",
        header_only: "no samples",
    }
    for path, why in cases.items():
        for fn in (read_audio, audio_info):
            with pytest.raises(AudioError, match=path_in(path) + ".*" + why) as info:
                fn(path)
            assert "\n" not in str(info.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_rejected(tmp_path: Path, bad: float) -> None:
    x = sine(16000)
    x[100] = bad
    path = tmp_path / "bad.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=path_in(path) + ".*NaN or infinite"):
        read_audio(path)


@pytest.mark.parametrize("ext", [".wav", ".flac"])
@pytest.mark.parametrize("fraction", [0.0005, 0.003, 0.01, 0.1, 0.5, 0.9])
def test_truncated_files_give_valid_audio_or_audio_error(tmp_path: Path, ext: str, fraction: float) -> None:
    x = sine(16000, seconds=1.0)
    full = tmp_path / f"full{ext}"
    sf.write(full, x, 16000)
    data = full.read_bytes()
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(data[: max(1, int(len(data) * fraction))])
    try:
        y = read_audio(cut, 16000)
    except AudioError as err:
        assert str(cut) in str(err) and "\n" not in str(err)
    else:
        assert 0 < len(y) < len(x) and np.isfinite(y).all()
        np.testing.assert_allclose(y, x[: len(y)], atol=2e-4)  # a prefix of the original


def test_truncated_wav_mid_data_keeps_the_readable_prefix(tmp_path: Path) -> None:
    x = sine(16000, seconds=1.0)
    path = tmp_path / "cut.wav"
    sf.write(path, x, 16000)
    path.write_bytes(path.read_bytes()[: 44 + 2 * 4000])
    y = read_audio(path)
    assert len(y) == 4000


def test_audio_info(tmp_path: Path) -> None:
    path = tmp_path / "st.flac"
    sf.write(path, np.zeros((22050, 2), np.float32), 44100)
    info = audio_info(path)
    assert info == AudioInfo(sample_rate=44100, num_frames=22050, channels=2)
    assert info.duration == pytest.approx(0.5)


# soundfile's (format, subtype) for writing each kind of file the scanners take for audio
_SOUNDFILE_FORMATS = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
}


def test_every_audio_extension_is_found_in_any_case_and_decodes(tmp_path: Path) -> None:
    """What the corpus scanner takes for audio (``AUDIO_EXTENSIONS``, any case) is what ``read_audio``
    decodes: each kind, written by libsndfile, is found and reads back as the tone written; hidden
    files and other extensions are left alone."""
    from vqaudio.data import scan_folder

    assert set(AUDIO_EXTENSIONS) <= set(_SOUNDFILE_FORMATS), "a new audio extension: add it here"
    x = sine(16000, seconds=0.5)
    spk = tmp_path / "spk"
    spk.mkdir()
    written = []
    for i, ext in enumerate(AUDIO_EXTENSIONS):
        for name in (f"u{i}{ext}", f"U{i}{ext.upper()}"):
            fmt, subtype = _SOUNDFILE_FORMATS[ext]
            sf.write(spk / name, x, 16000, format=fmt, subtype=subtype)
            written.append(name)
    sf.write(spk / ".hidden.wav", x, 16000)  # e.g. macOS ._x.wav resource forks
    sf.write(spk / "u0.wav.bak", x, 16000, format="WAV")
    (spk / "notes.txt").write_text("not audio")
    (spk / "u0.vqa").write_bytes(b"VQA")
    found = scan_folder(tmp_path)
    assert sorted(u.path.name for u in found) == sorted(written)
    assert {u.speaker for u in found} == {"spk"}
    for u in found:
        y = read_audio(u.path)
        lossless = u.path.suffix.lower() in (".wav", ".flac")
        if lossless:
            np.testing.assert_allclose(y, x, atol=1 / 32768)
        else:  # lossy: about the length (mp3 adds encoder delay), level and pitch of the tone
            assert abs(len(y) - len(x)) < 2000 and np.sqrt(np.mean(y**2)) == pytest.approx(
                0.5 / np.sqrt(2), rel=0.1
            )
            assert np.argmax(np.abs(np.fft.rfft(y))) * 16000 / len(y) == pytest.approx(440, abs=5)


# ------------------------------------------------------------------------------------------ writing


@pytest.mark.parametrize(
    ("name", "subtype"), [("a.wav", "PCM_16"), ("a.flac", "PCM_16"), ("A.OGG", "VORBIS")]
)
def test_write_format_from_extension(tmp_path: Path, name: str, subtype: str) -> None:
    x = sine(16000)
    path = tmp_path / name
    write_audio(path, x, 16000)
    info = sf.info(path)
    assert info.subtype == subtype and info.samplerate == 16000 and info.channels == 1
    y = read_audio(path)
    assert len(y) == len(x)
    if subtype == "PCM_16":
        np.testing.assert_allclose(y, x, atol=1 / 32768)
    assert leftovers(tmp_path, {name}) == []


def test_write_torch_tensor_1xT_and_subtype(tmp_path: Path) -> None:
    x = torch.from_numpy(sine(16000)).unsqueeze(0).requires_grad_()
    write_audio(tmp_path / "t.wav", x, 16000, subtype="FLOAT")
    assert sf.info(tmp_path / "t.wav").subtype == "FLOAT"
    np.testing.assert_array_equal(read_audio(tmp_path / "t.wav"), x.detach().numpy()[0])


def test_write_clamps_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    x = np.array([0.0, 1.5, -2.0, 0.5], dtype=np.float32)
    with caplog.at_level(logging.WARNING, logger="vqaudio.audio"):
        result = write_audio(tmp_path / "c.wav", x, 16000, subtype="FLOAT")
    assert result is None
    np.testing.assert_array_equal(read_audio(tmp_path / "c.wav"), [0.0, 1.0, -1.0, 0.5])
    assert any("clipped 2 of 4" in r.getMessage() for r in caplog.records)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vqaudio.audio"):
        write_audio(tmp_path / "ok.wav", x / 2, 16000)
    assert not caplog.records


def test_write_rejects_bad_extension_shape_and_values(tmp_path: Path) -> None:
    x = sine(16000)
    for name in ("a.mp3", "a.txt", "noext"):
        with pytest.raises(AudioError, match=path_in(tmp_path / name)):
            write_audio(tmp_path / name, x, 16000)
    with pytest.raises(ValueError, match="shape"):
        write_audio(tmp_path / "s.wav", np.zeros((2, 10), np.float32), 16000)
    with pytest.raises(ValueError, match="NaN"):
        write_audio(tmp_path / "n.wav", np.array([np.nan], np.float32), 16000)
    with pytest.raises(AudioError, match="does not exist"):
        write_audio(tmp_path / "no" / "such" / "dir.wav", x, 16000)
    assert leftovers(tmp_path, set()) == []


def test_failed_write_keeps_existing_file_and_leaves_no_temp(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "keep.wav"
    write_audio(path, sine(16000), 16000)
    before = path.read_bytes()

    with pytest.raises(AudioError, match=path_in(path)):  # libsndfile refuses the subtype
        write_audio(path, np.zeros(100, np.float32), 16000, subtype="VORBIS")
    assert path.read_bytes() == before and leftovers(tmp_path, {"keep.wav"}) == []

    def dies_half_way(file: str, data: np.ndarray, *args: object, **kwargs: object) -> None:
        Path(file).write_bytes(b"RIFF partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(sf, "write", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        write_audio(path, np.zeros(100, np.float32), 16000)
    assert path.read_bytes() == before and leftovers(tmp_path, {"keep.wav"}) == []


def test_written_file_permissions_follow_umask_or_existing_file(tmp_path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    path = tmp_path / "perm.wav"
    write_audio(path, sine(16000), 16000)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    path.chmod(0o640)
    write_audio(path, sine(16000), 16000)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_atomic_write_replaces_on_success_only(tmp_path: Path) -> None:
    path = tmp_path / "state.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"), atomic_write(path) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".bin" and tmp != path
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert path.read_bytes() == b"old" and leftovers(tmp_path, {"state.bin"}) == []

    with atomic_write(str(path)) as tmp:
        tmp.write_bytes(b"new")
        assert path.read_bytes() == b"old"  # nothing visible until the block ends
    assert path.read_bytes() == b"new" and leftovers(tmp_path, {"state.bin"}) == []

    with pytest.raises(UserError, match="does not exist"), atomic_write(tmp_path / "missing" / "x.bin"):
        pass


def test_atomic_write_text_leaves_an_unchanged_file_alone(tmp_path) -> None:
    import os

    from vqaudio.audio import atomic_write_text

    path = tmp_path / "a.txt"
    atomic_write_text(path, "one\n")
    os.utime(path, (1_000_000, 1_000_000))
    atomic_write_text(path, "one\n")
    assert path.stat().st_mtime == 1_000_000  # same text: not rewritten
    atomic_write_text(path, "two\n")
    assert path.read_text() == "two\n" and path.stat().st_mtime != 1_000_000
