"""Fine-tuning (``train --init MODEL``): weights copied, speakers merged by name, quantisers not
re-initialised, mismatches refused or skipped, the source recorded, resume, and the CLI."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

import vqaudio
import vqaudio.quantize.vq as vq
from vqaudio.checkpoint import read_checkpoint, save_checkpoint
from vqaudio.cli import app
from vqaudio.config import RunConfig, load_config
from vqaudio.errors import ConfigError, UserError
from vqaudio.pretrained import DIR_ENV
from vqaudio.train import train
from vqaudio.train.finetune import InitSource, init_from, merge_speakers
from vqaudio.train.trainer import Trainer

SPEAKERS = ["spk0", "spk1", "spk2"]
Args = Callable[..., list[str]]
CfgFor = Callable[..., RunConfig]
runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def cfg_for(tiny_recipe: Path, tiny_overrides: Args) -> CfgFor:
    def make(max_steps: int = 2, root: Path | None = None, **extra: object) -> RunConfig:
        return load_config(tiny_recipe, tiny_overrides(max_steps, root, **extra))

    return make


@pytest.fixture(scope="module")
def source_run(tmp_path_factory: pytest.TempPathFactory, tiny_recipe: Path, tiny_overrides: Args) -> Path:
    """A finished 3-step tiny run on spk0..spk2: the model to start from (never modified)."""
    out = tmp_path_factory.mktemp("source") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(load_config(tiny_recipe, tiny_overrides(3)), out)
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture
def no_kmeans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count k-means initialisations (calls of ``vqaudio.quantize.vq.kmeans``)."""
    calls: list[int] = []
    real = vq.kmeans

    def counted(x: torch.Tensor, k: int, iters: int, spherical: bool) -> torch.Tensor:
        calls.append(k)
        return real(x, k, iters, spherical)

    monkeypatch.setattr(vq, "kmeans", counted)
    return calls


def _trainer(cfg: RunConfig, out: Path, **kwargs: Any) -> Trainer:
    return Trainer(cfg, out, False, None, **kwargs)


# ------------------------------------------------------------------------------------ weights


def test_init_copies_every_tensor(source_run: Path, cfg_for: CfgFor, tmp_path: Path) -> None:
    src, meta = read_checkpoint(source_run)
    trainer = _trainer(cfg_for(), tmp_path / "ft", init=source_run)
    try:
        state = trainer.model.state_dict()
        assert state.keys() == src.keys() and trainer.model.speakers == SPEAKERS
        for name, value in src.items():
            assert torch.equal(state[name].cpu(), value), name
        assert all(bool(lv.quantizer.initialized) for lv in trainer.model.levels)
    finally:
        trainer.close()


def test_init_trains_without_kmeans_and_records_its_source(
    source_run: Path, cfg_for: CfgFor, tmp_path: Path, no_kmeans: list[int]
) -> None:
    _, meta = read_checkpoint(source_run)
    out = tmp_path / "ft"
    result = train(cfg_for(2), out, init=source_run)
    assert result.step == 2 and no_kmeans == []  # the copied codebooks are used as they are
    expected = {"source": str(source_run / "best.safetensors"), "weights_sha256": meta.weights_sha256}
    record = json.loads((out / "init.json").read_text())
    assert record.items() >= {**expected, "step": 3, "speakers": SPEAKERS, "new_speakers": []}.items()
    assert json.loads((out / "finished.json").read_text())["init"].items() >= expected.items()
    for ckpt in (out / "best.safetensors", out / "checkpoints" / "step_00000002.safetensors"):
        assert read_checkpoint(ckpt)[1].extra["init"].items() >= expected.items()
    assert vqaudio.load_model(out).checkpoint.weights_sha256 != meta.weights_sha256  # it did train


