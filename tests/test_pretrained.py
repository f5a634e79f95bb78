"""Shipped models: the registry, the resolution order (argument > VQAUDIO_MODEL > shipped default),
commands without --model, ``vqaudio models``, and the package data that ships them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tomllib
import torch
from typer.testing import CliRunner

import vqaudio
from vqaudio.checkpoint import resolve_checkpoint, save_checkpoint
from vqaudio.cli import app
from vqaudio.codec.bitstream import read_header
from vqaudio.codec.compress import model_fingerprint
from vqaudio.config import RunConfig
from vqaudio.errors import CheckpointError
from vqaudio.pretrained import (
    DIR_ENV,
    MAX_SHIPPED_MB,
    MODEL_ENV,
    NO_MODEL,
    available_models,
    default_model,
    default_model_path,
    describe_models,
    resolve_model,
    shipped_name,
)
from vqaudio.voices import voices_path

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


Save = Callable[..., str]


@pytest.fixture
def save_tiny(tiny_model_config) -> Save:
    """``save_tiny(path, speakers, seed=0)``: a tiny model trained for 0 steps, written with the real save
    function; returns its SHA-256."""

    def write(path: Path, speakers: list[str], seed: int = 0) -> str:
        torch.manual_seed(seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        return save_checkpoint(
            path, vqaudio.build_model(tiny_model_config(), speakers), RunConfig(model=tiny_model_config())
        )

    return write


@pytest.fixture
def shipped_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty registry folder in place of the package's, and no VQAUDIO_MODEL."""
    folder = tmp_path / "pretrained"
    folder.mkdir()
    monkeypatch.setenv(DIR_ENV, str(folder))
    monkeypatch.delenv(MODEL_ENV, raising=False)
    monkeypatch.setenv("COLUMNS", "200")  # rich tables at full width
    return folder


@pytest.fixture
def shipped(save_tiny, shipped_dir: Path) -> Path:
    """One shipped model, ``tiny`` (speakers ann, bob), marked default by its card."""
    path = shipped_dir / "tiny.safetensors"
    save_tiny(path, ["ann", "bob"])
    (shipped_dir / "tiny.json").write_text(json.dumps({"description": "a test model", "default": True}))
    return path


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in stderr, stderr
    return lines[0]


def _wav(path: Path, seconds: float = 0.3) -> Path:
    rng = np.random.default_rng(0)
    sf.write(path, (0.1 * rng.standard_normal(round(16000 * seconds))).astype(np.float32), 16000)
    return path


# ------------------------------------------------------------------------------------ registry


