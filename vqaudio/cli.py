"""The ``vqaudio`` command line: thin Typer commands that parse, call one library function, report.

Errors the user caused (:class:`vqaudio.errors.UserError`) become one line on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from vqaudio.errors import UserError

app = typer.Typer(
    name="vqaudio",
    help="Neural audio coding and voice conversion with hierarchical VQ-VAEs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
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


def _bitrate_table(cfg: Any) -> Table:
    table = Table(title="levels", title_justify="left")
    for col in ("level", "hop", "frame rate (Hz)", "codebook K", "bits/code", "bitrate (bit/s)"):
        table.add_column(col, justify="right")
    m = cfg.model
    for i, lv in enumerate(m.levels):
        table.add_row(
            str(i),
            str(lv.hop),
            f"{m.frame_rate(i):.2f}",
            str(lv.codebook_size),
            f"{lv.bits_per_code:.2f}",
            f"{m.bitrate(i):.0f}",
        )
    return table


def _print_config(cfg: Any, console: Console) -> None:
    import yaml

    from vqaudio.config import config_to_dict

    console.print("[bold]resolved config[/]")
    console.print(
        yaml.safe_dump(config_to_dict(cfg), sort_keys=False).rstrip(), highlight=False, markup=False
    )
    console.print(_bitrate_table(cfg))


@app.command()
@user_errors
def train(
    recipe: RecipeArg,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Run directory (checkpoints, TensorBoard, config).")
    ],
    overrides: SetOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out from its latest checkpoint.")
    ] = False,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 ... (default: train.device)")] = None,
) -> None:
    """Train a hierarchical VQ-VAE from a recipe.

    Single GPU: vqaudio train recipes/vctk.yaml --out runs/vctk.
    Many GPUs: torchrun --nproc-per-node=8 -m vqaudio train recipes/vctk.yaml --out runs/vctk.
    Ctrl-C (or SIGTERM) finishes the current step, saves and exits; --resume continues exactly.
    """
    import os

    from vqaudio.config import load_config
    from vqaudio.train import train as run_training

    sets = list(overrides or [])
    if device is not None:
        sets.append(f"train.device={device}")
    cfg = load_config(recipe, sets)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    console = err_console if main_rank else Console(stderr=True, quiet=True)
    if main_rank:
        _print_config(cfg, console)
    from vqaudio.train import TrainingError

    try:
        result = run_training(cfg, out, resume=resume, console=console)
    except TrainingError as err:  # diverged: not the user's input, but not a crash either
        err_console.print(f"[bold red]training failed:[/] {err}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if main_rank:
        best = f"{result.best_metric:.4f}" if result.best_metric is not None else "n/a"
        state = "interrupted" if result.interrupted else "finished"
        console.print(f"{state} at step {result.step}; best valid mel {best}; run directory {result.run_dir}")


@app.command("config")
@user_errors
def show_config(recipe: RecipeArg, overrides: SetOpt = None) -> None:
    """Print the fully resolved config of a recipe and the bitrate of each level."""
    from vqaudio.config import load_config

    _print_config(load_config(recipe, list(overrides or [])), out_console)


@app.command("toy-corpus")
@user_errors
def toy_corpus(
    out: Annotated[Path, typer.Argument(help="Folder to write <speaker>/<utt>.wav into.")],
    speakers: Annotated[int, typer.Option(min=1, help="Number of toy speakers.")] = 4,
    utterances: Annotated[int, typer.Option(min=1, help="Utterances per speaker.")] = 12,
    seconds: Annotated[float, typer.Option(min=0.1, help="Mean utterance length in seconds.")] = 2.0,
    seed: int = 0,
) -> None:
    """Generate a small synthetic speech-like corpus (for smoke tests and recipes/tiny.yaml)."""
    from vqaudio.data.synthetic import make_toy_corpus

    root = make_toy_corpus(out, speakers=speakers, utterances=utterances, seconds=seconds, seed=seed)
    err_console.print(f"wrote {speakers * utterances} utterances to {root}")


@app.command("demo-corpus")
@user_errors
def demo_corpus(
    out: Annotated[Path, typer.Argument(help="Folder for the corpus (wavs/, labels/, manifest.tsv).")],
    sentences: Annotated[
        int | None, typer.Option(min=1, help="First N CMU ARCTIC prompts (default: all 593).")
    ] = None,
    voices: Annotated[str, typer.Option(help="Comma-separated flite voices.")] = "kal16,awb,rms,slt",
    jobs: Annotated[int, typer.Option(min=1, help="Parallel flite processes.")] = 2,
) -> None:
    """Make the parallel, phone-labelled demo corpus with flite (4 voices x CMU ARCTIC prompts)."""
    from vqaudio.data.demo import make_demo_corpus

    corpus = make_demo_corpus(
        out,
        voices=tuple(v.strip() for v in voices.split(",") if v.strip()),
        num_sentences=sentences,
        jobs=jobs,
    )
    err_console.print(
        f"{corpus.num_utterances} utterances, {corpus.duration_s / 60:.1f} min of audio in {corpus.root}"
    )


@app.command()
@user_errors
def evaluate(
    model: Annotated[Path, typer.Option("--model", "-m", help="Checkpoint or run directory.")],
    data: Annotated[Path, typer.Option("--data", help="Corpus folder or TSV manifest to evaluate on.")],
    kind: Annotated[
        str | None,
        typer.Option(help="Corpus kind (vctk, librispeech, ljspeech, folder, tsv); default: tsv for a file."),
    ] = None,
    split: Annotated[
        str | None, typer.Option(help="Only utterances of this manifest split (train/valid/test).")
    ] = None,
    max_utts: Annotated[int | None, typer.Option(min=1, help="Evaluate at most N utterances.")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the scores as JSON here.")
    ] = None,
    baselines: Annotated[
        bool,
        typer.Option("--baselines", help="Also run Codec2 3200/2400/1200 and Opus 6 kbit/s (if installed)."),
    ] = False,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1 ...")] = "cpu",
) -> None:
    """Encode and decode a corpus at every level; print bitrate, mel distance, SI-SDR, PESQ-WB and STOI.

    Bitrates are nominal for the model's levels and measured payload for the baselines.
    """
    import json

    from vqaudio.audio import atomic_write
    from vqaudio.checkpoint import load_model
    from vqaudio.data import scan_corpus
    from vqaudio.evaluate import evaluate_reconstruction
    from vqaudio.train.distributed import resolve_device

    net = load_model(model, resolve_device(device))
    utts = scan_corpus(kind or ("tsv" if data.is_file() else "folder"), data)
    if split is not None:
        utts = [u for u in utts if u.split == split]
        if not utts:
            raise UserError(f"{data}: no utterances in split '{split}'")
    utts = sorted(utts, key=lambda u: (u.utt_id, u.speaker))[:max_utts]
    scores = evaluate_reconstruction(net, utts)
    if baselines:
        from vqaudio.evaluate import evaluate_baselines

        scores += evaluate_baselines(utts, net.sample_rate)
    table = Table(title=f"reconstruction on {len(utts)} utterances", title_justify="left")
    for col in ("codec", "bit/s", "mel dist", "SI-SDR dB", "PESQ-WB", "STOI"):
        table.add_column(col, justify="right")

    def fmt(v: float | None, spec: str) -> str:
        return "n/a" if v is None else format(v, spec)

    for sc in scores:
        table.add_row(
            sc.name,
            f"{sc.bitrate:.0f}",
            f"{sc.mel_distance:.3f}",
            f"{sc.si_sdr:.2f}",
            fmt(sc.pesq, ".2f"),
            fmt(sc.stoi, ".3f"),
        )
    out_console.print(table)
    if json_out is not None:
        with atomic_write(json_out) as tmp:
            tmp.write_text(
                json.dumps({"utterances": len(utts), "levels": [s.as_dict() for s in scores]}, indent=2)
            )


ModelOpt = Annotated[
    Path,
    typer.Option(
        "--model", "-m", envvar="VQAUDIO_MODEL", help="Checkpoint or run directory (or set VQAUDIO_MODEL)."
    ),
]
DeviceOpt = Annotated[str, typer.Option(help="cpu, cuda, cuda:1 ...")]
ForceOpt = Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing outputs.")]


def _expand_inputs(inputs: list[Path], suffixes: tuple[str, ...]) -> list[tuple[Path, Path]]:
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


def _plan_outputs(
    inputs: list[tuple[Path, Path]], out: Path, suffix: str, force: bool, many: bool
) -> list[tuple[Path, Path | str]]:
    """Where each input goes; refuses to overwrite unless ``force`` (checked before any work)."""
    plan: list[tuple[Path, Path | str]] = []
    for src, rel in inputs:
        if str(out) == "-":
            if many:
                raise UserError("-o - (stdout) takes a single input")
            plan.append((src, "-"))
            continue
        target = out / rel.with_suffix(suffix) if many or out.is_dir() else out
        if target.exists() and not force:
            raise UserError(f"{target} exists (use --force to overwrite)")
        plan.append((src, target))
    return plan


def _plan(
    inputs: list[Path], out: Path, in_suffixes: tuple[str, ...], out_suffix: str, force: bool
) -> tuple[list[tuple[Path, Path | str]], bool]:
    """Inputs expanded, outputs planned (a folder is created for many); ``many`` tells which."""
    files = _expand_inputs(inputs, in_suffixes)
    many = len(files) > 1 or any(p.is_dir() for p in inputs)
    if many and str(out) != "-":
        out.mkdir(parents=True, exist_ok=True)
    return _plan_outputs(files, out, out_suffix, force, many), many


R = TypeVar("R")


def _run_io(src: Path, target: Path | str, work: Callable[[Any, Any], R]) -> R:
    """``work(source, destination)`` with ``-`` meaning stdin / stdout (buffered in memory)."""
    import io

    source: Any = io.BytesIO(sys.stdin.buffer.read()) if str(src) == "-" else src
    if target == "-":
        buf = io.BytesIO()
        result = work(source, buf)
        sys.stdout.buffer.write(buf.getvalue())
        sys.stdout.buffer.flush()
        return result
    assert isinstance(target, Path)
    target.parent.mkdir(parents=True, exist_ok=True)
    return work(source, target)


def _per_chunk(bar: Any, task: Any, many: bool) -> Callable[[int, int], None]:
    """Progress callback: one file shows its chunks (long files), many files show files instead."""

    def update(done: int, total: int) -> None:
        if not many:
            bar.update(task, completed=done, total=total)

    return update


def _progress(enabled: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=not enabled,
        transient=True,
    )


@app.command()
@user_errors
def encode(
    inputs: Annotated[
        list[Path], typer.Argument(help="Audio files or folders (wav/flac/ogg/mp3); - = stdin.")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output .vqa file, or a folder for many; - = stdout.")
    ],
    model: ModelOpt,
    level: Annotated[int | None, typer.Option("--level", "-l", help="Level to store (default 0).")] = None,
    levels: Annotated[str | None, typer.Option(help="Several levels, comma-separated, e.g. 0,2.")] = None,
    entropy: Annotated[
        bool, typer.Option("--entropy", help="Entropy-code the codes (smaller files).")
    ] = False,
    speaker: Annotated[str | None, typer.Option(help="Speaker name to record for decoding.")] = None,
    chunk_seconds: Annotated[float, typer.Option(min=0.1, help="Audio per stream chunk.")] = 10.0,
    force: ForceOpt = False,
    device: DeviceOpt = "cpu",
) -> None:
    """Compress audio files into .vqa code streams."""

    from vqaudio.checkpoint import load_model
    from vqaudio.codec.compress import encode_file
    from vqaudio.train.distributed import resolve_device

    if level is not None and levels is not None:
        raise UserError("give --level or --levels, not both")
    try:
        chosen = [int(v) for v in levels.split(",")] if levels is not None else [level or 0]
    except ValueError:
        raise UserError(f"--levels expects comma-separated integers, got {levels!r}") from None
    plan, many = _plan(inputs, out, (".wav", ".flac", ".ogg", ".mp3"), ".vqa", force)
    net = load_model(model, resolve_device(device))
    total_in = total_out = 0.0
    with _progress(True) as bar:
        task = bar.add_task("encoding", total=len(plan) if many else None)
        chunks = _per_chunk(bar, task, many)
        for src, target in plan:
            result = _run_io(
                src,
                target,
                lambda s, d: encode_file(  # noqa: B023
                    net, s, d, chosen, entropy, speaker, chunk_seconds, progress=chunks
                ),
            )
            total_in += result.header.duration
            total_out += result.num_bytes
            if many:
                bar.advance(task)
            if not many and target != "-":
                kbps = result.num_bytes * 8 / max(result.header.duration, 1e-9) / 1000
                err_console.print(
                    f"{src} -> {target}: {result.header.duration:.2f} s, {result.num_bytes} bytes "
                    f"({kbps:.2f} kbit/s)",
                    highlight=False,
                )
    if many:
        err_console.print(
            f"encoded {len(plan)} files, {total_in:.1f} s of audio into {total_out / 1024:.1f} KiB "
            f"({total_out * 8 / max(total_in, 1e-9) / 1000:.2f} kbit/s)",
            highlight=False,
        )


@app.command()
@user_errors
def decode(
    inputs: Annotated[list[Path], typer.Argument(help=".vqa files or folders; - = stdin.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output .wav/.flac/.ogg, or a folder for many; - = stdout.")
    ],
    model: ModelOpt,
    level: Annotated[
        int | None, typer.Option("--level", "-l", help="Stored level to decode (default: finest).")
    ] = None,
    speaker: Annotated[
        str | None, typer.Option(help="Decode in this speaker's voice (default: as recorded).")
    ] = None,
    sample_rate: Annotated[
        str | None, typer.Option(help="Output sample rate in Hz, or 'orig' for the input file's rate.")
    ] = None,
    force: ForceOpt = False,
    device: DeviceOpt = "cpu",
) -> None:
    """Decode .vqa code streams back to audio (trimmed to the original length, never clipping)."""

    from vqaudio.checkpoint import load_model
    from vqaudio.codec.compress import decode_file
    from vqaudio.train.distributed import resolve_device

    rate: int | None = None
    if sample_rate is not None:
        if sample_rate == "orig":
            rate = 0
        elif sample_rate.isdigit() and int(sample_rate) >= 1000:
            rate = int(sample_rate)
        else:
            raise UserError(f"--sample-rate expects Hz (>= 1000) or 'orig', got {sample_rate!r}")
    plan, many = _plan(inputs, out, (".vqa",), ".wav", force)
    net = load_model(model, resolve_device(device))
    with _progress(True) as bar:
        task = bar.add_task("decoding", total=len(plan) if many else None)
        chunks = _per_chunk(bar, task, many)
        for src, target in plan:
            header = _run_io(
                src,
                target,
                lambda s, d: decode_file(  # noqa: B023
                    net, s, d, level, speaker, rate, progress=chunks
                ),
            )
            if target != "-" and not many:
                err_console.print(f"{src} -> {target}: {header.duration:.2f} s", highlight=False)
            if many:
                bar.advance(task)


@app.command()
@user_errors
def export(
    model: Annotated[Path, typer.Argument(help="Checkpoint or run directory (its best, else latest).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Single-file checkpoint to write (.safetensors).")],
    force: ForceOpt = False,
) -> None:
    """Write a model as one self-contained .safetensors file (same weights and SHA-256, fresh code tables)."""
    from vqaudio.checkpoint import load_model, save_checkpoint

    if out.exists() and not force:
        raise UserError(f"{out} exists (use --force to overwrite)")
    net = load_model(model)
    meta = net.checkpoint
    assert meta is not None
    sha = save_checkpoint(out, net, meta.config, meta.step, meta.extra)
    err_console.print(f"wrote {out} (step {meta.step}, sha256 {sha[:12]}...)", highlight=False)


@app.command()
@user_errors
def info(
    stream: Annotated[Path, typer.Argument(help="A .vqa file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Describe a .vqa stream: levels, duration, nominal and actual bitrate, model hash (no model needed)."""
    import json

    from vqaudio.codec.bitstream import StreamReader

    if not stream.is_file():
        raise UserError(f"{stream}: no such file")
    size = stream.stat().st_size
    with open(stream, "rb") as f:
        reader = StreamReader(f)
        for _ in reader:  # verifies every chunk's checksum
            pass
    h = reader.header
    duration = h.duration
    nominal = sum(h.sample_rate / lv.hop * math.log2(lv.codebook_size) for lv in h.levels)
    payload = size - reader.header_bytes - 8 * h.num_chunks
    data = {
        "format_version": 1,
        "sample_rate": h.sample_rate,
        "num_samples": h.num_samples,
        "duration": duration,
        "levels": [
            {
                "level": lv.level,
                "hop": lv.hop,
                "codebook_size": lv.codebook_size,
                "bits": lv.bits,
                "frame_rate": h.sample_rate / lv.hop,
            }
            for lv in h.levels
        ],
        "coding": h.coding,
        "speaker": h.speaker,
        "chunk_samples": h.chunk_samples,
        "num_chunks": h.num_chunks,
        "file_bytes": size,
        "bitrate_nominal": nominal,
        "bitrate_actual": size * 8 / duration if duration > 0 else 0.0,
        "bitrate_payload": payload * 8 / duration if duration > 0 else 0.0,
        "model_sha256": h.model_sha256,
        "source": h.extra,
    }
    if as_json:
        out_console.print_json(json.dumps(data))
        return
    table = Table(show_header=False, title=str(stream), title_justify="left")
    table.add_column("field")
    table.add_column("value")
    table.add_row("duration", f"{duration:.3f} s ({h.num_samples} samples at {h.sample_rate} Hz)")
    table.add_row("levels", ", ".join(f"{lv.level} (hop {lv.hop}, K={lv.codebook_size})" for lv in h.levels))
    table.add_row("coding", h.coding)
    table.add_row("speaker", str(h.speaker))
    table.add_row("chunks", f"{h.num_chunks} x {h.chunk_samples} samples")
    table.add_row("size", f"{size} bytes")
    table.add_row(
        "bitrate",
        f"nominal {nominal:.0f} bit/s, actual {data['bitrate_actual']:.0f} bit/s "
        f"(payload {data['bitrate_payload']:.0f} bit/s)",
    )
    table.add_row("model", h.model_sha256)
    out_console.print(table)


