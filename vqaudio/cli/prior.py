"""The second stage's commands besides training: prior eval, sample (``prior train`` is in cli/train.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from vqaudio.cli.common import (
    DeviceOpt,
    ForceOpt,
    ModelOpt,
    app,
    err_console,
    out_console,
    prior_app,
    user_errors,
)
from vqaudio.errors import UserError

if TYPE_CHECKING:
    from vqaudio.prior import CodePrior, PriorMeta

PriorOpt = Annotated[
    list[Path],
    typer.Option(
        "--prior",
        "-p",
        help="A prior's run directory or checkpoint (repeatable: one per level; see vqaudio prior train).",
    ),
]


def _load_priors(paths: list[Path], model_path: Path | None, device: str) -> tuple[list[Any], Any]:
    """The priors (with their metadata) and the one VQ-VAE they all belong to (checked)."""
    from vqaudio.device import resolve_device
    from vqaudio.prior import check_vqvae, load_prior, load_prior_vqvae

    dev = resolve_device(device)
    priors: list[tuple[CodePrior, PriorMeta]] = [load_prior(p, dev) for p in paths]
    vqvae = load_prior_vqvae(priors[0][1], model_path, dev)
    for _, meta in priors[1:]:
        check_vqvae(meta, vqvae)
    return priors, vqvae


def _scores_table(document: dict[str, Any]) -> Table:
    table = Table(title=f"bits per code ({document['set']} utterances)", title_justify="left")
    for col in (
        "level",
        "voices",
        "utterances",
        "codes",
        "prior",
        "bigram",
        "unigram",
        "log2 K",
        "vs log2 K",
    ):
        table.add_column(col, justify="left" if col == "voices" else "right")
    for level, entry in document["levels"].items():
        for group in ("all", "seen", "heldout"):
            row = entry if group == "all" else entry.get(group)
            if row is None:
                continue
            table.add_row(
                level,
                "held-out" if group == "heldout" else group,
                str(row["utterances"]),
                str(row["codes"]),
                f"{row['bits_per_code']:.3f}",
                f"{row['bigram_bits']:.3f}",
                f"{row['unigram_bits']:.3f}",
                f"{row['log2_k']:.3f}",
                f"{100 * (row['bits_per_code'] / row['log2_k'] - 1):+.1f}%",
            )
    return table


@prior_app.command("eval")
@user_errors
def prior_eval(
    prior_paths: PriorOpt,
    data: Annotated[Path, typer.Option("--data", help="Corpus folder or TSV manifest to score.")],
    model_path: ModelOpt = None,
    kind: Annotated[
        str | None, typer.Option(help="Corpus kind (default: the prior's data.kind; tsv for a file).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    device: DeviceOpt = "cpu",
) -> None:
    """Bits per code of each prior on a corpus, next to log2 K and unigram / bigram baselines.

    Scored: the corpus's test split when it has one, else the validation split the prior trained with
    (seen voices' and held-out voices'); the baselines are fitted on its training split. Seen and
    held-out voices get rows of their own. --model defaults to the VQ-VAE the prior was trained with.
    """
    import json

    from vqaudio.data import scan_corpus, validate_corpus
    from vqaudio.prior.codes import default_cache_dir
    from vqaudio.prior.evaluate import evaluate_prior_corpus

    priors, vqvae = _load_priors(prior_paths, model_path, device)
    document: dict[str, Any] = {"version": 1, "vqvae": priors[0][1].vqvae_id, "levels": {}}
    for (prior, meta), path in zip(priors, prior_paths, strict=True):
        cfg = meta.config.data
        corpus_kind = kind or ("tsv" if data.is_file() else cfg.kind if cfg.kind != "tsv" else "folder")
        utts, _ = validate_corpus(scan_corpus(corpus_kind, data, mic=cfg.mic))
        if not utts:
            raise UserError(f"{data}: no usable audio files")
        cache = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()
        scores, which = evaluate_prior_corpus(prior, meta, vqvae, utts, cache)
        level = str(meta.config.prior.level)
        if level in document["levels"]:
            raise UserError(f"two priors of level {level}")
        entry: dict[str, Any] = {"prior": str(path), **scores["all"].to_json_dict()}
        entry.update({g: scores[g].to_json_dict() for g in ("seen", "heldout") if g in scores})
        document["levels"][level] = entry
        document["set"] = which
    if as_json:
        out_console.print_json(json.dumps(document))
    else:
        out_console.print(_scores_table(document))


@app.command()
@user_errors
def sample(
    prior_paths: PriorOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Audio file to write (.wav, .flac, .ogg).")],
    seconds: Annotated[
        float, typer.Option(min=0.05, max=600.0, help="Length of the output in seconds.")
    ] = 4.0,
    speaker: Annotated[
        str | None, typer.Option(help="A speaker of the model (its voice; the priors' condition too).")
    ] = None,
    prompt: Annotated[
        Path | None, typer.Option(help="Continue this recording (its codes start the sample).")
    ] = None,
    temperature: Annotated[float, typer.Option(min=0.01, help="Softmax temperature (lower: safer).")] = 1.0,
    top_k: Annotated[int, typer.Option(min=0, help="Sample among the k likeliest codes (0: all).")] = 0,
    top_p: Annotated[float, typer.Option(min=0.0, max=1.0, help="Nucleus sampling mass (1: all).")] = 1.0,
    seed: Annotated[int, typer.Option(min=0, help="Random seed (same seed, same device: same audio).")] = 0,
    model_path: ModelOpt = None,
    device: DeviceOpt = "cpu",
    force: ForceOpt = False,
) -> None:
    """Generate audio from priors over a model's codes: the coarsest prior's level first, then each
    upsampler prior given the level above it, decoded by the model at the finest level.

    vqaudio sample --prior runs/prior0 --seconds 4 --speaker slt -o out.wav
    """
    from vqaudio.audio import WRITE_EXTENSIONS, read_audio, write_audio
    from vqaudio.prior import sample_audio

    if out.suffix.lower() not in WRITE_EXTENSIONS:
        raise UserError(f"{out}: unsupported output format (use {', '.join(WRITE_EXTENSIONS)})")
    if out.exists() and not force:
        raise UserError(f"{out} exists (use --force to overwrite)")
    if prompt is not None and not prompt.is_file():
        raise UserError(f"{prompt}: no such file")
    priors, vqvae = _load_priors(prior_paths, model_path, device)
    wav = read_audio(prompt, vqvae.sample_rate) if prompt is not None else None
    result = sample_audio(priors, vqvae, seconds, speaker, wav, temperature, top_k, top_p, seed)
    write_audio(out, result.audio, vqvae.sample_rate)
    levels = ", ".join(f"level {lv}: {len(c)} codes" for lv, c in sorted(result.codes.items()))
    err_console.print(
        f"wrote {out} ({len(result.audio) / vqvae.sample_rate:.2f} s; {levels})", highlight=False
    )


__all__ = ["prior_eval", "sample"]
