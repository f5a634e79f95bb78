"""What every training run shares, whatever it trains: the codec (:mod:`vqaudio.train.trainer`) and the
prior over its codes (:mod:`vqaudio.train.prior`) are both a :class:`TrainLoop`.

The loop owns the run directory and its resume point, the step, the RNG state, the learning-rate
schedule, the time budget, clean stops on SIGINT/SIGTERM, validation and checkpoint cadence, the best
checkpoint, non-finite-step bookkeeping, ``finished.json`` and the progress/TensorBoard monitor, and one
code path for CPU, one GPU and torchrun/DDP. A subclass builds its data, network and optimiser and says
what one step, one validation and one checkpoint are (the hooks below).

Exact resume: the batch of step ``s`` must be a pure function of (seed, s) (both runs use
:class:`vqaudio.data.StepBatchSampler`); the step, the torch RNG state and whatever the subclass adds to
:meth:`TrainLoop.task_state` are saved with every checkpoint, so a run stopped at step ``k`` and resumed
gives the same numbers as an uninterrupted one (on CPU; CUDA kernels are not bitwise deterministic).
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP

from vqaudio.config import PriorRunConfig, RunConfig
from vqaudio.device import flush_denormals
from vqaudio.errors import CheckpointError, TrainingError, UserError
from vqaudio.train.distributed import all_reduce_flag, all_reduce_max, cleanup_distributed, init_distributed
from vqaudio.train.monitor import Monitor
from vqaudio.train.rundir import RunDir
from vqaudio.train.timing import StepTimer

__all__ = ["TrainLoop", "TrainResult", "TrainingError", "adamw", "lr_at", "run_loop", "schedule_progress"]

AnyRunConfig = RunConfig | PriorRunConfig


@dataclass
class TrainResult:
    """How a training call ended. ``history`` holds one dict per validation (its metrics and ``"step"``);
    ``wall_seconds`` is the call's wall-clock time (setup, training and saving)."""

    step: int
    run_dir: Path
    checkpoint: Path | None
    best_metric: float | None
    interrupted: bool
    skipped_steps: int
    history: list[dict[str, float]] = field(default_factory=list)
    signal: int | None = None  # the signal that stopped an interrupted run (SIGINT, SIGTERM), if any
    wall_seconds: float = 0.0


def schedule_progress(step: int, cfg: AnyRunConfig, minutes: float = 0.0) -> float:
    """How far the learning-rate decay has gone, in ``[0, 1]``.

    ``(step - warmup_steps) / (max_steps - warmup_steps)``; with ``train.schedule_by: budget`` and a
    time budget (``train.max_minutes``) it is the larger of that and ``minutes / max_minutes``, so the
    decay ends when the first of the two limits is reached: a run stopped by its budget on a slow
    machine has annealed like one that reached ``max_steps``. Only ``cfg.train`` is read.
    """
    t = cfg.train
    span = max(1, t.max_steps - t.warmup_steps)
    progress = (step - t.warmup_steps) / span
    if t.schedule_by == "budget" and t.max_minutes > 0:
        progress = max(progress, minutes / t.max_minutes)
    return min(1.0, max(0.0, progress))


