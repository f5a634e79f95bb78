"""bench/voice_gap.py: the seen / held-out gap per voice family, matched, and against a reference codec."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def gap(bench_module: Callable[[str], ModuleType]) -> ModuleType:
    return bench_module("voice_gap")


def _rows(scores: dict[str, list[float]]) -> list[dict]:
    return [{"speaker": v, "pesq": s} for v, values in scores.items() for s in values]


# two families: espeak voices (a '+' in the name) are harder; the held-out set is mostly espeak
SEEN = {"kal16": [3.0, 3.0], "awb-v1": [3.0], "en-us+m1": [2.0], "en-gb+f2": [2.0]}
HELD = {"slt-v5": [2.9], "en-us+m7": [1.9, 1.9], "en-029+steph": [1.9], "en-gb+f4": [1.9]}


def test_matched_gap_holds_the_family_mix_fixed(gap: ModuleType) -> None:
    seen, held = gap.family_means(_rows(SEEN), "pesq"), gap.family_means(_rows(HELD), "pesq")
    assert set(seen) == {"flite", "flite-derived", "espeak"} and set(held) == {"flite-derived", "espeak"}
    raw, matched = gap.gaps(seen, held)
    # all voices: 2.5 seen vs (2.9 + 3 * 1.9) / 4 = 2.15 held out; within a family the gap is 0.1
    assert raw == pytest.approx(0.35)
    assert matched == pytest.approx(0.1)


def test_main_prints_the_gaps_and_the_reference_difference(gap: ModuleType, tmp_path: Path, capsys) -> None:
    ref_seen = {v: [s - 0.5] for v, (s, *_) in SEEN.items()}
    ref_held = {v: [s - 0.3] for v, (s, *_) in HELD.items()}  # the reference finds held-out 0.2 easier
    levels = [
        {"name": "vqaudio level 0", "voices": "seen", "per_utterance": _rows(SEEN)},
        {"name": "vqaudio level 0", "voices": "heldout", "per_utterance": _rows(HELD)},
        {"name": "Opus 6 kbit/s", "voices": "seen", "per_utterance": _rows(ref_seen)},
        {"name": "Opus 6 kbit/s", "voices": "heldout", "per_utterance": _rows(ref_held)},
    ]
    path = tmp_path / "eval.json"
    path.write_text(json.dumps({"version": 3, "levels": levels}))
    assert gap.main([str(path), "--metric", "pesq"]) == 0
    line = next(row for row in capsys.readouterr().out.splitlines() if row.strip().startswith("vqaudio"))
    # the reference's matched gap is 0.1 - 0.2 = -0.1, so vs Opus is 0.1 - (-0.1)
    assert line.split()[-3:] == ["+0.350", "+0.100", "+0.200"]


def test_an_evaluation_without_held_out_voices_is_refused(gap: ModuleType, tmp_path: Path, capsys) -> None:
    path = tmp_path / "eval.json"
    path.write_text(json.dumps({"levels": [{"name": "x", "voices": "seen", "per_utterance": _rows(SEEN)}]}))
    assert gap.main([str(path)]) == 2
    assert "no held-out-voice rows" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{")
    assert gap.main([str(tmp_path / "bad.json")]) == 2
