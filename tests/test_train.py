"""Training end to end: run-directory layout, exact resume, refusals, signals, DDP, non-finite steps."""

from __future__ import annotations

import math
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

import vqaudio
from vqaudio.codec.compress import code_tables
from vqaudio.config import RunConfig, load_config
from vqaudio.data.dataset import SegmentDataset
from vqaudio.data.synthetic import toy_utterance
from vqaudio.errors import CheckpointError, ConfigError, UserError
from vqaudio.train import RunDir, TrainingError, lr_at, train

SPEAKERS = ["spk0", "spk1", "spk2"]
Args = Callable[..., list[str]]  # the tiny_overrides / tiny_args fixtures (conftest.py)
CfgFor = Callable[..., RunConfig]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def cfg_for(tiny_recipe: Path, tiny_overrides: Args) -> CfgFor:
    """``cfg_for(max_steps, root=None, **extra)`` -> the resolved tiny config."""

    def make(max_steps: int = 3, root: Path | None = None, **extra: object) -> RunConfig:
        return load_config(tiny_recipe, tiny_overrides(max_steps, root, **extra))

    return make


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory, tiny_recipe: Path, tiny_overrides: Args) -> Path:
    """A finished 3-step tiny run; tests that change it must copy it first."""
    out = tmp_path_factory.mktemp("run") / "run"
    threads = torch.get_num_threads()  # module-scoped: set up before the one_thread fixture
    torch.set_num_threads(1)
    try:
        result = train(load_config(tiny_recipe, tiny_overrides(3)), out)
    finally:
        torch.set_num_threads(threads)
    assert result.step == 3 and not result.interrupted
    return out


# ----------------------------------------------------------------------------------------- layout


def test_run_directory_layout_and_reload(trained_run: Path) -> None:
    run = trained_run
    assert (run / "config.yaml").is_file()
    assert load_config(run / "config.yaml").train.max_steps == 3  # the resolved config reloads as a recipe
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "step_00000003.safetensors",
        "step_00000003.state.pt",
    ]
    assert (run / "latest.txt").read_text().strip() == "checkpoints/step_00000003.safetensors"
    assert (run / "best.safetensors").is_file()
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert [e.step for e in _scalars(run, "loss/total")] == [1, 2, 3]
    assert [e.step for e in _scalars(run, "valid/mel")] == [0, 3]

    state = torch.load(run / "checkpoints" / "step_00000003.state.pt", weights_only=True)
    assert state["step"] == 3
    assert state["skipped"] == 0
    assert math.isfinite(state["best"])
    assert state["optimizer"]["state"]  # AdamW moments were saved

    model = vqaudio.load_model(run)
    assert model.speakers == SPEAKERS
    assert model.num_levels == 2
    assert model.sample_rate == 16000
    assert not model.training
    step_model = vqaudio.load_model(run / "checkpoints" / "step_00000003.safetensors")
    assert step_model.checkpoint.step == 3  # type: ignore[union-attr]
    for m in (model, step_model):  # the trainer hands the checkpoint its entropy-coding tables
        assert m.checkpoint.code_tables == code_tables(m)  # type: ignore[union-attr]
    for name, value in step_model.state_dict().items():
        assert torch.isfinite(value.float()).all(), name
    wav = torch.randn(1, 1, 1237) * 0.1
    for level in range(model.num_levels):
        codes = model.encode(wav, level=level)
        out = model.decode(codes, level=level, speaker="spk1")
        assert out.shape == wav.shape
        assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))],
)
def test_train_result_and_resume(tmp_path: Path, cfg_for: CfgFor, device: str) -> None:
    cfg = cfg_for(3, **{"train.device": device})
    first = train(cfg, tmp_path / "run", stop_after=2)
    assert (first.step, first.interrupted) == (2, True)
    assert first.checkpoint == tmp_path / "run" / "checkpoints" / "step_00000002.safetensors"
    result = train(cfg, tmp_path / "run", resume=True)
    assert result.step == 3
    assert not result.interrupted
    assert result.skipped_steps == 0
    assert result.run_dir == tmp_path / "run"
    assert result.checkpoint == tmp_path / "run" / "checkpoints" / "step_00000003.safetensors"
    assert result.best_metric is not None and math.isfinite(result.best_metric)
    assert [h["step"] for h in result.history] == [3.0]  # step 0 was evaluated before the stop
    assert result.wall_seconds > 0
    model = vqaudio.load_model(tmp_path / "run", device=device)
    wav = torch.randn(2, 1, 999, device=device) * 0.1
    assert model.decode(model.encode(wav, level=1), level=1, speaker=0).shape == wav.shape


