"""The ``vqaudio`` command line: thin Typer commands that parse, call one library function, report.

Errors the user caused (:class:`vqaudio.errors.UserError`) become one line on stderr and exit code 2.
Commands live by topic in this package's modules and register on the one ``app``; importing them in
this order gives ``vqaudio --help`` its order.
"""

from __future__ import annotations

import importlib
import signal

from vqaudio.cli.common import app

for _topic in ("train", "codec", "prior", "models", "analysis", "voice", "report"):
    importlib.import_module(f"vqaudio.cli.{_topic}")

__all__ = ["app", "main"]


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM unwinds like SIGINT does, so partial outputs (temporary files) are removed on the way out."""
    raise SystemExit(128 + signum)


def main() -> None:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, _terminated)
    app(prog_name="vqaudio")
