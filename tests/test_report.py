"""Tests for vqaudio.eval.report (the experiment report) and the ``vqaudio report`` command."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vqaudio.cli import app
from vqaudio.errors import UserError
from vqaudio.eval.report import SPEAKER_CHANCE, experiment_report

EVAL = {
    "utterances": 12,
    "levels": [
        {"name": "vqaudio level 0", "level": 0, "bitrate": 1800.0, "utterances": 12, "mel_distance": 0.61534,
         "si_sdr": -3.456, "pesq": 1.1449, "stoi": 0.74912},
        {"name": "vqaudio level 1", "level": 1, "bitrate": 450.0, "utterances": 12, "mel_distance": 0.6061,
         "si_sdr": -5.0, "pesq": None, "stoi": None},
        {"name": "Opus 6 kbit/s", "level": None, "bitrate": 5810.19, "utterances": 12, "mel_distance": 1.2431,
         "si_sdr": 8.2518, "pesq": 2.4371, "stoi": 0.92188},
    ],
}  # fmt: skip

CONVERT = {
    "conversions": 4,
    "level": 1,
    "similarity_to_target": 0.6512,
    "similarity_to_source": 0.5321,
    "closer_to_target": 0.75,
    "unconverted_similarity_to_target": 0.4123,
    "mcd_converted": 7.891,
    "mcd_source_baseline": 9.012,
    "phone_accuracy_converted": 0.3125,
    "phone_accuracy_source": 0.5,
    "pairs": [
        {"sentence": s, "source": a, "target": b, "mcd": 7.0, "mcd_source": 9.0}
        for s in ("a0002", "a0007")
        for a, b in (("awb", "slt"), ("slt", "awb"))
    ],
}

METRICS = {
    "levels": {
        "0": {"mapping_accuracy": 0.29, "random_baseline_accuracy": 0.136,
              "majority_baseline_accuracy": 0.14, "pnmi": 0.3121, "speaker_probe_accuracy": 1.0,
              "speaker_chance": 0.3},
        "1": {"mapping_accuracy": 0.341, "random_baseline_accuracy": 0.115,
              "majority_baseline_accuracy": 0.14, "pnmi": 0.4514, "speaker_probe_accuracy": 0.99,
              "speaker_chance": 0.3},
    },
    "utterances": 20,
}  # fmt: skip


def write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


@pytest.fixture
def exp(tmp_path: Path) -> Path:
    root = tmp_path / "exp"
    write(
        root / "train" / "finished.json", {"step": 2848, "reason": "time_budget", "best_valid_mel": 0.60123}
    )
    write(root / "train" / "config.yaml", "data:\n  root: data/demo/manifest.tsv\n")
    write(root / "eval.json", EVAL)
    return root


def table_rows(text: str, header: str) -> list[list[str]]:
    """The cells of the markdown table whose header line starts with ``header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_training_and_reconstruction(exp: Path) -> None:
    text = experiment_report(exp, title="demo")
    assert text.startswith("# demo\n")
    assert "2848 training steps (time_budget)" in text and "mel distance 0.601" in text
    # a run that recorded its speed (and, on a GPU, its peak memory) has them in the report
    fin = exp / "train" / "finished.json"
    write(fin, {**json.loads(fin.read_text()), "steps_per_second": 3.94, "peak_memory_gib": 1.5})
    text = experiment_report(exp, title="demo")
    assert "2848 training steps (time_budget, 3.94 steps/s, peak GPU memory 1.50 GiB)" in text
    assert "`data/demo/manifest.tsv`" in text and "Reconstruction of 12 held-out test utterances" in text
    assert "time budget" not in text.lower().replace("(time_budget", "")  # no limits recorded: no warning
    # a run whose budget ended it before the recipe's steps says so, with its speed and threads
    limits = {"max_steps": 6000, "max_minutes": 15, "train_minutes": 15.02, "threads": 2}
    write(fin, {**json.loads(fin.read_text()), **limits})
    text = experiment_report(exp, title="demo")
    assert "2848 training steps (time_budget, 3.94 steps/s on 2 threads, 15.0 min, peak GPU" in text
    budget = "**The time budget (15 min) ended training at step 2848 of the recipe's 6000** (3.94 steps/s"
    assert budget in text
    write(fin, {**json.loads(fin.read_text()), "max_steps": 2848, "reason": "max_steps"})
    assert "ended training" not in experiment_report(exp, title="demo")
    assert table_rows(text, "| codec | bitrate") == [
        ["vqaudio level 0", "1800", "0.615", "-3.46", "1.14", "0.749"],
        ["vqaudio level 1", "450", "0.606", "-5.00", "n/a", "n/a"],
        ["Opus 6 kbit/s", "5810", "1.243", "8.25", "2.44", "0.922"],
    ]
    # optional sections are absent without their files
    assert "Voice conversion" not in text and "Codes vs phones" not in text and "Listen" not in text


