"""Voice commands: speakers, convert, enroll, eval-convert."""

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
    plan_files,
    progress_bar,
    user_errors,
)
from vqaudio.errors import UserError

if TYPE_CHECKING:
    from vqaudio.eval.conversion import ConversionScores


@app.command()
@user_errors
def speakers(
    model_path: ModelOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of one line per speaker.")
    ] = False,
) -> None:
    """List the speakers a model can speak as: one per line, name first (then gender, age, accent...)."""
    import json

    from vqaudio.checkpoint import load_model
    from vqaudio.pretrained import resolve_model
    from vqaudio.voices import load_voices

    source = resolve_model(model_path)
    model = load_model(source)
    enrolled = sorted(load_voices(model, source))
    if as_json:
        rows: list[dict[str, Any]] = [{"name": n, **model.speaker_info.get(n, {})} for n in model.speakers]
        rows += [{"name": n, "enrolled": True} for n in enrolled]
        out_console.print_json(json.dumps(rows))
        return
    for name in model.speakers:
        facts = model.speaker_info.get(name, {})
        extra = [str(facts[k]) for k in ("gender", "age", "accent", "region") if facts.get(k)]
        print("\t".join([name, *extra]))
    for name in enrolled:
        print(f"{name}\tenrolled")


@app.command()
@user_errors
def convert(
    inputs: Annotated[list[Path], typer.Argument(help="Audio files or folders to convert.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output audio file, or a folder for many.")],
    model_path: ModelOpt = None,
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
    from vqaudio.audio import AUDIO_EXTENSIONS, WRITE_EXTENSIONS
    from vqaudio.checkpoint import load_model
    from vqaudio.convert import convert_file
    from vqaudio.device import resolve_device
    from vqaudio.pretrained import resolve_model
    from vqaudio.voices import reference_embedding, resolve_speaker

    if str(out) == "-":
        raise UserError("convert writes files: give an output path, not -")
    plan, many = plan_files(inputs, out, AUDIO_EXTENSIONS, ".wav", force, WRITE_EXTENSIONS)
    if (speaker is None) == (not reference):
        raise UserError("give either --speaker NAME or --reference CLIP (one or more), not both")
    source = resolve_model(model_path)
    model = load_model(source, resolve_device(device))
    target_voice = (
        resolve_speaker(model, source, speaker)
        if speaker is not None
        else reference_embedding(model, reference or [])
    )
    if level is not None:
        model.check_level(level)
    with progress_bar(many) as bar:
        task = bar.add_task("converting", total=len(plan))
        for src, target in plan:
            assert isinstance(target, Path)
            target.parent.mkdir(parents=True, exist_ok=True)
            convert_file(model, src, target, target_voice, level)
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
    model_path: ModelOpt = None,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Replace an enrolled voice of that name.")
    ] = False,
) -> None:
    """Store a voice from reference clips in a sidecar next to the model (the checkpoint is not modified)."""
    from vqaudio.checkpoint import load_model
    from vqaudio.pretrained import resolve_model
    from vqaudio.voices import enroll as enroll_voice

    source = resolve_model(model_path)
    model = load_model(source)
    path = enroll_voice(model, source, name, references, replace=force)
    err_console.print(f"enrolled '{name}' from {len(references)} clip(s) into {path}", highlight=False)


@app.command("eval-convert")
@user_errors
def eval_convert(
    data: Annotated[
        Path, typer.Option("--data", help="Parallel corpus manifest (e.g. data/demo/manifest.tsv).")
    ],
    model_path: ModelOpt = None,
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
        typer.Option(
            help="Convert into these corpus voices (comma-separated), each given only by reference clips "
            "of its train split (enrolment); the other voices are the sources."
        ),
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

    from vqaudio.audio import atomic_write
    from vqaudio.checkpoint import load_model
    from vqaudio.data import scan_manifest
    from vqaudio.device import resolve_device
    from vqaudio.eval.conversion import (
        conversion_voices,
        enrol_from_corpus,
        evaluate_conversion,
        labels_by_sentence,
        sentence_ids,
    )

    model = load_model(model_path, resolve_device(device))
    utts = scan_manifest(data)
    references = [v.strip() for v in reference_voice.split(",")] if reference_voice else []
    wanted = [v.strip() for v in voices.split(",")] if voices else None
    chosen = conversion_voices(model, utts, wanted, references, str(data))
    ref = []
    for voice in references:
        emb, clips, seconds = enrol_from_corpus(model, utts, voice, reference_seconds, str(data))
        ref.append((voice, emb))
        err_console.print(f"enrolled {voice} from {clips} clips ({seconds:.1f} s)", highlight=False)
    ids = sentence_ids(utts, split, sentences)
    phone_labels = labels_by_sentence(data, labels, ids) if labels is not None else None
    with progress_bar(True) as bar:
        task = bar.add_task("converting", total=None)
        scores = evaluate_conversion(
            model,
            utts,
            ids,
            chosen,
            level,
            ref or None,
            labels=phone_labels,
            progress=lambda d, t: bar.update(task, completed=d, total=t),
        )

    _print_conversion(scores)
    if json_out is not None:
        with atomic_write(json_out) as tmp:
            tmp.write_text(json.dumps(scores.as_dict(), indent=1) + "\n")


def _print_conversion(scores: ConversionScores) -> None:
    """``vqaudio eval-convert``'s summary lines, and its table by kind of voice when there are several."""
    from vqaudio.eval.report import NO_SIMILARITY

    def fmt(v: float | None, spec: str) -> str:
        return NO_SIMILARITY if v is None else format(v, spec)

    out_console.print(
        f"{scores.conversions} conversions at level {scores.level}: cosine to target "
        f"{fmt(scores.similarity_to_target, '.3f')} (unconverted source: "
        f"{fmt(scores.unconverted_similarity_to_target, '.3f')}), to source "
        f"{fmt(scores.similarity_to_source, '.3f')}, "
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
    if set(scores.groups) != {"seen->seen"}:
        table = Table(title="by voices (seen: trained on; heldout: never heard)", title_justify="left")
        table.add_column("source->target", no_wrap=True)
        for col in ("n", "closer", "cos tgt", "MCD dB", "content"):
            table.add_column(col, justify="right")
        for name, g in scores.groups.items():
            table.add_row(
                name,
                str(g["conversions"]),
                fmt(g["closer_to_target"], ".1%"),
                fmt(g["similarity_to_target"], ".3f"),
                fmt(g["mcd_converted"], ".2f"),
                "n/a" if g["content_kept"] is None else f"{g['content_kept']:.1%}",
            )
        out_console.print(table)