def lr_at(step: int, cfg: AnyRunConfig, minutes: float = 0.0) -> float:
    """Linear warm-up, then a cosine decay to ``min_lr_ratio * lr`` over the whole schedule (``cosine``)
    or over its last ``decay_fraction`` after a constant stretch (``wsd``), or constant; see
    :func:`schedule_progress` for what ``minutes`` (training time so far) changes."""
    t = cfg.train
    if t.warmup_steps and step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    if t.schedule == "constant":
        return t.lr
    progress = schedule_progress(step, cfg, minutes)
    if t.schedule == "wsd":  # stable, then the cosine over the last decay_fraction
        progress = max(0.0, (progress - (1 - t.decay_fraction)) / t.decay_fraction)
    return t.lr * (t.min_lr_ratio + (1 - t.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def adamw(params: Iterator[nn.Parameter], **kwargs: Any) -> torch.optim.Optimizer:
    """AdamW with the fused kernel (CPU and CUDA): a third of the per-parameter loop's time on the demo
    model, where the optimiser was 6% of a CPU step. The state dict is the same either way."""
    return torch.optim.AdamW(params, fused=True, **kwargs)


class StopFlag:
    """SIGINT/SIGTERM set a flag; the loop finishes its step, saves and exits cleanly."""

    def __init__(self) -> None:
        self.stop = False
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.stop:  # a second signal: give up immediately
            signal.signal(signum, signal.SIG_DFL)
            raise KeyboardInterrupt
        self.stop = True
        self.signum = signum

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def unwrap(model: nn.Module) -> Any:
    """The module inside a DDP wrapper (``model`` itself when not wrapped)."""
    return model.module if isinstance(model, DDP) else model


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def ignore_signals(worker_id: int) -> None:
    """Loader workers leave SIGINT/SIGTERM to the main process, which saves before exiting."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class TrainLoop:
    """One training run (see the module docstring). A subclass sets the class attributes, builds its
    data, network (``self.model``) and optimiser in its ``__init__`` after calling this one, then calls
    :meth:`start` with its loader, and implements :meth:`train_step`, :meth:`validate`,
    :meth:`write_model` and :meth:`task_state` / :meth:`load_task_state`.

    Class attributes: ``metric`` (the validation metric that picks the best checkpoint, lower is better)
    and ``best_record`` (its name in step checkpoints and ``finished.json``; the best checkpoint records
    it without the ``best_`` prefix).
    """

    metric = "valid/loss"
    best_record = "best_valid_loss"
    model: nn.Module

    def __init__(self, cfg: AnyRunConfig, out_dir: Path, resume: bool, console: Console | None) -> None:
        self.cfg = cfg
        self.info, self.device = init_distributed(cfg.train.device)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        flush_denormals()
        self.run = RunDir(out_dir)
        self.resume_from = self._resume_point(resume)
        self._pending = RunDir.load_state(self.resume_from[1], self.device) if self.resume_from else None
        state = self._pending
        self.step = int(state["step"]) if state else 0
        # training time of the run so far (all sessions): the time budget and a budget schedule use it
        self.train_seconds = float(state.get("train_seconds", 0.0)) if state else 0.0
        self.timer = StepTimer(self.device)  # bench/train_speed.py enables it
        self.log = Monitor(
            self.run.layout.tensorboard, cfg.train.max_steps, self.step, self.info.is_main, console
        )
        self.best: float | None = None
        self.best_step: int | None = None
        self.skipped = 0
        self.bad_streak = 0
        self.history: list[dict[str, float]] = []
        self.loader_iter: Iterator[Any] = iter(())

    def _resume_point(self, resume: bool) -> tuple[Path, Path] | None:
        """The (model, state) checkpoint to resume from; ``None`` for a new run, which must not overwrite
        an existing one."""
        latest = self.run.latest() if resume else None
        if resume:
            self.run.check_resumable(self.cfg)
            if latest is None:
                raise CheckpointError(f"{self.run.root}: nothing to resume (no complete checkpoint)")
        elif self.run.steps():
            raise UserError(
                f"{self.run.root} already holds a run: pass --resume to continue it, or pick another --out"
            )
        return latest

    def start(self, loader: Iterable[Any], record: dict[str, Any] | None = None) -> None:
        """The end of construction: the loader's iterator (created before the RNG is restored, so a
        resumed run continues it exactly), the restored training state, the run directory's config (and
        ``init.json`` from ``record``) and the autocast context."""
        self.loader_iter = iter(loader)
        if self._pending is not None:
            state, self._pending = self._pending, None
            self.load_task_state(state)
            self.best = state.get("best")
            self.best_step = state.get("best_step")
            self.skipped = int(state.get("skipped", 0))
            _set_rng_state(state["rng"], self.device)
        if self.info.is_main:
            self.run.create(self.cfg, record)
        self.autocast = self._autocast()
        self.log.t0 = time.perf_counter()  # steps/s counts training, not building the run

    def distributed(self, module: nn.Module, **kwargs: Any) -> nn.Module:
        """``module`` wrapped in DDP when the run is distributed, else ``module`` itself."""
        if not self.info.enabled:
            return module
        return DDP(module, device_ids=[self.device.index] if self.device.type == "cuda" else None, **kwargs)

    def _autocast(self) -> Callable[[], AbstractContextManager[Any]]:
        """The context that training steps run in: bfloat16 autocast on CUDA (``train.amp``), else none."""
        amp = self.cfg.train.amp
        use_bf16 = self.device.type == "cuda" and amp in ("auto", "bf16")
        if amp == "bf16" and self.device.type != "cuda":
            self.log.print("[yellow]train.amp=bf16 applies on CUDA only; training in float32 on CPU[/]")
        if use_bf16:
            return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext

    # ------------------------------------------------------------------ hooks

    def train_step(self, *batch: Tensor) -> tuple[float, dict[str, float | Tensor]]:
        """One optimiser step on one batch of the loader (on the device); returns the loss and the
        scalars to log (tensors are read only on logging steps)."""
        raise NotImplementedError

    def validate(self) -> dict[str, float]:
        """Validation metrics (``metric`` among them; empty: nothing to validate)."""
        raise NotImplementedError

    def write_model(self, path: Path, extra: dict[str, Any]) -> None:
        """Write the network's checkpoint to ``path`` with ``extra`` in its metadata."""
        raise NotImplementedError

    def task_state(self) -> dict[str, Any]:
        """What else a resumed run needs (optimisers...), saved with the step's training state."""
        raise NotImplementedError

    def load_task_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`task_state` saved."""
        raise NotImplementedError

    def describe(self, metrics: dict[str, float]) -> str:
        """The console line of one validation."""
        return f"step {self.step}: {self.metric} {metrics[self.metric]:.4f}"

    def is_best(self, metrics: dict[str, float]) -> bool:
        """Whether this validation's model becomes the run's best checkpoint."""
        return self.best is None or metrics[self.metric] < self.best

    def summary(self) -> dict[str, Any]:
        """What checkpoints and ``finished.json`` record besides the metric (e.g. the ``--init`` source)."""
        return {}

    # ------------------------------------------------------------------ shared mechanics

    def set_lr(self, optimizer: torch.optim.Optimizer) -> float:
        """Set the schedule's learning rate for this step (see :func:`lr_at`); returns it."""
        lr = lr_at(self.step, self.cfg, self.train_seconds / 60)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def clip_and_check(self, loss: Tensor, params: Iterable[nn.Parameter]) -> tuple[Tensor, bool]:
        """Clip the gradients of ``params`` (``train.grad_clip``); returns their norm and whether the loss
        and the norm are finite on every rank."""
        grad_norm = nn.utils.clip_grad_norm_(list(params), self.cfg.train.grad_clip or float("inf"))
        finite = bool(torch.isfinite(loss).item() and torch.isfinite(grad_norm).item())
        return grad_norm, all_reduce_flag(finite, self.device, op="min")

    def count_skipped(self) -> None:
        """Record a step skipped for a non-finite loss or gradient; too many in a row stop the run."""
        self.skipped += 1
        self.bad_streak += 1
        self.log.print(f"[yellow]step {self.step}: non-finite loss or gradient, step skipped[/]")
        if self.bad_streak >= self.cfg.train.max_bad_steps:
            raise TrainingError(
                f"{self.bad_streak} non-finite steps in a row at step {self.step}; "
                "lower train.lr or check the data"
            )

    def _state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            **self.task_state(),
            "rng": _rng_state(self.device),
            "best": self.best,
            "best_step": self.best_step,
            "skipped": self.skipped,
            "train_seconds": self.train_seconds,
        }

    def save(self) -> Path | None:
        """Write the step's checkpoint and training state (rank 0); returns the model checkpoint's path."""
        if not self.info.is_main:
            return None
        extra = {self.best_record: self.best, **self.summary()}
        return self.run.save(
            self.step, lambda path: self.write_model(path, extra), self._state(), self.cfg.train.keep_last
        )

    def evaluate_and_maybe_save_best(self) -> None:
        if not self.info.is_main:
            return
        metrics = self.validate()
        if not metrics:
            return
        self.log.scalars(metrics, self.step)
        metrics["step"] = float(self.step)
        self.history.append(metrics)
        self.log.print(self.describe(metrics))
        if self.is_best(metrics):
            self.best, self.best_step = metrics[self.metric], self.step
            extra = {self.best_record.removeprefix("best_"): self.best, **self.summary()}
            self.run.save_best(lambda path: self.write_model(path, extra))

    def close(self) -> None:
        """Stop the progress bar, flush TensorBoard and stop the loader's workers now. The workers ignore
        SIGTERM (the main process saves first), so one left to the interpreter's exit handler, which
        terminates and then joins them, would hang the exit after an exception."""
        self.log.close()
        shutdown = getattr(self.loader_iter, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()

    def peak_memory_gib(self) -> float:
        return torch.cuda.max_memory_allocated(self.device) / 2**30

    def _run_stats(self) -> dict[str, Any]:
        """Speed of this session of the run (since start or resume), peak GPU memory, the step and time
        limits, the training time of the run (all sessions) and :meth:`summary`, for finished.json."""
        return {
            **self.summary(),
            "steps_per_second": round(self.log.steps_per_second(self.step), 3),
            "peak_memory_gib": round(self.peak_memory_gib(), 3) if self.device.type == "cuda" else None,
            "max_steps": self.cfg.train.max_steps,
            "max_minutes": self.cfg.train.max_minutes,
            "train_minutes": round(self.train_seconds / 60, 2),
            "threads": torch.get_num_threads() if self.device.type == "cpu" else None,
        }

    def _tick(self, t_start: float, seconds_before: float) -> None:
        """Update ``train_seconds`` (this session's time plus earlier sessions'); under DDP every rank
        takes the slowest rank's clock, so the learning rate of a budget schedule is the same on all."""
        elapsed = seconds_before + time.perf_counter() - t_start
        if self.cfg.train.max_minutes > 0 and self.info.enabled:
            elapsed = all_reduce_max(elapsed, self.device)
        self.train_seconds = elapsed

    def _one_step(self) -> None:
        cfg = self.cfg.train
        with self.timer.section("data"):
            batch = tuple(x.to(self.device, non_blocking=True) for x in next(self.loader_iter))
        loss, scalars = self.train_step(*batch)
        self.step += 1
        log = self.step % cfg.log_every == 0 or self.step == cfg.max_steps
        if log and self.device.type == "cuda":
            scalars["system/peak_memory_gib"] = self.peak_memory_gib()
        self.log.step(self.step, loss, scalars, log)
        if self.step % cfg.eval_every == 0 or self.step == cfg.max_steps:
            self.evaluate_and_maybe_save_best()

    def _finish(self, reason: str) -> None:
        if self.info.is_main:
            self.run.mark_finished(self.step, reason, self.best, self._run_stats(), self.best_record)

    def fit(self, stop_after: int | None = None) -> TrainResult:
        cfg = self.cfg.train
        interrupted = False
        last_saved: Path | None = None
        t_start, seconds_before = time.perf_counter(), self.train_seconds
        if cfg.max_minutes > 0:
            self.log.budget_end = t_start + cfg.max_minutes * 60 - seconds_before
        self.model.train()
        if self.step == 0:
            self.evaluate_and_maybe_save_best()
        with StopFlag() as flag:
            while self.step < cfg.max_steps:
                self._one_step()
                self._tick(t_start, seconds_before)
                out_of_time = cfg.max_minutes > 0 and self.train_seconds / 60 >= cfg.max_minutes
                stop = all_reduce_flag(
                    flag.stop or out_of_time or (stop_after is not None and self.step >= stop_after),
                    self.device,
                )
                if stop and out_of_time and self.step < cfg.max_steps:
                    self.log.print(
                        f"[yellow]time budget of {cfg.max_minutes:g} min reached at step {self.step} of "
                        f"{cfg.max_steps} ({self.log.steps_per_second(self.step):.2f} steps/s)[/]"
                    )
                    if self.step % cfg.eval_every != 0:
                        self.evaluate_and_maybe_save_best()
                if self.step % cfg.save_every == 0 or self.step == cfg.max_steps or stop:
                    last_saved = self.save() or last_saved
                if stop:
                    interrupted = self.step < cfg.max_steps and not out_of_time
                    if interrupted:
                        self.log.print(f"stopped at step {self.step}; resume with --resume")
                    elif out_of_time:
                        self._finish("time_budget")
                    break
        if self.step >= cfg.max_steps:
            self._finish("max_steps")
        # every rank leaves together, after rank 0 has written the checkpoint: a rank tearing its
        # process group down while rank 0 was still saving aborted now and then (SIGABRT under gloo)
        all_reduce_flag(True, self.device)
        self.log.close()
        return TrainResult(
            self.step,
            self.run.root,
            last_saved,
            self.best,
            interrupted,
            self.skipped,
            self.history,
            flag.signum if interrupted else None,
        )


def run_loop(make: Callable[[], TrainLoop], stop_after: int | None = None) -> TrainResult:
    """Build a run with ``make`` and fit it; the loop is closed and the process group torn down however it
    ends. ``stop_after`` stops early as a signal would."""
    t0 = time.perf_counter()
    loop: TrainLoop | None = None
    finished = False
    try:
        loop = make()
        result = loop.fit(stop_after)
        finished = True
    finally:
        if loop is not None:  # also when fit raised
            loop.close()
            if finished:  # every rank has closed (TensorBoard flushed, workers stopped) before any tears down
                all_reduce_flag(True, loop.device)
        cleanup_distributed()
    result.wall_seconds = time.perf_counter() - t0
    return result
