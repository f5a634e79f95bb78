"""vqaudio analyze end to end: pairing, metrics.json schema, report and figures, user errors."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner, Result

from vqaudio.analysis.metrics import (
    cooccurrence,
    fit_mapping,
    mapping_accuracy,
    purity_scores,
    split_by_speaker,
    split_utterances,
)
from vqaudio.checkpoint import load_model
from vqaudio.cli import app
from vqaudio.data.pairing import find_pairs
from vqaudio.data.synthetic import toy_utterance
from vqaudio.eval.phones import analyze_corpus, write_report

SR = 16000
runner = CliRunner()


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, tiny_ckpt: Path) -> Iterator[tuple[Path, Path]]:
    """``(root, ckpt)``: 2 speakers x 4 labelled toy utterances under ``root/wavs`` and ``root/labels``, and
    the shared tiny checkpoint. Shared by the module's tests: read only (checked at the end)."""
    root = tmp_path_factory.mktemp("labelled")
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
    before = _snapshot(root)
    yield root, tiny_ckpt
    assert _snapshot(root) == before, "a test changed the module's labelled corpus"


def test_analyze_writes_metrics_report_and_figures(
    corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, ckpt = corpus
    out = tmp_path / "report"
    monkeypatch.setenv("COLUMNS", "200")  # rich tables at full width
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
    # ann and bob are the model's speakers and there is no manifest: no seen / held-out rows
    assert metrics["schema"] == 2 and not any("voices" in level for level in metrics["levels"].values())
    assert "voices" not in result.stdout and "held-out" not in result.stdout
    report = (out / "report.md").read_text()
    assert "| level | bit/s | mapping acc." in report
    assert [row[0] for row in _voice_rows(report)] == ["0", "1"]  # one row per level
    for name in ("cooccurrence_level0.png", "confusion_level1.png", "code_usage.png", "durations.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_analyze_reports_unmatched_files_and_user_errors(corpus, tmp_path: Path) -> None:
    shared, ckpt = corpus
    root = tmp_path / "corpus"  # a copy: this test adds and removes a file
    shutil.copytree(shared, root)
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
    assert result.exit_code == 0 and "extra.wav" in "".join(result.stderr.split())  # rich may wrap the path
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


def _analyze(ckpt: Path, audio: Path, labels: Path, out: Path) -> Result:
    result = runner.invoke(
        app,
        ["analyze", "--model", str(ckpt), "--audio", str(audio), "--labels", str(labels), "-o", str(out)],
    )
    assert result.exit_code == 0, result.output
    return result


def _voice_rows(report: str) -> list[list[str]]:
    """``[level, voices]`` of each row of report.md's table."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| level |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")][:2])
    return rows


def test_heldout_voices_from_the_manifest_get_their_own_rows(
    corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, ckpt = corpus
    monkeypatch.setenv("COLUMNS", "200")  # rich tables at full width
    manifest = tmp_path / "manifest.tsv"
    rows = [
        f"{root / 'wavs' / spk / f'u{i}.wav'}\t{spk}\ttext\ttest\t{voices}"
        for spk, voices in (("ann", "seen"), ("bob", "heldout"))  # bob: in the model, held out by the row
        for i in range(4)
    ]
    manifest.write_text("\n".join(rows) + "\n")
    result = _analyze(ckpt, manifest, root / "labels", tmp_path / "r")
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["schema"] == 2 and metrics["utterances"] == 8
    for level in metrics["levels"].values():
        groups = level["voices"]
        assert set(groups) == {"seen", "heldout"}
        assert groups["seen"]["num_utterances"] == groups["heldout"]["num_utterances"] == 4
        assert set(groups["seen"]) == set(groups["heldout"]) == set(level) - {"voices"}
        # within one held-out voice the speaker is known in advance
        assert groups["heldout"]["speaker_probe_accuracy"] == groups["heldout"]["speaker_chance"] == 1.0
    assert _voice_rows((tmp_path / "r" / "report.md").read_text()) == [
        [lv, group] for lv in ("0", "1") for group in ("all", "seen", "held-out")
    ]
    assert "voices" in result.stdout and result.stdout.count("held-out") == 2


def test_heldout_mapping_is_fit_on_seen_voices_only(corpus, tmp_path: Path) -> None:
    root, ckpt = corpus
    # a folder whose speaker "cat" is not in the model's speaker table (ann, bob): held out
    for spk, src in (("ann", "ann"), ("cat", "bob")):
        (tmp_path / "wavs" / spk).mkdir(parents=True)
        (tmp_path / "labels" / spk).mkdir(parents=True)
        for i in range(4):
            shutil.copy(root / "wavs" / src / f"u{i}.wav", tmp_path / "wavs" / spk / f"u{i}.wav")
            shutil.copy(root / "labels" / src / f"u{i}.tsv", tmp_path / "labels" / spk / f"u{i}.tsv")
    pairs, problems = find_pairs(tmp_path / "wavs", tmp_path / "labels")
    assert not problems and not any(p.heldout for p in pairs)  # a folder has no voices column
    model = load_model(ckpt)
    result = analyze_corpus(model, pairs, [0, 1])
    assert result.voice_counts == {"seen": 4, "heldout": 4}
    for lv, groups in result.voices.items():
        utts = result.utterances[lv]
        seen = [u for u in utts if not u.heldout]
        held = [u for u in utts if u.heldout]
        assert {u.speaker for u in seen} == {"ann"} and {u.speaker for u in held} == {"cat"}
        train, _ = split_utterances([u.utt_id for u in seen], 0.5, seed=0)
        num_codes = model.config.levels[lv].codebook_size
        joint = sum(cooccurrence(seen[i].codes, seen[i].phones, num_codes, len(result.phones)) for i in train)
        mapping = fit_mapping(joint)
        codes = np.concatenate([u.codes for u in held])
        phones = np.concatenate([u.phones for u in held])
        assert groups["heldout"].mapping.tolist() == groups["seen"].mapping.tolist() == mapping.tolist()
        assert groups["heldout"].mapping_accuracy == mapping_accuracy(mapping, codes, phones)
        assert (
            groups["heldout"].pnmi
            == purity_scores(cooccurrence(codes, phones, num_codes, len(result.phones))).pnmi
        )
    write_report(result, tmp_path / "r", model, "wavs")
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    for lv, groups in result.voices.items():
        assert metrics["levels"][str(lv)]["voices"]["heldout"] == groups["heldout"].to_json_dict()
        assert metrics["levels"][str(lv)]["voices"]["seen"] == groups["seen"].to_json_dict()
        assert metrics["levels"][str(lv)]["mapping_accuracy"] == result.levels[lv].mapping_accuracy


def test_one_heldout_utterance_is_too_few_for_voice_rows(
    corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, ckpt = corpus
    monkeypatch.setenv("COLUMNS", "200")
    manifest = tmp_path / "manifest.tsv"
    rows = [f"{root / 'wavs' / 'ann' / f'u{i}.wav'}\tann" for i in range(4)]
    manifest.write_text("\n".join([*rows, f"{root / 'wavs' / 'bob' / 'u0.wav'}\tbob\t\t\theldout"]) + "\n")
    result = _analyze(ckpt, manifest, root / "labels", tmp_path / "r")
    assert "each kind needs at least 2" in result.stderr and "held-out" not in result.stdout
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["utterances"] == 5 and not any("voices" in lv for lv in metrics["levels"].values())


def test_speaker_chance_is_never_zero_and_says_what_it_is(corpus) -> None:
    root, ckpt = corpus
    pairs, problems = find_pairs(root / "wavs", root / "labels", "tsv")
    ids = [p.utt_id for p in pairs]
    assert not problems and len(ids) == 8
    # seed 5's phone split tests on all of bob's utterances and trains on none: a probe sharing it was
    # scored on a speaker it never saw
    assert {ids[i].split("/")[0] for i in split_utterances(ids, 0.5, seed=5)[0]} == {"ann"}
    model = load_model(ckpt)
    for seed in (0, 2, 5):
        result = analyze_corpus(model, pairs, [0, 1], seed=seed)
        test = split_by_speaker(ids, [p.speaker for p in pairs], 0.5, seed)[1]
        speakers = [pairs[i].speaker for i in test]
        assert set(speakers) == {"ann", "bob"}
        for res in result.levels.values():
            assert res.speaker_chance == max(map(speakers.count, ("ann", "bob"))) / len(speakers)
            assert 0.0 < res.speaker_frame_chance < 1.0


def test_speakers_of_one_utterance_each_are_reported_as_not_computable(
    corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, ckpt = corpus
    monkeypatch.setenv("COLUMNS", "200")
    manifest = tmp_path / "manifest.tsv"
    rows = [f"{root / 'wavs' / spk / f'u{i}.wav'}\t{spk}{i}" for spk in ("ann", "bob") for i in range(4)]
    manifest.write_text("\n".join(rows) + "\n")
    result = _analyze(ckpt, manifest, root / "labels", tmp_path / "r")
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    for level in metrics["levels"].values():
        assert level["speaker_probe_accuracy"] is level["speaker_chance"] is None
        assert level["speaker_frame_accuracy"] is level["speaker_frame_chance"] is None
        assert level["mapping_accuracy"] is not None
    report = (tmp_path / "r" / "report.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| 0 ") or line.startswith("| 1 ")]
    assert len(rows) == 2 and all(row.endswith("| n/a | n/a | n/a | n/a |") for row in rows)
    assert "Speaker chance: for the probe, the share of the most common speaker" in report
    assert result.stdout.count("n/a") == 8 + 1 and "Speaker chance:" in result.stdout  # 8 cells, the note


def test_labels_read_in_the_wrong_format_are_one_clear_error(corpus, tmp_path: Path) -> None:
    """Tab-separated labels in seconds named .lab, read as HTK (100 ns units), cover no frame: exit 2
    with a hint at --format, not a traceback (issue #14)."""
    root, ckpt = corpus
    labels = tmp_path / "labels"
    for tsv in (root / "labels").rglob("*.tsv"):
        lab = labels / tsv.relative_to(root / "labels").with_suffix(".lab")
        lab.parent.mkdir(parents=True, exist_ok=True)
        lab.write_text(tsv.read_text())
    args = ["analyze", "--model", ckpt, "--audio", root / "wavs", "--labels", labels, "-o", tmp_path / "r"]
    result = runner.invoke(app, [str(a) for a in [*args, "--format", "htk"]])
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "wrong --format?" in lines[0], result.stderr
    assert not (tmp_path / "r").exists()