def test_conversion_section(exp: Path) -> None:
    write(exp / "convert.json", CONVERT)
    text = experiment_report(exp)
    assert text.startswith("# vqaudio report: exp\n")
    assert "4 conversions of 2 test sentence(s) between 2 voices (awb, slt), content from level 1" in text
    rows = table_rows(text, "| measure | converted")
    assert rows[0][1:] == ["0.651", "to source: 0.532"]
    assert rows[1][1:] == ["0.412", "(doing nothing)"]
    assert rows[2][1] == "75.0%"
    assert rows[3][1:] == ["7.89", "source vs target: 9.01"]
    assert rows[4][1:] == ["31.2%", "source audio: 50.0%"]


def test_conversion_without_resemblyzer_or_labels(exp: Path) -> None:
    conv = dict(CONVERT, similarity_to_target=None, similarity_to_source=None, closer_to_target=None)
    del conv["unconverted_similarity_to_target"]  # written by older versions
    conv.update(phone_accuracy_converted=None, phone_accuracy_source=None, mcd_converted=math.nan)
    write(exp / "convert.json", json.dumps(conv))  # NaN as json.dumps writes it
    rows = table_rows(experiment_report(exp), "| measure | converted")
    assert rows[0][1:] == ["n/a (pip install vqaudio[eval])", "to source: n/a (pip install vqaudio[eval])"]
    assert rows[1][1] == "n/a (pip install vqaudio[eval])"
    assert rows[2][1] == "n/a (pip install vqaudio[eval])"
    assert rows[3][1] == "n/a"
    assert rows[4][1] == "n/a (no phone labels)"


def test_examples_and_phones_with_links_relative_to_the_report(exp: Path, tmp_path: Path) -> None:
    write(exp / "convert" / "originals" / "awb.wav", "x")
    write(exp / "convert" / "originals" / "slt.flac", "x")
    for target in ("awb", "slt"):
        for source in ("awb", "slt"):
            write(exp / "convert" / f"to_{target}" / f"{source}.wav", "x")
    write(exp / "analysis" / "metrics.json", METRICS)
    write(exp / "analysis" / "cooccurrence_level1.png", "png")
    text = experiment_report(exp)
    assert table_rows(text, "| source | original") == [
        [
            "awb",
            "[wav](convert/originals/awb.wav)",
            *(f"[wav](convert/to_{t}/awb.wav)" for t in ("awb", "slt")),
        ],
        [
            "slt",
            "[flac](convert/originals/slt.flac)",
            *(f"[wav](convert/to_{t}/slt.wav)" for t in ("awb", "slt")),
        ],
    ]
    assert "Codes vs phones on 20 test utterances" in text
    assert table_rows(text, "| level | mapping") == [
        ["0", "29.0%", "13.6%", "14.0%", "0.312", "100.0%", "30.0%", "n/a", "n/a"],
        ["1", "34.1%", "11.5%", "14.0%", "0.451", "99.0%", "30.0%", "n/a", "n/a"],
    ]
    # only figures that exist are linked
    assert "![codes vs phones, level 1](analysis/cooccurrence_level1.png)" in text
    assert "cooccurrence_level0" not in text
    assert "| level | voices" not in text  # no seen / held-out groups in this analysis
    elsewhere = experiment_report(exp, base=tmp_path / "site")
    assert "](../exp/analysis/cooccurrence_level1.png)" in elsewhere


def test_phones_of_seen_and_heldout_voices_side_by_side(exp: Path) -> None:
    level = dict(METRICS["levels"]["1"], speaker_frame_accuracy=0.5, speaker_frame_chance=0.25)
    seen = dict(level, mapping_accuracy=0.4)
    heldout = dict(level, mapping_accuracy=0.2, pnmi=0.25, speaker_probe_accuracy=0.75, speaker_chance=0.5)
    metrics = {
        "schema": 2,
        "utterances": 20,
        "levels": {"1": dict(level, voices={"seen": seen, "heldout": heldout})},
    }
    write(exp / "analysis" / "metrics.json", metrics)
    text = experiment_report(exp)
    assert table_rows(text, "| level | mapping") == [
        ["1", "34.1%", "11.5%", "14.0%", "0.451", "99.0%", "30.0%", "50.0%", "25.0%"]
    ]
    assert table_rows(text, "| level | voices") == [
        ["1", "seen", "40.0%", "11.5%", "14.0%", "0.451", "99.0%", "30.0%", "50.0%", "25.0%"],
        ["1", "held-out", "20.0%", "11.5%", "14.0%", "0.250", "75.0%", "50.0%", "50.0%", "25.0%"],
    ]


def test_speaker_scores_not_computable_read_n_a_and_chance_is_explained(exp: Path) -> None:
    # metrics.json holds null where no speaker had two utterances (held-out voices of one utterance each)
    level = dict(METRICS["levels"]["1"], speaker_frame_accuracy=0.5, speaker_frame_chance=0.25)
    missing = dict.fromkeys(
        ("speaker_probe_accuracy", "speaker_chance", "speaker_frame_accuracy", "speaker_frame_chance")
    )
    heldout = dict(level, **missing)
    metrics = {
        "schema": 2,
        "utterances": 20,
        "levels": {"1": dict(level, voices={"seen": level, "heldout": heldout})},
    }
    write(exp / "analysis" / "metrics.json", metrics)
    text = experiment_report(exp)
    assert (
        table_rows(text, "| level | voices")[1]
        == ["1", "held-out", "34.1%", "11.5%", "14.0%", "0.451"] + ["n/a"] * 4
    )
    assert text.count(SPEAKER_CHANCE) == 1 and "most common speaker among the test utterances" in text


