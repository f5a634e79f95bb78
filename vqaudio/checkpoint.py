"""Checkpoints: safetensors weights with JSON metadata; ``load_model`` rebuilds any of them alone.

A checkpoint is one ``.safetensors`` file.  Its header metadata holds, under the key ``vqaudio``,
a JSON document with the schema version, the fully resolved run config, the speaker names (in
index order), the sample rate, the package version, the training step and the SHA-256 of the
weights.  Nothing is unpickled: training state lives in a separate ``.state.pt`` file that loads
with ``torch.load(weights_only=True)``.

Anything that takes a model accepts a checkpoint file, a run directory (then its best checkpoint,
else its latest: :mod:`vqaudio.runlayout` names the files) or a shipped model's name, and with none
given uses ``$VQAUDIO_MODEL``, else the model shipped in the package (see :mod:`vqaudio.pretrained`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from vqaudio._version import __version__
from vqaudio.audio import atomic_write
from vqaudio.config import RunConfig, config_from_dict, config_to_dict
from vqaudio.device import flush_denormals
from vqaudio.errors import CheckpointError, ConfigError
from vqaudio.models import VQVAE, CheckpointMeta, build_model
from vqaudio.pretrained import resolve_model
from vqaudio.runlayout import RunLayout

__all__ = [
    "CHECKPOINT_SCHEMA",
    "CheckpointMeta",
    "weights_sha256",
    "model_sha256",
    "save_checkpoint",
    "read_checkpoint",
    "read_tensors",
    "load_model",
    "resolve_checkpoint",
]

CHECKPOINT_SCHEMA = 1
_META_KEY = "vqaudio"


def weights_sha256(state: Mapping[str, Tensor]) -> str:
    """SHA-256 over (name, dtype, shape, bytes) of every tensor, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def model_sha256(model: VQVAE) -> str:
    """The SHA-256 that identifies ``model`` (a stream or a voices file records it): its checkpoint's
    when it was loaded from one, else computed from its weights."""
    meta = model.checkpoint
    if meta is not None:
        return meta.weights_sha256
    return weights_sha256(model.state_dict())


def save_checkpoint(
    path: str | Path,
    model: VQVAE,
    config: RunConfig,
    step: int = 0,
    extra: dict[str, Any] | None = None,
    code_tables: Mapping[int, bytes] | None = None,
    dtype: torch.dtype | None = None,
) -> str:
    """Write ``model`` atomically to ``path`` (a ``.safetensors`` file); returns the weights' SHA-256.

    ``code_tables``: the entropy coder's serialised frequency table of each level, as the producer
    made them (the trainer and ``vqaudio export`` call :func:`vqaudio.codec.compress.code_tables`);
    stored as they are (base64), none when not given. ``dtype`` (e.g. ``torch.float16``: half the
    size) stores the floating-point tensors in that type; a tensor whose values it cannot hold (out of
    range) stays as it is. Loading computes in the model's own dtype (float32), and the SHA-256 is that
    of the stored tensors: the half-precision file is another model as far as streams are concerned.
    """
    state = {k: _stored(v.detach().cpu().contiguous(), dtype) for k, v in model.state_dict().items()}
    sha = weights_sha256(state)
    tables = {str(i): base64.b64encode(t).decode("ascii") for i, t in (code_tables or {}).items()}
    meta = {
        "schema": CHECKPOINT_SCHEMA,
        "config": config_to_dict(config),
        "speakers": list(model.speakers),
        "sample_rate": model.sample_rate,
        "version": __version__,
        "step": int(step),
        "weights_sha256": sha,
        "extra": extra or {},
        "code_tables": tables,
        "speaker_info": model.speaker_info,
    }
    with atomic_write(Path(path)) as tmp:
        save_file(state, str(tmp), metadata={_META_KEY: json.dumps(meta, sort_keys=True)})
    return sha


def _stored(t: Tensor, dtype: torch.dtype | None) -> Tensor:
    """``t`` as stored: cast to ``dtype`` when it is floating point and every value survives the cast."""
    if dtype is None or not t.is_floating_point() or t.dtype == dtype:
        return t
    cast = t.to(dtype)
    return cast if bool(torch.isfinite(cast).all()) or not bool(torch.isfinite(t).all()) else t


def resolve_checkpoint(path: str | Path | None = None) -> Path:
    """The checkpoint file a model argument names: a file as is, a run directory -> its best checkpoint,
    else its latest; a shipped model's name, or ``None`` (``$VQAUDIO_MODEL``, else the shipped default)
    as :func:`vqaudio.pretrained.resolve_model` says."""
    p = resolve_model(path)
    if not p.is_dir():
        return p
    found = RunLayout(p).model_checkpoint()
    if found is None:
        raise CheckpointError(f"{p}: no checkpoint in this run directory")
    return found


def read_tensors(path: Path, key: str, what: str) -> tuple[dict[str, Tensor], str | None]:
    """A safetensors file's tensors and its metadata entry ``key`` (None when absent); a file that is not
    safetensors is a :class:`CheckpointError` saying it is not a ``what``."""
    try:
        state = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            return state, (f.metadata() or {}).get(key)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a {what} ({err})") from None


def read_checkpoint(path: str | Path | None = None) -> tuple[dict[str, Tensor], CheckpointMeta]:
    """Weights and metadata of a checkpoint (file, run directory or shipped name; ``None``: the default
    model, see :func:`resolve_checkpoint`), verified against its SHA-256."""
    p = resolve_checkpoint(path)
    state, raw = read_tensors(p, _META_KEY, "vqaudio checkpoint")
    if raw is None:
        raise CheckpointError(f"{p}: a safetensors file without vqaudio metadata")
    try:
        meta = json.loads(raw)
        schema = int(meta["schema"])
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"{p}: unreadable vqaudio metadata") from None
    if schema > CHECKPOINT_SCHEMA:
        raise CheckpointError(
            f"{p}: checkpoint schema {schema} is newer than this vqaudio understands "
            f"({CHECKPOINT_SCHEMA}); upgrade vqaudio"
        )
    try:
        config = config_from_dict(meta["config"])
    except ConfigError as err:
        raise CheckpointError(f"{p}: its config is not valid for this version ({err})") from None
    sha = weights_sha256(state)
    if sha != meta.get("weights_sha256"):
        raise CheckpointError(f"{p}: weights do not match their SHA-256 (corrupt file?)")
    try:
        tables = {int(k): base64.b64decode(v, validate=True) for k, v in meta.get("code_tables", {}).items()}
    except (ValueError, TypeError, AttributeError):
        raise CheckpointError(f"{p}: unreadable code tables in its metadata") from None
    return state, CheckpointMeta(
        schema,
        config,
        list(meta["speakers"]),
        int(meta["sample_rate"]),
        str(meta.get("version", "?")),
        int(meta.get("step", 0)),
        sha,
        dict(meta.get("extra", {})),
        tables,
        dict(meta.get("speaker_info", {})),
    )


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu") -> VQVAE:
    """Rebuild a model from a checkpoint, run directory or shipped model's name alone, in eval mode on
    ``device``; with no ``path``, ``$VQAUDIO_MODEL``, else the model shipped in the package.

    ``model.checkpoint`` holds the :class:`~vqaudio.models.meta.CheckpointMeta` (SHA-256, step, config...).
    """
    path = resolve_checkpoint(path)
    state, meta = read_checkpoint(path)
    model = build_model(meta.config.model, meta.speakers)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit the model its config describes ({err})") from None
    model.checkpoint = meta
    model.speaker_info = meta.speaker_info
    flush_denormals()
    return model.to(device).eval()
