"""One markdown page summing up an experiment folder (``vqaudio report``), as the ``egs/*/run.sh`` recipes
write it at the end.

An experiment folder ``EXP`` holds what the recipe stages wrote; ``eval.json`` (or ``shipped/eval.json``)
is required::

    EXP/shipped/               the same files for the shipped model (model.txt: its path), in a section
                               of their own before the trained model's; codec/ and convert/ hold audio
    EXP/train/                 run directory (finished.json, config.yaml)      vqaudio train
    EXP/eval.json              reconstruction per level and baseline            vqaudio evaluate --json
    EXP/convert.json           voice-conversion scores                          vqaudio eval-convert --json
    EXP/convert/               example conversions: originals/<voice>.*, to_<target>/<voice>.wav
    EXP/analysis/metrics.json  codes vs phones (and the PNG figures next to it) vqaudio analyze
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from vqaudio.errors import UserError

__all__ = ["SPEAKER_CHANCE", "experiment_report", "speaker_cells"]

NO_SIMILARITY = "n/a (pip install vqaudio[eval])"

SPEAKER_CHANCE = (
    "Speaker chance: for the probe, the share of the most common speaker among the test utterances; per "
    "frame, always naming the most frequent training speaker. Both split each speaker's utterances between "
    "train and test (n/a: no speaker has two)."
)
"""What the two speaker "chance" columns are, said under every table that shows them (``vqaudio analyze``'s
table and report, ``vqaudio report``); see :func:`vqaudio.analysis.metrics.speaker_probe` and
:func:`vqaudio.analysis.metrics.split_by_speaker`."""

_SPEAKER_KEYS = ("speaker_probe_accuracy", "speaker_chance", "speaker_frame_accuracy", "speaker_frame_chance")


def _fmt(value: float | None, spec: str, missing: str = "n/a") -> str:
    """``value`` formatted, or ``missing`` for ``None`` / NaN (json writes NaN for an undefined mean)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return format(value, spec)


def speaker_cells(scores: dict[str, Any]) -> list[str]:
    """The speaker-leakage cells of one level's scores (a level of ``metrics.json``, or
    :meth:`~vqaudio.analysis.metrics.LevelAnalysis.to_json_dict`): probe accuracy, its chance, per-frame
    accuracy, its chance, as percentages; ``n/a`` where not computable (``None`` / NaN) or absent (older
    files lack the per-frame ones)."""
    return [_fmt(scores.get(key), ".1%") for key in _SPEAKER_KEYS]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: cannot read ({err})") from None


def _optional_json(path: Path) -> Any | None:
    return _read_json(path) if path.is_file() else None


def _link(target: Path, base: Path) -> str:
    """``target`` as a markdown link relative to the folder ``base`` the report is written into."""
    return Path(os.path.relpath(target, base)).as_posix()


def _training(exp: Path) -> list[str]:
    run = exp / "train"
    fin = _optional_json(run / "finished.json")
    data = None
    if (run / "config.yaml").is_file():
        import yaml

        cfg = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) or {}
        data = (cfg.get("data") or {}).get("root")
    trained_on = f", trained on `{data}`" if data else ""
    if fin is None:
        return [f"Model: `{run}`{trained_on}; training has not finished (no finished.json).", ""]
    speed = []
    if fin.get("steps_per_second") is not None:
        threads = f" on {fin['threads']} threads" if fin.get("threads") else ""
        speed.append(f"{fin['steps_per_second']:.2f} steps/s{threads}")
    if fin.get("train_minutes") is not None:
        speed.append(f"{fin['train_minutes']:.1f} min")
    if fin.get("peak_memory_gib") is not None:
        speed.append(f"peak GPU memory {fin['peak_memory_gib']:.2f} GiB")
    lines = [
        f"Model: `{run}`{trained_on}: {fin['step']} training steps ({', '.join([fin['reason'], *speed])}), "
        f"best validation mel distance {_fmt(fin.get('best_valid_mel'), '.3f')}.",
        "",
    ]
    max_steps = fin.get("max_steps")
    if fin.get("reason") == "time_budget" and max_steps and fin["step"] < max_steps:
        lines += [
            f"**The time budget ({fin.get('max_minutes', 0):g} min) ended training at step {fin['step']} of "
            f"the recipe's {max_steps}** ({fin.get('steps_per_second', 0):.2f} steps/s on this machine); "
            "scores depend on the steps reached: compare them with runs of as many steps.",
            "",
        ]
    return lines


