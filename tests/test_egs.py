"""egs/mini/run.sh end to end on a few demo sentences (stages 1-4; stage 0 is tools/setup.sh)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed")
def test_mini_recipe_stages_run_and_skip_when_done(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    env = dict(subprocess_env, VQAUDIO=f"{sys.executable} -m vqaudio", PYTHON=sys.executable)
    data, exp = tmp_path / "data", tmp_path / "exp"
    cmd = [
        "bash",
        str(REPO / "egs" / "mini" / "run.sh"),
        "--stage",
        "1",
        "--sentences",
        "30",
        "--minutes",
        "0.02",
        "--threads",
        "1",
        "--data",
        str(data),
        "--exp",
        str(exp),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (data / "manifest.tsv").is_file()
    finished = json.loads((exp / "train" / "finished.json").read_text())
    assert finished["reason"] in ("time_budget", "max_steps")
    scores = json.loads((exp / "eval.json").read_text())
    assert scores["utterances"] > 0 and [s["level"] for s in scores["levels"]][:3] == [0, 1, 2]
    assert (exp / "analysis" / "metrics.json").is_file()
    report = (exp / "report.md").read_text()
    assert "Codes vs phones" in report
    assert "| codec | bitrate" in report and report.count("\n| ") >= 5
    if shutil.which("c2enc") and shutil.which("opusenc"):  # the classical baselines run on the same files
        assert "Codec2 2400" in report and "Opus 6 kbit/s" in report
    # a re-run skips the finished training stage
    again = subprocess.run(
        cmd[:3] + ["2", "--stop-stage", "2"] + cmd[4:], env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0 and "already finished" in again.stderr
    bad = subprocess.run(
        ["bash", str(REPO / "egs" / "mini" / "run.sh"), "--bogus"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "unknown option" in bad.stderr
