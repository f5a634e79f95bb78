"""bench/recipe_sweep.sh: equal-step variants of a recipe, each trained, scored and tabulated."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "recipe_sweep.sh"
RATE = 16000


def _corpus(root: Path) -> Path:
    """Two voices, one seen and one held out, with train, valid and test sentences."""
    rng = np.random.default_rng(0)
    lines = ["# path\tspeaker\ttext\tsplit\tvoices"]
    t = np.arange(RATE) / RATE
    for spk, kind, f0 in (("a", "seen", 140.0), ("b", "heldout", 210.0)):
        for i, split in enumerate(("test", "valid", "train", "train", "train")):
            rel = f"wavs/{spk}/u{i}.wav"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            wav = 0.3 * np.sin(2 * np.pi * f0 * (1 + 0.1 * i) * t) + 0.02 * rng.standard_normal(RATE)
            sf.write(root / rel, wav.astype(np.float32), RATE)
            lines.append(f"{rel}\t{spk}\tsentence {i}\t{split}\t{kind}")
    (root / "manifest.tsv").write_text("\n".join(lines) + "\n")
    return root


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    bindir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "VQAUDIO": str(bindir / "vqaudio"),
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, check=False, env=env, cwd=REPO
    )


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_sweep_trains_each_variant_for_the_same_steps_and_tabulates_them(tmp_path: Path) -> None:
    data = _corpus(tmp_path / "corpus")
    out = tmp_path / "sweep"
    args = [
        "--recipe", str(REPO / "recipes" / "tiny.yaml"), "--set", "data.kind=tsv",
        "--data", str(data), "--out", str(out), "--runs", "base narrow", "--steps", "3",
        "--per-speaker", "1", "--threads", "1", "--speed-seconds", "0.5", "--set", "train.eval_every=3",
    ]  # fmt: skip
    r = _run(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    table = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
        for line in r.stdout.splitlines()
        if line.startswith("| base ") or line.startswith("| narrow ")
    }
    assert set(table) == {"base", "narrow"}
    for name, cells in table.items():
        assert cells[0] == "3", cells  # --steps, for every variant
        float(cells[2].split()[0])  # the validation at that step
        assert cells[-1].endswith("x")  # the speed ratio vs EnCodec's architecture
        done = json.loads((out / name / "finished.json").read_text())
        assert done["step"] == 3
        clean = json.loads((out / f"{name}.eval.json").read_text())
        degraded = json.loads((out / f"{name}.degraded.json").read_text())
        assert {x["voices"] for x in clean["levels"]} == {"seen", "heldout"}
        assert {x["voices"] for x in degraded["levels"]} == {"seen", "heldout"}
    # the variant reached the model: narrow's level 0 is 12 channels wide, the recipe's is 4
    cfg = (out / "narrow" / "config.yaml").read_text()
    assert "channels: 12" in cfg and "max_channels: 96" in cfg
    assert (out / "degraded_all" / "manifest.tsv").is_file()
    # narrow against base, file by file, on both test sets
    assert "narrow vs base, clean test audio" in r.stdout and "narrow vs base, degraded" in r.stdout
    for kind in ("eval", "degraded"):
        rows = json.loads((out / f"narrow.vs_base.{kind}.json").read_text())["rows"]
        assert {(x["level"], x["voices"]) for x in rows} == {(0, "seen"), (0, "heldout")}
    # a finished run is scored again but not retrained
    log = (out / "base.train.log").read_text()
    r = _run(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "base.train.log").read_text() == log
    assert _run("--out", str(out), "--runs", "base narrow", "--summary").stdout == r.stdout


def test_sweep_refuses_bad_input_with_one_line(tmp_path: Path) -> None:
    r = _run("--runs", "base bogus", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: unknown run 'bogus' (base, noaug, k2048, wide, narrow)"
    ]
    r = _run("--data", str(tmp_path / "none"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "no " in r.stderr and "manifest.tsv" in r.stderr
    assert not (tmp_path / "o").exists()
