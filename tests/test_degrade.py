"""bench/degrade.py: a degraded copy of a corpus's test sentences that vqaudio reads back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from vqaudio.data.corpora import scan_manifest

REPO = Path(__file__).resolve().parents[1]
RATE = 16000


def _corpus(root: Path) -> Path:
    rng = np.random.default_rng(0)
    lines = ["# path\tspeaker\ttext\tsplit\tvoices"]
    for spk, kind in (("a", "seen"), ("b", "heldout")):
        for i, split in enumerate(("test", "test", "train")):
            rel = f"wavs/{spk}/u{i}.wav"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            t = np.arange(RATE) / RATE
            wav = 0.3 * np.sin(2 * np.pi * (150 + 40 * i) * t) + 0.01 * rng.standard_normal(RATE)
            sf.write(root / rel, wav.astype(np.float32), RATE)
            lines.append(f"{rel}\t{spk}\tsentence {i}\t{split}\t{kind}")
    manifest = root / "manifest.tsv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "bench" / "degrade.py"), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_degrade_writes_a_readable_seeded_copy_of_the_test_split(tmp_path: Path) -> None:
    manifest = _corpus(tmp_path / "src")
    outs = [tmp_path / "o1", tmp_path / "o2"]
    for out in outs:
        r = _run("--data", str(manifest), "--out", str(out), "--condition", "all", "--per-speaker", "1")
        assert r.returncode == 0, r.stderr
    utts = scan_manifest(outs[0] / "manifest.tsv")
    assert [(u.speaker, u.split, u.heldout, u.path.name) for u in utts] == [
        ("a", "test", False, "u0.wav"),
        ("b", "test", True, "u0.wav"),
    ]
    for u in utts:
        degraded, rate = sf.read(u.path, dtype="float32")
        clean, _ = sf.read(tmp_path / "src" / "wavs" / u.speaker / "u0.wav", dtype="float32")
        again, _ = sf.read(outs[1] / "wavs" / u.speaker / "u0.wav", dtype="float32")
        assert rate == RATE and degraded.shape == clean.shape
        assert np.abs(degraded).max() <= 1.0
        assert np.abs(degraded - clean).mean() > 1e-3  # something was done to it
        np.testing.assert_array_equal(degraded, again)  # the same command writes the same file


def test_degrade_refuses_a_missing_manifest_with_one_line(tmp_path: Path) -> None:
    r = _run("--data", str(tmp_path / "nope.tsv"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