def _reconstruction(ev: dict[str, Any]) -> list[str]:
    split = any(s.get("voices", "all") != "all" for s in ev["levels"])
    counts = ev.get("voices") or {}
    groups = (
        f" ({counts.get('seen', 0)} of seen voices, {counts.get('heldout', 0)} of voices never trained on)"
    )
    lines = [
        f"Reconstruction of {ev['utterances']} held-out test utterances{groups if split else ''} "
        "(`vqaudio evaluate`; baselines at their measured payload bitrate):",
        "",
        "| codec | "
        + ("voices | " if split else "")
        + "bitrate (bit/s) | mel distance | SI-SDR (dB) | PESQ-WB | STOI |",
        "| --- | " + ("--- | " if split else "") + "--- | --- | --- | --- | --- |",
    ]
    for s in ev["levels"]:
        voices = f"{s.get('voices', 'all')} | " if split else ""
        lines.append(
            f"| {s['name']} | {voices}{_fmt(s['bitrate'], '.0f')} | {_fmt(s['mel_distance'], '.3f')} "
            f"| {_fmt(s['si_sdr'], '.2f')} | {_fmt(s.get('pesq'), '.2f')} | {_fmt(s.get('stoi'), '.3f')} |"
        )
    return lines + [""]


def _examples(folder: Path, base: Path) -> list[str]:
    """A source x target table of links to the example conversions, if the folder holds any."""
    originals = {p.stem: p for p in sorted((folder / "originals").glob("*")) if p.is_file()}
    targets = sorted(p.name.removeprefix("to_") for p in folder.glob("to_*") if p.is_dir())
    if not originals or not targets:
        return []
    lines = [
        f"Listen (`{_link(folder, base)}/`): the original recording of each voice, and the same recording "
        "converted into each target voice.",
        "",
        "| source | original | " + " | ".join(f"as {t}" for t in targets) + " |",
        "| --- | --- | " + " | ".join("---" for _ in targets) + " |",
    ]
    for voice, path in originals.items():
        cells = []
        for t in targets:
            wav = folder / f"to_{t}" / f"{voice}.wav"
            cells.append(f"[wav]({_link(wav, base)})" if wav.is_file() else "")
        lines.append(f"| {voice} | [{path.suffix[1:]}]({_link(path, base)}) | " + " | ".join(cells) + " |")
    return lines + [""]


