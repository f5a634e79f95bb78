"""Training commands: train, config, toy-corpus, demo-corpus."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from vqaudio.cli.common import (
    ForceOpt,
    ModelOpt,
    RecipeArg,
    SetOpt,
    app,
    err_console,
    out_console,
    prior_app,
    user_errors,
)
from vqaudio.errors import UserError


def _bitrate_table(cfg: Any) -> Table:
    table = Table(title="levels", title_justify="left")
    cols = ("level", "hop", "frames/s", "K", "bits/code", "bit/s", "encoder input", "decoder head")
    for col in cols:
        table.add_column(col, justify="right")
    model_cfg = cfg.model
    for i, level_cfg in enumerate(model_cfg.levels):
        head_hop = math.prod(level_cfg.strides[: level_cfg.istft_strides])
        table.add_row(
            str(i),
            str(level_cfg.hop),
            f"{model_cfg.frame_rate(i):.2f}",
            str(level_cfg.codebook_size),
            f"{level_cfg.bits_per_code:.2f}",
            f"{model_cfg.bitrate(i):.0f}",
            "L0 front" if model_cfg.shared_front and i > 0 else "waveform",
            f"iSTFT/{head_hop}" if level_cfg.istft_strides else "waveform",
        )
    return table


def _print_config(cfg: Any, console: Console) -> None:
    import yaml

    from vqaudio.config import config_to_dict

    console.print("[bold]resolved config[/]")
    console.print(
        yaml.safe_dump(config_to_dict(cfg), sort_keys=False).rstrip(), highlight=False, markup=False
    )
    if hasattr(cfg, "model"):  # a codec's recipe (a prior's has no levels of its own)
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
    init: Annotated[
        str | None,
        typer.Option(
            "--init",
            metavar="MODEL",
            help="Fine-tune: start from this model's weights (checkpoint, run directory or shipped name); "
            "speakers are matched by name, new ones added; a larger codebook_size grows that codebook.",
        ),
    ] = None,
    init_skip_mismatched: Annotated[
        bool,
        typer.Option(
            "--init-skip-mismatched",
            help="With --init: tensors whose shape differs keep their fresh initialisation (else refused).",
        ),
    ] = False,
) -> None:
    """Train a hierarchical VQ-VAE from a recipe.

    Single GPU: vqaudio train recipes/vctk.yaml --out runs/vctk.
    Many GPUs: torchrun --nproc-per-node=8 -m vqaudio train recipes/vctk.yaml --out runs/vctk.
    Ctrl-C (or SIGTERM) finishes the current step, saves and exits; --resume continues exactly.
    Fine-tuning: vqaudio train RECIPE --out runs/mine --init MODEL (the recipe describes the same model).
    """
    from vqaudio.config import load_config
    from vqaudio.train import train as run_training

    if init is not None and resume:
        raise UserError("--init starts a new run from a model's weights; it cannot be combined with --resume")
    if init_skip_mismatched and init is None:
        raise UserError("--init-skip-mismatched needs --init MODEL")
    cfg = load_config(recipe, _sets(overrides, device))
    _train_and_report(
        cfg,
        lambda console: run_training(
            cfg, out, resume=resume, init=init, init_skip_mismatched=init_skip_mismatched, console=console
        ),
        "valid mel",
    )


def _sets(overrides: list[str] | None, device: str | None) -> list[str]:
    """The ``--set`` overrides, with ``--device`` as ``train.device``."""
    return [*(overrides or []), *([f"train.device={device}"] if device is not None else [])]


def _train_and_report(cfg: Any, run: Callable[[Console], Any], metric: str) -> None:
    """Print the config (rank 0), run ``run(console)`` and report how it ended: a run that diverged exits
    1, one stopped by a signal exits 128 + the signal once saved."""
    from vqaudio.train import TrainingError

    main_rank, console = _rank_console()
    if main_rank:
        _print_config(cfg, console)
    try:
        result = run(console)
    except TrainingError as err:  # diverged: not the user's input, but not a crash either
        err_console.print(f"[bold red]training failed:[/] {err}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if main_rank:
        best = f"{result.best_metric:.4f}" if result.best_metric is not None else "n/a"
        state = "interrupted" if result.interrupted else "finished"
        console.print(f"{state} at step {result.step}; best {metric} {best}; run directory {result.run_dir}")
    if result.interrupted and result.signal is not None:  # saved; the shell still learns it was stopped
        raise typer.Exit(128 + result.signal)


def _rank_console() -> tuple[bool, Console]:
    """Whether this process is rank 0 of a torchrun job (or alone), and the console it reports on."""
    import os

    main_rank = int(os.environ.get("RANK", "0")) == 0
    return main_rank, err_console if main_rank else Console(stderr=True, quiet=True)


@prior_app.command("train")
@user_errors
def prior_train(
    recipe: RecipeArg,
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Run directory of the prior (checkpoints, TensorBoard, config)."),
    ],
    model_path: ModelOpt = None,
    overrides: SetOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out from its latest checkpoint.")
    ] = False,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 ... (default: train.device)")] = None,
) -> None:
    """Train a prior over one level of a model's codes (recipes/prior_*.yaml).

    The corpus (data.root) is encoded by --model once and cached (data.cache_dir); voices marked held out
    are only validated on. Many GPUs: torchrun --nproc-per-node=8 -m vqaudio prior train RECIPE --model M
    --out DIR. On --resume, --model defaults to the model the run started with (and must be that model).
    """
    from vqaudio.config import load_prior_config
    from vqaudio.train.prior import train_prior

    cfg = load_prior_config(recipe, _sets(overrides, device))
    _train_and_report(
        cfg,
        lambda console: train_prior(cfg, out, model_path, resume=resume, console=console),
        "valid bits/code",
    )


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
    force: ForceOpt = False,
) -> None:
    """Generate a small synthetic speech-like corpus (for smoke tests and recipes/tiny.yaml)."""
    from vqaudio.data.synthetic import make_toy_corpus

    root = make_toy_corpus(
        out, speakers=speakers, utterances=utterances, seconds=seconds, seed=seed, overwrite=force
    )
    err_console.print(f"wrote {speakers * utterances} utterances to {root}")


def _names(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(v.strip() for v in text.split(",") if v.strip())


@app.command("demo-corpus")
@user_errors
def demo_corpus(
    out: Annotated[Path, typer.Argument(help="Folder for the corpus (wavs/, labels/, manifest.tsv).")],
    sentences: Annotated[
        int | None, typer.Option(min=1, help="First N CMU ARCTIC prompts (default: all 593).")
    ] = None,
    voices: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated voices: flite's (kal16, awb, rms, slt), derived flite voices "
            "<voice>-v<k>, espeak-ng <dialect>+<variant>[-s<wpm>][-p<pitch>] (e.g. en-gb+f2). "
            "Default: kal16,awb,rms,slt."
        ),
    ] = None,
    jobs: Annotated[int, typer.Option(min=1, help="Parallel synthesiser processes.")] = 2,
    variants: Annotated[
        int,
        typer.Option(min=0, help="Also derive this many pitch/formant-shifted voices from each voice (0-6)."),
    ] = 0,
    many_voices: Annotated[
        bool,
        typer.Option(
            "--many-voices",
            help="The many-voice corpus: 68 flite, derived and espeak-ng voices, 8 of them held out "
            "from training (the list: vqaudio.data.demo_voices).",
        ),
    ] = False,
    sentences_per_voice: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Training sentences each voice says (chosen by hash); every voice also says every "
            "valid and test sentence. Default: all; with --many-voices, 60.",
        ),
    ] = None,
    heldout: Annotated[
        str | None, typer.Option(help="Comma-separated voices never to train on (marked in the manifest).")
    ] = None,
    heldout_sentences_per_voice: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Training sentences each held-out voice says (its reference clips for enrolment). "
            "Default: as --sentences-per-voice.",
        ),
    ] = None,
) -> None:
    """Make the phone-labelled demo corpus with flite and espeak-ng (default: 4 flite voices, 593 prompts)."""
    from vqaudio.data.demo import make_demo_corpus

    corpus = make_demo_corpus(
        out,
        voices=_names(voices),
        num_sentences=sentences,
        jobs=jobs,
        variants=variants,
        heldout=_names(heldout) or (),
        sentences_per_voice=sentences_per_voice,
        many_voices=many_voices,
        heldout_sentences_per_voice=heldout_sentences_per_voice,
    )
    held = f" ({len(corpus.heldout)} held out)" if corpus.heldout else ""
    err_console.print(
        f"{corpus.num_utterances} utterances by {len(corpus.voices)} voices{held}, "
        f"{corpus.duration_s / 3600:.2f} h of audio in {corpus.root}"
    )