@app.command()
@user_errors
def analyze(
    model: ModelOpt,
    audio: Annotated[Path, typer.Option(help="Audio folder (speaker = parent folder) or TSV manifest.")],
    labels: Annotated[Path, typer.Option(help="Folder of phone label files, matched to audio by stem.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder (metrics.json, report.md, PNGs).")],
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
    from vqaudio.analyze import analyze_corpus, find_pairs, write_report
    from vqaudio.checkpoint import load_model
    from vqaudio.train.distributed import resolve_device

    if fmt not in ("textgrid", "timit", "htk", "tsv", "auto"):
        raise UserError(f"--format must be textgrid, timit, htk, tsv or auto, got {fmt!r}")
    net = load_model(model, resolve_device(device))
    if level == "all":
        levels = list(range(net.num_levels))
    elif level.lstrip("-").isdigit():
        net._level(int(level))
        levels = [int(level) % net.num_levels]
    else:
        raise UserError(f"--level expects a number or 'all', got {level!r}")
    pairs, problems = find_pairs(audio, labels, fmt, split)
    for msg in problems[:10]:
        err_console.print(f"[yellow]warning:[/] {msg}", highlight=False)
    if len(problems) > 10:
        err_console.print(f"[yellow]warning:[/] ... and {len(problems) - 10} more", highlight=False)
    with _progress(True) as bar:
        task = bar.add_task("analysing", total=len(pairs))
        result = analyze_corpus(
            net,
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
    write_report(result, out, net, str(audio))
    table = Table(title=f"codes vs phones ({result.num_utterances} utterances)", title_justify="left")
    for col in (
        "level",
        "mapping",
        "random",
        "majority",
        "phone pur.",
        "cluster pur.",
        "PNMI",
        "speaker",
        "chance",
    ):
        table.add_column(col, justify="right")
    for lv, r in result.levels.items():
        table.add_row(
            str(lv),
            f"{r.mapping_accuracy:.1%}",
            f"{r.random_baseline_accuracy:.1%}",
            f"{r.majority_baseline_accuracy:.1%}",
            f"{r.phone_purity:.3f}",
            f"{r.cluster_purity:.3f}",
            f"{r.pnmi:.3f}",
            f"{r.speaker_probe_accuracy:.1%}",
            f"{r.speaker_chance:.1%}",
        )
    out_console.print(table)
    err_console.print(f"report: {out / 'report.md'}", highlight=False)


@app.command()
@user_errors
def speakers(
    model: ModelOpt,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of one line per speaker.")
    ] = False,
) -> None:
    """List the speakers a model can speak as: one per line, name first (then gender, age, accent...)."""
    import json

    from vqaudio.checkpoint import load_model
    from vqaudio.voices import load_voices

    net = load_model(model)
    enrolled = sorted(load_voices(net, model))
    if as_json:
        rows: list[dict[str, Any]] = [{"name": n, **net.speaker_info.get(n, {})} for n in net.speakers]
        rows += [{"name": n, "enrolled": True} for n in enrolled]
        out_console.print_json(json.dumps(rows))
        return
    for name in net.speakers:
        facts = net.speaker_info.get(name, {})
        extra = [str(facts[k]) for k in ("gender", "age", "accent", "region") if facts.get(k)]
        print("\t".join([name, *extra]))
    for name in enrolled:
        print(f"{name}\tenrolled")


@app.command()
@user_errors
def convert(
    inputs: Annotated[list[Path], typer.Argument(help="Audio files or folders to convert.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output audio file, or a folder for many.")],
    model: ModelOpt,
    speaker: Annotated[
        str | None, typer.Option("--speaker", help="Target: a training speaker or an enrolled voice.")
    ] = None,
    reference: Annotated[
        list[Path] | None,
        typer.Option("--reference", "-r", help="Target voice from reference clip(s) (repeatable)."),
    ] = None,
    level: Annotated[
        int | None, typer.Option("--level", "-l", help="Level whose codes carry the content.")
    ] = None,
    force: ForceOpt = False,
    device: DeviceOpt = "cpu",
) -> None:
    """Say the same words in another voice: encode with a level's codes, decode as --speaker."""
    from vqaudio.checkpoint import load_model
    from vqaudio.convert import convert_file
    from vqaudio.train.distributed import resolve_device
    from vqaudio.voices import reference_embedding, resolve_speaker

    if str(out) == "-":
        raise UserError("convert writes files: give an output path, not -")
    single = len(inputs) == 1 and not inputs[0].is_dir() and not out.is_dir()
    if single and out.suffix.lower() not in (".wav", ".flac", ".ogg"):
        raise UserError(
            f"{out}: unsupported output format '{out.suffix or '(none)'}' (use .wav, .flac or .ogg)"
        )
    plan, many = _plan(inputs, out, (".wav", ".flac", ".ogg", ".mp3"), ".wav", force)
    if (speaker is None) == (not reference):
        raise UserError("give either --speaker NAME or --reference CLIP (one or more), not both")
    net = load_model(model, resolve_device(device))
    target_voice = (
        resolve_speaker(net, model, speaker)
        if speaker is not None
        else reference_embedding(net, reference or [])
    )
    if level is not None:
        net._level(level)
    with _progress(many) as bar:
        task = bar.add_task("converting", total=len(plan))
        for src, target in plan:
            assert isinstance(target, Path)
            target.parent.mkdir(parents=True, exist_ok=True)
            convert_file(net, src, target, target_voice, level)
            bar.advance(task)
            if not many:
                who = speaker if speaker is not None else "the reference voice"
                err_console.print(f"{src} -> {target} as {who}", highlight=False)


@app.command()
@user_errors
def enroll(
    references: Annotated[
        list[Path], typer.Argument(help="Reference clips of the new voice (10 s or more is best).")
    ],
    name: Annotated[
        str, typer.Option("--name", help="Name to give the voice (used with convert --speaker).")
    ],
    model: ModelOpt,
) -> None:
    """Store a voice from reference clips in a sidecar next to the model (the checkpoint is not modified)."""
    from vqaudio.checkpoint import load_model
    from vqaudio.voices import enroll as enroll_voice

    net = load_model(model)
    path = enroll_voice(net, model, name, references)
    err_console.print(f"enrolled '{name}' from {len(references)} clip(s) into {path}", highlight=False)


@app.command("eval-convert")
@user_errors
def eval_convert(
    model: ModelOpt,
    data: Annotated[
        Path, typer.Option("--data", help="Parallel corpus manifest (e.g. data/demo/manifest.tsv).")
    ],
    split: Annotated[
        str | None, typer.Option(help="Sentences from this manifest split (e.g. test).")
    ] = "test",
    sentences: Annotated[int, typer.Option(min=1, help="How many sentences to convert.")] = 8,
    voices: Annotated[
        str | None, typer.Option(help="Comma-separated voices (default: all in model and corpus).")
    ] = None,
    level: Annotated[
        int | None, typer.Option("--level", "-l", help="Content level (default: conversion level).")
    ] = None,
    reference_voice: Annotated[
        str | None,
        typer.Option(help="Convert into this corpus voice given only by reference clips (enrolment)."),
    ] = None,
    reference_seconds: Annotated[
        float, typer.Option(min=0.5, help="Seconds of reference audio to enrol.")
    ] = 10.0,
    labels: Annotated[
        Path | None, typer.Option(help="Phone labels (folder, matched by stem) to measure content kept.")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write all scores as JSON here.")
    ] = None,
    device: DeviceOpt = "cpu",
) -> None:
    """Measure conversion: speaker similarity to target vs source (Resemblyzer, optional) and MCD."""
    import json

    from vqaudio.audio import atomic_write, audio_info
    from vqaudio.checkpoint import load_model
    from vqaudio.data import scan_manifest
    from vqaudio.evaluate_conversion import evaluate_conversion
    from vqaudio.train.distributed import resolve_device
    from vqaudio.voices import reference_embedding

    net = load_model(model, resolve_device(device))
    utts = scan_manifest(data)
    present = sorted({u.speaker for u in utts})
    chosen = [v.strip() for v in voices.split(",")] if voices else [v for v in present if v in net.speakers]
    if reference_voice is not None and reference_voice not in chosen:
        chosen.append(reference_voice)
    missing = [v for v in chosen if v not in present]
    if missing:
        raise UserError(f"voices not in {data}: {', '.join(missing)}")
    if reference_voice is None:
        for v in chosen:
            net.speaker_index(v)
    pool = [u for u in utts if split is None or u.split == split]
    ids = sorted({u.utt_id.rsplit("/", 1)[-1] for u in pool})[:sentences]
    ref = None
    if reference_voice is not None:
        clips, total = [], 0.0
        for u in sorted(
            (u for u in utts if u.speaker == reference_voice and u.split == "train"), key=lambda u: u.utt_id
        ):
            clips.append(u.path)
            total += audio_info(u.path).duration
            if total >= reference_seconds:
                break
        ref = (reference_voice, reference_embedding(net, clips))
        err_console.print(
            f"enrolled {reference_voice} from {len(clips)} clips ({total:.1f} s)", highlight=False
        )
    phone_labels = None
    if labels is not None:
        from vqaudio.analysis import read_labels
        from vqaudio.analyze import find_pairs

        found, _ = find_pairs(data, labels)
        phone_labels = {
            (p.speaker, p.utt_id.rsplit("/", 1)[-1]): read_labels(p.labels)
            for p in found
            if p.utt_id.rsplit("/", 1)[-1] in ids
        }
    with _progress(True) as bar:
        task = bar.add_task("converting", total=None)
        scores = evaluate_conversion(
            net,
            utts,
            ids,
            chosen,
            level,
            ref,
            labels=phone_labels,
            progress=lambda d, t: bar.update(task, completed=d, total=t),
        )

    def fmt(v: float | None, spec: str) -> str:
        return "n/a (pip install vqaudio[eval])" if v is None else format(v, spec)

    out_console.print(
        f"{scores.conversions} conversions at level {scores.level}: cosine to target "
        f"{fmt(scores.similarity_to_target, '.3f')}, to source {fmt(scores.similarity_to_source, '.3f')}, "
        f"closer to target {fmt(scores.closer_to_target, '.1%')}; MCD {scores.mcd_converted:.2f} dB "
        f"(source vs target {scores.mcd_source_baseline:.2f} dB)",
        highlight=False,
    )
    if scores.phone_accuracy_converted is not None:
        out_console.print(
            f"content: phone accuracy of the converted audio's codes {scores.phone_accuracy_converted:.1%} "
            f"(source audio {fmt(scores.phone_accuracy_source, '.1%')})",
            highlight=False,
        )
    if json_out is not None:
        with atomic_write(json_out) as tmp:
            tmp.write_text(json.dumps(scores.as_dict(), indent=1) + "\n")


def main() -> None:
    """Console-script entry point."""
    app(prog_name="vqaudio")


if __name__ == "__main__":  # pragma: no cover
    main()
