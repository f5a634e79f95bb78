"""Checkpoints: safetensors + JSON metadata, SHA-256, load_model from files and run dirs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import vqaudio
from vqaudio.checkpoint import CHECKPOINT_SCHEMA, read_checkpoint, resolve_checkpoint, save_checkpoint
from vqaudio.config import RunConfig
from vqaudio.errors import CheckpointError


@pytest.fixture
def saved(tiny_model_config, tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    cfg = RunConfig(model=tiny_model_config())
    model = vqaudio.build_model(cfg.model, ["x", "y"])
    model.train()
    model(torch.randn(2, 1, 2000) * 0.1, torch.tensor([0, 1]))
    model.eval()
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, model, cfg, step=7)
    return path, model


def test_save_then_load_gives_identical_outputs(saved) -> None:
    path, model = saved
    loaded = vqaudio.load_model(path)
    assert loaded.speakers == ["x", "y"] and loaded.num_levels == 2 and loaded.sample_rate == 16000
    assert loaded.checkpoint.step == 7
    x = torch.randn(1, 1, 3333) * 0.1
    for level in range(2):
        c1, c2 = model.encode(x, level=level), loaded.encode(x, level=level)
        assert torch.equal(c1, c2)
        assert torch.equal(
            model.decode(c1, level=level, speaker="y"), loaded.decode(c2, level=level, speaker="y")
        )


def test_metadata_is_json_with_config_speakers_and_hash(saved) -> None:
    path, _ = saved
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["vqaudio"])
    assert meta["schema"] == CHECKPOINT_SCHEMA
    assert meta["speakers"] == ["x", "y"]
    assert meta["sample_rate"] == 16000
    assert meta["version"] == vqaudio.__version__
    assert len(meta["weights_sha256"]) == 64
    assert meta["config"]["model"]["levels"][1]["strides"] == [4, 5, 2]


def test_code_tables_are_stored_as_handed_over(tiny_model_config, saved, tmp_path: Path) -> None:
    path, model = saved
    assert read_checkpoint(path)[1].code_tables == {}  # none given, none stored
    tables = {0: b"\x00\x01table", 1: bytes(range(256))}
    save_checkpoint(
        tmp_path / "t.safetensors", model, RunConfig(model=tiny_model_config()), code_tables=tables
    )
    assert read_checkpoint(tmp_path / "t.safetensors")[1].code_tables == tables


def test_half_precision_export_halves_the_file_and_decodes_alike(saved, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vqaudio.cli import app

    path, model = saved
    half = tmp_path / "half.safetensors"
    result = CliRunner().invoke(app, ["export", str(path), "-o", str(half), "--dtype", "float16"])
    assert result.exit_code == 0, result.output
    assert "float16" in result.stderr

    def tensors(p: Path) -> list[torch.Tensor]:
        with safe_open(str(p), framework="pt") as f:
            return [f.get_tensor(k) for k in f.keys()]  # noqa: SIM118

    def nbytes(p: Path) -> int:
        return sum(t.numel() * t.element_size() for t in tensors(p))

    dtypes = {t.dtype for t in tensors(half)}
    assert torch.float16 in dtypes and torch.float32 not in dtypes
    assert nbytes(half) < 0.55 * nbytes(path)  # (int buffers stay as they are)
    loaded = vqaudio.load_model(half)
    assert next(loaded.parameters()).dtype == torch.float32  # computes in float32
    _, meta32 = read_checkpoint(path)
    assert loaded.checkpoint.weights_sha256 != meta32.weights_sha256  # another model for streams
    x = torch.randn(1, 1, 4000) * 0.1
    for level in range(2):
        c32, c16 = model.encode(x, level=level), loaded.encode(x, level=level)
        assert (c32 == c16).float().mean() > 0.75  # near-ties flip (many in a random tiny model)
        y32, y16 = model.decode(c32, level, "x"), loaded.decode(c32, level, "x")
        assert (y32 - y16).abs().max() < 0.02 * y32.abs().max() + 1e-4
    again = tmp_path / "again.safetensors"  # re-exporting the half model as half: the same file
    assert (
        CliRunner().invoke(app, ["export", str(half), "-o", str(again), "--dtype", "float16"]).exit_code == 0
    )
    assert read_checkpoint(again)[1].weights_sha256 == loaded.checkpoint.weights_sha256
    bad = CliRunner().invoke(
        app, ["export", str(path), "-o", str(tmp_path / "b.safetensors"), "--dtype", "int8"]
    )
    assert bad.exit_code == 2 and "--dtype" in bad.stderr


def test_corrupted_weights_are_detected(saved, tmp_path: Path) -> None:
    path, _ = saved
    state, meta = read_checkpoint(path)
    with safe_open(str(path), framework="pt") as f:
        raw = f.metadata()
    key = sorted(state)[0]
    state[key] = state[key] + 1
    bad = tmp_path / "bad.safetensors"
    save_file(state, str(bad), metadata=raw)
    with pytest.raises(CheckpointError, match="SHA-256"):
        vqaudio.load_model(bad)


def test_not_a_checkpoint(tmp_path: Path) -> None:
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError):
        vqaudio.load_model(junk)
    plain = tmp_path / "plain.safetensors"
    save_file({"a": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="without vqaudio metadata"):
        vqaudio.load_model(plain)
    with pytest.raises(CheckpointError, match="not found"):
        vqaudio.load_model(tmp_path / "missing.safetensors")


def test_newer_schema_is_refused(saved, tmp_path: Path) -> None:
    path, _ = saved
    state, _ = read_checkpoint(path)
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["vqaudio"])
    meta["schema"] = CHECKPOINT_SCHEMA + 1
    newer = tmp_path / "newer.safetensors"
    save_file(state, str(newer), metadata={"vqaudio": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="newer"):
        vqaudio.load_model(newer)


def test_run_directory_resolves_best_then_latest(saved, tmp_path: Path) -> None:
    path, model = saved
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        resolve_checkpoint(run)
    latest = run / "checkpoints" / "step_00000010.safetensors"
    latest.write_bytes(path.read_bytes())
    (run / "latest.txt").write_text("checkpoints/step_00000010.safetensors\n")
    assert resolve_checkpoint(run) == latest
    (run / "best.safetensors").write_bytes(path.read_bytes())
    assert resolve_checkpoint(run) == run / "best.safetensors"
    assert vqaudio.load_model(run).speakers == ["x", "y"]


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("vqaudio.checkpoint", ("vqaudio.codec", "vqaudio.cli", "vqaudio.train")),
        ("vqaudio.models", ("vqaudio.checkpoint", "vqaudio.codec", "vqaudio.cli", "vqaudio.train")),
    ],
)
def test_imports_point_down_only(module: str, forbidden: tuple[str, ...], subprocess_env) -> None:
    """The checkpoint stores what it is handed (it imports neither the codec nor the CLI), and the models
    import no checkpoint: checked in a fresh interpreter, where nothing else was imported first."""
    import subprocess
    import sys

    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith({forbidden!r})))"
    done = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
