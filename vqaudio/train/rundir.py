"""The run directory: resolved config, step checkpoints with training state, best and latest.

The file names and the layout are :class:`vqaudio.runlayout.RunLayout`'s, which inference reads too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from vqaudio.audio import atomic_write
from vqaudio.config import PriorRunConfig, RunConfig, config_to_dict
from vqaudio.errors import CheckpointError, ConfigError
from vqaudio.runlayout import RunLayout

__all__ = ["RunDir", "RESUMABLE_KEYS", "flatten_keys"]

# Keys that may change between a run and its resumption; anything else must match.
RESUMABLE_KEYS = {
    "train.max_steps",
    "train.max_minutes",
    "train.log_every",
    "train.eval_every",
    "train.save_every",
    "train.keep_last",
    "train.device",
    "train.threads",
    "train.compile",
    "train.audio_examples",
    "train.max_bad_steps",
    "data.num_workers",
    "data.root",
    "data.preload",
    "data.cache_dir",
}


def flatten_keys(d: dict[str, Any] | list[Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": [1, 2]}}`` -> ``{"a.b.0": 1, "a.b.1": 2}`` (lists too, so a diff names the leaf)."""
    out: dict[str, Any] = {}
    items = d.items() if isinstance(d, dict) else enumerate(d)
    for k, v in items:
        key = f"{prefix}{k}"
        if isinstance(v, (dict, list)) and v:
            out.update(flatten_keys(v, key + "."))
        else:
            out[key] = v
    return out


class RunDir:
    """Reads and writes one training run's directory (``layout`` names its files)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.layout = RunLayout(self.root)

    def create(self, config: RunConfig | PriorRunConfig, init: dict[str, Any] | None = None) -> None:
        """Write the resolved config and ``init.json`` (the ``--init`` record; removed when ``None``)."""
        self.layout.checkpoints.mkdir(parents=True, exist_ok=True)
        self.layout.finished.unlink(missing_ok=True)
        with atomic_write(self.layout.config) as tmp:
            tmp.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False), encoding="utf-8")
        if init is None:
            self.layout.init.unlink(missing_ok=True)
        else:
            with atomic_write(self.layout.init) as tmp:
                tmp.write_text(json.dumps(init, indent=1) + "\n", encoding="utf-8")

    def read_init(self) -> dict[str, Any] | None:
        """What ``init.json`` says about the model this run started from (``None``: trained from scratch)."""
        path = self.layout.init
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("speakers"), list):
                raise ValueError("not an object with a speaker list")
        except ValueError as err:
            raise CheckpointError(f"{path}: unreadable ({err})") from None
        return data

    def check_resumable(self, config: RunConfig | PriorRunConfig) -> None:
        """Refuse to resume with a config that differs beyond :data:`RESUMABLE_KEYS`."""
        path = self.layout.config
        if not path.is_file():
            raise CheckpointError(f"{self.root}: nothing to resume (no {path.name})")
        old = flatten_keys(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
        new = flatten_keys(config_to_dict(config))
        diff = sorted(
            k for k in old.keys() | new.keys() if old.get(k) != new.get(k) and k not in RESUMABLE_KEYS
        )
        if diff:
            shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:4])
            raise ConfigError(f"cannot resume {self.root}: the config changed ({shown})")

    def mark_finished(
        self,
        step: int,
        reason: str,
        best: float | None,
        stats: dict[str, Any] | None = None,
        best_key: str = "best_valid_mel",
    ) -> None:
        """Record that the run ended on its own (``max_steps`` or ``time_budget``), not by a signal;
        ``best`` is stored as ``best_key`` (the codec's ``best_valid_mel``, a prior's ``best_valid_bits``),
        ``stats`` (e.g. steps per second, peak GPU memory, the ``--init`` source) next to the step and
        reason."""
        record = {"step": step, "reason": reason, best_key: best, **(stats or {})}
        with atomic_write(self.layout.finished) as tmp:
            tmp.write_text(json.dumps(record) + "\n")

    def steps(self) -> list[int]:
        """Steps with a complete checkpoint (model and training state), ascending."""
        return [s for s in self.layout.model_steps() if self.layout.step_state(s).is_file()]

    def save(
        self, step: int, write_model: Callable[[Path], None], state: dict[str, Any], keep_last: int
    ) -> Path:
        """Write the step's model (``write_model(path)``, e.g. :func:`~vqaudio.checkpoint.save_checkpoint`
        for the codec, :func:`~vqaudio.prior.save_prior` for a prior) and training state, point
        ``latest.txt`` at it and prune old ones; returns the model's path."""
        self.layout.checkpoints.mkdir(parents=True, exist_ok=True)
        model_path = self.layout.step_model(step)
        write_model(model_path)
        with atomic_write(self.layout.step_state(step)) as tmp:
            torch.save(state, tmp)
        with atomic_write(self.layout.latest) as tmp:
            tmp.write_text(model_path.relative_to(self.root).as_posix() + "\n", encoding="utf-8")
        for old in self.steps()[:-keep_last]:
            self.layout.step_model(old).unlink(missing_ok=True)
            self.layout.step_state(old).unlink(missing_ok=True)
        return model_path

    def save_best(self, write_model: Callable[[Path], None]) -> None:
        """Write the best model so far (``write_model(path)``, atomically)."""
        write_model(self.layout.best)

    def latest(self) -> tuple[Path, Path] | None:
        """(model, state) paths of the newest complete step checkpoint."""
        steps = self.steps()
        if not steps:
            return None
        return self.layout.step_model(steps[-1]), self.layout.step_state(steps[-1])

    @staticmethod
    def load_state(path: Path, device: torch.device) -> dict[str, Any]:
        try:
            return torch.load(path, map_location=device, weights_only=True)  # type: ignore[no-any-return]
        except Exception as err:  # noqa: BLE001 - any failure here means an unusable file
            raise CheckpointError(f"{path}: unreadable training state ({_load_failure(err)})") from None


def _load_failure(err: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` failed, in one line, without torch's advice to retry with
    ``weights_only=False`` (never take it for a file you did not write: it runs arbitrary code)."""
    text = str(err)
    if "weights_only" in text or "Weights only" in text:
        return "it holds objects other than tensors and plain data, which vqaudio never unpickles"
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__
