"""vqaudio analyze end to end: pairing, metrics.json schema, report and figures, user errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_compress import _trained_tiny
from test_models import tiny_model_config
from typer.testing import CliRunner

from vqaudio.checkpoint import save_checkpoint
from vqaudio.cli import app
from vqaudio.config import RunConfig
from vqaudio.data.synthetic import toy_utterance

SR = 16000
runner = CliRunner()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("labelled")
    ckpt = root / "tiny.safetensors"
    save_checkpoint(ckpt, _trained_tiny(0), RunConfig(model=tiny_model_config()))
    rng = np.random.default_rng(0)
    for spk, f0 in (("ann", 110.0), ("bob", 220.0)):
        for i in range(4):
            wav = toy_utterance(rng, SR, 1.0, f0, 1.0)
            (root / "wavs" / spk).mkdir(parents=True, exist_ok=True)
            (root / "labels" / spk).mkdir(parents=True, exist_ok=True)
            sf.write(root / "wavs" / spk / f"u{i}.wav", wav, SR)
            edges = np.linspace(0, len(wav) / SR, 9)
            phones = ["sil", "AH0", "B", "K", "AH1", "S", "T", "sil"]
            lines = [f"{a:.4f}\t{b:.4f}\t{p}" for a, b, p in zip(edges[:-1], edges[1:], phones, strict=True)]
            (root / "labels" / spk / f"u{i}.tsv").write_text("\n".join(lines) + "\n")
    return root, ckpt, root / "report"


def test_analyze_writes_metrics_report_and_figures(corpus) -> None:
    root, ckpt, out = corpus
    result = runner.invoke(
        app,
        [
            "analyze",
            "--model",
            str(ckpt),
            "--audio",
            str(root / "wavs"),
            "--labels",
            str(root / "labels"),
            "--format",
            "tsv",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["levels"]) == {"0", "1"}
    keys = {
        "mapping_accuracy",
        "random_baseline_accuracy",
        "majority_baseline_accuracy",
        "phone_purity",
        "cluster_purity",
        "pnmi",
        "perplexity",
        "speaker_probe_accuracy",
        "speaker_chance",
        "speaker_frame_accuracy",
        "speaker_frame_chance",
    }
    for level in metrics["levels"].values():
        assert keys <= set(level)
        for k in keys - {"perplexity"}:
            assert 0.0 <= level[k] <= 1.0, k
        assert level["perplexity"] >= 1.0
    assert "AH" in metrics["phones"] and "AH0" not in metrics["phones"]  # stress stripped
    assert metrics["utterances"] == 8
    report = (out / "report.md").read_text()
    assert "| level | bit/s | mapping acc." in report
    for name in ("cooccurrence_level0.png", "confusion_level1.png", "code_usage.png", "durations.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_analyze_reports_unmatched_files_and_user_errors(corpus, tmp_path: Path) -> None:
    root, ckpt, _ = corpus
    (root / "wavs" / "ann" / "extra.wav").write_bytes((root / "wavs" / "ann" / "u0.wav").read_bytes())
    result = runner.invoke(
        app,
        [
            "analyze",
            "--model",
            str(ckpt),
            "--audio",
            str(root / "wavs"),
            "--labels",
            str(root / "labels"),
            "-o",
            str(tmp_path / "r"),
        ],
    )
    assert result.exit_code == 0 and "extra" in result.stderr
    assert any("extra" in p for p in json.loads((tmp_path / "r" / "metrics.json").read_text())["problems"])
    (root / "wavs" / "ann" / "extra.wav").unlink()
    bad = runner.invoke(
        app,
        [
            "analyze",
            "--model",
            str(ckpt),
            "--audio",
            str(root / "wavs"),
            "--labels",
            str(tmp_path / "nowhere"),
            "-o",
            str(tmp_path / "x"),
        ],
    )
    assert bad.exit_code == 2 and "error:" in bad.stderr
    bad = runner.invoke(
        app,
        [
            "analyze",
            "--model",
            str(ckpt),
            "--audio",
            str(root / "wavs"),
            "--labels",
            str(root / "labels"),
            "--format",
            "praat",
            "-o",
            str(tmp_path / "x"),
        ],
    )
    assert bad.exit_code == 2
    bad = runner.invoke(
        app,
        [
            "analyze",
            "--model",
            str(ckpt),
            "--audio",
            str(root / "wavs"),
            "--labels",
            str(root / "labels"),
            "--level",
            "7",
            "-o",
            str(tmp_path / "x"),
        ],
    )
    assert bad.exit_code == 2 and "level 7" in bad.stderr