# ------------------------------------------------------------------------------------ exact resume


def _scalars(run: Path, tag: str) -> list[Any]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    return events.Scalars(tag) if tag in events.Tags()["scalars"] else []


def _weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / f"step_{step:08d}.safetensors"))


AUGMENT_ALL = {f"data.augment.{kind}.prob": 0.7 for kind in ("reverb", "noise", "eq", "gain")}
AUGMENT_SPEED = {"model.speaker_encoder": "true", "data.augment.speed.prob": 0.7}


@pytest.mark.parametrize(
    ("workers", "augment"),
    [(0, {}), (2, {}), (0, AUGMENT_ALL), (0, AUGMENT_SPEED)],
    ids=["plain", "workers", "augment", "speed"],
)
def test_resume_is_exact(tmp_path: Path, cfg_for: CfgFor, workers: int, augment: dict[str, Any]) -> None:
    # evaluations at 2, 4, 6 and a dead-code restart every other step: resume crosses all of them
    cfg = cfg_for(
        6,
        **{
            "data.num_workers": workers,
            "train.eval_every": 2,
            "model.quantizer.restart_every": 2,
            "model.quantizer.restart_threshold": 1.0,
            **augment,
        },
    )
    assert cfg.data.augment.enabled == bool(augment)
    a = train(cfg, tmp_path / "a")
    b1 = train(cfg, tmp_path / "b", stop_after=3)
    assert b1.step == 3 and b1.interrupted
    assert RunDir(tmp_path / "b").steps() == [3]
    b2 = train(cfg, tmp_path / "b", resume=True)
    assert b2.step == 6 and not b2.interrupted
    assert b2.best_metric == a.best_metric

    wa, wb = _weights(tmp_path / "a", 6), _weights(tmp_path / "b", 6)
    assert wa.keys() == wb.keys()
    buffers = [
        k
        for k in wa
        if k.endswith(
            (
                "quantizer.codebook",
                "quantizer.ema_count",
                "quantizer.ema_sum",
                "quantizer.last_used",
                "quantizer.steps",
            )
        )
    ]
    assert len(buffers) == 10  # five buffers on each of the two levels
    assert int(wa["levels.0.quantizer.total_restarts"]) > 0
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not different

    sa = torch.load(tmp_path / "a" / "checkpoints" / "step_00000006.state.pt", weights_only=True)
    sb = torch.load(tmp_path / "b" / "checkpoints" / "step_00000006.state.pt", weights_only=True)
    for pid, moments in sa["optimizer"]["state"].items():
        for name, value in moments.items():
            assert torch.equal(value, sb["optimizer"]["state"][pid][name]), (pid, name)
    assert torch.equal(sa["rng"]["cpu"], sb["rng"]["cpu"])


@pytest.mark.parametrize("target", ["augmented", "clean"])
def test_augmentation_reaches_training_not_validation(tmp_path: Path, cfg_for: CfgFor, target: str) -> None:
    plain = train(cfg_for(2), tmp_path / "plain")
    cfg = cfg_for(2, **{k: 1.0 for k in AUGMENT_ALL}, **{"data.augment.target": target})
    augmented = train(cfg, tmp_path / "augmented")
    assert augmented.skipped_steps == 0
    # the same initial model is validated identically at step 0: validation audio is never augmented
    assert augmented.history[0]["step"] == 0.0
    assert augmented.history[0]["valid/mel"] == plain.history[0]["valid/mel"]
    wa, wb = _weights(tmp_path / "plain", 2), _weights(tmp_path / "augmented", 2)
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)  # but training saw other audio
    for value in wb.values():
        assert torch.isfinite(value.float()).all()


