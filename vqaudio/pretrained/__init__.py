"""The models shipped inside the package, and which model a command uses when none is named.

Layout of this folder (package data, so it ships in the wheel)::

    vqaudio/pretrained/<name>.safetensors   a one-file checkpoint, as ``vqaudio export`` writes it:
                                            safetensors weights with the JSON metadata (config,
                                            speakers, sample rate, SHA-256...) in its header
    vqaudio/pretrained/<name>.json          optional card: {"description": "...", "card": "docs/...",
                                            "default": true}

A shipped model is an ordinary checkpoint (:mod:`vqaudio.checkpoint` reads it; there is no second
format), at most :data:`MAX_SHIPPED_MB` megabytes.  The default is the model whose card says
``"default": true`` (the first by name if several do), else the only model shipped.

Which model a command or :func:`vqaudio.load_model` uses: the explicit one (``--model`` / the
argument), else ``$VQAUDIO_MODEL``, else the shipped default (:func:`resolve_model`).  The first two
may be a checkpoint file, a run directory or a shipped model's name; an existing path wins over a name.

``$VQAUDIO_PRETRAINED_DIR`` points the registry at another folder: tests use it, and so can anyone
trying a model before shipping it.  This module reads files only and imports no torch, except
:func:`describe_models`, which reads each checkpoint.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from vqaudio.errors import CheckpointError

__all__ = [
    "DIR_ENV",
    "MAX_SHIPPED_MB",
    "MODEL_ENV",
    "ModelListing",
    "ModelSummary",
    "NO_MODEL",
    "ShippedModel",
    "available_models",
    "default_model",
    "default_model_path",
    "describe_models",
    "pretrained_dir",
    "resolve_model",
    "shipped_name",
]

MODEL_ENV = "VQAUDIO_MODEL"
DIR_ENV = "VQAUDIO_PRETRAINED_DIR"
MAX_SHIPPED_MB = 25.0
NO_MODEL = "no model given and no shipped model in this install: pass --model or set VQAUDIO_MODEL"


@dataclass(frozen=True)
class ShippedModel:
    """One model in the package folder: its name, checkpoint file and card (``<name>.json``)."""

    name: str
    path: Path
    description: str = ""
    card: str | None = None
    default: bool = False


def pretrained_dir() -> Path:
    """The folder of shipped models: ``$VQAUDIO_PRETRAINED_DIR`` if set, else this package's folder."""
    override = os.environ.get(DIR_ENV)
    return Path(override) if override else Path(__file__).resolve().parent


def _card(path: Path) -> dict[str, object]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path}: unreadable model card ({err})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: a model card must be a JSON object")
    return data


def available_models() -> dict[str, ShippedModel]:
    """Every shipped model by name (sorted): the ``.safetensors`` files in :func:`pretrained_dir`."""
    folder = pretrained_dir()
    if not folder.is_dir():
        return {}
    found: dict[str, ShippedModel] = {}
    for path in sorted(folder.glob("*.safetensors")):
        card = _card(path.with_suffix(".json"))
        link = card.get("card")
        found[path.stem] = ShippedModel(
            path.stem,
            path,
            str(card.get("description", "")),
            str(link) if link is not None else None,
            card.get("default") is True,
        )
    return found


def default_model() -> ShippedModel | None:
    """The shipped default: the one whose card says ``"default": true``, else the only one, else none."""
    models = available_models()
    flagged = [m for m in models.values() if m.default]
    if flagged:
        return flagged[0]
    return next(iter(models.values())) if len(models) == 1 else None


def default_model_path() -> Path | None:
    """The shipped default's checkpoint file, or ``None`` when this install ships none."""
    model = default_model()
    return model.path if model is not None else None


def shipped_name(path: str | Path) -> str | None:
    """The name of the shipped model stored at ``path``, or ``None`` for any other file or folder."""
    p = Path(path)
    if p.suffix != ".safetensors" or not p.is_file():
        return None
    folder = pretrained_dir().resolve()
    return p.stem if p.resolve().parent == folder else None


def resolve_model(spec: str | Path | None) -> Path:
    """The checkpoint file or run directory that ``spec`` names: explicit > ``$VQAUDIO_MODEL`` > default.

    ``spec`` (or the environment variable) is a path or a shipped model's name; an existing path wins.
    Raises :class:`~vqaudio.errors.CheckpointError` when nothing names a model, or a name is unknown.
    """
    if spec is None or str(spec) == "":
        spec = os.environ.get(MODEL_ENV) or None
    if spec is None:
        path = default_model_path()
        if path is not None:
            return path
        shipped = available_models()
        if shipped:
            raise CheckpointError(
                f"no model given and no default among the shipped models ({', '.join(shipped)}): "
                "pass --model NAME or set VQAUDIO_MODEL"
            )
        raise CheckpointError(NO_MODEL)
    p = Path(spec)
    if p.exists():
        return p
    shipped = available_models()
    if str(spec) in shipped:
        return shipped[str(spec)].path
    names = f"shipped models: {', '.join(shipped)}" if shipped else "no models are shipped in this install"
    raise CheckpointError(f"model not found: {spec} (not a file or run directory; {names})")


@dataclass(frozen=True)
class ModelSummary:
    """What ``vqaudio models`` shows of one shipped model."""

    name: str
    path: Path
    size_mb: float
    weights_sha256: str
    sample_rate: int
    num_speakers: int
    bitrates: list[float]
    step: int
    description: str
    default: bool


@dataclass(frozen=True)
class ModelListing:
    """The shipped models, the default's name, ``$VQAUDIO_MODEL`` and what a command without
    ``--model`` uses (a path, or the error it would stop with)."""

    directory: Path
    models: list[ModelSummary]
    default: str | None
    env: str | None
    in_use: str


def describe_models() -> ModelListing:
    """Read every shipped model (verifying its SHA-256) and say which model commands use by default."""
    from vqaudio.checkpoint import read_checkpoint

    chosen = default_model()
    summaries = []
    for model in available_models().values():
        _, meta = read_checkpoint(model.path)
        m = meta.config.model
        summaries.append(
            ModelSummary(
                model.name,
                model.path,
                model.path.stat().st_size / 1e6,
                meta.weights_sha256,
                meta.sample_rate,
                len(meta.speakers),
                [m.bitrate(i) for i in range(m.num_levels)],
                meta.step,
                model.description,
                chosen is not None and model.name == chosen.name,
            )
        )
    try:
        in_use = str(resolve_model(None))
    except CheckpointError as err:
        in_use = f"none ({err})"
    return ModelListing(
        pretrained_dir(),
        summaries,
        chosen.name if chosen else None,
        os.environ.get(MODEL_ENV) or None,
        in_use,
    )
