"""The codec's run behind ``vqaudio train``: the VQ-VAE, its losses and discriminator, on the shared
:class:`~vqaudio.train.loop.TrainLoop` (one code path for CPU, one GPU and torchrun/DDP).

Exact resume: the batch of step ``s`` is a pure function of (seed, s) (see
:class:`vqaudio.data.StepBatchSampler`), and the model, optimiser and torch RNG states are saved
with every checkpoint, so a run stopped at step ``k`` and resumed produces the same numbers as an
uninterrupted one (on CPU; CUDA kernels are not bitwise deterministic). Training-time augmentation
(``data.augment``) runs here, on the batch once it is on the device, seeded from (seed, step, rank) with
its own generators (see :mod:`vqaudio.data.augment`); validation is never augmented.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import Tensor, nn

from vqaudio.checkpoint import save_checkpoint
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
from vqaudio.errors import ConfigError, UserError
from vqaudio.models import VQVAE, LevelModel, VQVAEOutput, build_model
from vqaudio.train.discriminators import CombinedDiscriminator
from vqaudio.train.distributed import DistInfo
from vqaudio.train.finetune import InitReport, InitSource, init_from, merge_speakers
from vqaudio.train.loop import (
    TrainingError,
    TrainLoop,
    TrainResult,
    adamw,
    ignore_signals,
    lr_at,
    run_loop,
    schedule_progress,
    unwrap,
)
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

__all__ = ["TrainResult", "Trainer", "TrainingError", "level_items", "lr_at", "schedule_progress", "train"]


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
            worker_init_fn=ignore_signals if d.num_workers > 0 else None,
        )
        self.valid_max = max(1, round(d.valid_max_seconds * sr))
        self.sample_rate = sr
        self.num_train = len(train_utts)

    def valid_items(self) -> Iterator[tuple[Tensor, int]]:
        for utt in self.valid:
            yield load_full(utt, self.sample_rate, self.valid_max), self.speakers.index(utt.speaker)


class Trainer(TrainLoop):
    """The codec's run: the VQ-VAE, its losses and optional discriminator on a corpus of audio."""

    metric = "valid/mel"
    best_record = "best_valid_mel"

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
        super().__init__(cfg, out_dir, resume, console)
        self.cfg: RunConfig = cfg
        source = InitSource.load(init) if init is not None else None
        # RUN/init.json: the source and its speakers (the first rows of the speaker table, on resume too)
        self.init_record: dict[str, Any] | None = self.run.read_init() if resume else None
        if source is not None:
            self.init_record = {**source.record(), "speakers": source.speakers}
        torch.manual_seed(cfg.train.seed)
        known = self.init_record["speakers"] if self.init_record else ()
        self.data = _CorpusData(cfg, self.info, self.log, self.step, known)
        latest = self.resume_from[0] if self.resume_from else None
        self.model: VQVAE = self._build_model(latest, source, init_skip_mismatched)
        if cfg.train.compile:
            _compile_levels(self.model)
        self.ddp: nn.Module = self.distributed(self.model, broadcast_buffers=False)
        t = cfg.train
        self.opt = adamw(
            self.model.parameters(), lr=t.lr, betas=(t.betas[0], t.betas[1]), weight_decay=t.weight_decay
        )
        self._build_losses()
        self.disc, self.disc_opt = self._build_discriminator()
        self.start(self.data.loader, self.init_record)

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
        return self.distributed(disc), adamw(disc.parameters(), lr=adv.lr, betas=(betas[0], betas[1]))

    def task_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"optimizer": self.opt.state_dict()}
        if self.disc is not None and self.disc_opt is not None:
            state["disc"] = unwrap(self.disc).state_dict()
            state["disc_optimizer"] = self.disc_opt.state_dict()
        return state

    def load_task_state(self, state: dict[str, Any]) -> None:
        """The optimisers and the discriminator of a training state."""
        self.opt.load_state_dict(state["optimizer"])
        if self.disc is not None and "disc" in state:
            unwrap(self.disc).load_state_dict(state["disc"])
            assert self.disc_opt is not None
            self.disc_opt.load_state_dict(state["disc_optimizer"])

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
        self.init_record["grown_quantizers"] = report.grown_quantizers
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
        for grown in report.grown_quantizers:
            self.log.print(f"  {grown} (the new codes split the most used old ones)")

    def summary(self) -> dict[str, Any]:
        """The ``--init`` source as checkpoints and ``finished.json`` record it (empty: none)."""
        if self.init_record is None:
            return {}
        keys = ("source", "name", "weights_sha256", "step")
        return {"init": {k: self.init_record.get(k) for k in keys}}

    # ------------------------------------------------------------------ one step

    def _adversarial_active(self) -> bool:
        return self.disc is not None and self.step >= self.cfg.adversarial.start_step

    def train_step(self, *loaded: Tensor) -> tuple[float, dict[str, float | Tensor]]:
        """One optimiser step on the loader's batch ``(wav [B, 1, T], speakers [B])`` (augmented here)."""
        wav, spk = loaded
        lr = self.set_lr(self.opt)
        # tensors stay on the device; the monitor reads them (one sync) only on logging steps
        scalars: dict[str, float | Tensor] = {"train/lr": lr}
        adv_on = self._adversarial_active()
        # the forward pass updates the quantisers' EMA buffers; a skipped step must not keep them
        buffers = {name: b.detach().clone() for name, b in self.model.named_buffers()}
        with self.timer.section("augment"):
            key = (self.cfg.train.seed, self.step, self.info.rank)
            batch = augment_batch(wav, self.cfg.data.augment, self.cfg.model.sample_rate, key)
            if batch.new_voice is not None:  # a sped-up or slowed item is no table voice: index -1
                spk = torch.where(batch.new_voice.to(spk.device), torch.full_like(spk, -1), spk)
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
            grad_norm, finite = self.clip_and_check(total, self.model.parameters())
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
        self.count_skipped()

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

    def write_model(self, path: Path, extra: dict[str, Any]) -> None:
        save_checkpoint(path, self.model, self.cfg, self.step, extra, code_tables(self.model))

    def describe(self, metrics: dict[str, float]) -> str:
        per_level = "  ".join(f"L{i}={metrics[f'valid/mel/{i}']:.3f}" for i in range(len(self.model.levels)))
        return f"step {self.step}: valid mel {metrics['valid/mel']:.4f} ({per_level})"

    def is_best(self, metrics: dict[str, float]) -> bool:
        # the adversarial stage trades mel distance for realism (PESQ up, mel down): once it has run,
        # a model from before it is no longer "best", whatever its mel distance
        start = self.cfg.adversarial.start_step
        before_gan = self.disc is not None and self.step > start and (self.best_step or 0) <= start
        return before_gan or super().is_best(metrics)


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
    return run_loop(
        lambda: Trainer(cfg, Path(out_dir), resume, console, init, init_skip_mismatched), stop_after
    )
