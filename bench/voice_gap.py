"""How far held-out voices fall behind seen ones, per voice family, for every codec of an evaluation.

The acceptance gap of issue #12 (held-out within 0.2 PESQ-WB of seen voices) compares two sets of
voices whose families differ in share (the many-voice corpus trains on 26 flite-family and 34 espeak-ng
voices and holds out 2 and 6), and the families differ in difficulty for every codec. This prints,
per codec and metric:

- ``seen`` / ``held-out``: the means over voices (each voice the mean of its files) per family, and all;
- ``gap``: seen minus held-out, all voices (what ``vqaudio evaluate`` shows);
- ``matched``: the seen-minus-held-out gap within each family, weighted by the held-out voices' family
  shares (the gap with the family mix held fixed);
- ``vs REF``: ``matched`` minus the reference codec's own ``matched`` gap (difference in differences):
  how much more the codec loses on the held-out voices than a codec that trains on nothing, i.e. the
  part of the gap that is generalisation rather than the held-out voices being harder or easier.

    .venv/bin/python bench/voice_gap.py exp/default_eval/eval.json [--metric pesq] [--reference "Opus"]

A benchmark reader (prints numbers; asserts nothing). The families are
:func:`vqaudio.data.demo_voices.voice_family`'s.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from vqaudio.data.demo_voices import voice_family

METRICS = ("pesq", "stoi", "mel_distance", "si_sdr")


def family_means(rows: list[dict], metric: str) -> dict[str, dict[str, float]]:
    """``{family: {voice: mean}}`` of ``metric`` over each voice's files (files without it skipped)."""
    by_voice: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        value = row.get(metric)
        if value is not None and np.isfinite(value):
            by_voice[row["speaker"]].append(float(value))
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for voice, values in by_voice.items():
        out[voice_family(voice)][voice] = float(np.mean(values))
    return out


def _means(fams: dict[str, dict[str, float]]) -> tuple[dict[str, float], float]:
    """``({family: mean over its voices}, mean over every voice)`` of :func:`family_means`' output."""
    per_family = {f: float(np.mean(list(voices.values()))) for f, voices in fams.items() if voices}
    return per_family, float(np.mean([v for voices in fams.values() for v in voices.values()]))


def gaps(seen: dict[str, dict[str, float]], held: dict[str, dict[str, float]]) -> tuple[float, float]:
    """``(raw, matched)``: seen minus held-out over all voices, and within families weighted by the
    held-out voices' family shares (families without seen voices are left out of ``matched``)."""
    (seen_f, seen_all), (held_f, held_all) = _means(seen), _means(held)
    shared = [f for f in held_f if f in seen_f]
    weights = np.array([len(held[f]) for f in shared], dtype=float)
    within = np.array([seen_f[f] - held_f[f] for f in shared])
    matched = float((weights * within).sum() / weights.sum()) if shared else float("nan")
    return seen_all - held_all, matched


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("eval_json", type=Path, help="vqaudio evaluate --json output with held-out voices")
    parser.add_argument("--metric", choices=METRICS, action="append", help="repeatable (default pesq, stoi)")
    parser.add_argument("--reference", default="Opus", help="codec name prefix of the reference (Opus)")
    args = parser.parse_args(argv)
    try:
        report = json.loads(args.eval_json.read_text())
        levels = report["levels"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        print(f"error: {args.eval_json}: not an evaluate JSON ({err})", file=sys.stderr)
        return 2
    names = list(dict.fromkeys(lv["name"] for lv in levels))
    rows = {(lv["name"], lv.get("voices")): lv.get("per_utterance", []) for lv in levels}
    if not any(voices == "heldout" for _, voices in rows):
        print(f"error: {args.eval_json} has no held-out-voice rows", file=sys.stderr)
        return 2
    reference = next((n for n in names if n.startswith(args.reference)), None)
    for metric in args.metric or ["pesq", "stoi"]:
        table = {}
        for name in names:
            seen = family_means(rows.get((name, "seen"), []), metric)
            held = family_means(rows.get((name, "heldout"), []), metric)
            if seen and held:
                table[name] = (seen, held, *gaps(seen, held))
        if not table:
            continue
        families = sorted({f for seen, held, *_ in table.values() for f in (*seen, *held)})
        ref = table.get(reference) if reference else None
        head = [f"{f} seen/held" for f in families] + ["all seen/held", "gap", "matched"]
        head += [f"vs {reference}"] if ref else []
        print(f"\n{metric}: means over voices; gap = seen - held-out")
        print(f"{'codec':>18} " + " ".join(f"{h:>19}" for h in head))
        for name, (seen, held, raw, matched) in table.items():
            (seen_f, seen_all), (held_f, held_all) = _means(seen), _means(held)
            nan = float("nan")
            cells = [f"{seen_f.get(f, nan):8.3f} / {held_f.get(f, nan):<8.3f}" for f in families]
            cells += [f"{seen_all:8.3f} / {held_all:<8.3f}", f"{raw:+.3f}", f"{matched:+.3f}"]
            if ref:
                cells.append(f"{matched - ref[3]:+.3f}")
            print(f"{name:>18} " + " ".join(f"{c:>19}" for c in cells))
        seen0, held0, *_ = next(iter(table.values()))
        counts = ", ".join(f"{f} {len(seen0.get(f, {}))}/{len(held0.get(f, {}))}" for f in families)
        print(f"voices (seen/held-out) per family: {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
