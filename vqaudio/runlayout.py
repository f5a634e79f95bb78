"""The run directory's file names, in one place.

Training writes a run directory (:class:`vqaudio.train.RunDir`); anything that takes a model reads one
(:func:`vqaudio.checkpoint.resolve_checkpoint`, :mod:`vqaudio.voices`). Both ask :class:`RunLayout`,
which imports nothing of either, so inference never imports training to find a file. Layout::

    RUN/config.yaml                             fully resolved config (what ``--resume`` checks against)
    RUN/checkpoints/step_00001000.safetensors   model (see :mod:`vqaudio.checkpoint`)
    RUN/checkpoints/step_00001000.state.pt      optimizer, step, RNG... (``torch.load(weights_only=True)``)
    RUN/best.safetensors                        best model on the validation mel loss
    RUN/latest.txt                              relative path of the newest step checkpoint
    RUN/init.json                               the model a fine-tuning run started from (``--init``)
    RUN/finished.json                           why the run ended on its own, with its statistics
    RUN/tb/                                     TensorBoard events
    RUN/voices.json                             voices enrolled for the run's model (``vqaudio enroll``)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunLayout"]

_STEP_RE = re.compile(r"step_(\d{8})\.safetensors$")


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run directory ``root`` (nothing is read or written by naming them)."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def best(self) -> Path:
        return self.root / "best.safetensors"

    @property
    def latest(self) -> Path:
        return self.root / "latest.txt"

    @property
    def init(self) -> Path:
        return self.root / "init.json"

    @property
    def finished(self) -> Path:
        return self.root / "finished.json"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tb"

    @property
    def voices(self) -> Path:
        return self.root / "voices.json"

    def step_model(self, step: int) -> Path:
        return self.checkpoints / f"step_{step:08d}.safetensors"

    def step_state(self, step: int) -> Path:
        return self.checkpoints / f"step_{step:08d}.state.pt"

    def model_steps(self) -> list[int]:
        """Steps that have a model checkpoint in ``checkpoints/``, ascending."""
        if not self.checkpoints.is_dir():
            return []
        found = (_STEP_RE.search(p.name) for p in self.checkpoints.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def model_checkpoint(self) -> Path | None:
        """The checkpoint the run stands for: the best, else the one ``latest.txt`` names, else the
        newest step's; ``None`` when it holds none."""
        if self.best.is_file():
            return self.best
        if self.latest.is_file():
            target = self.root / self.latest.read_text(encoding="utf-8").strip()
            if target.is_file():
                return target
        steps = self.model_steps()
        return self.step_model(steps[-1]) if steps else None
