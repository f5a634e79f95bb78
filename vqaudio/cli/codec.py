"""Codec commands: encode, decode, export, info, evaluate, compare."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperCommand

from vqaudio.cli.common import (
    DeviceOpt,
    ForceOpt,
    ModelOpt,
    app,
    err_console,
    out_console,
    per_chunk,
    plan_files,
    progress_bar,
    run_io,
    user_errors,
)
from vqaudio.errors import UserError

if TYPE_CHECKING:
    from vqaudio.codec.bitstream import StreamReader
    from vqaudio.eval.reconstruction import CodecScore
    from vqaudio.models import VQVAE
    from vqaudio.prior import PriorCoder

CodingPriorOpt = Annotated[
    Path | None,
    typer.Option(
        "--prior",
        "-p",
        help="Entropy-code with this prior (run directory or checkpoint; stream version 3); decoding "
        "such a stream needs it too. --model defaults to the prior's own model.",
    ),
]


def _model_and_coder(
    model_path: Path | None, prior_path: Path | None, device: str
) -> tuple[VQVAE, PriorCoder | None]:
    """The model a command codes with and, with ``--prior``, the prior's coder (its VQ-VAE checked)."""
    from vqaudio.checkpoint import load_model
    from vqaudio.device import resolve_device

    if prior_path is None:
        return load_model(model_path, resolve_device(device)), None
    from vqaudio.prior import PriorCoder, load_prior, load_prior_vqvae

    prior, meta = load_prior(prior_path)
    return load_prior_vqvae(meta, model_path, resolve_device(device)), PriorCoder(prior, meta)


def entropy_spelling(args: list[str]) -> list[str]:
    """``encode``'s arguments with ``--entropy prior`` / ``--entropy=prior`` (entropy coding with the
    prior that ``--prior`` names) as plain ``--entropy``; the spelling needs ``--prior``."""
    out: list[str] = []
    spelled = False
    for i, arg in enumerate(args):
        if arg == "--":
            out += args[i:]
            break
        if arg.startswith("--entropy="):
            if arg != "--entropy=prior":
                raise typer.BadParameter(
                    f"takes no value, or 'prior' (with --prior P), not {arg[10:]!r}", param_hint="'--entropy'"
                )
            spelled = True
            out.append("--entropy")
        elif arg == "prior" and out and out[-1] == "--entropy":
            spelled = True
        else:
            out.append(arg)
    if spelled and not any(a in ("--prior", "-p") or a.startswith(("--prior=", "-p")) for a in out):
        raise typer.BadParameter(
            "'--entropy prior' needs the prior: --prior P (a file named 'prior' is ./prior)",
            param_hint="'--entropy'",
        )
    return out


