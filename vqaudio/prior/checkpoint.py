"""A prior's checkpoint: one safetensors file whose JSON metadata names the VQ-VAE it belongs to.

Metadata (key ``vqaudio_prior``): the schema, the fully resolved :class:`~vqaudio.config.PriorRunConfig`,
the VQ-VAE's fingerprint (:func:`~vqaudio.codec.compress.model_fingerprint`) and speaker names, the
sizes the network was built with, the training step and the SHA-256 of the weights. Nothing is
unpickled. :func:`load_prior` rebuilds the prior alone; :func:`check_vqvae` refuses another VQ-VAE.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from vqaudio._version import __version__
from vqaudio.audio import atomic_write
from vqaudio.checkpoint import read_tensors, weights_sha256
from vqaudio.codec.compress import model_fingerprint
from vqaudio.config import PriorConfig, PriorRunConfig, config_to_dict, prior_config_from_dict
from vqaudio.errors import CheckpointError, ConfigError, UserError
from vqaudio.models import VQVAE
from vqaudio.prior.model import CodePrior
from vqaudio.runlayout import RunLayout

__all__ = [
    "PRIOR_SCHEMA",
    "PriorMeta",
    "build_prior",
    "check_vqvae",
    "load_prior",
    "load_prior_vqvae",
    "prior_fingerprint",
    "prior_shapes",
    "save_prior",
]

PRIOR_SCHEMA = 1
_META_KEY = "vqaudio_prior"


@dataclass
class PriorMeta:
    """What a prior checkpoint says about itself (see the module docstring)."""

    schema: int
    config: PriorRunConfig
    vqvae_id: str
    speakers: list[str]
    shapes: dict[str, int]
    step: int
    weights_sha256: str
    version: str
    # where the VQ-VAE was read from when the prior was trained (a path or shipped name; may be stale on
    # another machine: the fingerprint, not this, decides whether a model fits)
    vqvae_source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the training run's best validation bits


def prior_shapes(cfg: PriorConfig, vqvae: VQVAE) -> dict[str, int]:
    """The sizes a prior of ``cfg`` over ``vqvae``'s codes is built with (a UserError if ``cfg`` asks for a
    level or a coarser level the model lacks)."""
    level = vqvae.check_level(cfg.level)
    if cfg.upper and level + 1 >= vqvae.num_levels:
        raise UserError(f"prior.upper: level {level} is the model's coarsest; there is no level {level + 1}")
    upper = level + 1 if cfg.upper else None
    if upper is not None and vqvae.hops[upper] % vqvae.hops[level]:
        raise UserError(f"prior.upper: level {upper}'s hop is not a multiple of level {level}'s")
    return {
        "num_codes": vqvae.config.levels[level].codebook_size,
        "num_speakers": len(vqvae.speakers) if cfg.speaker else 0,
        "upper_codes": vqvae.config.levels[upper].codebook_size if upper is not None else 0,
        "upper_ratio": vqvae.hops[upper] // vqvae.hops[level] if upper is not None else 1,
    }


def build_prior(cfg: PriorConfig, shapes: dict[str, int]) -> CodePrior:
    """The network of ``cfg`` with the sizes :func:`prior_shapes` gave."""
    return CodePrior(
        width=cfg.width,
        layers=cfg.layers,
        heads=cfg.heads,
        context=cfg.context,
        dropout=cfg.dropout,
        **shapes,
    )


def save_prior(
    path: str | Path,
    prior: CodePrior,
    config: PriorRunConfig,
    vqvae: VQVAE,
    step: int = 0,
    *,
    vqvae_source: str | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """Write ``prior`` atomically to ``path``; returns the weights' SHA-256. ``vqvae_source`` (where
    ``vqvae`` was loaded from) lets ``vqaudio sample --prior`` find the model without ``--model``;
    ``extra`` is stored as JSON."""
    state = {k: v.detach().cpu().contiguous() for k, v in prior.state_dict().items()}
    sha = weights_sha256(state)
    shapes = {
        "num_codes": prior.num_codes,
        "num_speakers": prior.num_speakers,
        "upper_codes": prior.upper_codes,
        "upper_ratio": prior.upper_ratio,
    }
    meta = {
        "schema": PRIOR_SCHEMA,
        "config": config_to_dict(config),
        "vqvae_id": model_fingerprint(vqvae),
        "speakers": list(vqvae.speakers),
        "shapes": shapes,
        "step": int(step),
        "weights_sha256": sha,
        "version": __version__,
        "vqvae_source": vqvae_source,
        "extra": extra or {},
    }
    with atomic_write(Path(path)) as tmp:
        save_file(state, str(tmp), metadata={_META_KEY: json.dumps(meta, sort_keys=True)})
    return sha


def prior_fingerprint(meta: PriorMeta) -> str:
    """SHA-256 (hex) of what coding with a prior depends on: its weights' SHA-256, its config and its
    VQ-VAE's fingerprint. A version 3 stream stores its first 16 hex digits as ``prior_id``."""
    doc = {
        "weights_sha256": meta.weights_sha256,
        "config": config_to_dict(meta.config),
        "vqvae": meta.vqvae_id,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def _resolve(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        found = RunLayout(p).model_checkpoint()
        if found is None:
            raise CheckpointError(f"{p}: no prior checkpoint in this run directory")
        return found
    if not p.is_file():
        raise CheckpointError(f"{p}: no such prior (a checkpoint file or a prior run directory)")
    return p


def _meta(p: Path, raw: Any, sha: str) -> PriorMeta:
    try:
        meta = json.loads(raw)
        schema = int(meta["schema"])
        if schema > PRIOR_SCHEMA:
            raise CheckpointError(f"{p}: prior schema {schema} is newer than this vqaudio ({PRIOR_SCHEMA})")
        config = prior_config_from_dict(meta["config"])
        shapes = {
            k: int(meta["shapes"][k]) for k in ("num_codes", "num_speakers", "upper_codes", "upper_ratio")
        }
        result = PriorMeta(
            schema,
            config,
            str(meta["vqvae_id"]),
            [str(s) for s in meta["speakers"]],
            shapes,
            int(meta["step"]),
            str(meta["weights_sha256"]),
            str(meta.get("version", "?")),
            None if meta.get("vqvae_source") is None else str(meta["vqvae_source"]),
            dict(meta.get("extra") or {}),
        )
    except ConfigError as err:
        raise CheckpointError(f"{p}: its config is not valid for this version ({err})") from None
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"{p}: unreadable prior metadata") from None
    if result.weights_sha256 != sha:
        raise CheckpointError(f"{p}: weights do not match their SHA-256 (corrupt file?)")
    return result


def load_prior(path: str | Path, device: str | torch.device = "cpu") -> tuple[CodePrior, PriorMeta]:
    """Rebuild a prior from its checkpoint (or run directory) alone, in eval mode on ``device``."""
    p = _resolve(path)
    state, raw = read_tensors(p, _META_KEY, "vqaudio prior")
    if raw is None:
        raise CheckpointError(f"{p}: not a vqaudio prior (a VQ-VAE checkpoint? give the prior's)")
    meta = _meta(p, raw, weights_sha256(state))
    prior = build_prior(meta.config.prior, meta.shapes)
    try:
        prior.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{p}: weights do not fit the prior its config describes ({err})") from None
    return prior.to(device).eval(), meta


def check_vqvae(meta: PriorMeta, vqvae: VQVAE) -> None:
    """Refuse ``vqvae`` unless it is the model the prior was trained on (fingerprint)."""
    if (ours := model_fingerprint(vqvae)) != meta.vqvae_id:
        trained = (
            f" (it was trained with {meta.vqvae_source}; give that one with --model)"
            if meta.vqvae_source
            else ""
        )
        raise UserError(
            f"this prior belongs to VQ-VAE {meta.vqvae_id[:12]}..., not to the model given "
            f"({ours[:12]}...){trained}"
        )


def load_prior_vqvae(
    meta: PriorMeta, model: str | Path | None = None, device: str | torch.device = "cpu"
) -> VQVAE:
    """The VQ-VAE a prior belongs to, checked (:func:`check_vqvae`): ``model`` when given, else the one the
    prior was trained with (``meta.vqvae_source``) when it is still there, else ``$VQAUDIO_MODEL`` or the
    shipped default."""
    from vqaudio.checkpoint import load_model
    from vqaudio.pretrained import available_models

    spec: str | Path | None = model
    source = meta.vqvae_source
    if spec is None and source is not None and (Path(source).exists() or source in available_models()):
        spec = source
    vqvae = load_model(spec, device)
    check_vqvae(meta, vqvae)
    return vqvae
