"""Analysis command: analyze."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from vqaudio.cli.common import (
    DeviceOpt,
    ModelOpt,
    app,
    err_console,
    out_console,
    progress_bar,
    user_errors,
)
from vqaudio.errors import UserError

if TYPE_CHECKING:
    from vqaudio.eval.phones import AnalysisResult


@app.command()
@user_errors
def analyze(
    audio: Annotated[Path, typer.Option(help="Audio folder (speaker = parent folder) or TSV manifest.")],
    labels: Annotated[Path, typer.Option(help="Folder of phone label files, matched to audio by stem.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder (metrics.json, report.md, PNGs).")],
    model_path: ModelOpt = None,
    fmt: Annotated[
        str, typer.Option("--format", help="textgrid, timit, htk, tsv or auto (by extension).")
    ] = "auto",
    level: Annotated[str, typer.Option(help="A level number or 'all'.")] = "all",
    train_fraction: Annotated[
        float, typer.Option(min=0.05, max=0.95, help="Utterances used to fit the mapping.")
    ] = 0.5,
    tier: Annotated[str, typer.Option(help="TextGrid tier holding the phones.")] = "phones",
    split: Annotated[
        str | None, typer.Option(help="Only this split of a manifest (train/valid/test).")
    ] = None,
    fold: Annotated[bool, typer.Option(help="Fold TIMIT's 61 phones to the standard 39.")] = True,
    keep_stress: Annotated[bool, typer.Option(help="Keep ARPAbet stress digits (AH0 != AH1).")] = False,
    seed: int = 0,
    device: DeviceOpt = "cpu",
) -> None:
    """Align each level's codes with phone labels: purity, PNMI, mapping accuracy, speaker leakage, plots."""
    from vqaudio.checkpoint import load_model
    from vqaudio.data.labels import LABEL_FORMATS
    from vqaudio.data.pairing import find_pairs
    from vqaudio.device import resolve_device
    from vqaudio.eval.phones import analyze_corpus, write_report

    if fmt != "auto" and fmt not in LABEL_FORMATS:
        raise UserError(f"--format must be {', '.join(LABEL_FORMATS)} or auto, got {fmt!r}")
    model = load_model(model_path, resolve_device(device))
    if level == "all":
        levels = list(range(model.num_levels))
    elif level.lstrip("-").isdigit():
        levels = [model.check_level(int(level))]
    else:
        raise UserError(f"--level expects a number or 'all', got {level!r}")
    pairs, problems = find_pairs(audio, labels, fmt, split)
    for msg in problems[:10]:
        err_console.print(f"[yellow]warning:[/] {msg}", highlight=False)
    if len(problems) > 10:
        err_console.print(f"[yellow]warning:[/] ... and {len(problems) - 10} more", highlight=False)
    with progress_bar(True) as bar:
        task = bar.add_task("analysing", total=len(pairs))
        result = analyze_corpus(
            model,
            pairs,
            levels,
            fmt=fmt,
            tier=tier,
            fold_timit=fold,
            strip_stress=not keep_stress,
            train_fraction=train_fraction,
            seed=seed,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    result.problems = problems + result.problems
    write_report(result, out, model, str(audio))
    counts = result.voice_counts
    if counts.get("seen") and counts.get("heldout") and not result.voices:
        err_console.print(
            f"[yellow]warning:[/] no seen / held-out rows: {counts['seen']} seen-voice and "
            f"{counts['heldout']} held-out-voice utterance(s); each kind needs at least 2",
            highlight=False,
        )
    out_console.print(_table(result))
    err_console.print(f"report: {out / 'report.md'}", highlight=False)


def _table(result: AnalysisResult) -> Table:
    """One row per level; with seen and held-out voices, a ``voices`` column and three rows per level."""
    from vqaudio.eval.report import SPEAKER_CHANCE, speaker_cells

    by_voice = bool(result.voices)
    table = Table(
        title=f"codes vs phones ({result.num_utterances} utterances)",
        title_justify="left",
        caption=SPEAKER_CHANCE,
        caption_justify="left",
    )
    columns = ["level", *(["voices"] if by_voice else []), "mapping", "random", "majority", "phone pur."]
    columns += ["cluster pur.", "PNMI", "speaker", "chance", "spk/frame", "chance"]
    for col in columns:
        table.add_column(col, justify="right")
    for lv in result.levels:
        for name, g in result.rows(lv):
            table.add_row(
                str(lv),
                *([name] if by_voice else []),
                f"{g.mapping_accuracy:.1%}",
                f"{g.random_baseline_accuracy:.1%}",
                f"{g.majority_baseline_accuracy:.1%}",
                f"{g.phone_purity:.3f}",
                f"{g.cluster_purity:.3f}",
                f"{g.pnmi:.3f}",
                *speaker_cells(g.to_json_dict()),
            )
    return table