def test_registry_reads_the_folder(save_tiny, shipped_dir: Path) -> None:
    assert vqaudio.available_models is available_models  # public API
    assert available_models() == {} and default_model() is None and default_model_path() is None
    save_tiny(shipped_dir / "b.safetensors", ["x"])
    (shipped_dir / "notes.txt").write_text("not a model")
    assert list(available_models()) == ["b"]
    assert default_model_path() == shipped_dir / "b.safetensors"  # the only one is the default
    save_tiny(shipped_dir / "a.safetensors", ["x"])
    assert list(available_models()) == ["a", "b"] and default_model() is None  # two, none flagged
    (shipped_dir / "b.json").write_text(
        json.dumps({"default": True, "description": "B", "card": "docs/b.md"})
    )
    chosen = default_model()
    assert chosen is not None and (chosen.name, chosen.description, chosen.card) == ("b", "B", "docs/b.md")
    assert shipped_name(shipped_dir / "b.safetensors") == "b"
    (shipped_dir / "a.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="a.json"):
        available_models()


def test_resolution_order(save_tiny, shipped: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other.safetensors"
    save_tiny(other, ["zed"], seed=1)
    explicit = tmp_path / "explicit.safetensors"
    save_tiny(explicit, ["eve"], seed=2)
    assert vqaudio.load_model().speakers == ["ann", "bob"]  # the shipped default
    assert vqaudio.load_model("tiny").speakers == ["ann", "bob"]  # a shipped name
    monkeypatch.setenv(MODEL_ENV, str(other))
    assert vqaudio.load_model().speakers == ["zed"]  # VQAUDIO_MODEL over the default
    assert vqaudio.load_model(explicit).speakers == ["eve"]  # the argument over VQAUDIO_MODEL
    monkeypatch.setenv(MODEL_ENV, "tiny")
    assert resolve_model(None) == shipped
    monkeypatch.setenv(MODEL_ENV, "")  # empty counts as unset
    assert resolve_checkpoint() == shipped
    (tmp_path / "tiny").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_model("tiny") == Path("tiny")  # an existing path wins over a shipped name
    with pytest.raises(CheckpointError, match=r"model not found: nope .*shipped models: tiny"):
        vqaudio.load_model("nope")


def test_no_shipped_model_is_one_clear_error(shipped_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as err:
        vqaudio.load_model()
    assert str(err.value) == NO_MODEL
    wav = _wav(tmp_path / "in.wav")
    for args in (
        ["encode", str(wav), "-o", str(tmp_path / "x.vqa")],
        ["speakers"],
        ["convert", str(wav), "--speaker", "ann", "-o", str(tmp_path / "y.wav")],
        ["export", "-o", str(tmp_path / "e.safetensors")],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert _one_error_line(result.stderr) == f"error: {NO_MODEL}"
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    assert "none shipped" in result.stdout and "default: none" in result.stdout
    assert "VQAUDIO_MODEL: not set" in result.stdout


def test_two_models_without_a_default_say_so(save_tiny, shipped_dir: Path) -> None:
    save_tiny(shipped_dir / "a.safetensors", ["x"])
    save_tiny(shipped_dir / "b.safetensors", ["x"])
    with pytest.raises(CheckpointError, match=r"no default among the shipped models \(a, b\)"):
        vqaudio.load_model()


# ------------------------------------------------------------------------------------ commands


def test_encode_decode_speakers_without_model(shipped: Path, tmp_path: Path) -> None:
    wav = _wav(tmp_path / "in.wav")
    vqa, back = tmp_path / "in.vqa", tmp_path / "back.wav"
    result = runner.invoke(app, ["encode", str(wav), "-o", str(vqa)])
    assert result.exit_code == 0, result.output
    with open(vqa, "rb") as f:
        assert read_header(f)[0].model_id == model_fingerprint(vqaudio.load_model())[:16]
    result = runner.invoke(app, ["decode", str(vqa), "-o", str(back)])
    assert result.exit_code == 0, result.output
    assert sf.info(back).frames == sf.info(wav).frames
    result = runner.invoke(app, ["speakers"])
    assert result.exit_code == 0 and result.stdout.split() == ["ann", "bob"], result.output
    out = tmp_path / "tiny.safetensors"
    assert runner.invoke(app, ["export", "tiny", "-o", str(out)]).exit_code == 0
    assert vqaudio.read_checkpoint(out)[1].weights_sha256 == vqaudio.read_checkpoint("tiny")[1].weights_sha256


def test_models_lists_the_shipped(tiny_model_config, shipped: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listing = describe_models()
    (m,) = listing.models
    sha = vqaudio.read_checkpoint(shipped)[1].weights_sha256
    bitrates = [RunConfig(model=tiny_model_config()).model.bitrate(i) for i in range(2)]
    assert (m.name, m.default, m.num_speakers, m.sample_rate) == ("tiny", True, 2, 16000)
    assert m.weights_sha256 == sha
    assert m.bitrates == bitrates and 0 < m.size_mb < 1 and m.description == "a test model"
    assert listing.default == "tiny" and listing.env is None and listing.in_use == str(shipped)
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if "tiny" in line and sha[:12] in line)
    assert "yes" in row and "16000" in row and " / ".join(f"{b:.0f}" for b in bitrates) in row
    assert "default: tiny" in result.stdout and "tiny: a test model" in result.stdout
    monkeypatch.setenv(MODEL_ENV, "/nowhere/model.safetensors")
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["env"] == "/nowhere/model.safetensors" and data["default"] == "tiny"
    assert data["in_use"].startswith("none (model not found: /nowhere")
    assert data["models"][0]["weights_sha256"] == sha


def test_voices_of_a_shipped_model_live_in_the_user_folder(
    shipped: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    sha = vqaudio.read_checkpoint(shipped)[1].weights_sha256
    expected = tmp_path / "data" / "vqaudio" / "voices" / f"tiny-{sha[:12]}.voices.json"
    assert voices_path(shipped, sha) == expected
    other = tmp_path / "mine.safetensors"
    assert voices_path(other, sha) == tmp_path / "mine.voices.json"


def test_encode_without_model_as_a_subprocess(
    shipped: Path, tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    env = {**subprocess_env, DIR_ENV: str(shipped.parent)}
    env.pop(MODEL_ENV, None)
    wav = _wav(tmp_path / "in.wav")
    done = subprocess.run(
        [sys.executable, "-m", "vqaudio", "encode", str(wav), "-o", str(tmp_path / "in.vqa")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "in.vqa").is_file()


# ------------------------------------------------------------------------------------ packaging


def test_package_data_ships_the_models() -> None:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert {"pretrained/*.safetensors", "pretrained/*.json"} <= set(data["vqaudio"])
    assert (REPO / "vqaudio" / "pretrained" / "__init__.py").is_file()  # a package: found by packages.find


def test_models_shipped_in_the_repo_are_small_and_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DIR_ENV, raising=False)
    for model in available_models().values():
        assert model.path.stat().st_size <= MAX_SHIPPED_MB * 1e6, model.name
        assert vqaudio.load_model(model.name).checkpoint is not None
        assert model.card is None or (REPO / model.card).is_file(), model.card  # its model card


def test_the_shipped_default_round_trips_with_no_model_option(
    tmp_path: Path, subprocess_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a fresh install does: encode, info and decode a file with the model inside the package."""
    env = {k: v for k, v in subprocess_env.items() if k not in (DIR_ENV, MODEL_ENV)}
    monkeypatch.delenv(DIR_ENV, raising=False)
    path = default_model_path()
    if path is None:
        pytest.skip("this checkout ships no default model")
    wav = _wav(tmp_path / "in.wav")
    for args in (["encode", str(wav), "-o", str(tmp_path / "in.vqa")], ["info", str(tmp_path / "in.vqa")],
                 ["decode", str(tmp_path / "in.vqa"), "-o", str(tmp_path / "out.wav")]):  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "vqaudio", *args], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
    with open(tmp_path / "in.vqa", "rb") as f:
        assert read_header(f)[0].model_id == model_fingerprint(vqaudio.load_model(path))[:16]
    out, sr = sf.read(tmp_path / "out.wav")
    ref, _ = sf.read(wav)
    assert sr == 16000 and out.shape == ref.shape
