"""Watching a run: TensorBoard scalars/audio/images and a console progress line."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

__all__ = ["Monitor"]


class Monitor:
    """TensorBoard writer + rich progress bar (rank 0 only; silent elsewhere).

    On a terminal a live bar shows step, loss, steps/s and ETA; otherwise (logs, CI) one plain
    line is printed every ``log_every`` steps.
    """

    def __init__(
        self,
        log_dir: Path | None,
        total_steps: int,
        start_step: int,
        enabled: bool,
        console: Console | None = None,
    ) -> None:
        self.enabled = enabled
        self.console = console or Console(stderr=True)
        # created on first use, so a run that fails while setting up leaves no tb/ folder behind
        self._log_dir = log_dir if enabled else None
        self._writer: Any = None
        self.total = total_steps
        self.start_step = start_step
        self.t0 = time.perf_counter()
        # perf_counter() time at which the run's time budget ends (set by the trainer), for the ETA
        self.budget_end: float | None = None
        self.progress: Progress | None = None
        if enabled and self.console.is_terminal and sys.stderr.isatty():
            self.progress = Progress(
                TextColumn("step {task.completed}/{task.total}"),
                BarColumn(),
                TextColumn("loss {task.fields[loss]:.4f}  {task.fields[rate]:.2f} steps/s"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self.task = self.progress.add_task(
                "train", total=total_steps, completed=start_step, loss=0.0, rate=0.0
            )

    @property
    def writer(self) -> Any:
        """The TensorBoard ``SummaryWriter`` (``None`` when disabled)."""
        if self._writer is None and self._log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self._log_dir))
        return self._writer

    def steps_per_second(self, step: int) -> float:
        done = step - self.start_step
        return done / max(time.perf_counter() - self.t0, 1e-9)

    def print(self, msg: str) -> None:
        if self.enabled:
            if self.progress is not None:
                self.progress.console.print(msg, highlight=False)
            else:
                self.console.print(msg, highlight=False, soft_wrap=True)

    def step(self, step: int, loss: float, scalars: Mapping[str, float | torch.Tensor], log: bool) -> None:
        if not self.enabled:
            return
        if log:
            scalars = {k: float(v) for k, v in scalars.items()}
        rate = self.steps_per_second(step)
        if self.progress is not None:
            self.progress.start()  # no-op once started
            self.progress.update(self.task, completed=step, loss=loss, rate=rate)
        if log:
            if self.writer is not None:
                for k, v in scalars.items():
                    self.writer.add_scalar(k, v, step)
                self.writer.add_scalar("speed/steps_per_second", rate, step)
            if self.progress is None:
                eta = (self.total - step) / rate if rate > 0 else float("inf")
                budget = ""
                left = self.budget_end - time.perf_counter() if self.budget_end is not None else eta
                if left < eta:
                    eta, budget = max(0.0, left), " (time budget)"
                usage = " ".join(
                    f"use{k.split('/')[1]}={v:.2f}" for k, v in scalars.items() if k.endswith("/usage")
                )
                mem = scalars.get("system/peak_memory_gib")
                self.print(
                    f"step {step}/{self.total}  loss {loss:.4f}  {usage}  {rate:.2f} steps/s  "
                    + (f"peak {mem:.2f} GiB  " if mem is not None else "")
                    + f"ETA {eta / 60:.1f} min{budget}"
                )

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(k, v, step)

    def audio(self, tag: str, wav: torch.Tensor, sample_rate: int, step: int) -> None:
        if self.writer is not None:
            self.writer.add_audio(
                tag, wav.detach().float().cpu().clamp(-1, 1).reshape(-1), step, sample_rate=sample_rate
            )

    def codebook_usage(self, counts: list[torch.Tensor], step: int) -> None:
        """One image row per level: log EMA usage of each code (bright = used, black = dead)."""
        if self.writer is None:
            return
        width = max(int(c.numel()) for c in counts)
        img = np.zeros((len(counts), width), dtype=np.float32)
        for i, c in enumerate(counts):
            v = torch.log1p(c.detach().float().cpu()).numpy()
            img[i, : v.size] = v / max(float(v.max()), 1e-9)
        img = np.repeat(img, 16, axis=0)
        self.writer.add_image("quantizer/codebook_usage", img[None], step, dataformats="CHW")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None
        self._log_dir = None