class _EncodeCommand(TyperCommand):
    """``encode``, which also reads ``--entropy prior`` (see :func:`entropy_spelling`)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, entropy_spelling(args))


@app.command(cls=_EncodeCommand)
@user_errors
def encode(
    inputs: Annotated[
        list[Path], typer.Argument(help="Audio files or folders (wav/flac/ogg/mp3); - = stdin.")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output .vqa file, or a folder for many; - = stdout.")
    ],
    model_path: ModelOpt = None,
    level: Annotated[int | None, typer.Option("--level", "-l", help="Level to store (default 0).")] = None,
    levels: Annotated[str | None, typer.Option(help="Several levels, comma-separated, e.g. 0,2.")] = None,
    entropy: Annotated[
        bool,
        typer.Option(
            "--entropy",
            help="Entropy-code the codes (smaller files). '--entropy prior' = --entropy with --prior.",
        ),
    ] = False,
    speaker: Annotated[str | None, typer.Option(help="Speaker name to record for decoding.")] = None,
    chunk_seconds: Annotated[float, typer.Option(min=0.1, help="Audio per stream chunk.")] = 10.0,
    prior_path: CodingPriorOpt = None,
    force: ForceOpt = False,
    device: DeviceOpt = "cpu",
) -> None:
    """Compress audio files into .vqa code streams."""

    from vqaudio.audio import AUDIO_EXTENSIONS
    from vqaudio.codec.compress import encode_file

    if level is not None and levels is not None:
        raise UserError("give --level or --levels, not both")
    try:
        chosen = [int(v) for v in levels.split(",")] if levels is not None else [level or 0]
    except ValueError:
        raise UserError(f"--levels expects comma-separated integers, got {levels!r}") from None
    plan, many = plan_files(inputs, out, AUDIO_EXTENSIONS, ".vqa", force)
    model, coder = _model_and_coder(model_path, prior_path, device)
    total_in = total_out = 0.0
    with progress_bar(True) as bar:
        task = bar.add_task("encoding", total=len(plan) if many else None)
        chunks = per_chunk(bar, task, many)
        for src, target in plan:
            result = run_io(
                src,
                target,
                lambda s, d: encode_file(  # noqa: B023
                    model, s, d, chosen, entropy, speaker, chunk_seconds, progress=chunks, coder=coder
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
    model_path: ModelOpt = None,
    level: Annotated[
        int | None, typer.Option("--level", "-l", help="Stored level to decode (default: finest).")
    ] = None,
    speaker: Annotated[
        str | None, typer.Option(help="Decode in this speaker's voice (default: as recorded).")
    ] = None,
    sample_rate: Annotated[
        str | None, typer.Option(help="Output sample rate in Hz, or 'orig' for the input file's rate.")
    ] = None,
    prior_path: CodingPriorOpt = None,
    force: ForceOpt = False,
    device: DeviceOpt = "cpu",
) -> None:
    """Decode .vqa code streams back to audio (trimmed to the original length, never clipping)."""

    from vqaudio.audio import WRITE_EXTENSIONS
    from vqaudio.codec.compress import decode_file

    rate: int | None = None
    if sample_rate is not None:
        if sample_rate == "orig":
            rate = 0
        elif sample_rate.isdigit() and int(sample_rate) >= 1000:
            rate = int(sample_rate)
        else:
            raise UserError(f"--sample-rate expects Hz (>= 1000) or 'orig', got {sample_rate!r}")
    plan, many = plan_files(inputs, out, (".vqa",), ".wav", force, WRITE_EXTENSIONS)
    model, coder = _model_and_coder(model_path, prior_path, device)
    with progress_bar(True) as bar:
        task = bar.add_task("decoding", total=len(plan) if many else None)
        chunks = per_chunk(bar, task, many)
        for src, target in plan:
            header = run_io(
                src,
                target,
                lambda s, d: decode_file(  # noqa: B023
                    model, s, d, level, speaker, rate, progress=chunks, coder=coder
                ),
            )
            if target != "-" and not many:
                err_console.print(f"{src} -> {target}: {header.duration:.2f} s", highlight=False)
            if many:
                bar.advance(task)


@app.command()
@user_errors
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="Single-file checkpoint to write (.safetensors).")],
    model_path: Annotated[
        Path | None,
        typer.Argument(
            help="Checkpoint, run directory (its best, else latest) or shipped model name "
            "(default: $VQAUDIO_MODEL, else the shipped model).",
            show_default=False,
            metavar="MODEL",
        ),
    ] = None,
    force: ForceOpt = False,
    dtype: Annotated[
        str,
        typer.Option(
            help="Store the weights as float32 (the same weights and SHA-256) or float16 (half the size; "
            "a new SHA-256, so streams of the float32 model do not decode with it).",
        ),
    ] = "float32",
) -> None:
    """Write a model as one self-contained .safetensors file (fresh code tables)."""
    import torch

    from vqaudio.checkpoint import load_model, save_checkpoint
    from vqaudio.codec.compress import code_tables

    dtypes = {"float32": torch.float32, "float16": torch.float16}
    if dtype not in dtypes:
        raise UserError(f"--dtype must be float32 or float16, not {dtype!r}")

    if out.is_dir():
        raise UserError(f"{out}: is a folder; give the file to write")
    if out.suffix != ".safetensors":
        raise UserError(f"{out}: the output must end in .safetensors")
    if out.exists() and not force:
        raise UserError(f"{out} exists (use --force to overwrite)")
    model = load_model(model_path)
    meta = model.checkpoint
    assert meta is not None
    sha = save_checkpoint(out, model, meta.config, meta.step, meta.extra, code_tables(model), dtypes[dtype])
    size = out.stat().st_size / 1e6
    err_console.print(
        f"wrote {out} ({dtype}, {size:.1f} MB, step {meta.step}, sha256 {sha[:12]}...)", highlight=False
    )


@app.command()
@user_errors
def info(
    stream: Annotated[Path, typer.Argument(help="A .vqa file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Describe a .vqa stream: levels, duration, nominal and actual bitrate, bytes of header, payload
    and framing, model id (no model needed)."""
    import json

    from vqaudio.codec.bitstream import StreamReader

    if not stream.is_file():
        raise UserError(
            f"{stream}: is a folder; give one .vqa file" if stream.is_dir() else f"{stream}: no such file"
        )
    with open(stream, "rb") as f:
        reader = StreamReader(f)
        for _ in reader:  # verifies every chunk's checksum
            pass
    data = _stream_info(reader)
    if as_json:
        out_console.print_json(json.dumps(data))
        return
    h = reader.header
    table = Table(show_header=False, title=str(stream), title_justify="left")
    table.add_column("field")
    table.add_column("value")
    table.add_row("format", f"version {h.version}, {h.coding}")
    table.add_row("duration", f"{h.duration:.3f} s ({h.num_samples} samples at {h.sample_rate} Hz)")
    table.add_row("levels", ", ".join(f"{lv.level} (hop {lv.hop}, K={lv.codebook_size})" for lv in h.levels))
    table.add_row("speaker", str(h.speaker))
    table.add_row("chunks", f"{h.num_chunks} x {h.chunk_samples} samples")
    table.add_row(
        "size",
        f"{data['file_bytes']} bytes: header {data['header_bytes']}, payload {data['payload_bytes']}, "
        f"framing {data['framing_bytes']}",
    )
    table.add_row(
        "bitrate",
        f"nominal {data['bitrate_nominal']:.0f} bit/s, actual {data['bitrate_actual']:.0f} bit/s "
        f"({data['overhead_percent']:+.1f}%; payload {data['bitrate_payload']:.0f} bit/s)",
    )
    table.add_row("model", h.model_id)
    if h.prior_id is not None:
        table.add_row("prior", f"{h.prior_id} (probe {h.prior_probe})")
    if h.extra:
        table.add_row("source", ", ".join(f"{k.removeprefix('source_')} {v}" for k, v in h.extra.items()))
    out_console.print(table)


