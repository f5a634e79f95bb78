"""Fine-tuning: a new run that starts from another model's weights (``vqaudio train RECIPE --init MODEL``).

The run is built from its recipe and corpus as usual; then :func:`init_from` copies every tensor of
MODEL whose name and shape match:

- **Speakers** are matched by name.  The new run's speaker table is MODEL's speakers, in MODEL's order,
  followed by the corpus's speakers that MODEL lacks (:func:`merge_speakers`): speakers in both keep
  MODEL's rows, new speakers start at the mean of MODEL's rows, and MODEL's other voices stay available
  (for conversion) although the corpus does not train them.  Every tensor indexed by speaker
  (:meth:`vqaudio.models.VQVAE.speaker_tensors`) is merged this way.
- **Quantisers** are copied whole (codebook, EMA statistics, running standardisation and the
  ``initialized`` flag, so k-means does not run again) or not at all.  A quantiser whose codebook the
  recipe makes larger (``model.levels.N.codebook_size``, same code dimension) is **grown**: its old
  codes keep their indices and the new ones split the most used of them
  (:func:`vqaudio.quantize.grow_codebook`), so the model decodes as before at step 0.  A smaller
  codebook is a mismatch.
- **Anything else** that differs (a tensor missing on either side, or another shape) is refused with
  the list and the model config keys that differ, unless ``skip_mismatched``: then those tensors (and
  the whole quantiser any of them belongs to, which k-means initialises at step 0) keep their fresh
  initialisation.

The optimiser, schedule and step start afresh.  :meth:`InitSource.record` is what the run keeps of its
origin (``RUN/init.json``, every checkpoint's ``extra["init"]``, ``finished.json``): the checkpoint's path,
shipped name, weights SHA-256 and step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vqaudio.checkpoint import CheckpointMeta, read_checkpoint, resolve_checkpoint
from vqaudio.config import RunConfig, config_to_dict
from vqaudio.errors import ConfigError, UserError
from vqaudio.models import VQVAE
from vqaudio.pretrained import shipped_name
from vqaudio.quantize import CODEBOOK_TENSORS, VectorQuantizer, grow_codebook
from vqaudio.train.rundir import flatten_keys

__all__ = ["InitReport", "InitSource", "Mismatch", "init_from", "merge_speakers"]


def merge_speakers(known: Sequence[str], corpus: Sequence[str]) -> list[str]:
    """The speaker table of a run started from a model with speakers ``known``: those, then the rest."""
    seen = set(known)
    return [*known, *(s for s in corpus if s not in seen)]


def _shape(shape: tuple[int, ...] | None) -> str:
    return "absent" if shape is None else f"[{', '.join(map(str, shape))}]"


@dataclass(frozen=True)
class Mismatch:
    """A tensor that cannot be copied: its name, its shape in MODEL and in the new model (None: absent)."""

    name: str
    old: tuple[int, ...] | None
    new: tuple[int, ...] | None

    def __str__(self) -> str:
        return f"{self.name} {_shape(self.old)} -> {_shape(self.new)}"


@dataclass(frozen=True)
class InitSource:
    """The model a run starts from: its resolved checkpoint file, shipped name, weights and metadata."""

    path: Path
    name: str | None
    state: dict[str, Tensor]
    meta: CheckpointMeta

    @classmethod
    def load(cls, spec: str | Path) -> InitSource:
        """Read ``spec``: a checkpoint file, a run directory or a shipped model's name."""
        if not str(spec):
            raise UserError("--init needs a model: a checkpoint, a run directory or a shipped model's name")
        path = resolve_checkpoint(spec)
        state, meta = read_checkpoint(path)
        return cls(path, shipped_name(path), state, meta)

    @property
    def speakers(self) -> list[str]:
        return self.meta.speakers

    def record(self) -> dict[str, Any]:
        return {
            "source": str(self.path),
            "name": self.name,
            "weights_sha256": self.meta.weights_sha256,
            "step": self.meta.step,
        }


@dataclass
class InitReport:
    """What :func:`init_from` did."""

    copied: int
    kept_speakers: list[str]
    new_speakers: list[str]
    skipped: list[Mismatch] = field(default_factory=list)
    fresh_quantizers: list[str] = field(default_factory=list)
    grown_quantizers: list[str] = field(default_factory=list)  # "NAME: K_old -> K_new codes"


