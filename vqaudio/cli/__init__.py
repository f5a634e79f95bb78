"""The ``vqaudio`` command line: thin Typer commands that parse, call one library function, report.

Errors the user caused (:class:`vqaudio.errors.UserError`) become one line on stderr and exit code 2.
Commands live by topic in this package's modules and register on the one ``app``; importing them in
this order gives ``vqaudio --help`` its order.
"""

from __future__ import annotations

import importlib

from vqaudio.cli.common import app

for _topic in ("train", "codec", "models", "analysis", "voice", "report"):
    importlib.import_module(f"vqaudio.cli.{_topic}")

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    app(prog_name="vqaudio")
