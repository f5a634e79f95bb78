"""Report command: report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vqaudio.cli.common import app, err_console, user_errors


@app.command()
@user_errors
def report(
    exp: Annotated[
        Path, typer.Argument(help="Experiment folder (train/, eval.json, convert.json, analysis/).")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Markdown file to write (default: EXP/report.md).")
    ] = None,
    title: Annotated[str | None, typer.Option(help="First heading (default: 'vqaudio report: EXP').")] = None,
) -> None:
    """One markdown page for an experiment folder: training, reconstruction, conversion, codes vs phones."""
    from vqaudio.audio import atomic_write
    from vqaudio.eval.report import experiment_report

    target = exp / "report.md" if out is None else out
    text = experiment_report(exp, title, base=target.parent)
    with atomic_write(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    print(text, end="")
    err_console.print(f"report: {target}", highlight=False)
