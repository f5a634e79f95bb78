"""The training loop behind ``vqaudio train``: one code path for CPU, one GPU and torchrun/DDP.

Exact resume: the batch of step ``s`` is a pure function of (seed, s) (see
:class:`vqaudio.data.StepBatchSampler`), and the model, optimiser and torch RNG states are saved
with every checkpoint, so a run stopped at step ``k`` and resumed produces the same numbers as an
uninterrupted one (on CPU; CUDA kernels are not bitwise deterministic). Training-time augmentation
(``data.augment``) runs here, on the batch once it is on the device, seeded from (seed, step, rank) with
its own generators (see :mod:`vqaudio.data.augment`); validation is never augmented.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP

from vqaudio.codec.compress import code_tables
from vqaudio.config import RunConfig
from vqaudio.data import (
    SegmentDataset,
    StepBatchSampler,
    augment_batch,
    collate,
    corpus_speaker_info,
    load_full,
    scan_corpus,
    speaker_list,
    split_utterances,
    validate_corpus,
)
from vqaudio.device import flush_denormals
from vqaudio.errors import CheckpointError, ConfigError, UserError
from vqaudio.models import VQVAE, LevelModel, VQVAEOutput, build_model
from vqaudio.train.discriminators import CombinedDiscriminator
from vqaudio.train.distributed import (
    DistInfo,
    all_reduce_flag,
    all_reduce_max,
    cleanup_distributed,
    init_distributed,
)
from vqaudio.train.finetune import InitReport, InitSource, init_from, merge_speakers
from vqaudio.train.losses import (
    MultiResolutionMelLoss,
    PhaseLoss,
    Spectra,
    discriminator_loss,
    feature_matching_loss,
    generator_adv_loss,
    mel_distance,
)
from vqaudio.train.monitor import Monitor
from vqaudio.train.rundir import RunDir
from vqaudio.train.timing import StepTimer

__all__ = ["TrainResult", "TrainingError", "train", "lr_at"]


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. too many non-finite steps in a row)."""


@dataclass
class TrainResult:
    """How a call of :func:`train` ended. ``history`` holds one dict per validation (its metrics and
    ``"step"``); ``wall_seconds`` is the call's wall-clock time (setup, training and saving)."""

    step: int
    run_dir: Path
    checkpoint: Path | None
    best_metric: float | None
    interrupted: bool
    skipped_steps: int
    history: list[dict[str, float]] = field(default_factory=list)
    signal: int | None = None  # the signal that stopped an interrupted run (SIGINT, SIGTERM), if any
    wall_seconds: float = 0.0


def schedule_progress(step: int, cfg: RunConfig, minutes: float = 0.0) -> float:
    """How far the learning-rate decay has gone, in ``[0, 1]``.

    ``(step - warmup_steps) / (max_steps - warmup_steps)``; with ``train.schedule_by: budget`` and a
    time budget (``train.max_minutes``) it is the larger of that and ``minutes / max_minutes``, so the
    decay ends when the first of the two limits is reached: a run stopped by its budget on a slow
    machine has annealed like one that reached ``max_steps``.
    """
    t = cfg.train
    span = max(1, t.max_steps - t.warmup_steps)
    progress = (step - t.warmup_steps) / span
    if t.schedule_by == "budget" and t.max_minutes > 0:
        progress = max(progress, minutes / t.max_minutes)
    return min(1.0, max(0.0, progress))


def lr_at(step: int, cfg: RunConfig, minutes: float = 0.0) -> float:
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


def level_items(
    fractions: list[float] | None, batch: int, device: torch.device | str = "cpu"
) -> list[Tensor | None] | None:
    """Which items of a ``batch`` each level trains on (``train.level_fraction``).

    A level with fraction 1 (or ``fractions`` ``None``) takes the whole batch (``None``). The others take
    ``max(1, round(f * batch))`` consecutive items each, one after the other and wrapping around, so two
    levels at 0.5 split the batch between them: every item still trains the first level and one other
    (the batch is already a random draw, so fixed positions pick random items).

    Returns:
        one entry per level, ``None`` or a ``[B_i]`` long tensor of batch indices on ``device``; or
        ``None`` when every level takes the whole batch.
    """
    if fractions is None:
        return None
    out: list[Tensor | None] = []
    start = 0
    for f in fractions:
        n = max(1, round(f * batch))
        if n >= batch:
            out.append(None)
            continue
        out.append(torch.arange(start, start + n, device=device) % batch)
        start = (start + n) % batch
    return None if all(pick is None for pick in out) else out