def _stream_info(reader: StreamReader) -> dict[str, Any]:
    """What ``info`` reports of a stream read to its end."""
    h = reader.header
    size, duration, nominal = reader.bytes_read, h.duration, h.nominal_bitrate

    def rate(num_bytes: int) -> float:
        return num_bytes * 8 / duration if duration > 0 else 0.0

    return {
        "format_version": h.version,
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
        "header_bytes": reader.header_bytes,
        "payload_bytes": reader.payload_bytes,
        "framing_bytes": size - reader.header_bytes - reader.payload_bytes,
        "bitrate_nominal": nominal,
        "bitrate_actual": rate(size),
        "bitrate_payload": rate(reader.payload_bytes),
        "overhead_percent": 100 * (rate(size) / nominal - 1) if duration > 0 else 0.0,
        "model_id": h.model_id,
        "prior_id": h.prior_id,
        "prior_probe": h.prior_probe,
        "source": h.extra,
    }


@app.command()
@user_errors
def evaluate(
    data: Annotated[Path, typer.Option("--data", help="Corpus folder or TSV manifest to evaluate on.")],
    model_path: ModelOpt = None,
    kind: Annotated[
        str | None,
        typer.Option(help="Corpus kind (vctk, librispeech, ljspeech, folder, tsv); default: tsv for a file."),
    ] = None,
    split: Annotated[
        str | None, typer.Option(help="Only utterances of this manifest split (train/valid/test).")
    ] = None,
    max_utts: Annotated[int | None, typer.Option(min=1, help="Evaluate at most N utterances.")] = None,
    per_speaker: Annotated[
        int | None,
        typer.Option(min=1, help="At most N utterances of each speaker (the first by utterance id)."),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the scores as JSON here.")
    ] = None,
    baselines: Annotated[
        bool,
        typer.Option("--baselines", help="Also run Codec2 3200/2400/1200 and Opus 6 kbit/s (if installed)."),
    ] = False,
    device: DeviceOpt = "cpu",
) -> None:
    """Encode and decode a corpus at every level; print bitrate, mel distance, SI-SDR, PESQ-WB and STOI.

    Bitrates are nominal for the model's levels and measured payload for the baselines. When the corpus
    holds voices the model was trained on and voices it never heard (a manifest's `heldout` rows, or
    speakers not in the model's table), every row is given for each group apart.
    """
    import json

    from vqaudio.audio import atomic_write
    from vqaudio.checkpoint import load_model
    from vqaudio.data import scan_corpus
    from vqaudio.device import resolve_device
    from vqaudio.eval.reconstruction import (
        eval_document,
        evaluate_baselines,
        evaluate_reconstruction,
        select_utterances,
        voice_kinds,
    )

    model = load_model(model_path, resolve_device(device))
    try:
        utts = select_utterances(
            scan_corpus(kind or ("tsv" if data.is_file() else "folder"), data), split, per_speaker, max_utts
        )
    except UserError as err:
        raise UserError(f"{data}: {err}") from None
    kinds = voice_kinds(utts, model.speakers)
    with progress_bar(True) as bar:
        task = bar.add_task("vqaudio levels", total=len(utts))
        scores = evaluate_reconstruction(
            model, utts, progress=lambda d, t: bar.update(task, completed=d, total=t), kinds=kinds
        )
        if baselines:
            task = bar.add_task("Codec2 / Opus", total=len(utts))
            done = lambda d, t: bar.update(task, completed=d, total=t)  # noqa: E731
            scores += evaluate_baselines(utts, model.sample_rate, progress=done, kinds=kinds)
    out_console.print(_scores_table(scores, kinds))
    if json_out is not None:
        with atomic_write(json_out) as tmp:
            tmp.write_text(json.dumps(eval_document(kinds, scores), indent=2))


