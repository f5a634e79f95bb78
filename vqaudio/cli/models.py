"""Model command: models (what is shipped, what is the default, what commands use without --model)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from vqaudio.cli.common import app, out_console, user_errors


@app.command()
@user_errors
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the models shipped in this install, the default, and what VQAUDIO_MODEL points to."""
    import dataclasses
    import json

    from vqaudio.pretrained import describe_models

    listing = describe_models()
    if as_json:
        data = dataclasses.asdict(listing)
        out_console.print_json(json.dumps(data, default=str))
        return
    if not listing.models:
        out_console.print(f"none shipped (in {listing.directory})", highlight=False)
    else:
        table = Table(title=f"shipped models ({listing.directory})", title_justify="left")
        for col in ("name", "default", "MB", "bit/s per level", "speakers", "Hz", "step", "sha256"):
            table.add_column(col, justify="left" if col in ("name", "sha256") else "right")
        for m in listing.models:
            table.add_row(
                m.name,
                "yes" if m.default else "",
                f"{m.size_mb:.1f}",
                " / ".join(f"{b:.0f}" for b in m.bitrates),
                str(m.num_speakers),
                str(m.sample_rate),
                str(m.step),
                m.weights_sha256[:12],
            )
        out_console.print(table)
        for m in listing.models:
            if m.description:
                out_console.print(f"{m.name}: {m.description}", highlight=False)
    out_console.print(f"default: {listing.default or 'none'}", highlight=False)
    out_console.print(f"VQAUDIO_MODEL: {listing.env or 'not set'}", highlight=False)
    out_console.print(f"commands without --model use: {listing.in_use}", highlight=False, soft_wrap=True)
