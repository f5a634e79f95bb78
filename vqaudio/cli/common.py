"""Shared pieces of the command line: the Typer app, consoles, option aliases, error handling, file plans."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from vqaudio.errors import UserError

app = typer.Typer(
    name="vqaudio",
    help="Neural audio coding and voice conversion with hierarchical VQ-VAEs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# vqaudio prior train / eval: the second stage's commands (train in cli/train.py, the rest in cli/prior.py)
prior_app = typer.Typer(
    name="prior", help="A prior over a model's codes: train, evaluate.", no_args_is_help=True
)
app.add_typer(prior_app, name="prior")
err_console = Console(stderr=True)
out_console = Console()

F = TypeVar("F", bound=Callable[..., Any])

# Shared options, declared once.
RecipeArg = Annotated[
    Path, typer.Argument(help="YAML recipe, e.g. recipes/vctk.yaml (partial override of the defaults).")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        metavar="KEY.PATH=VALUE",
        help="Override one config value (repeatable), e.g. --set train.max_steps=1000.",
    ),
]


def user_errors(func: F) -> F:
    """Turn :class:`UserError` into ``error: ...`` on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserError as err:
            err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


# None: $VQAUDIO_MODEL, else the shipped default (resolved in one place: vqaudio.pretrained.resolve_model)
ModelOpt = Annotated[
    Path | None,
    typer.Option(
        "--model",
        "-m",
        show_default=False,
        help="Checkpoint, run directory or shipped model name "
        "(default: $VQAUDIO_MODEL, else the shipped model; see vqaudio models).",
    ),
]
DeviceOpt = Annotated[str, typer.Option(help="cpu, cuda, cuda:1 ...")]
ForceOpt = Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing outputs.")]


def expand_inputs(inputs: list[Path], suffixes: tuple[str, ...]) -> list[tuple[Path, Path]]:
    """(file, path relative to its argument) for every file argument and every match inside folders."""
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        if str(item) == "-":
            found.append((item, Path("stdin")))
        elif item.is_dir():
            matches = sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
            if not matches:
                raise UserError(f"{item}: no {'/'.join(suffixes)} files in this folder")
            found += [(p, p.relative_to(item)) for p in matches]
        elif not item.exists():
            raise UserError(f"{item}: no such file")
        else:
            found.append((item, Path(item.name)))
    return found


def plan_outputs(
    inputs: list[tuple[Path, Path]],
    out: Path,
    suffix: str,
    force: bool,
    many: bool,
    out_suffixes: tuple[str, ...] | None = None,
) -> list[tuple[Path, Path | str]]:
    """Where each input goes, checked before any work: an existing output needs ``force``; an output
    named like none of ``out_suffixes`` (default: ``suffix``), an output that is its own input and two
    inputs that would write one output are refused."""
    allowed = out_suffixes or (suffix,)
    plan: list[tuple[Path, Path | str]] = []
    sources: dict[Path, Path] = {}
    for src, rel in inputs:
        if str(out) == "-":
            if many:
                raise UserError("-o - (stdout) takes a single input")
            plan.append((src, "-"))
            continue
        target = out / rel.with_suffix(suffix) if many or out.is_dir() else out
        key = target.resolve()
        if key in sources:
            raise UserError(
                f"{sources[key]} and {src} would both write {target}; give their parent folder instead "
                "(outputs mirror its tree) or run them one at a time"
            )
        sources[key] = src
        if str(src) != "-" and key == src.resolve():
            raise UserError(f"{target}: the output is the input file")
        if target.suffix.lower() not in allowed:
            raise UserError(
                f"{target}: unsupported output format '{target.suffix or '(none)'}' "
                f"(use {', '.join(allowed)}, a folder or -)"
            )
        if target.exists() and not force:
            raise UserError(f"{target} exists (use --force to overwrite)")
        plan.append((src, target))
    return plan


def plan_files(
    inputs: list[Path],
    out: Path,
    in_suffixes: tuple[str, ...],
    out_suffix: str,
    force: bool,
    out_suffixes: tuple[str, ...] | None = None,
) -> tuple[list[tuple[Path, Path | str]], bool]:
    """Inputs expanded, outputs planned (a folder is created for many); ``many`` tells which."""
    files = expand_inputs(inputs, in_suffixes)
    many = len(files) > 1 or any(p.is_dir() for p in inputs)
    plan = plan_outputs(files, out, out_suffix, force, many, out_suffixes)
    if many and str(out) != "-":
        if out.exists() and not out.is_dir():
            raise UserError(f"{out}: not a folder (several inputs need an output folder)")
        out.mkdir(parents=True, exist_ok=True)
    return plan, many


R = TypeVar("R")


def run_io(src: Path, target: Path | str, work: Callable[[Any, Any], R]) -> R:
    """``work(source, destination)`` with ``-`` meaning stdin / stdout (buffered in memory)."""
    import io

    source: Any = io.BytesIO(sys.stdin.buffer.read()) if str(src) == "-" else src
    try:
        if target == "-":
            buf = io.BytesIO()
            result = work(source, buf)
            sys.stdout.buffer.write(buf.getvalue())
            sys.stdout.buffer.flush()
            return result
        assert isinstance(target, Path)
        target.parent.mkdir(parents=True, exist_ok=True)
        return work(source, target)
    except UserError as err:  # name the file: with many inputs the message alone does not say which
        if str(err).startswith(str(src)):
            raise
        raise type(err)(f"{src}: {err}") from err


def per_chunk(bar: Any, task: Any, many: bool) -> Callable[[int, int], None]:
    """Progress callback: one file shows its chunks (long files), many files show files instead."""

    def update(done: int, total: int) -> None:
        if not many:
            bar.update(task, completed=done, total=total)

    return update


def progress_bar(enabled: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=not enabled or not err_console.is_terminal,  # a log file gets no bar (nor a blank line)
        transient=True,
    )