def _adamw(params: Iterator[nn.Parameter], **kwargs: Any) -> torch.optim.Optimizer:
    """AdamW with the fused kernel (CPU and CUDA): a third of the per-parameter loop's time on the demo
    model, where the optimiser was 6% of a CPU step. The state dict is the same either way."""
    return torch.optim.AdamW(params, fused=True, **kwargs)


def _compile_levels(model: VQVAE) -> None:
    """``train.compile``: compile every level's encoder stages and decoder in place (``nn.Module.compile``,
    so state-dict keys and checkpoints are unchanged; the stages, not the encoder, because a shared front
    calls them one by one). The quantisers stay eager: their data-dependent bookkeeping (initialisation,
    restarts) would only break the graphs."""
    for level in model.levels:
        assert isinstance(level, LevelModel)
        for stage in (level.encoder.inp, level.encoder.down, level.encoder.bottleneck, level.encoder.proj):
            stage.compile()
        level.decoder.compile()


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the loop finishes its step, saves and exits cleanly."""

    def __init__(self) -> None:
        self.stop = False
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
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


def _unwrap(model: nn.Module) -> Any:
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


def _ignore_signals(worker_id: int) -> None:
    """Loader workers leave SIGINT/SIGTERM to the main process, which saves before exiting."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class _CorpusData:
    """The codec run's corpus: scan, speaker table, train/validation split, training loader and
    validation utterances."""

    def __init__(
        self, cfg: RunConfig, info: DistInfo, log: Monitor, start_step: int, known: Sequence[str] = ()
    ) -> None:
        """``known``: the speakers of the model a run started from (``--init``), first in the table."""
        d = cfg.data
        if d.root is None:
            raise ConfigError("data.root is not set: give the corpus folder with --set data.root=PATH")
        utts = scan_corpus(d.kind, d.root, mic=d.mic)
        good, problems = validate_corpus(utts)
        for msg in problems[:20]:
            log.print(f"[yellow]skipping unusable audio:[/] {msg}")
        if len(problems) > 20:
            log.print(f"[yellow]... and {len(problems) - 20} more unusable files[/]")
        if not good:
            raise UserError(f"{d.root}: no usable audio files")
        # held-out voices get no embedding
        self.corpus_speakers = speaker_list(u for u in good if not u.heldout)
        self.speakers = merge_speakers(known, self.corpus_speakers)
        self.speaker_info = {
            name: {"age": i.age, "gender": i.gender, "accent": i.accent, "region": i.region}
            for name, i in corpus_speaker_info(d.kind, d.root).items()
            if name in self.corpus_speakers
        }
        train_utts, self.valid = split_utterances(good, d.valid_per_speaker, cfg.train.seed)
        sr = cfg.model.sample_rate
        seg = max(1, round(d.segment_seconds * sr))
        self.dataset = SegmentDataset(train_utts, self.speakers, sr, seg, preload=d.preload)
        self.sampler = StepBatchSampler(
            len(self.dataset), d.batch_size, cfg.train.seed, start_step, info.rank, info.world_size
        )
        self.loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=self.sampler,
            num_workers=d.num_workers,
            collate_fn=collate,
            persistent_workers=d.num_workers > 0,
            prefetch_factor=4 if d.num_workers > 0 else None,
            worker_init_fn=_ignore_signals if d.num_workers > 0 else None,
        )
        self.valid_max = max(1, round(d.valid_max_seconds * sr))
        self.sample_rate = sr
        self.num_train = len(train_utts)

    def valid_items(self) -> Iterator[tuple[Tensor, int]]:
        for utt in self.valid:
            yield load_full(utt, self.sample_rate, self.valid_max), self.speakers.index(utt.speaker)