def _scores_table(scores: list[CodecScore], kinds: list[str]) -> Table:
    """``vqaudio evaluate``'s table: one row per score (per kind of voice when there are both)."""
    from vqaudio.eval.reconstruction import ALL

    split_voices = kinds[:1] != [ALL]
    counts = ", ".join(f"{kinds.count(g)} {g}" for g in ("seen", "heldout") if g in kinds)
    title = f"reconstruction on {len(kinds)} utterances" + (f" ({counts} voices)" if split_voices else "")
    table = Table(title=title, title_justify="left")
    voices = ["voices"] if split_voices else []
    for col in ("codec", *voices, "bit/s", "mel dist", "SI-SDR dB", "PESQ-WB", "STOI"):
        table.add_column(col, justify="right")

    def fmt(v: float | None, spec: str) -> str:
        return "n/a" if v is None else format(v, spec)

    for sc in scores:
        table.add_row(
            sc.name,
            *([sc.voices] if split_voices else []),
            f"{sc.bitrate:.0f}",
            f"{sc.mel_distance:.3f}",
            f"{sc.si_sdr:.2f}",
            fmt(sc.pesq, ".2f"),
            fmt(sc.stoi, ".3f"),
        )
    return table


# vqaudio compare --json: 2 added speakers, interval ("voices" / "files") and ci95_files; ci95 is over voices
COMPARE_JSON_VERSION = 2
_METRIC_SHORT = {"mel_distance": "mel", "si_sdr": "SI-SDR", "pesq": "PESQ", "stoi": "STOI"}


