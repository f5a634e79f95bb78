"""vqaudio convert / speakers: lengths, rates, unknown speakers, speaker facts from the corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_compress import _speech, _trained_tiny
from test_models import tiny_model_config
from typer.testing import CliRunner

import vqaudio
from vqaudio.checkpoint import save_checkpoint
from vqaudio.cli import app
from vqaudio.config import RunConfig
from vqaudio.convert import conversion_level, convert

runner = CliRunner()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = _trained_tiny(0)
    model.speaker_info = {"ann": {"gender": "F", "age": "23", "accent": "Scottish", "region": None}}
    path = tmp_path_factory.mktemp("m") / "tiny.safetensors"
    save_checkpoint(path, model, RunConfig(model=tiny_model_config()))
    return path


@pytest.mark.parametrize(("sr", "length"), [(16000, 1), (16000, 12345), (44100, 30000), (8000, 4001)])
def test_converted_audio_keeps_rate_and_length(ckpt: Path, sr: int, length: int) -> None:
    model = vqaudio.load_model(ckpt)
    x = np.resize(_speech(1.0, sr=sr), length) * 2.0
    y = convert(model, x, sr, "bob")
    assert y.shape == (length,) and np.abs(y).max() <= 1.0
    other = convert(model, x, sr, "ann")
    assert length < 100 or not np.allclose(y, other)


def test_conversion_level_defaults_to_the_configured_one(ckpt: Path) -> None:
    model = vqaudio.load_model(ckpt)
    assert conversion_level(model) == model.num_levels - 1  # conversion_level = -1: the tightest level


def test_cli_convert_and_speakers(ckpt: Path, tmp_path: Path) -> None:
    wav = tmp_path / "in.wav"
    sf.write(wav, np.stack([_speech(0.8), _speech(0.8, seed=1)], axis=1), 22050)  # stereo, another rate
    out = tmp_path / "out.wav"
    result = runner.invoke(
        app, ["convert", str(wav), "--speaker", "bob", "-o", str(out), "--model", str(ckpt)]
    )
    assert result.exit_code == 0, result.output
    assert sf.info(out).samplerate == 22050 and sf.info(out).frames == sf.info(wav).frames
    listing = runner.invoke(app, ["speakers", "--model", str(ckpt)])
    assert listing.exit_code == 0
    assert listing.stdout.splitlines() == ["ann\tF\t23\tScottish", "bob"]


def test_cli_convert_user_errors(ckpt: Path, tmp_path: Path) -> None:
    wav = tmp_path / "in.wav"
    sf.write(wav, _speech(0.5), 16000)
    out = tmp_path / "out.wav"
    result = runner.invoke(
        app, ["convert", str(wav), "--speaker", "bobb", "-o", str(out), "--model", str(ckpt)]
    )
    assert result.exit_code == 2 and "did you mean bob" in result.stderr and not out.exists()
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    result = runner.invoke(
        app, ["convert", str(empty), "--speaker", "bob", "-o", str(out), "--model", str(ckpt)]
    )
    assert result.exit_code == 2 and not out.exists()
    result = runner.invoke(
        app, ["convert", str(wav), "--speaker", "bob", "-o", str(tmp_path / "o.mp3"), "--model", str(ckpt)]
    )
    assert result.exit_code == 2 and "unsupported output format" in result.stderr
    out.write_bytes(b"keep")
    result = runner.invoke(
        app, ["convert", str(wav), "--speaker", "bob", "-o", str(out), "--model", str(ckpt)]
    )
    assert result.exit_code == 2 and out.read_bytes() == b"keep"