class Trainer:
    def __init__(
        self,
        cfg: RunConfig,
        out_dir: Path,
        resume: bool,
        console: Console | None,
        init: str | Path | None = None,
        init_skip_mismatched: bool = False,
    ) -> None:
        if init is not None and resume:
            raise UserError(
                "--init starts a new run from a model's weights; it cannot be combined with --resume"
            )
        self.cfg = cfg
        self.info, self.device = init_distributed(cfg.train.device)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        flush_denormals()
        self.run = RunDir(out_dir)
        latest = self._resume_point(resume)
        state = RunDir.load_state(latest[1], self.device) if latest else None
        self.step = int(state["step"]) if state else 0
        # training time of the run so far (all sessions): the time budget and a budget schedule use it
        self.train_seconds = float(state.get("train_seconds", 0.0)) if state else 0.0
        self.timer = StepTimer(self.device)  # bench/train_speed.py enables it
        self.log = Monitor(
            self.run.layout.tensorboard, cfg.train.max_steps, self.step, self.info.is_main, console
        )
        source = InitSource.load(init) if init is not None else None
        # RUN/init.json: the source and its speakers (the first rows of the speaker table, on resume too)
        self.init_record: dict[str, Any] | None = self.run.read_init() if resume else None
        if source is not None:
            self.init_record = {**source.record(), "speakers": source.speakers}
        torch.manual_seed(cfg.train.seed)
        known = self.init_record["speakers"] if self.init_record else ()
        self.data = _CorpusData(cfg, self.info, self.log, self.step, known)
        self.model: VQVAE = self._build_model(latest[0] if latest else None, source, init_skip_mismatched)
        if cfg.train.compile:
            _compile_levels(self.model)
        self.ddp: nn.Module = self._distributed(self.model, broadcast_buffers=False)
        t = cfg.train
        self.opt = _adamw(
            self.model.parameters(), lr=t.lr, betas=(t.betas[0], t.betas[1]), weight_decay=t.weight_decay
        )
        self._build_losses()
        self.disc, self.disc_opt = self._build_discriminator()
        self.best: float | None = None
        self.best_step: int | None = None
        self.skipped = 0
        self.bad_streak = 0
        self.loader_iter = iter(self.data.loader)  # created before restoring RNG: see module doc
        if state:
            self._restore(state)
        if self.info.is_main:
            self.run.create(cfg, self.init_record)
        self.autocast = self._autocast()
        self.history: list[dict[str, float]] = []

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

    def _distributed(self, module: nn.Module, **kwargs: Any) -> nn.Module:
        """``module`` wrapped in DDP when the run is distributed, else ``module`` itself."""
        if not self.info.enabled:
            return module
        return DDP(module, device_ids=[self.device.index] if self.device.type == "cuda" else None, **kwargs)

    def _build_losses(self) -> None:
        """The reconstruction loss, the phase loss (``None`` when its weight is 0) and the levels it
        applies to."""
        loss = self.cfg.loss
        self.recon_loss = MultiResolutionMelLoss(
            self.cfg.model.sample_rate,
            loss.fft_sizes,
            mel_weight=loss.mel_weight,
            stft_weight=loss.stft_weight,
        ).to(self.device)
        self.phase_loss = PhaseLoss(loss.phase_fft_sizes).to(self.device) if loss.phase_weight > 0 else None
        self.phase_on = [
            self.phase_loss is not None and (loss.phase_levels is None or i in loss.phase_levels)
            for i in range(self.cfg.model.num_levels)
        ]

    def _build_discriminator(self) -> tuple[nn.Module | None, torch.optim.Optimizer | None]:
        """The discriminator (DDP-wrapped when distributed) and its optimiser; none without
        ``adversarial.enabled``."""
        adv = self.cfg.adversarial
        if not adv.enabled:
            return None, None
        disc = CombinedDiscriminator(self.cfg.model.sample_rate, adv.periods, adv.fft_sizes, adv.channels)
        disc = disc.to(self.device)
        betas = self.cfg.train.betas
        return self._distributed(disc), _adamw(disc.parameters(), lr=adv.lr, betas=(betas[0], betas[1]))

    def _restore(self, state: dict[str, Any]) -> None:
        """Optimisers, discriminator, best metric, skipped steps and RNG from a training state."""
        self.opt.load_state_dict(state["optimizer"])
        if self.disc is not None and "disc" in state:
            _unwrap(self.disc).load_state_dict(state["disc"])
            assert self.disc_opt is not None
            self.disc_opt.load_state_dict(state["disc_optimizer"])
        self.best = state.get("best")
        self.best_step = state.get("best_step")
        self.skipped = int(state.get("skipped", 0))
        _set_rng_state(state["rng"], self.device)

    def _autocast(self) -> Callable[[], AbstractContextManager[Any]]:
        """The context that training steps run in: bfloat16 autocast on CUDA (``train.amp``), else none."""
        amp = self.cfg.train.amp
        use_bf16 = self.device.type == "cuda" and amp in ("auto", "bf16")
        if amp == "bf16" and self.device.type != "cuda":
            self.log.print("[yellow]train.amp=bf16 applies on CUDA only; training in float32 on CPU[/]")
        if use_bf16:
            return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext

    def _build_model(self, latest: Path | None, source: InitSource | None, skip_mismatched: bool) -> VQVAE:
        """The run's model on its device: resumed from ``latest``, started from ``source`` (``--init``),
        or freshly initialised."""
        model = build_model(self.cfg.model, self.data.speakers).to(self.device)
        model.speaker_info = self.data.speaker_info
        if latest is not None:
            from vqaudio.checkpoint import read_checkpoint

            weights, meta = read_checkpoint(latest)
            if meta.speakers != self.data.speakers:
                raise ConfigError(f"cannot resume {self.run.root}: the corpus speakers changed")
            model.load_state_dict(weights, strict=True)
            model.speaker_info = {**meta.speaker_info, **self.data.speaker_info}
        elif source is not None:
            report = init_from(model, source, self.cfg, skip_mismatched)
            kept = {k: v for k, v in source.meta.speaker_info.items() if k in model.speakers}
            model.speaker_info = {**kept, **self.data.speaker_info}
            self._report_init(source, report)
        return model

    def _report_init(self, source: InitSource, report: InitReport) -> None:
        assert self.init_record is not None
        self.init_record["new_speakers"] = report.new_speakers
        self.init_record["skipped"] = [str(m) for m in report.skipped]
        self.init_record["fresh_quantizers"] = report.fresh_quantizers
        corpus = set(self.data.corpus_speakers)
        both = sum(s in corpus for s in report.kept_speakers)
        self.log.print(
            f"init from {source.path} (step {source.meta.step}, sha256 {source.meta.weights_sha256[:12]}): "
            f"{report.copied} tensors copied; speakers: {both} in the corpus and the model, "
            f"{len(report.new_speakers)} new (their rows start at the mean of the model's), "
            f"{len(report.kept_speakers) - both} kept from the model only"
        )
        if report.skipped:
            self.log.print(
                f"[yellow]--init-skip-mismatched: {len(report.skipped)} tensor(s) keep their fresh "
                "initialisation:[/]"
            )
            for mismatch in report.skipped:
                self.log.print(f"[yellow]  {mismatch}[/]")
        for name in report.fresh_quantizers:
            self.log.print(f"[yellow]  {name}: not copied, initialised by k-means at step 0[/]")

    def _init_summary(self) -> dict[str, Any]:
        """The ``--init`` source as checkpoints and ``finished.json`` record it (empty: none)."""
        if self.init_record is None:
            return {}
        keys = ("source", "name", "weights_sha256", "step")
        return {"init": {k: self.init_record.get(k) for k in keys}}

    # ------------------------------------------------------------------ one step

    def _adversarial_active(self) -> bool:
        return self.disc is not None and self.step >= self.cfg.adversarial.start_step

    def _train_step(self, wav: Tensor, spk: Tensor) -> tuple[float, dict[str, float | Tensor]]:
        """One optimiser step on the loader's batch ``wav`` ``[B, 1, T]`` (augmented here first)."""
        lr = lr_at(self.step, self.cfg, self.train_seconds / 60)
        for group in self.opt.param_groups:
            group["lr"] = lr
        # tensors stay on the device; the monitor reads them (one sync) only on logging steps
        scalars: dict[str, float | Tensor] = {"train/lr": lr}
        adv_on = self._adversarial_active()
        # the forward pass updates the quantisers' EMA buffers; a skipped step must not keep them
        buffers = {name: b.detach().clone() for name, b in self.model.named_buffers()}
        with self.timer.section("augment"):
            key = (self.cfg.train.seed, self.step, self.info.rank)
            batch = augment_batch(wav, self.cfg.data.augment, self.cfg.model.sample_rate, key)
        items = level_items(self.cfg.train.level_fraction, wav.shape[0], wav.device)
        with self.timer.section("forward"), self.autocast():
            out = self.ddp(batch.inputs, spk, items)
        if adv_on:
            with self.timer.section("discriminator"):
                scalars["adv/d_loss"] = self._discriminator_step(out.recon, batch.target)
        total = self._losses(out, batch.target, adv_on, scalars, items)
        with self.timer.section("backward"):
            self.opt.zero_grad(set_to_none=True)
            total.backward()
        with self.timer.section("optimizer"):
            grad_norm = nn.utils.clip_grad_norm_(
                self.model.parameters(), self.cfg.train.grad_clip or float("inf")
            )
            finite = bool(torch.isfinite(total).item() and torch.isfinite(grad_norm).item())
            finite = all_reduce_flag(finite, self.device, op="min")
            if finite:
                self.opt.step()
                self.bad_streak = 0
        if not finite:
            self._skip_step(buffers)
        scalars["loss/total"] = total.detach()
        scalars["train/grad_norm"] = grad_norm.detach()
        scalars["train/skipped_steps"] = float(self.skipped)
        return float(total.detach()), scalars

    def _discriminator_step(self, recon: list[Tensor], wav: Tensor) -> Tensor:
        """One discriminator update on the detached reconstructions of every level; returns its loss."""
        assert self.disc is not None and self.disc_opt is not None
        fakes = torch.cat([r.detach() for r in recon], 0)
        with self.autocast():
            real_d = self.disc(wav)
            fake_d = self.disc(fakes)
            d_loss = discriminator_loss(real_d.logits, fake_d.logits)
        self.disc_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        # gradients are identical on every rank after DDP's all-reduce, so all ranks agree here
        d_norm = nn.utils.clip_grad_norm_(self.disc.parameters(), self.cfg.train.grad_clip or float("inf"))
        if bool(torch.isfinite(d_norm).item()):
            self.disc_opt.step()
        else:
            self.disc_opt.zero_grad(set_to_none=True)
        return d_loss.detach()

    def _losses(
        self,
        out: VQVAEOutput,
        wav: Tensor,
        adv_on: bool,
        scalars: dict[str, float | Tensor],
        items: list[Tensor | None] | None = None,
    ) -> Tensor:
        """The total loss of a step: every level's reconstruction, quantiser and adversarial terms, plus
        the speaker encoder's and adversary's. The target's STFTs are computed once for all levels and
        losses (:class:`Spectra`; timed with level 0's spectral loss); a level that trained on some
        items only (``items``, see :func:`level_items`) is scored against those rows."""
        cfg = self.cfg
        full_target = Spectra(wav, "target")
        picks = items or [None] * len(out.recon)
        total = wav.new_zeros(())
        real_feats: list[list[Tensor]] = []
        if adv_on:
            assert self.disc is not None
            with self.timer.section("loss/adversarial"), torch.no_grad(), self.autocast():
                real_feats = [[f.detach() for f in fs] for fs in self.disc(wav).features]
        for i, (recon, q, pick) in enumerate(zip(out.recon, out.quantizer, picks, strict=True)):
            with self.timer.section(f"loss/{i}/spectral"):
                target = full_target.select(pick)
                pred = Spectra(recon.float(), "pred")
                l1 = (pred.signal - target.signal).abs().mean()
                spec = self.recon_loss(pred, target)
                level_loss = cfg.loss.l1_weight * l1 + spec + q.loss
            if self.phase_loss is not None and self.phase_on[i]:
                with self.timer.section(f"loss/{i}/phase"):
                    phase = self.phase_loss(pred, target)
                level_loss = level_loss + cfg.loss.phase_weight * phase
                scalars[f"loss/phase/{i}"] = phase.detach()
            if adv_on:
                assert self.disc is not None
                with self.timer.section("loss/adversarial"):
                    with self.autocast():
                        fake_d = self.disc(recon)
                    g_adv = generator_adv_loss(fake_d.logits)
                    real = real_feats if pick is None else [[f[pick] for f in fs] for fs in real_feats]
                    fm = feature_matching_loss(real, fake_d.features)
                adv = cfg.adversarial
                level_loss = level_loss + adv.adv_weight * g_adv + adv.feature_weight * fm
                scalars[f"adv/g_loss/{i}"] = g_adv.detach()
                scalars[f"adv/feature/{i}"] = fm.detach()
            total = total + level_loss
            scalars[f"loss/l1/{i}"] = l1.detach()
            scalars[f"loss/spectral/{i}"] = spec.detach()
            scalars[f"quantizer/{i}/commitment"] = q.commitment
            scalars[f"quantizer/{i}/perplexity"] = q.perplexity
            scalars[f"quantizer/{i}/usage"] = q.usage
            scalars[f"quantizer/{i}/restarts"] = float(q.restarts)
        if out.speaker_loss is not None:
            total = total + cfg.loss.speaker_encoder_weight * out.speaker_loss
            scalars["loss/speaker_encoder"] = out.speaker_loss.detach()
        if out.adversary_loss is not None and out.adversary_accuracy is not None:
            # the classifier minimises this; gradient reversal makes the encoders maximise it
            for i, (loss, acc) in enumerate(zip(out.adversary_loss, out.adversary_accuracy, strict=True)):
                total = total + loss
                scalars[f"adversary/{i}/loss"] = loss.detach()
                scalars[f"adversary/{i}/accuracy"] = acc
        return total

    def _skip_step(self, buffers: dict[str, Tensor]) -> None:
        """A non-finite loss or gradient: drop the gradients, restore the quantisers' buffers."""
        self.opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            for name, b in self.model.named_buffers():
                b.copy_(buffers[name])
        self.skipped += 1
        self.bad_streak += 1
        self.log.print(f"[yellow]step {self.step}: non-finite loss or gradient, step skipped[/]")
        if self.bad_streak >= self.cfg.train.max_bad_steps:
            raise TrainingError(
                f"{self.bad_streak} non-finite steps in a row at step {self.step}; "
                "lower train.lr or check the data"
            )

    # ------------------------------------------------------------------ validation / saving

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        model = self.model
        model.eval()
        n = len(self.model.levels)
        mel = [0.0] * n
        count = 0
        examples = self.cfg.train.audio_examples
        for j, (wav, spk) in enumerate(self.data.valid_items()):
            x = wav.to(self.device)[None, None]
            for i in range(n):
                y = model.decode(model.encode(x, level=i), level=i, speaker=spk)
                mel[i] += float(mel_distance(y, x, model.sample_rate).mean())
                if j < examples:
                    self.log.audio(f"valid_{j}/level_{i}", y, model.sample_rate, self.step)
            if j < examples and not self.history:
                self.log.audio(f"valid_{j}/original", x, model.sample_rate, self.step)
            count += 1
        model.train()
        if count == 0:
            return {}
        result = {f"valid/mel/{i}": mel[i] / count for i in range(n)}
        result["valid/mel"] = sum(mel) / (n * count)
        self.log.codebook_usage([lv.get_buffer("quantizer.ema_count") for lv in model.levels], self.step)
        return result

    def _state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "step": self.step,
            "optimizer": self.opt.state_dict(),
            "rng": _rng_state(self.device),
            "best": self.best,
            "best_step": self.best_step,
            "skipped": self.skipped,
            "train_seconds": self.train_seconds,
        }
        if self.disc is not None and self.disc_opt is not None:
            state["disc"] = _unwrap(self.disc).state_dict()
            state["disc_optimizer"] = self.disc_opt.state_dict()
        return state

    def save(self) -> Path | None:
        if not self.info.is_main:
            return None
        return self.run.save(
            self.step,
            self.model,
            self.cfg,
            self._state(),
            self.cfg.train.keep_last,
            extra={"best_valid_mel": self.best, **self._init_summary()},
            code_tables=code_tables(self.model),
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
        per_level = "  ".join(f"L{i}={metrics[f'valid/mel/{i}']:.3f}" for i in range(len(self.model.levels)))
        self.log.print(f"step {self.step}: valid mel {metrics['valid/mel']:.4f} ({per_level})")
        # the adversarial stage trades mel distance for realism (PESQ up, mel down): once it has run,
        # a model from before it is no longer "best", whatever its mel distance
        start = self.cfg.adversarial.start_step
        before_gan = self.disc is not None and self.step > start and (self.best_step or 0) <= start
        if self.best is None or before_gan or metrics["valid/mel"] < self.best:
            self.best, self.best_step = metrics["valid/mel"], self.step
            self.run.save_best(
                self.model,
                self.cfg,
                self.step,
                {"valid_mel": self.best, **self._init_summary()},
                code_tables(self.model),
            )

    # ------------------------------------------------------------------ loop

    def close(self) -> None:
        """Stop the progress bar, flush TensorBoard and stop the loader's workers now. The workers ignore
        SIGTERM (the main process saves first), so one left to the interpreter's exit handler, which
        terminates and then joins them, would hang the exit after an exception."""
        self.log.close()
        shutdown = getattr(self.loader_iter, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()

    def _peak_memory_gib(self) -> float:
        return torch.cuda.max_memory_allocated(self.device) / 2**30

    def _run_stats(self) -> dict[str, Any]:
        """Speed of this session of the run (since start or resume), peak GPU memory, the step and time
        limits, the training time of the run (all sessions) and the ``--init`` source, for finished.json."""
        return {
            **self._init_summary(),
            "steps_per_second": round(self.log.steps_per_second(self.step), 3),
            "peak_memory_gib": round(self._peak_memory_gib(), 3) if self.device.type == "cuda" else None,
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
        with _StopFlag() as flag:
            while self.step < cfg.max_steps:
                with self.timer.section("data"):
                    wav, spk = next(self.loader_iter)
                    wav, spk = wav.to(self.device, non_blocking=True), spk.to(self.device, non_blocking=True)
                loss, scalars = self._train_step(wav, spk)
                self.step += 1
                log = self.step % cfg.log_every == 0 or self.step == cfg.max_steps
                if log and self.device.type == "cuda":
                    scalars["system/peak_memory_gib"] = self._peak_memory_gib()
                self.log.step(self.step, loss, scalars, log)
                if self.step % cfg.eval_every == 0 or self.step == cfg.max_steps:
                    self.evaluate_and_maybe_save_best()
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
                    elif out_of_time and self.info.is_main:
                        self.run.mark_finished(self.step, "time_budget", self.best, self._run_stats())
                    break
        if self.step >= cfg.max_steps and self.info.is_main:
            self.run.mark_finished(self.step, "max_steps", self.best, self._run_stats())
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


def train(
    cfg: RunConfig,
    out_dir: str | Path,
    resume: bool = False,
    *,
    init: str | Path | None = None,
    init_skip_mismatched: bool = False,
    stop_after: int | None = None,
    console: Console | None = None,
) -> TrainResult:
    """Train (or resume) a model into ``out_dir``; ``stop_after`` stops early as a signal would.

    ``init`` (a checkpoint, run directory or shipped model's name) starts the new run from that model's
    weights (fine-tuning, see :mod:`vqaudio.train.finetune`); tensors that do not fit are refused unless
    ``init_skip_mismatched``.
    """
    t0 = time.perf_counter()
    trainer: Trainer | None = None
    try:
        trainer = Trainer(cfg, Path(out_dir), resume, console, init, init_skip_mismatched)
        result = trainer.fit(stop_after)
    finally:
        if trainer is not None:  # also when fit raised
            trainer.close()
        cleanup_distributed()
    result.wall_seconds = time.perf_counter() - t0
    return result
