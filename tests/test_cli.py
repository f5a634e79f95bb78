"""The command line (through Typer's CliRunner and as real subprocesses) and recipe loading."""

from __future__ import annotations

import ctypes.util
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import vqaudio
from vqaudio.cli import app
from vqaudio.config import load_config
from vqaudio.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
Args = Callable[..., list[str]]  # the tiny_args fixture (conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")


def _one_error_line(stderr: str) -> str:
    """The single ``error: ...`` line a user error must produce (and nothing else, no traceback)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


# ------------------------------------------------------------------------------------ config files


def test_unknown_override_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"train\.max_stepz"):
        load_config(None, ["train.max_stepz=3"])
    with pytest.raises(ConfigError, match=r"'trian'"):
        load_config(None, ["trian.max_steps=3"])


def test_unknown_nested_recipe_key_is_named(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model:\n  levels:\n    - {strides: [4, 5], foo: 1}\n")
    with pytest.raises(ConfigError, match=r"model\.levels\.0\.foo"):
        load_config(recipe)
    recipe.write_text("model:\n  quantizer:\n    decay_rate: 0.9\n")
    with pytest.raises(ConfigError, match=r"model\.quantizer\.decay_rate"):
        load_config(recipe)


def test_recipe_base_inherits_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(
        "model:\n  speaker_dim: 16\n  quantizer: {decay: 0.9}\ntrain:\n  max_steps: 7\n  lr: 0.1\n"
    )
    (tmp_path / "sub").mkdir()
    child = tmp_path / "sub" / "child.yaml"
    child.write_text("base: ../base.yaml\nmodel:\n  quantizer: {commitment: 0.5}\ntrain:\n  lr: 0.2\n")
    cfg = load_config(child)
    assert cfg.train.max_steps == 7  # inherited
    assert cfg.train.lr == 0.2  # overridden
    assert cfg.model.speaker_dim == 16
    assert (cfg.model.quantizer.decay, cfg.model.quantizer.commitment) == (0.9, 0.5)  # merged, not replaced
    assert cfg.model.num_levels == 3  # defaults below the base
    cfg = load_config(child, ["train.lr=0.3", "model.levels.1.codebook_size=256"])
    assert cfg.train.lr == 0.3
    assert cfg.model.levels[1].codebook_size == 256 and cfg.model.levels[0].codebook_size == 1024

    loop = tmp_path / "loop.yaml"
    loop.write_text("base: loop.yaml\n")
    with pytest.raises(ConfigError, match="circular"):
        load_config(loop)


def test_shipped_recipes_load() -> None:
    noadv = load_config(REPO / "recipes" / "vctk_noadv.yaml")
    assert not noadv.adversarial.enabled
    assert noadv.data.kind == "vctk"  # from its base, vctk.yaml
    assert [noadv.model.bitrate(i) for i in range(3)] == [2000, 500, 250]
    tiny = load_config(REPO / "recipes" / "tiny.yaml")
    assert tiny.model.num_levels == 2
    stage2 = load_config(REPO / "recipes" / "default_stage2.yaml")  # the shipped model's stage 2
    assert stage2.model == replace(
        load_config(REPO / "recipes" / "default.yaml").model,
        voice_perturbation=0.5,
        voice_perturbation_levels=[1, 2],
    )
    assert not stage2.model.levels[0].speaker_conditioned  # so level 0 must hear the true voice
    stage3 = load_config(REPO / "recipes" / "default_stage3.yaml")  # stage 2 with level 0 at K = 2048
    assert stage3.model.levels[0] == replace(stage2.model.levels[0], codebook_size=2048)
    assert stage3.model.levels[1:] == stage2.model.levels[1:]
    assert replace(stage3.model, levels=stage2.model.levels) == stage2.model
    assert [stage3.model.bitrate(i) for i in range(3)] == [2200, 450, 225]  # the codec level <= 2400 bit/s


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.lr=abc", "train.lr"),
        ("train.max_steps=1.5", "train.max_steps"),
        ("data.preload=maybe", "data.preload"),
        ("data.kind=mp3", "data.kind"),
        ("model.levels=3", "model.levels"),
        ("train.max_steps=0", "train.max_steps"),
        ("model.levels.0.istft_strides=4", "istft_strides"),
        ("loss.phase_weight=-1", "loss weights"),
    ],
)
def test_bad_values_are_config_errors(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override])


# ---------------------------------------------------------------------------------------- CliRunner


def test_help() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for command in ("train", "config", "toy-corpus"):
        assert command in result.output
    result = runner.invoke(app, ["train", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--out", "--set", "--resume"):
        assert option in result.output


def test_config_prints_bitrates() -> None:
    result = runner.invoke(app, ["config", str(REPO / "recipes" / "vctk.yaml")])
    assert result.exit_code == 0, result.output
    assert "kind: vctk" in result.stdout
    lines = [line for line in result.stdout.splitlines() if line.count("│") >= 7]
    rows = [[c.strip() for c in line.split("│")] for line in lines]
    rows = [row for row in rows if row[1].isdigit()]
    assert [row[6] for row in rows] == ["2000", "500", "250"], result.stdout
    assert [row[7] for row in rows] == ["waveform"] * 3, result.stdout  # every encoder reads the audio
    assert [row[8] for row in rows] == ["iSTFT/80"] * 3, result.stdout
    mini = runner.invoke(app, ["config", str(REPO / "recipes" / "mini.yaml")])
    rows = [[c.strip() for c in line.split("│")] for line in mini.stdout.splitlines() if line.count("│") >= 8]
    assert [row[7] for row in rows if row[1].isdigit()] == ["waveform", "L0 front", "L0 front"]
    result = runner.invoke(
        app, ["config", str(REPO / "recipes" / "vctk.yaml"), "--set", "model.levels.0.codebook_size=256"]
    )
    assert result.exit_code == 0, result.output
    assert "codebook_size: 256" in result.stdout and "1600" in result.stdout


def test_config_errors_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2
    assert "recipe not found" in _one_error_line(result.stderr)
    result = runner.invoke(app, ["train", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "recipe not found" in _one_error_line(result.stderr)
    assert not (tmp_path / "run").exists()

    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: [1, 2\n")
    result = runner.invoke(app, ["config", str(bad)])
    assert result.exit_code == 2
    assert "invalid YAML" in _one_error_line(result.stderr)

    result = runner.invoke(app, ["config", str(REPO / "recipes" / "tiny.yaml"), "--set", "train.lr=abc"])
    assert result.exit_code == 2
    assert "train.lr" in _one_error_line(result.stderr)


def test_train_with_unknown_key_exits_2(tmp_path: Path, tiny_recipe: Path) -> None:
    result = runner.invoke(
        app, ["train", str(tiny_recipe), "--out", str(tmp_path / "run"), "--set", "train.bogus=1"]
    )
    assert result.exit_code == 2
    assert "train.bogus" in _one_error_line(result.stderr)
    assert not (tmp_path / "run").exists()


def test_train_with_missing_data_root_exits_2(tmp_path: Path, tiny_recipe: Path, tiny_args: Args) -> None:
    out = tmp_path / "run"
    args = ["train", str(tiny_recipe), "--out", str(out), *tiny_args(2, root=tmp_path / "nowhere")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    line = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert len(line) == 1 and "nowhere" in line[0] and "does not exist" in line[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()  # a run that never started leaves nothing behind


def test_train_resume_and_refusals(
    tmp_path: Path, tiny_recipe: Path, tiny_args: Args, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["train", str(tiny_recipe), "--out", "empty", "--resume", *tiny_args(2)])
    assert result.exit_code == 2
    assert "nothing to resume" in [x for x in result.stderr.splitlines() if x.startswith("error:")][0]

    result = runner.invoke(app, ["train", str(tiny_recipe), "--out", "run", *tiny_args(2)])
    assert result.exit_code == 0, result.output
    assert "finished at step 2" in result.stderr
    assert "bit/s" in result.stderr  # the resolved config and the bitrate table come first
    assert vqaudio.load_model(tmp_path / "run").speakers == ["spk0", "spk1", "spk2"]

    result = runner.invoke(app, ["train", str(tiny_recipe), "--out", "run", *tiny_args(3)])
    assert result.exit_code == 2
    assert "--resume" in [x for x in result.stderr.splitlines() if x.startswith("error:")][0]

    result = runner.invoke(
        app,
        ["train", str(tiny_recipe), "--out", "run", "--resume", *tiny_args(3, **{"model.speaker_dim": 4})],
    )
    assert result.exit_code == 2
    assert "model.speaker_dim" in [x for x in result.stderr.splitlines() if x.startswith("error:")][0]

    result = runner.invoke(app, ["train", str(tiny_recipe), "--out", "run", "--resume", *tiny_args(3)])
    assert result.exit_code == 0, result.output
    assert "finished at step 3" in result.stderr
    _, meta = vqaudio.read_checkpoint(tmp_path / "run" / "checkpoints" / "step_00000003.safetensors")
    assert meta.step == 3


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_train_device_cuda_without_gpu_exits_2(tmp_path: Path, tiny_recipe: Path, tiny_args: Args) -> None:
    result = runner.invoke(
        app, ["train", str(tiny_recipe), "--out", str(tmp_path / "run"), *tiny_args(2), "--device", "cuda"]
    )
    assert result.exit_code == 2
    assert "CUDA" in [x for x in result.stderr.splitlines() if x.startswith("error:")][0]


def test_toy_corpus(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["toy-corpus", str(tmp_path / "toy"), "--speakers", "2", "--utterances", "3", "--seconds", "0.2"]
    )
    assert result.exit_code == 0, result.output
    files = sorted(p.relative_to(tmp_path / "toy").as_posix() for p in (tmp_path / "toy").rglob("*.wav"))
    assert files == [f"spk{s}/spk{s}_{u:03d}.wav" for s in range(2) for u in range(3)]
    assert "wrote 6 utterances" in result.stderr
    result = runner.invoke(app, ["toy-corpus", str(tmp_path / "toy2"), "--speakers", "0"])
    assert result.exit_code == 2


needs_synthesisers = pytest.mark.skipif(
    shutil.which("flite") is None or ctypes.util.find_library("espeak-ng") is None,
    reason="flite or espeak-ng is not installed",
)


@needs_synthesisers
def test_demo_corpus_many_voices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vqaudio.data import demo_voices

    monkeypatch.setattr(demo_voices, "MANY_VOICES", ("awb", "awb-v1", "en-us+m3", "en-gb+f2-s160"))
    monkeypatch.setattr(demo_voices, "HELDOUT_VOICES", ("awb-v1", "en-gb+f2-s160"))
    out = tmp_path / "many"
    args = ["demo-corpus", str(out), "--many-voices", "--sentences", "6", "--sentences-per-voice", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "12 utterances by 4 voices (2 held out)" in result.stderr
    rows = [line.split("\t") for line in (out / "manifest.tsv").read_text().splitlines()[1:]]
    assert {(r[1], r[4]) for r in rows} == {
        ("awb", "seen"),
        ("awb-v1", "heldout"),
        ("en-us+m3", "seen"),
        ("en-gb+f2-s160", "heldout"),
    }
    assert (out / "splits" / "heldout_speakers.txt").read_text().split() == ["awb-v1", "en-gb+f2-s160"]


@needs_synthesisers
def test_demo_corpus_explicit_voices_and_heldout(tmp_path: Path) -> None:
    out = tmp_path / "c"
    args = [
        "demo-corpus",
        str(out),
        "--voices",
        "slt, en-029+f2",
        "--heldout",
        "en-029+f2",
        "--sentences",
        "2",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "4 utterances by 2 voices (1 held out)" in result.stderr  # every voice, every sentence
    assert sorted(p.parent.name for p in out.glob("wavs/*/*.wav")) == ["en-029+f2"] * 2 + ["slt"] * 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--many-voices", "--voices", "awb"], "many-voice mode has its own voices"),
        (["--voices", "awb", "--heldout", "slt"], "held-out voice slt is not one of"),
        (["--voices", "en-us+m3-p200"], "pitch must be 0-99"),
    ],
)
def test_demo_corpus_user_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["demo-corpus", str(tmp_path / "c"), "--sentences", "1", *args])
    assert result.exit_code == 2
    assert message in _one_error_line(result.stderr)
    assert not list(tmp_path.rglob("*.wav"))


@needs_synthesisers
def test_demo_corpus_unknown_voice(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo-corpus", str(tmp_path / "c"), "--voices", "awb,en-us+nosuch"])
    assert result.exit_code == 2
    assert "no voice variant 'nosuch'" in _one_error_line(result.stderr)
    result = runner.invoke(app, ["demo-corpus", str(tmp_path / "c"), "--voices", "nosuchvoice"])
    assert result.exit_code == 2
    assert "flite has no voice nosuchvoice" in _one_error_line(result.stderr)


# -------------------------------------------------------------------------------------- subprocesses


def test_python_m_vqaudio(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vqaudio", "--help"],
        cwd=tmp_path,
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "train" in done.stdout and "toy-corpus" in done.stdout

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "vqaudio",
            "train",
            str(REPO / "recipes" / "tiny.yaml"),
            "--out",
            "run",
            "--set",
            "train.bogus=1",
        ],
        cwd=tmp_path,
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "train.bogus" in _one_error_line(done.stderr)
    assert done.stdout == ""
    assert not (tmp_path / "run").exists()


def test_console_script(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    exe = shutil.which("vqaudio") or shutil.which("vqaudio", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the vqaudio console script is not installed")
    done = subprocess.run(
        [exe, "--help"], cwd=tmp_path, env=subprocess_env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "train" in done.stdout
