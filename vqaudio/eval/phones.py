"""``vqaudio analyze``: what the codes of each level mean, measured against phone labels.

Encodes every labelled utterance at every level, labels each frame with the phone covering its
centre, and runs :func:`vqaudio.analysis.metrics.analyze_level` per level (phone / cluster purity and
PNMI as in HuBERT, held-out many-to-one mapping accuracy next to random-code and majority baselines as
in the VQ-VAE paper, code perplexity, run lengths, speaker leakage).  Writes ``metrics.json``,
``report.md`` and PNG figures.

Seen and held-out voices.  An utterance's voice is *held out* when its manifest row says ``heldout``
(5th column) or, for a model with a speaker table, when its speaker is not one of the model's training
speakers; otherwise it is *seen*.  When the analysed set holds at least two labelled utterances of each
kind, every level is also analysed per kind, side by side with all utterances:

- seen voices: :func:`~vqaudio.analysis.metrics.analyze_level` on the seen utterances alone;
- held-out voices: the code -> phone mapping of the seen row (fit on the seen voices' train split) and
  its random-code and majority baselines are scored on every held-out utterance: whether the codes
  generalise to new voices.  Purity, cluster purity, PNMI, perplexity, usage and runs are the held-out
  voices' own.  Speaker leakage (the utterance probe and the per-frame code -> speaker mapping) is fit
  and scored within the held-out utterances (their own split), next to its own chance level: how well
  the codes tell apart voices the model never heard.  With one held-out voice it is trivially 100%.

``metrics.json`` (schema 2; schema 1 had no ``schema`` key) keeps each level's scores over all
utterances under ``levels.<L>`` and, only when both kinds are present, adds
``levels.<L>.voices.seen`` and ``levels.<L>.voices.heldout`` with the same keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vqaudio.analysis import check_coverage, label_frames
from vqaudio.analysis.metrics import LevelAnalysis, UttCodes, analyze_level, run_seconds
from vqaudio.analysis.plots import plot_code_usage, plot_confusion, plot_cooccurrence, plot_durations
from vqaudio.audio import atomic_write, read_audio
from vqaudio.data import LabelledUtterance, is_heldout_voice, read_labels
from vqaudio.errors import UserError
from vqaudio.eval.report import SPEAKER_CHANCE, speaker_cells
from vqaudio.models import VQVAE

__all__ = [
    "METRICS_SCHEMA",
    "VOICE_GROUPS",
    "AnalysisResult",
    "analyze_corpus",
    "write_report",
]

METRICS_SCHEMA = 2
"""Version of ``metrics.json``: 2 added the ``schema`` key and the per-level ``voices`` groups."""

VOICE_GROUPS = {"seen": "seen", "heldout": "held-out"}
"""Keys of a level's ``voices`` groups (in ``metrics.json`` and :attr:`AnalysisResult.voices`) and
how tables name them."""


@dataclass
class AnalysisResult:
    """Per level: ``levels`` over all utterances and, when both kinds of voice are present,
    ``voices[level]`` = ``{"seen": ..., "heldout": ...}`` (empty otherwise, see the module docstring).
    ``voice_counts`` is how many usable utterances each kind has."""

    levels: dict[int, LevelAnalysis]
    phones: list[str]
    problems: list[str]
    num_utterances: int
    utterances: dict[int, list[UttCodes]] = field(repr=False, default_factory=dict)
    voices: dict[int, dict[str, LevelAnalysis]] = field(default_factory=dict)
    voice_counts: dict[str, int] = field(default_factory=dict)

    def rows(self, level: int) -> list[tuple[str, LevelAnalysis]]:
        """A level's table rows, named as tables show them: ``all``, then ``seen`` and ``held-out``
        when :attr:`voices` has them."""
        groups = self.voices.get(level, {})
        return [("all", self.levels[level])] + [(VOICE_GROUPS[k], g) for k, g in groups.items()]


@torch.no_grad()
def analyze_corpus(
    model: VQVAE,
    pairs: Sequence[LabelledUtterance],
    levels: Sequence[int],
    *,
    fmt: str = "auto",
    tier: str = "phones",
    fold_timit: bool = True,
    strip_stress: bool = True,
    train_fraction: float = 0.5,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> AnalysisResult:
    """Encode every pair at ``levels`` and analyse codes against phones and speakers, over all pairs
    and, when both kinds are present, over seen and held-out voices (see the module docstring)."""
    model.eval()
    trained_on = set(model.speakers)
    vocab: dict[str, int] = {}
    per_level: dict[int, list[UttCodes]] = {lv: [] for lv in levels}
    problems: list[str] = []
    sr = model.sample_rate
    for n, pair in enumerate(pairs):
        try:
            intervals = read_labels(
                pair.labels, fmt, tier=tier, fold_timit=fold_timit, strip_stress=strip_stress
            )
            wav = read_audio(pair.audio, sr)
        except UserError as err:
            problems.append(str(err))
            continue
        seconds = wav.size / sr
        heldout = is_heldout_voice(pair.heldout, pair.speaker, trained_on)
        durations = np.asarray(intervals.ends) - np.asarray(intervals.starts)
        x = torch.from_numpy(wav)
        coded: dict[int, UttCodes] = {}
        for lv in levels:
            hop_s = model.hops[lv] / sr
            issue = check_coverage(intervals, seconds, hop_s)
            if issue is not None:
                problems.append(f"{pair.labels}: {issue}")
                break
            codes = model.encode(x, level=lv)[0].cpu().numpy()
            phones = label_frames(intervals, codes.size, hop_s, vocab)
            coded[lv] = UttCodes(pair.utt_id, pair.speaker, codes, phones, durations, heldout)
        else:
            for lv, utt in coded.items():
                per_level[lv].append(utt)
        if progress is not None:
            progress(n + 1, len(pairs))
    usable = len(per_level[levels[0]]) if levels else 0
    if usable < 2:
        raise UserError(
            f"only {usable} usable labelled utterance(s); need at least 2 (problems: "
            f"{problems[0] if problems else 'none'})"
        )
    names = [name for name, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    results, voices = {}, {}
    for lv in levels:
        args = (model.config.levels[lv].codebook_size, len(names), model.hops[lv] / sr, train_fraction, seed)
        results[lv] = analyze_level(per_level[lv], *args)
        seen, held = _by_voice(per_level[lv])
        if len(seen) >= 2 and len(held) >= 2:
            voices[lv] = {
                "seen": analyze_level(seen, *args),
                "heldout": analyze_level(held, *args, fit_on=seen),
            }
    seen, held = _by_voice(per_level[levels[0]])
    counts = {"seen": len(seen), "heldout": len(held)}
    return AnalysisResult(results, names, problems, usable, per_level, voices, counts)


def _by_voice(utts: Sequence[UttCodes]) -> tuple[list[UttCodes], list[UttCodes]]:
    """The utterances with a labelled frame, split into seen and held-out voices."""
    usable = [u for u in utts if np.any(np.asarray(u.phones) >= 0)]
    return [u for u in usable if not u.heldout], [u for u in usable if u.heldout]


def write_report(result: AnalysisResult, out_dir: Path, model: VQVAE, source: str) -> list[Path]:
    """``metrics.json``, ``report.md`` and figures into ``out_dir``; returns the figure paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sr = model.sample_rate
    figures: list[Path] = []
    counts, runs = {}, {}
    for lv, res in result.levels.items():
        utts = result.utterances[lv]
        codes = np.concatenate([u.codes for u in utts])
        phones = np.concatenate([u.phones for u in utts])
        figures.append(plot_cooccurrence(res.joint, result.phones, out_dir / f"cooccurrence_level{lv}.png"))
        figures.append(
            plot_confusion(res.mapping, codes, phones, result.phones, out_dir / f"confusion_level{lv}.png")
        )
        counts[f"level {lv}"] = np.bincount(codes, minlength=model.config.levels[lv].codebook_size)
        runs[f"level {lv}"] = np.concatenate(
            [run_seconds(u.codes, model.hops[lv] / sr, u.phones) for u in utts]
        )
    first = next(iter(result.levels.values()))
    figures.append(plot_code_usage(counts, out_dir / "code_usage.png"))
    figures.append(plot_durations(runs, first.phone_seconds, out_dir / "durations.png"))
    meta = getattr(model, "checkpoint", None)
    levels: dict[str, dict[str, Any]] = {}
    for lv, res in result.levels.items():
        levels[str(lv)] = res.to_json_dict()
        if lv in result.voices:
            levels[str(lv)]["voices"] = {k: g.to_json_dict() for k, g in result.voices[lv].items()}
    metrics = {
        "schema": METRICS_SCHEMA,
        "levels": levels,
        "phones": result.phones,
        "utterances": result.num_utterances,
        "problems": result.problems,
        "model_sha256": getattr(meta, "weights_sha256", None),
        "source": source,
    }
    with atomic_write(out_dir / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    lines = _report_lines(result, model, source) + ["", "Figures:", ""]
    lines += [f"![{p.stem}]({p.name})" for p in figures]
    if result.problems:
        lines += ["", f"{len(result.problems)} problem(s) (utterances left out):", ""]
        lines += [f"- {p}" for p in result.problems[:50]]
    with atomic_write(out_dir / "report.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return figures


def _report_lines(result: AnalysisResult, model: VQVAE, source: str) -> list[str]:
    """The heading, the explanation and the table of ``report.md``: one row per level, or with a
    ``voices`` column, rows for all, seen and held-out voices per level when both kinds are present."""
    by_voice = bool(result.voices)
    lines = [
        "# Codes vs phones",
        "",
        f"{result.num_utterances} utterances from `{source}`, {len(result.phones)} phone labels. "
        "Mapping accuracy: each code mapped to its most frequent phone on a training half of the "
        "utterances, scored on the other half (VQ-VAE paper: 49.3% vs 7.2% for random codes). "
        "Purity and PNMI as in HuBERT, on all frames. Speaker leakage (lower is better for conversion): "
        "a linear probe on each held-out utterance's code histogram, and per frame a code -> speaker "
        "mapping (how often one code alone names its speaker), each next to its chance level, on a split "
        "made within each speaker (see below the table).",
        "",
    ]
    if by_voice:
        lines += [
            f"Seen and held-out voices: {result.voice_counts['seen']} utterances of voices the model trained "
            f"on, {result.voice_counts['heldout']} of voices it never trained on (the manifest's `voices` "
            "column, or speakers outside the model's speaker table). The held-out rows score the seen rows' "
            "mapping (fit on the seen voices' training half) and baselines on every held-out utterance; "
            "their purity, PNMI, usage and runs are the held-out voices' own, and their speaker leakage is "
            "fit and scored within the held-out voices (their own split and chance level).",
            "",
        ]
    voices_col = "| voices " if by_voice else ""
    lines += [
        f"| level {voices_col}| bit/s | mapping acc. | random codes | majority | phone purity "
        "| cluster purity | PNMI | perplexity | code usage | code run (ms) | phone (ms) | speaker probe "
        "| chance | speaker per frame | chance |",
        "|" + " --- |" * (16 + by_voice),
    ]
    for lv in result.levels:
        for name, g in result.rows(lv):
            cell = f"| {name} " if by_voice else ""
            lines.append(
                f"| {lv} {cell}| {model.config.bitrate(lv):.0f} | {g.mapping_accuracy:.1%} "
                f"| {g.random_baseline_accuracy:.1%} | {g.majority_baseline_accuracy:.1%} "
                f"| {g.phone_purity:.3f} | {g.cluster_purity:.3f} | {g.pnmi:.3f} "
                f"| {g.perplexity:.1f} | {g.code_usage:.1%} | {1000 * g.mean_code_run_seconds:.0f} "
                f"| {1000 * g.mean_phone_seconds:.0f} | {' | '.join(speaker_cells(g.to_json_dict()))} |"
            )
    return [*lines, "", SPEAKER_CHANCE]