def test_new_speakers_join_the_table_and_resume(
    source_run: Path, toy_corpus: Path, cfg_for: CfgFor, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus"
    for old, new in (("spk1", "spk1"), ("spk2", "spk2"), ("spk0", "zed")):
        shutil.copytree(toy_corpus / old, corpus / new)
    src, _ = read_checkpoint(source_run)
    table = src["speaker_embedding.weight"]
    trainer = _trainer(cfg_for(2, root=corpus), tmp_path / "probe", init=source_run)
    try:
        model = trainer.model
        assert model.speakers == [*SPEAKERS, "zed"]  # spk0 is kept from the model, zed is new
        rows = model.state_dict()["speaker_embedding.weight"].cpu()
        assert torch.equal(rows[:3], table) and torch.allclose(rows[3], table.mean(0))
    finally:
        trainer.close()
    out = tmp_path / "ft"
    cfg = cfg_for(2, root=corpus)
    assert train(cfg, out, init=source_run, stop_after=1).interrupted
    assert train(cfg, out, resume=True).step == 2  # the table is rebuilt the same way from init.json
    assert vqaudio.load_model(out).speakers == [*SPEAKERS, "zed"]
    assert json.loads((out / "init.json").read_text())["new_speakers"] == ["zed"]
    assert "init" in json.loads((out / "finished.json").read_text())


def test_speaker_tensors_merge_by_name(tiny_model_config) -> None:
    cfg = RunConfig(model=tiny_model_config())
    cfg.model.speaker_adversary = 0.5
    torch.manual_seed(0)
    old = vqaudio.build_model(cfg.model, ["a", "b", "c"])
    tmp_state = {k: v.clone() for k, v in old.state_dict().items()}
    from vqaudio.checkpoint import CheckpointMeta

    meta = CheckpointMeta(1, cfg, ["a", "b", "c"], 16000, "", 5, "0" * 64, {}, {}, {})
    source = InitSource(Path("old.safetensors"), None, tmp_state, meta)
    new = vqaudio.build_model(cfg.model, merge_speakers(["a", "b", "c"], ["b", "d"]))
    assert new.speakers == ["a", "b", "c", "d"]
    report = init_from(new, source, cfg)
    assert report.new_speakers == ["d"] and report.skipped == [] and report.kept_speakers == ["a", "b", "c"]
    names = new.speaker_tensors()
    assert "speaker_embedding.weight" in names and any(n.startswith("speaker_adversary.1.") for n in names)
    state = new.state_dict()
    for name in names:
        assert torch.equal(state[name][:3], tmp_state[name]), name
        assert torch.allclose(state[name][3], tmp_state[name].mean(0)), name
    assert all(torch.equal(state[k], v) for k, v in tmp_state.items() if k not in names)


# ------------------------------------------------------------------------------------ mismatches


def test_mismatched_shapes_are_listed_and_refused(source_run: Path, cfg_for: CfgFor, tmp_path: Path) -> None:
    out = tmp_path / "ft"
    with pytest.raises(ConfigError) as err:
        train(cfg_for(2, **{"model.levels.1.codebook_size": 32}), out, init=source_run)
    message = str(err.value)
    assert "levels.1.quantizer.codebook [64, 8] -> [32, 8]" in message
    assert "levels.1.quantizer.ema_count [64] -> [32]" in message
    assert "model.levels.1.codebook_size: 64 -> 32" in message and "--init-skip-mismatched" in message
    assert "levels.0." not in message
    assert not (out / "checkpoints").exists() and not (out / "init.json").exists()


def test_a_larger_codebook_is_grown_from_the_model_and_a_smaller_one_refused(
    source_run: Path, cfg_for: CfgFor, tmp_path: Path, no_kmeans: list[int]
) -> None:
    src, _ = read_checkpoint(source_run)
    cfg = cfg_for(1, **{"model.levels.1.codebook_size": 128})
    trainer = _trainer(cfg, tmp_path / "probe", init=source_run)
    try:
        state = {k: v.cpu() for k, v in trainer.model.state_dict().items()}
    finally:
        trainer.close()
    assert state["levels.1.quantizer.codebook"].shape == (128, 8)
    assert torch.equal(state["levels.1.quantizer.codebook"][:64], src["levels.1.quantizer.codebook"])
    assert bool(state["levels.1.quantizer.initialized"])  # copied, not re-initialised
    assert torch.equal(state["levels.1.quantizer.running_mean"], src["levels.1.quantizer.running_mean"])
    assert all(torch.equal(state[k], v) for k, v in src.items() if not k.startswith("levels.1.quantizer."))
    out = tmp_path / "ft"
    assert train(cfg, out, init=source_run).step == 1
    assert no_kmeans == []  # no quantiser started afresh
    record = json.loads((out / "init.json").read_text())
    assert record["grown_quantizers"] == ["levels.1.quantizer: 64 -> 128 codes"] and record["skipped"] == []
    assert read_checkpoint(out)[1].config.model.levels[1].codebook_size == 128


def test_skip_mismatched_keeps_fresh_tensors_and_runs_kmeans_there(
    source_run: Path, cfg_for: CfgFor, tmp_path: Path, no_kmeans: list[int]
) -> None:
    src, _ = read_checkpoint(source_run)
    cfg = cfg_for(1, **{"model.levels.1.codebook_size": 32})
    trainer = _trainer(cfg, tmp_path / "probe", init=source_run, init_skip_mismatched=True)
    try:
        state = trainer.model.state_dict()
        assert torch.equal(state["levels.0.quantizer.codebook"].cpu(), src["levels.0.quantizer.codebook"])
        assert torch.equal(state["levels.1.decoder.proj.weight"].cpu(), src["levels.1.decoder.proj.weight"])
        assert not bool(state["levels.1.quantizer.initialized"])  # the whole quantiser stays fresh
        assert not torch.equal(
            state["levels.1.quantizer.running_mean"].cpu(), src["levels.1.quantizer.running_mean"]
        )
    finally:
        trainer.close()
    out = tmp_path / "ft"
    assert train(cfg, out, init=source_run, init_skip_mismatched=True).step == 1
    assert no_kmeans == [32]  # level 1 only
    record = json.loads((out / "init.json").read_text())
    assert record["fresh_quantizers"] == ["levels.1.quantizer"]
    assert "levels.1.quantizer.codebook [64, 8] -> [32, 8]" in record["skipped"]


def test_init_with_resume_or_without_a_model_is_refused(
    source_run: Path, cfg_for: CfgFor, tmp_path: Path
) -> None:
    with pytest.raises(UserError, match="--resume"):
        train(cfg_for(), tmp_path / "ft", resume=True, init=source_run)
    with pytest.raises(UserError, match="--init needs a model"):
        train(cfg_for(), tmp_path / "ft", init="")


# ------------------------------------------------------------------------------------ command line


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_cli_init(
    source_run: Path,
    tiny_recipe: Path,
    tiny_args: Args,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = ["train", str(tiny_recipe), "--out", str(tmp_path / "ft")]
    result = runner.invoke(app, [*base, "--init", str(source_run), "--resume", *tiny_args(1)])
    assert result.exit_code == 2 and "--resume" in _error_line(result.stderr)
    result = runner.invoke(
        app, [*base, "--init", str(source_run), *tiny_args(1, **{"model.levels.0.code_dim": 4})]
    )
    assert result.exit_code == 2, result.output
    line = _error_line(result.stderr)
    assert "levels.0.quantizer.codebook [64, 8] -> [64, 4]" in line and "model.levels.0.code_dim" in line
    result = runner.invoke(app, [*base, "--init", "nothing-by-this-name", *tiny_args(1)])
    assert result.exit_code == 2 and "model not found" in _error_line(result.stderr)

    shipped = tmp_path / "pretrained"
    shipped.mkdir()
    net = vqaudio.load_model(source_run)
    save_checkpoint(shipped / "base.safetensors", net, net.checkpoint.config, net.checkpoint.step)
    monkeypatch.setenv(DIR_ENV, str(shipped))
    result = runner.invoke(app, [*base, "--init", "base", *tiny_args(1)])
    assert result.exit_code == 0, result.output
    assert "init from" in result.stderr and "3 in the corpus and the model, 0 new" in result.stderr
    assert json.loads((tmp_path / "ft" / "init.json").read_text())["name"] == "base"


def test_finetune_recipe_adapts_the_shipped_default(
    toy_corpus: Path, tmp_path: Path, tiny_args: Callable[..., list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """recipes/finetune.yaml --init the model inside the package: its voices kept, the corpus's added."""
    from vqaudio.pretrained import default_model

    monkeypatch.delenv(DIR_ENV, raising=False)
    shipped = default_model()
    if shipped is None:
        pytest.skip("this checkout ships no default model")
    out = tmp_path / "mine"
    recipe = str(Path(__file__).resolve().parents[1] / "recipes" / "finetune.yaml")
    result = runner.invoke(app, ["train", recipe, "--init", shipped.name, "--out", str(out), *tiny_args(2)])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "init.json").read_text())
    assert record["name"] == shipped.name and record["new_speakers"] == ["spk0", "spk1", "spk2"]
    source, tuned = vqaudio.load_model(shipped.name), vqaudio.load_model(out)
    assert tuned.speakers == [*source.speakers, "spk0", "spk1", "spk2"]
    assert tuned.config == source.config