def test_unfinished_training_and_errors(exp: Path, tmp_path: Path) -> None:
    (exp / "train" / "finished.json").unlink()
    assert "training has not finished" in experiment_report(exp)
    write(exp / "convert.json", "{not json")
    with pytest.raises(UserError, match="convert.json: cannot read"):
        experiment_report(exp)
    write(exp / "convert.json", {"level": 1})
    with pytest.raises(UserError, match="lacks what the report needs"):
        experiment_report(exp)
    with pytest.raises(UserError, match="does not exist"):
        experiment_report(tmp_path / "nowhere")


def test_cli_writes_the_report(exp: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(exp)])
    assert result.exit_code == 0, result.output
    written = (exp / "report.md").read_text()
    assert "| vqaudio level 0 | 1800 |" in written and "| vqaudio level 0 | 1800 |" in result.stdout
    out = tmp_path / "elsewhere" / "r.md"
    out.parent.mkdir()
    result = CliRunner().invoke(app, ["report", str(exp), "-o", str(out), "--title", "T"])
    assert result.exit_code == 0 and out.read_text().startswith("# T\n")


def test_cli_missing_eval_json_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "exp").mkdir()
    result = CliRunner().invoke(app, ["report", str(tmp_path / "exp")])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "no eval.json" in lines[0]
    assert not (tmp_path / "exp" / "report.md").exists()


def test_seen_and_heldout_rows(exp: Path) -> None:
    level0 = EVAL["levels"][0]
    ev = {
        "version": 2,
        "utterances": 12,
        "voices": {"seen": 8, "heldout": 4},
        "levels": [
            {**level0, "voices": "seen", "utterances": 8},
            {**level0, "voices": "heldout", "utterances": 4, "pesq": 1.05},
        ],
    }
    write(exp / "eval.json", ev)
    conv = dict(CONVERT, groups={
        "seen->heldout": {"conversions": 3, "closer_to_target": 0.6667, "similarity_to_target": 0.7,
                          "mcd_converted": 8.0, "content_kept": 0.8},
        "seen->seen": {"conversions": 1, "closer_to_target": 1.0, "similarity_to_target": 0.9,
                       "mcd_converted": 7.0, "content_kept": None},
    })  # fmt: skip
    write(exp / "convert.json", conv)
    text = experiment_report(exp)
    assert "12 held-out test utterances (8 of seen voices, 4 of voices never trained on)" in text
    assert [r[1:3] + r[-2:-1] for r in table_rows(text, "| codec | voices")] == [
        ["seen", "1800", "1.14"],
        ["heldout", "1800", "1.05"],
    ]
    assert table_rows(text, "| source -> target") == [
        ["seen->heldout", "3", "66.7%", "0.700", "8.00", "80.0%"],
        ["seen->seen", "1", "100.0%", "0.900", "7.00", "n/a"],
    ]
    # only seen voices: the tables keep their old shape
    write(exp / "convert.json", dict(CONVERT, groups={"seen->seen": conv["groups"]["seen->seen"]}))
    write(exp / "eval.json", EVAL)
    text = experiment_report(exp)
    assert "| source -> target" not in text and "| codec | bitrate" in text


def test_shipped_model_section_comes_first(exp: Path) -> None:
    shipped = exp / "shipped"
    write(shipped / "model.txt", "/somewhere/vqaudio/pretrained/speech16k.safetensors\n")
    write(shipped / "eval.json", EVAL)
    write(shipped / "convert.json", CONVERT)
    write(shipped / "codec" / "decoded.wav", "RIFF")
    text = experiment_report(exp)
    first, second = text.index("## The shipped model: speech16k"), text.index("## The model trained here")
    assert first < text.index("Voice conversion") < second < text.index("2848 training steps")
    assert "[codec/decoded.wav](shipped/codec/decoded.wav)" in text
    assert text.count("| codec | bitrate") == 2
    # the shipped model alone (egs/mini/run.sh --stop-stage 2) is a report too
    (exp / "eval.json").unlink()
    text = experiment_report(exp)
    assert "## The shipped model" in text and "trained here" not in text and "training steps" not in text
    (shipped / "eval.json").unlink()
    with pytest.raises(UserError, match="no eval.json"):
        experiment_report(exp)


def test_report_imports_no_torch(subprocess_env: dict[str, str]) -> None:
    code = "import sys, vqaudio.eval.report; print(sorted({'torch', 'vqaudio.models'} & set(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_eval_package_names_resolve() -> None:
    import vqaudio.eval

    assert set(vqaudio.eval.__all__) <= set(dir(vqaudio.eval))
    for name in vqaudio.eval.__all__:
        value = getattr(vqaudio.eval, name)
        assert getattr(value, "__module__", "vqaudio.eval").startswith("vqaudio.eval"), name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        vqaudio.eval.nope  # noqa: B018