def test_speed_perturbed_items_train_as_voices_outside_the_table(tmp_path: Path, cfg_for: CfgFor) -> None:
    # every item sped up or slowed: none is its speaker's voice, so the speaker encoder has no table
    # vector to match (its loss is 0) while the codec still trains on the new voices
    encoder = {"model.speaker_encoder": "true", "train.log_every": 1}
    plain = train(cfg_for(2, **encoder), tmp_path / "plain")
    sped = train(
        cfg_for(2, **encoder, **{"data.augment.speed.prob": 1.0, "data.augment.speed.factors": "[0.9, 1.1]"}),
        tmp_path / "sped",
    )
    assert sped.skipped_steps == 0 and plain.skipped_steps == 0
    assert [e.value for e in _scalars(tmp_path / "sped", "loss/speaker_encoder")] == [0.0, 0.0]
    assert all(e.value > 0 for e in _scalars(tmp_path / "plain", "loss/speaker_encoder"))
    wa, wb = _weights(tmp_path / "plain", 2), _weights(tmp_path / "sped", 2)
    assert any(not torch.equal(wa[k], wb[k]) for k in wa if k.startswith("levels."))


# --------------------------------------------------------------------------------------- refusals


def test_resume_of_an_empty_directory_is_refused(tmp_path: Path, cfg_for: CfgFor) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(cfg_for(2), tmp_path / "empty", resume=True)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(cfg_for(2), tmp_path / "missing", resume=True)


def test_existing_run_needs_resume(trained_run: Path, cfg_for: CfgFor) -> None:
    before = sorted(p.name for p in (trained_run / "checkpoints").iterdir())
    with pytest.raises(UserError, match="--resume"):
        train(cfg_for(3), trained_run)
    assert sorted(p.name for p in (trained_run / "checkpoints").iterdir()) == before


def test_resume_with_a_changed_model_is_refused(trained_run: Path, cfg_for: CfgFor) -> None:
    with pytest.raises(ConfigError, match=r"model\.speaker_dim"):
        train(cfg_for(3, **{"model.speaker_dim": 4}), trained_run, resume=True)
    with pytest.raises(ConfigError, match=r"model\.levels\.1\.codebook_size"):
        train(cfg_for(3, **{"model.levels.1.codebook_size": 32}), trained_run, resume=True)
    with pytest.raises(ConfigError, match=r"train\.lr"):
        train(cfg_for(3, **{"train.lr": 0.1}), trained_run, resume=True)


def test_resume_with_more_steps(trained_run: Path, tmp_path: Path, cfg_for: CfgFor) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    result = train(cfg_for(5), run, resume=True)
    assert result.step == 5 and not result.interrupted
    assert RunDir(run).steps() == [3, 5]
    assert load_config(run / "config.yaml").train.max_steps == 5
    # already finished: resuming again does nothing and is not an error
    again = train(cfg_for(5), run, resume=True)
    assert again.step == 5 and not again.interrupted


def test_resume_with_other_speakers_is_refused(trained_run: Path, tmp_path: Path, cfg_for: CfgFor) -> None:
    from vqaudio.data.synthetic import make_toy_corpus

    other = make_toy_corpus(tmp_path / "other", speakers=2, utterances=2, seconds=0.3)
    with pytest.raises(ConfigError, match="speakers"):
        train(cfg_for(5, root=other), trained_run, resume=True)


# ------------------------------------------------------------------------------------- non-finite