def _grow_quantizers(model: VQVAE, old: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """``old`` with every quantiser whose codebook ``model`` makes larger (same code dimension, every
    other tensor of it the same shape) grown to the new size; and the list of those grown."""
    grown: list[str] = []
    out = dict(old)
    for name, module in model.named_modules():
        if not isinstance(module, VectorQuantizer):
            continue
        mine = module.state_dict()
        own = {k: old[f"{name}.{k}"] for k in mine if f"{name}.{k}" in old}
        if len(own) < len(mine):
            continue
        k_old, dim = own["codebook"].shape
        fits = all(own[k].shape == v.shape for k, v in mine.items() if k not in CODEBOOK_TENSORS)
        if k_old >= module.codebook_size or dim != module.dim or not fits:
            continue
        out.update({f"{name}.{k}": v for k, v in grow_codebook(own, module.codebook_size).items()})
        grown.append(f"{name}: {k_old} -> {module.codebook_size} codes")
    return out, grown


def _config_diff(old: RunConfig, new: RunConfig, limit: int = 6) -> str:
    a = flatten_keys(config_to_dict(old)["model"], "model.")
    b = flatten_keys(config_to_dict(new)["model"], "model.")
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    shown = ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys[:limit])
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return f"the model configs differ in {shown}{more}" if keys else "the model configs are the same"


def _mismatches(old: dict[str, Tensor], new: dict[str, Tensor], speaker_keys: set[str]) -> list[Mismatch]:
    found = []
    for name in sorted(old.keys() | new.keys()):
        a = tuple(old[name].shape) if name in old else None
        b = tuple(new[name].shape) if name in new else None
        if a == b or (name in speaker_keys and a is not None and b is not None and a[1:] == b[1:]):
            continue
        found.append(Mismatch(name, a, b))
    return found


def _merge_rows(old: Tensor, fresh: Tensor, old_speakers: Sequence[str], speakers: Sequence[str]) -> Tensor:
    """``fresh`` ``[S, ...]`` with the row of every speaker also in ``old_speakers`` taken from ``old``
    and the other rows set to the mean of ``old``'s rows."""
    old = old.to(fresh.device, fresh.dtype)
    index = {s: i for i, s in enumerate(old_speakers)} if len(old_speakers) == old.shape[0] else {}
    out = old.mean(0, keepdim=True).expand_as(fresh).clone()
    for row, speaker in enumerate(speakers[: out.shape[0]]):
        if speaker in index:
            out[row] = old[index[speaker]]
    return out


def init_from(
    model: VQVAE, source: InitSource, config: RunConfig, skip_mismatched: bool = False
) -> InitReport:
    """Copy ``source``'s weights into the freshly built ``model`` (of the run's ``config``); see the module.

    Raises :class:`~vqaudio.errors.ConfigError` listing the tensors that do not fit, unless
    ``skip_mismatched``.
    """
    new = model.state_dict()
    speaker_keys = set(model.speaker_tensors())
    old, grown = _grow_quantizers(model, source.state)
    bad = _mismatches(old, new, speaker_keys)
    if bad and not skip_mismatched:
        listed = "; ".join(map(str, bad[:12])) + (f"; and {len(bad) - 12} more" if len(bad) > 12 else "")
        raise ConfigError(
            f"--init {source.path}: {len(bad)} tensor(s) do not fit the recipe's model: {listed} "
            f"({_config_diff(source.meta.config, config)}); pass --init-skip-mismatched to train them "
            "from their fresh initialisation"
        )
    bad_names = {m.name for m in bad}
    fresh_q = [
        name
        for name, module in model.named_modules()
        if isinstance(module, VectorQuantizer) and any(b.startswith(f"{name}.") for b in bad_names)
    ]
    merged: dict[str, Tensor] = {}
    copied = 0
    for name, fresh in new.items():
        if name in bad_names or any(name.startswith(f"{q}.") for q in fresh_q):
            merged[name] = fresh
        elif name in speaker_keys:
            merged[name] = _merge_rows(old[name], fresh, source.speakers, model.speakers)
            copied += 1
        else:
            merged[name] = old[name]
            copied += 1
    with torch.no_grad():
        model.load_state_dict(merged, strict=True)
    known = set(source.speakers)
    return InitReport(
        copied,
        [s for s in model.speakers if s in known],
        [s for s in model.speakers if s not in known],
        bad,
        fresh_q,
        grown,
    )