def _conversion(conv: dict[str, Any]) -> list[str]:
    pairs = conv.get("pairs") or []
    sentences = len({p["sentence"] for p in pairs})
    voices = sorted({p["source"] for p in pairs} | {p["target"] for p in pairs})
    sim = conv.get("similarity_to_target")
    acc = conv.get("phone_accuracy_converted")
    lines = [
        f"Voice conversion (`vqaudio eval-convert`): {conv['conversions']} conversions of {sentences} "
        f"test sentence(s) between {len(voices)} voices ({', '.join(voices)}), content from level "
        f"{conv['level']}:",
        "",
        "| measure | converted | reference |",
        "| --- | --- | --- |",
        f"| speaker cosine to target (Resemblyzer) | {_fmt(sim, '.3f', NO_SIMILARITY)} "
        f"| to source: {_fmt(conv.get('similarity_to_source'), '.3f', NO_SIMILARITY)} |",
        f"| unconverted source's cosine to target | "
        f"{_fmt(conv.get('unconverted_similarity_to_target'), '.3f', NO_SIMILARITY)} | (doing nothing) |",
        f"| closer to target than to source | {_fmt(conv.get('closer_to_target'), '.1%', NO_SIMILARITY)} "
        "| chance: 50% |",
        f"| MCD to the target's rendition (dB) | {_fmt(conv.get('mcd_converted'), '.2f')} "
        f"| source vs target: {_fmt(conv.get('mcd_source_baseline'), '.2f')} |",
    ]
    if acc is not None:
        lines.append(
            f"| phone accuracy of the codes | {_fmt(acc, '.1%')} "
            f"| source audio: {_fmt(conv.get('phone_accuracy_source'), '.1%')} |"
        )
    else:
        lines.append("| phone accuracy of the codes | n/a (no phone labels) | |")
    groups = conv.get("groups") or {}
    if set(groups) - {"seen->seen"}:
        lines += [
            "",
            "By kind of voice (seen: trained on; heldout: never heard, given by reference clips):",
            "",
            "| source -> target | conversions | closer to target | cosine to target | MCD (dB) "
            "| content kept |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for name, g in groups.items():
            lines.append(
                f"| {name} | {g['conversions']} | {_fmt(g.get('closer_to_target'), '.1%', NO_SIMILARITY)} "
                f"| {_fmt(g.get('similarity_to_target'), '.3f', NO_SIMILARITY)} "
                f"| {_fmt(g.get('mcd_converted'), '.2f')} | {_fmt(g.get('content_kept'), '.1%')} |"
            )
    return lines + [""]


def _phones(an: dict[str, Any], folder: Path, base: Path) -> list[str]:
    lines = [
        f"Codes vs phones on {an['utterances']} test utterances (`vqaudio analyze`; details: "
        f"{_link(folder / 'report.md', base)}):",
        "",
        "| level | mapping acc. | random codes | majority | PNMI | speaker probe | chance "
        "| speaker per frame | chance |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for lv, m in an["levels"].items():
        lines.append(
            f"| {lv} | {m['mapping_accuracy']:.1%} | {m['random_baseline_accuracy']:.1%} "
            f"| {m['majority_baseline_accuracy']:.1%} | {m['pnmi']:.3f} | {' | '.join(speaker_cells(m))} |"
        )
    lines += _phones_by_voice(an) + ["", SPEAKER_CHANCE]
    figures = [
        (f"codes vs phones, level {lv}", folder / f"cooccurrence_level{lv}.png") for lv in an["levels"]
    ]
    figures.append(("code usage", folder / "code_usage.png"))
    shown = [f"![{alt}]({_link(path, base)})" for alt, path in figures if path.is_file()]
    return lines + ([""] + shown if shown else []) + [""]


def _phones_by_voice(an: dict[str, Any]) -> list[str]:
    """Seen-voice and held-out-voice rows of ``vqaudio analyze`` (``metrics.json`` schema 2), side by side
    per level; nothing when the analysis had only one kind of voice (or predates schema 2)."""
    levels = {lv: m["voices"] for lv, m in an["levels"].items() if m.get("voices")}
    if not levels:
        return []
    lines = [
        "",
        "The same on the voices the model trained on and on held-out voices (the held-out rows score the "
        "mapping fit on the seen voices; their speaker leakage is measured among the held-out voices):",
        "",
        "| level | voices | mapping acc. | random codes | majority | PNMI | speaker probe | chance "
        "| speaker per frame | chance |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for lv, groups in levels.items():
        for key, name in (("seen", "seen"), ("heldout", "held-out")):
            m = groups[key]
            lines.append(
                f"| {lv} | {name} | {m['mapping_accuracy']:.1%} | {m['random_baseline_accuracy']:.1%} "
                f"| {m['majority_baseline_accuracy']:.1%} | {m['pnmi']:.3f} "
                f"| {' | '.join(speaker_cells(m))} |"
            )
    return lines


def _shipped(folder: Path, base: Path) -> list[str]:
    """The section on the shipped model: which one, listening links, and its scores."""
    path = (
        (folder / "model.txt").read_text(encoding="utf-8").strip() if (folder / "model.txt").is_file() else ""
    )
    name = Path(path).stem if path else "the shipped model"
    lines = [
        f"## The shipped model: {name}",
        "",
        f"The model inside the package (`vqaudio models`; `{path or '?'}`), used with no `--model`, on this "
        "corpus: seen voices are among its training voices, held-out ones it never heard.",
        "",
    ]
    audio = [p for sub in ("codec", "convert") for p in sorted((folder / sub).glob("*.wav"))]
    if audio:
        lines += ["Listen: " + ", ".join(f"[{p.parent.name}/{p.name}]({_link(p, base)})" for p in audio), ""]
    return lines + _sections(folder, base)


def _sections(exp: Path, base: Path) -> list[str]:
    lines = _reconstruction(_read_json(exp / "eval.json")) if (exp / "eval.json").is_file() else []
    conv = _optional_json(exp / "convert.json")
    if conv is not None:
        lines += _conversion(conv)
    lines += _examples(exp / "convert", base)
    an = _optional_json(exp / "analysis" / "metrics.json")
    if an is not None:
        lines += _phones(an, exp / "analysis", base)
    return lines


def experiment_report(exp: Path, title: str | None = None, base: Path | None = None) -> str:
    """The markdown report of the experiment folder ``exp`` (layout in the module docstring).

    Sections: the shipped model (when ``shipped/eval.json`` exists), then the trained model: training
    summary, reconstruction table per level (and Codec2 / Opus baselines when ``eval.json`` has them),
    voice conversion (when ``convert.json`` exists), codes vs phones with figures (when
    ``analysis/metrics.json`` exists). Links are relative to ``base``, the folder the report will be
    written into (default ``exp``).

    Raises:
        UserError: ``exp`` is not a folder, neither ``eval.json`` nor ``shipped/eval.json`` exists, or a
            json file is unreadable.
    """
    if not exp.is_dir():
        raise UserError(f"{exp}: experiment folder does not exist")
    shipped = (exp / "shipped" / "eval.json").is_file()
    trained = (exp / "eval.json").is_file()
    if not (trained or shipped):
        raise UserError(
            f"{exp}: no eval.json (write it with vqaudio evaluate ... --json {exp / 'eval.json'})"
        )
    base = exp if base is None else base
    lines = [f"# {title or f'vqaudio report: {exp.name}'}", ""]
    try:
        if shipped:
            lines += _shipped(exp / "shipped", base)
            if trained:
                lines += ["## The model trained here", ""]
        if trained:
            lines += _training(exp)
            lines += _sections(exp, base)
    except (KeyError, TypeError, AttributeError) as err:
        raise UserError(
            f"{exp}: a json file lacks what the report needs ({type(err).__name__}: {err})"
        ) from None
    return "\n".join(lines).rstrip() + "\n"