def _poison(monkeypatch: pytest.MonkeyPatch, bad_steps: set[int] | None, batch_size: int = 2) -> None:
    """Make the training batches of ``bad_steps`` (None: every step from 1 on) NaN.

    With ``num_workers=0`` items are fetched in order, ``batch_size`` per step; validation does not go
    through the dataset.
    """
    original = SegmentDataset.__getitem__
    calls = [0]

    def getitem(self: SegmentDataset, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        wav, spk = original(self, key)
        step = calls[0] // batch_size
        calls[0] += 1
        if (step >= 1) if bad_steps is None else (step in bad_steps):
            wav = torch.full_like(wav, float("nan"))
        return wav, spk

    monkeypatch.setattr(SegmentDataset, "__getitem__", getitem)


TINY_ADVERSARIAL = {
    "adversarial.enabled": "true",
    "adversarial.channels": 4,
    "adversarial.periods": "[2]",
    "adversarial.fft_sizes": "[256]",
}


@pytest.mark.parametrize("adversarial", [False, True], ids=["plain", "adversarial"])
def test_non_finite_steps_are_skipped(
    tmp_path: Path, cfg_for: CfgFor, monkeypatch: pytest.MonkeyPatch, adversarial: bool
) -> None:
    _poison(monkeypatch, {2, 3})
    extra = TINY_ADVERSARIAL if adversarial else {}
    result = train(cfg_for(6, **{"train.max_bad_steps": 3}, **extra), tmp_path / "run")
    assert result.step == 6
    assert result.skipped_steps == 2
    state = torch.load(tmp_path / "run" / "checkpoints" / "step_00000006.state.pt", weights_only=True)
    assert state["skipped"] == 2
    # a skipped step leaves no trace: weights and quantizer statistics stay finite
    weights = _weights(tmp_path / "run", 6)
    bad = [k for k, v in weights.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    assert not bad
    assert result.best_metric is not None and math.isfinite(result.best_metric)
    if adversarial:
        assert state["disc"] and all(torch.isfinite(v).all() for v in state["disc"].values())


def test_best_checkpoint_comes_from_the_adversarial_stage_once_it_runs(
    tmp_path: Path, cfg_for: CfgFor
) -> None:
    extra = {**TINY_ADVERSARIAL, "adversarial.start_step": 2, "train.eval_every": 1}
    train(cfg_for(4, **extra), tmp_path / "run")
    _, meta = vqaudio.read_checkpoint(tmp_path / "run" / "best.safetensors")
    assert meta.step > 2  # even if the mel distance was lower before the discriminators joined
    state = torch.load(tmp_path / "run" / "checkpoints" / "step_00000004.state.pt", weights_only=True)
    assert state["best_step"] == meta.step


def test_too_many_bad_steps_stop_training(
    tmp_path: Path, cfg_for: CfgFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    _poison(monkeypatch, None)
    with pytest.raises(TrainingError, match="2 non-finite steps in a row at step 2"):
        train(cfg_for(20, **{"train.max_bad_steps": 2}), tmp_path / "run")
    # the TensorBoard log was flushed and closed on the way out
    assert [e.step for e in _scalars(tmp_path / "run", "train/skipped_steps")] == [1, 2]


# ------------------------------------------------------------------------------------- lr schedule


def test_lr_schedule() -> None:
    cfg = load_config(
        None, ["train.lr=1.0", "train.warmup_steps=4", "train.max_steps=20", "train.min_lr_ratio=0.1"]
    )
    warm = [lr_at(s, cfg) for s in range(4)]
    assert warm == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lr_at(4, cfg) == pytest.approx(1.0)
    decay = [lr_at(s, cfg) for s in range(4, 21)]
    assert all(a > b for a, b in zip(decay, decay[1:], strict=False))
    assert lr_at(12, cfg) == pytest.approx(0.1 + 0.9 * 0.5)  # half way down the cosine
    assert lr_at(20, cfg) == pytest.approx(0.1)
    assert lr_at(25, cfg) == pytest.approx(0.1)

    const = load_config(None, ["train.lr=0.5", "train.warmup_steps=0", "train.schedule=constant"])
    assert {lr_at(s, const) for s in (0, 1, 500, 10**6)} == {0.5}
    no_warmup = load_config(None, ["train.lr=0.5", "train.warmup_steps=0", "train.max_steps=10"])
    assert lr_at(0, no_warmup) == pytest.approx(0.5)
    # warm-up, stable, decay: constant until the last 25% of the steps, then the cosine down to the floor
    wsd = load_config(
        None,
        ["train.lr=1.0", "train.warmup_steps=0", "train.max_steps=200", "train.min_lr_ratio=0.1"]
        + ["train.schedule=wsd", "train.decay_fraction=0.25"],
    )
    assert {lr_at(s, wsd) for s in (0, 80, 150)} == {1.0}
    assert lr_at(175, wsd) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_at(200, wsd) == pytest.approx(0.1) and lr_at(180, wsd) < lr_at(160, wsd) < 1.0
    with pytest.raises(ConfigError, match="decay_fraction"):
        load_config(None, ["train.decay_fraction=0"])


# --------------------------------------------------------------------------------------- VCTK trees


def _fake_vctk(root: Path, new_layout: bool) -> Path:
    rng = np.random.default_rng(1)
    speakers = {"p225": (110.0, 1.0), "p226": (200.0, 1.2)}
    wav_dir = root / ("wav48_silence_trimmed" if new_layout else "wav48")
    for spk, (f0, tract) in speakers.items():
        (wav_dir / spk).mkdir(parents=True)
        (root / "txt" / spk).mkdir(parents=True)
        for u in range(1, 4):
            wav = toy_utterance(rng, 48000, rng.uniform(0.5, 0.8), f0, tract)
            if new_layout:
                sf.write(wav_dir / spk / f"{spk}_{u:03d}_mic1.flac", wav, 48000)
                sf.write(wav_dir / spk / f"{spk}_{u:03d}_mic2.flac", wav * 0.5, 48000)
            else:
                sf.write(wav_dir / spk / f"{spk}_{u:03d}.wav", wav, 48000)
            (root / "txt" / spk / f"{spk}_{u:03d}.txt").write_text("Please call Stella.\n")
    (root / "speaker-info.txt").write_text(
        "ID  AGE  GENDER  ACCENTS  REGION\n225  23  F    English    Southern  England\n"
        "226  22  M    English    Surrey\n"
        if not new_layout
        else "ID  AGE  GENDER  ACCENTS  REGION COMMENTS\np225  23  F    English    Southern  England\n"
        "p226  22  M    English    Surrey\n"
    )
    return root


@pytest.mark.parametrize("new_layout", [True, False], ids=["vctk-0.92", "vctk-0.80"])
def test_train_on_both_vctk_layouts(tmp_path: Path, cfg_for: CfgFor, new_layout: bool) -> None:
    root = _fake_vctk(tmp_path / "VCTK", new_layout)
    cfg = cfg_for(2, root=root, **{"data.kind": "vctk"})
    result = train(cfg, tmp_path / "run")
    assert result.step == 2
    _, meta = vqaudio.read_checkpoint(tmp_path / "run" / "checkpoints" / "step_00000002.safetensors")
    assert meta.speakers == ["p225", "p226"]
    assert meta.config.data.kind == "vctk"
    # the corpus's speaker facts travel with the checkpoint (for `vqaudio speakers`)
    assert meta.speaker_info["p225"]["gender"] == "F" and meta.speaker_info["p226"]["accent"] == "English"


def test_heldout_speakers_of_a_manifest_get_no_embedding(
    tmp_path: Path, cfg_for: CfgFor, toy_corpus: Path
) -> None:
    rows = ["# path\tspeaker\ttext\tsplit\tvoices"]
    for wav in sorted(toy_corpus.rglob("*.wav")):
        kind = "heldout" if wav.parent.name == "spk2" else "seen"
        rows.append(f"{wav}\t{wav.parent.name}\t\ttrain\t{kind}")
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text("\n".join(rows) + "\n")
    result = train(cfg_for(1, root=manifest, **{"data.kind": "tsv"}), tmp_path / "run")
    assert result.step == 1
    _, meta = vqaudio.read_checkpoint(tmp_path / "run" / "checkpoints" / "step_00000001.safetensors")
    assert meta.speakers == ["spk0", "spk1"]


# ------------------------------------------------------------------------------------------ SIGTERM


def test_sigterm_saves_and_resume_continues(
    tmp_path: Path, tiny_recipe: Path, tiny_args: Args, subprocess_env: dict[str, str]
) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "vqaudio", "train", str(tiny_recipe), "--out", str(out)]
    proc = subprocess.Popen(
        [*cmd, *tiny_args(10_000)],
        cwd=tmp_path,
        env=subprocess_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    stepped = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if re.match(r"step \d+/10000", line):
                stepped.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not stepped.wait(0.2) and reader.is_alive() and time.monotonic() < deadline:
            pass
        assert stepped.is_set(), "no training step within 60 s:\n" + "".join(lines)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(5)
    log = "".join(lines)
    assert rc == 128 + signal.SIGTERM, log  # saved, and the shell still learns the run was stopped
    assert "resume with --resume" in log
    assert re.search(r"^interrupted at step \d+", log, re.M), log
    steps = RunDir(out).steps()
    assert len(steps) == 1 and 1 <= steps[0] < 10_000
    saved = steps[0]

    more = [*cmd, "--resume", *tiny_args(saved + 2)]
    done = subprocess.run(more, cwd=tmp_path, env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"finished at step {saved + 2}" in done.stderr
    assert RunDir(out).steps() == [saved, saved + 2]
    _, meta = vqaudio.read_checkpoint(out / "checkpoints" / f"step_{saved + 2:08d}.safetensors")
    assert meta.step == saved + 2


# ---------------------------------------------------------------------------------------------- DDP


def test_torchrun_two_ranks(
    tmp_path: Path, tiny_recipe: Path, tiny_args: Args, subprocess_env: dict[str, str]
) -> None:
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node=2",
        "--standalone",  # torchrun picks a free local port itself: no race for a port chosen here
        "-m",
        "vqaudio",
        "train",
        str(tiny_recipe),
        "--out",
        str(out),
        *tiny_args(3),
    ]
    done = subprocess.run(cmd, cwd=tmp_path, env=subprocess_env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert done.stderr.count("finished at step 3") == 1  # only rank 0 reports
    assert RunDir(out).steps() == [3]
    model = vqaudio.load_model(out / "checkpoints" / "step_00000003.safetensors")
    assert model.speakers == SPEAKERS
    for level in range(model.num_levels):
        assert bool(model.get_buffer(f"levels.{level}.quantizer.initialized"))
        assert int(model.get_buffer(f"levels.{level}.quantizer.steps")) == 3


def _quantizer_rank(rank: int, store: str, out: str) -> None:
    import torch.distributed as dist

    from vqaudio.quantize import VectorQuantizer

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        torch.manual_seed(1000 + rank)  # rank-local randomness (k-means, restarts) differs too
        vq = VectorQuantizer(64, 8, decay=0.5, restart_every=1, restart_threshold=0.9, kmeans_iters=3).train()
        torch.manual_seed(0)
        vq.codebook.copy_(torch.nn.functional.normalize(torch.randn(64, 8), dim=1))  # as DDP leaves it
        gen = torch.Generator().manual_seed(rank)
        restarts = 0
        for i in range(6):
            z = torch.randn(3, 8, 40, generator=gen) * (1 + rank) + 2.0 * rank * (i % 2)
            restarts += vq(z).restarts
        torch.save(
            {
                "codebook": vq.codebook,
                "ema_count": vq.ema_count,
                "ema_sum": vq.ema_sum,
                "last_used": vq.last_used,
                "total_restarts": vq.total_restarts,
                "restarts": restarts,
            },
            f"{out}.{rank}",
        )
    finally:
        dist.destroy_process_group()


def test_quantizer_codebooks_agree_across_ranks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    mp.spawn(_quantizer_rank, args=(str(tmp_path / "store"), str(tmp_path / "q")), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "q.0", weights_only=True)
    r1 = torch.load(tmp_path / "q.1", weights_only=True)
    assert r0["restarts"] > 0 and int(r0["total_restarts"]) > 0
    for name in ("codebook", "ema_count", "ema_sum", "last_used", "total_restarts", "restarts"):
        a, b = torch.as_tensor(r0[name]), torch.as_tensor(r1[name])
        assert torch.equal(a, b), name


def test_scientific_notation_values_parse_as_numbers() -> None:
    from vqaudio.config import load_config

    # YAML 1.1 (PyYAML) reads "3e-4" as a string; the config accepts it as a float.
    assert load_config(None, ["train.lr=3e-4"]).train.lr == 3e-4


def test_time_budget_stops_cleanly_and_marks_the_run_finished(
    tmp_path: Path, cfg_for: CfgFor, one_thread
) -> None:
    import json

    out = tmp_path / "run"
    result = train(cfg_for(10_000, **{"train.max_minutes": 1e-4}), out)
    assert not result.interrupted and result.step < 10_000
    done = json.loads((out / "finished.json").read_text())
    assert done["reason"] == "time_budget" and done["step"] == result.step
    assert done["steps_per_second"] > 0 and done["peak_memory_gib"] is None  # no GPU memory on a CPU run
    assert (out / "latest.txt").is_file()
    # resuming (e.g. with a larger budget) clears the mark until the run ends again
    result = train(cfg_for(result.step + 1), out, resume=True)
    assert json.loads((out / "finished.json").read_text())["reason"] == "max_steps"


def test_a_signal_stop_does_not_mark_the_run_finished(tmp_path: Path, cfg_for: CfgFor, one_thread) -> None:
    out = tmp_path / "run"
    result = train(cfg_for(6), out, stop_after=2)
    assert result.interrupted
    assert not (out / "finished.json").exists()


def test_training_with_a_speaker_encoder(tmp_path: Path, cfg_for: CfgFor, one_thread) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    train(cfg_for(2, **{"model.speaker_encoder": "true", "train.log_every": 1}), out)
    model = vqaudio.load_model(out)
    assert model.speaker_encoder is not None
    emb = model.embed_reference([torch.randn(8000) * 0.1])
    assert emb.shape == (model.config.speaker_dim,)
    events = EventAccumulator(str(out / "tb"))
    events.Reload()
    assert len(events.Scalars("loss/speaker_encoder")) == 2


def test_training_with_a_speaker_adversary(tmp_path: Path, cfg_for: CfgFor, one_thread) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    overrides = {
        "model.speaker_adversary": "0.5",
        "model.speaker_encoder": "true",
        "model.speaker_encoder_mix": "0.5",
        "train.log_every": 1,
    }
    train(cfg_for(2, **overrides), out)
    model = vqaudio.load_model(out)  # strict load: the classifier's weights are in the checkpoint
    assert model.speaker_adversary is not None
    events = EventAccumulator(str(out / "tb"))
    events.Reload()
    assert len(events.Scalars("adversary/0/accuracy")) == 2
    assert all(e.value > 0 for e in events.Scalars("adversary/0/loss"))


def test_training_with_the_phase_loss_on_chosen_levels(tmp_path: Path, cfg_for: CfgFor, one_thread) -> None:
    out = tmp_path / "run"
    overrides = {
        "loss.phase_weight": "1.0",
        "loss.phase_levels": "[1]",
        "model.levels.1.istft_strides": "2",
        "train.log_every": 1,
    }
    train(cfg_for(2, **overrides), out)
    phase = _scalars(out, "loss/phase/1")
    assert len(phase) == 2 and all(0 < e.value <= 6 for e in phase)
    assert _scalars(out, "loss/phase/0") == []  # level 0 is not in phase_levels
    model = vqaudio.load_model(out)
    assert model.config.levels[1].istft_strides == 2
    with pytest.raises(ConfigError, match="phase_levels"):
        cfg_for(2, **{"loss.phase_levels": "[5]"})


def test_level_items_split_the_batch() -> None:
    from vqaudio.train import level_items

    assert level_items(None, 8) is None
    assert level_items([1.0, 1.0], 8) is None
    assert level_items([1.0, 0.9], 2) is None  # round(1.8) = 2: the whole batch
    full, a, b = level_items([1.0, 0.5, 0.5], 8) or []
    assert full is None and a is not None and b is not None
    assert a.tolist() == [0, 1, 2, 3] and b.tolist() == [4, 5, 6, 7]
    wrapped = level_items([1.0, 0.4, 0.4, 0.4], 5) or []
    assert [w.tolist() for w in wrapped[1:] if w is not None] == [[0, 1], [2, 3], [4, 0]]
    assert [w.tolist() for w in level_items([0.1, 1.0], 4) or [] if w is not None] == [[0]]  # at least one


def test_training_with_levels_on_part_of_the_batch(tmp_path: Path, cfg_for: CfgFor, one_thread) -> None:
    overrides = {"data.batch_size": 4, "train.level_fraction": "[1.0, 0.5]", "train.eval_every": 2}
    cfg = cfg_for(4, **overrides)
    a = train(cfg, tmp_path / "a")
    mels = [h["valid/mel"] for h in a.history if "valid/mel" in h]
    assert a.skipped_steps == 0 and len(mels) == 3 and all(math.isfinite(m) for m in mels)
    b = train(cfg, tmp_path / "b", stop_after=2)
    b = train(cfg, tmp_path / "b", resume=True)
    assert b.best_metric == a.best_metric  # resume stays exact
    train(cfg_for(4, **{"data.batch_size": 4, "train.eval_every": 2}), tmp_path / "plain")
    wa, wp = _weights(tmp_path / "a", 4), _weights(tmp_path / "plain", 4)
    assert any(not torch.equal(wa[k], wp[k]) for k in wa if k.startswith("levels.1."))
    with pytest.raises(ConfigError, match="one value per level"):
        cfg_for(2, **{"train.level_fraction": "[1.0]"})
    with pytest.raises(ConfigError, match="level_fraction.*\\(0, 1\\]"):
        cfg_for(2, **{"train.level_fraction": "[1.0, 0.0]"})


def test_budget_schedule_anneals_by_the_time_budget() -> None:
    from vqaudio.train.trainer import schedule_progress

    sets = ["train.lr=1.0", "train.warmup_steps=0", "train.max_steps=1000", "train.min_lr_ratio=0.1"]
    steps_only = load_config(None, [*sets, "train.max_minutes=10"])
    budget = load_config(None, [*sets, "train.max_minutes=10", "train.schedule_by=budget"])
    no_budget = load_config(None, [*sets, "train.schedule_by=budget"])  # no max_minutes: by steps
    # a slow machine: 100 of 1000 steps when 5 of 10 minutes have gone
    assert schedule_progress(100, steps_only, 5.0) == pytest.approx(0.1)
    assert schedule_progress(100, budget, 5.0) == pytest.approx(0.5)
    assert schedule_progress(100, no_budget, 5.0) == pytest.approx(0.1)
    assert lr_at(100, budget, 10.0) == pytest.approx(0.1)  # annealed when the budget ends
    assert lr_at(100, budget, 12.0) == pytest.approx(0.1)
    # a fast machine: the steps end first, as without a budget
    assert schedule_progress(900, budget, 1.0) == pytest.approx(0.9)
    with pytest.raises(ConfigError, match="train.schedule_by"):
        load_config(None, ["train.schedule_by=epochs"])


def test_training_time_accumulates_across_resumes(tmp_path: Path, cfg_for: CfgFor, one_thread) -> None:
    import json

    out = tmp_path / "run"
    cfg = cfg_for(4, **{"train.schedule_by": "budget", "train.max_minutes": 60, "train.warmup_steps": 0})
    train(cfg, out, stop_after=2)
    first = torch.load(out / "checkpoints" / "step_00000002.state.pt", weights_only=True)["train_seconds"]
    assert first > 0
    train(cfg, out, resume=True)
    second = torch.load(out / "checkpoints" / "step_00000004.state.pt", weights_only=True)["train_seconds"]
    assert second > first
    done = json.loads((out / "finished.json").read_text())
    assert done["max_steps"] == 4 and done["max_minutes"] == 60 and done["threads"] == 1
    assert done["train_minutes"] == pytest.approx(second / 60, abs=0.01)
    lrs = [e.value for e in _scalars(out, "train/lr")]
    assert len(lrs) == 4 and all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


def test_compile_switch_compiles_each_level_in_place(tmp_path: Path, cfg_for: CfgFor) -> None:
    """``train.compile`` wraps every level's encoder and decoder (nn.Module.compile) without changing the
    state-dict keys; the compilation itself runs on the first step (measured by bench/train_speed.py)."""
    from vqaudio.train.trainer import Trainer

    plain = Trainer(cfg_for(2), tmp_path / "plain", False, None)
    compiled = Trainer(cfg_for(2, **{"train.compile": True}), tmp_path / "compiled", False, None)
    try:
        for level in compiled.model.levels:
            assert level.encoder.down._compiled_call_impl is not None
            assert level.encoder.bottleneck._compiled_call_impl is not None
            assert level.decoder._compiled_call_impl is not None
            assert level.quantizer._compiled_call_impl is None  # data-dependent bookkeeping stays eager
        assert all(lv.encoder.down._compiled_call_impl is None for lv in plain.model.levels)
        assert compiled.model.state_dict().keys() == plain.model.state_dict().keys()
    finally:
        plain.close()
        compiled.close()