def _read_eval_json(path: Path) -> dict[str, Any]:
    """One `vqaudio evaluate --json` document, or a UserError saying why it is not one."""
    import json

    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: not an evaluation JSON ({err})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("levels"), list):
        raise UserError(f"{path}: not an evaluation JSON (no 'levels' list)")
    return doc


def _paired_table(rows: list[dict[str, Any]], title: str) -> Table:
    """The rows of `paired_differences` as a table that fits 80 columns."""
    from rich import box

    split_voices = any(r["voices"] != "all" for r in rows)
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1),
        pad_edge=False,
        collapse_padding=True,
        caption="n/spk: files/voices; ±95%: over voices (a voice's files are not independent); "
        "better: share of files",
        caption_justify="left",
    )
    for col in ("codec", *(["voices"] if split_voices else []), "metric", "n/spk", "before", "after",
                "change ±95%", "better", "verdict"):  # fmt: skip
        table.add_column(col, justify="right", no_wrap=col == "change ±95%")
    for r in rows:
        lo, hi = r["ci95"]
        d = ".3f" if r["metric"] in ("mel_distance", "stoi") else ".2f"
        table.add_row(
            r["name"],
            *([r["voices"]] if split_voices else []),
            _METRIC_SHORT[r["metric"]],
            f"{r['n']}/{r['speakers']}",
            format(r["before"], d),
            format(r["after"], d),
            f"{r['difference']:+{d}} ± {(hi - lo) / 2:{d}}"
            if math.isfinite(hi)
            else f"{r['difference']:+{d}}",
            f"{100 * r['after_better']:.0f}%",
            r["verdict"],
        )
    return table


@app.command()
@user_errors
def compare(
    before: Annotated[
        Path, typer.Argument(help="vqaudio evaluate --json of the first model (the baseline).")
    ],
    after: Annotated[Path, typer.Argument(help="vqaudio evaluate --json of the second, on the same files.")],
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", help="Only these metrics (repeatable): mel_distance, si_sdr, pesq, stoi."),
    ] = None,
    level: Annotated[int | None, typer.Option("--level", min=0, help="Only this level's rows.")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the comparison as JSON here.")
    ] = None,
) -> None:
    """Compare two evaluations file by file: is AFTER better than BEFORE on the same files?

    For each codec row both hold (each level, seen and held-out voices apart) and each metric: the files
    both scored and their voices, the two means, the mean difference AFTER - BEFORE with a 95% interval
    over voices (files of one voice are not independent: clustered by voice, Student's t) and the share
    of files where AFTER is better. An interval that holds 0 is no difference. Needs evaluation JSON of
    version 3 (vqaudio evaluate --json of this release).
    """
    import json

    from vqaudio.audio import atomic_write_text
    from vqaudio.eval.reconstruction import METRICS, paired_differences

    chosen = list(metric or METRICS)
    unknown = [m for m in chosen if m not in METRICS]
    if unknown:
        raise UserError(f"unknown metric {unknown[0]!r} (choose from {', '.join(METRICS)})")
    docs = [_read_eval_json(path) for path in (before, after)]
    try:
        rows = [
            r
            for r in paired_differences(docs[0], docs[1])
            if r["metric"] in chosen and (level is None or r["level"] == level)
        ]
    except (KeyError, TypeError) as err:
        raise UserError(f"malformed evaluation JSON ({err!r} missing or of the wrong type)") from None
    if not rows:
        raise UserError(
            "nothing to compare: both evaluations score no files of the chosen --level / --metric"
        )
    out_console.print(_paired_table(rows, f"{after.name} vs {before.name}, file by file"))
    if json_out is not None:
        doc = {"version": COMPARE_JSON_VERSION, "before": str(before), "after": str(after), "rows": rows}
        atomic_write_text(json_out, json.dumps(doc, indent=2) + "\n")
