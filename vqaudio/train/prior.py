"""The prior's run behind ``vqaudio prior train``: a :class:`~vqaudio.prior.CodePrior` over one level of a
trained VQ-VAE's codes, on the same :class:`~vqaudio.train.loop.TrainLoop` as the codec.

The corpus is encoded once by the VQ-VAE (:func:`~vqaudio.prior.codes.cached_codes`; under DDP rank 0
encodes and the others read its file). Voices marked ``heldout`` are never trained on: they are
validated with the unconditioned ("none") speaker, next to the seen voices' validation utterances, so the
run reports bits per code on voices it never heard. Other voices train conditioned on their row of the
VQ-VAE's speaker table, or on "none" when the table lacks them; ``prior.speaker_dropout`` of the examples
are shown as "none" too, so that the unconditioned prior is trained.

The batch of step ``s`` is a pure function of (seed, s) (:class:`~vqaudio.data.StepBatchSampler` picks the
utterances and a crop seed for each; the crop, which is aligned to the coarser level's frames for an
upsampler prior, and the speaker dropout come from that seed), so a resumed run is exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from torch import Tensor

from vqaudio.checkpoint import load_model, resolve_checkpoint
from vqaudio.config import PriorRunConfig
from vqaudio.data import StepBatchSampler, scan_corpus, validate_corpus
from vqaudio.data.corpora import Utterance
from vqaudio.errors import ConfigError, UserError
from vqaudio.models import VQVAE
from vqaudio.prior.baselines import baseline_bits
from vqaudio.prior.checkpoint import PriorMeta, build_prior, check_vqvae, load_prior, prior_shapes, save_prior
from vqaudio.prior.codes import CodeSet, cached_codes, default_cache_dir, prior_split
from vqaudio.prior.evaluate import utterance_bits
from vqaudio.prior.model import CodePrior
from vqaudio.train.distributed import main_rank_first
from vqaudio.train.loop import TrainLoop, TrainResult, adamw, run_loop, unwrap

__all__ = ["CodeCrops", "PriorTrainer", "train_prior"]

PAD = -1  # target of positions past an utterance's end (ignored by the loss)


class CodeCrops(torch.utils.data.Dataset[tuple[Tensor, ...]]):
    """Training examples: crops of ``frames`` codes of one utterance, its speaker index and, for an
    upsampler prior, the coarser level's codes under the crop.

    Items are the sampler's ``(index, crop_seed)``; everything random about an item comes from its seed.
    A crop starts at a multiple of ``ratio`` (the coarser level's frames per frame of ours); an utterance
    shorter than the crop is padded with :data:`PAD`. ``speakers[i]`` is the prior's speaker index of
    utterance ``i`` (``none`` for "no speaker"), replaced by ``none`` with probability ``dropout``.
    """

    def __init__(
        self,
        codes: Sequence[np.ndarray],
        speakers: Sequence[int],
        frames: int,
        none: int,
        dropout: float,
        upper: Sequence[np.ndarray] | None = None,
        ratio: int = 1,
    ) -> None:
        if not codes:
            raise UserError("no training utterances for the prior (every voice held out?)")
        self.codes, self.speakers, self.frames = codes, speakers, frames
        self.none, self.dropout, self.upper, self.ratio = none, dropout, upper, ratio

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Tensor, ...]:  # type: ignore[override]
        index, seed = key
        rng = np.random.default_rng(seed)
        c = self.codes[index]
        starts = max(0, (len(c) - self.frames) // self.ratio) + 1
        start = int(rng.integers(starts)) * self.ratio
        crop = np.full(self.frames, PAD, dtype=np.int64)
        part = c[start : start + self.frames]
        crop[: len(part)] = part
        speaker = self.none if rng.random() < self.dropout else self.speakers[index]
        out = [torch.from_numpy(crop), torch.tensor(speaker, dtype=torch.long)]
        if self.upper is not None:
            n = -(-self.frames // self.ratio)
            up = np.zeros(n, dtype=np.int64)
            part_up = self.upper[index][start // self.ratio : start // self.ratio + n]
            up[: len(part_up)] = part_up
            out.append(torch.from_numpy(up))
        return tuple(out)


def _stack(items: list[tuple[Tensor, ...]]) -> tuple[Tensor, ...]:
    return tuple(torch.stack(column) for column in zip(*items, strict=True))


class _PriorData:
    """The prior run's utterances: training ones (seen voices' train split), validation ones (seen
    voices' valid split and held-out voices' valid split) and their codes."""

    def __init__(self, cfg: PriorRunConfig, vqvae: VQVAE, loop: TrainLoop) -> None:
        d = cfg.data
        if d.root is None:
            raise ConfigError("data.root is not set: give the corpus folder with --set data.root=PATH")
        good, problems = validate_corpus(scan_corpus(d.kind, d.root, mic=d.mic))
        for msg in problems[:20]:
            loop.log.print(f"[yellow]skipping unusable audio:[/] {msg}")
        if not good:
            raise UserError(f"{d.root}: no usable audio files")
        train, valid = prior_split(good, d.valid_per_speaker, cfg.train.seed)
        utts = [*train, *valid]
        self.codes = self._encode(cfg, vqvae, utts, loop)
        self.train = self.codes.select(range(len(train)))
        self.valid = self.codes.select(range(len(train), len(utts)))

    @staticmethod
    def _encode(cfg: PriorRunConfig, vqvae: VQVAE, utts: list[Utterance], loop: TrainLoop) -> CodeSet:
        """The codes of ``utts`` at the prior's level (and the coarser one): rank 0 encodes (or finds the
        cache), then the other ranks read what it wrote."""
        level = cfg.prior.level
        levels = [level, level + 1] if cfg.prior.upper else [level]
        cache = Path(cfg.data.cache_dir).expanduser() if cfg.data.cache_dir else default_cache_dir()
        shown = [0]

        def progress(done: int, total: int) -> None:  # a line per tenth: encoding a corpus takes minutes
            if done * 10 // total > shown[0]:
                shown[0] = done * 10 // total
                loop.log.print(f"encoding the corpus with the model: {done}/{total} utterances")

        def encode() -> tuple[CodeSet, bool]:
            with torch.inference_mode():
                return cached_codes(vqvae, utts, levels, cache, progress)

        codes, hit = main_rank_first(encode, "encoding the corpus")
        frames = sum(len(c) for c in codes.codes[level])
        how = "read from the cache" if hit else "encoded and cached"
        loop.log.print(f"{len(utts)} utterances, {frames} codes at level {level}: {how} in {cache}")
        return codes


class PriorTrainer(TrainLoop):
    """A prior's run (see the module docstring)."""

    metric = "valid/bits"
    best_record = "best_valid_bits"

    def __init__(
        self,
        cfg: PriorRunConfig,
        out_dir: Path,
        resume: bool,
        console: Console | None,
        vqvae: str | Path | None = None,
    ) -> None:
        super().__init__(cfg, out_dir, resume, console)
        self.cfg: PriorRunConfig = cfg
        resumed = load_prior(self.resume_from[0], self.device) if self.resume_from else None
        if vqvae is None and resumed is not None:
            vqvae = resumed[1].vqvae_source
        self.vqvae_source = _source_of(vqvae)
        self.vqvae = load_model(vqvae, self.device)
        torch.manual_seed(cfg.train.seed)
        self.model: CodePrior = self._build(resumed)
        self.data = _PriorData(cfg, self.vqvae, self)
        self.baselines = {
            group: baseline_bits(self.data.train.codes[cfg.prior.level], part, self.model.num_codes)
            for group, part in self._valid_groups().items()
        }
        self.ddp = self.distributed(self.model)
        t = cfg.train
        self.opt = adamw(
            self.model.parameters(), lr=t.lr, betas=(t.betas[0], t.betas[1]), weight_decay=t.weight_decay
        )
        self.start(self._loader(), None)

    def _build(self, resumed: tuple[CodePrior, PriorMeta] | None) -> CodePrior:
        p = self.cfg.prior
        shapes = prior_shapes(p, self.vqvae)
        if resumed is None:
            return build_prior(p, shapes).to(self.device)
        prior, meta = resumed
        check_vqvae(meta, self.vqvae)
        return prior.train()

    def _speaker_index(self, name: str, heldout: bool) -> int:
        none = self.model.num_speakers
        if heldout or not self.cfg.prior.speaker or name not in self.vqvae.speakers:
            return none
        return self.vqvae.speakers.index(name)

    def _loader(self) -> torch.utils.data.DataLoader[tuple[Tensor, ...]]:
        cfg, train = self.cfg, self.data.train
        level = cfg.prior.level
        crops = CodeCrops(
            train.codes[level],
            [self._speaker_index(s, h) for s, h in zip(train.speakers, train.heldout, strict=True)],
            cfg.data.segment_frames or cfg.prior.context,
            self.model.num_speakers,
            cfg.prior.speaker_dropout if cfg.prior.speaker else 0.0,
            train.codes[level + 1] if cfg.prior.upper else None,
            self.model.upper_ratio,
        )
        sampler = StepBatchSampler(
            len(crops), cfg.data.batch_size, cfg.train.seed, self.step, self.info.rank, self.info.world_size
        )
        return torch.utils.data.DataLoader(crops, batch_sampler=sampler, collate_fn=_stack)

    def train_step(self, *loaded: Tensor) -> tuple[float, dict[str, float | Tensor]]:
        """One step on ``(codes [B, T] with PAD past the end, speakers [B][, coarser codes])``."""
        codes, speaker = loaded[0], loaded[1]
        upper = loaded[2] if len(loaded) > 2 else None
        lr = self.set_lr(self.opt)
        with self.autocast():
            logits = self.ddp(codes.clamp(min=0), speaker, upper)
        loss = F.cross_entropy(logits.float().transpose(1, 2), codes, ignore_index=PAD)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm, finite = self.clip_and_check(loss, self.model.parameters())
        if finite:
            self.opt.step()
            self.bad_streak = 0
        else:
            self.opt.zero_grad(set_to_none=True)
            self.count_skipped()
        bits = loss.detach() / math.log(2)
        scalars: dict[str, float | Tensor] = {"train/lr": lr, "loss/bits": bits, "train/grad_norm": grad_norm}
        scalars["train/skipped_steps"] = float(self.skipped)
        return float(bits), scalars

    def _valid_groups(self) -> dict[str, list[np.ndarray]]:
        level, valid = self.cfg.prior.level, self.data.valid
        groups = {"all": list(valid.codes[level])}
        for name, want in (("seen", False), ("heldout", True)):
            part = [c for c, h in zip(valid.codes[level], valid.heldout, strict=True) if h == want]
            if part and len(part) < len(valid):
                groups[name] = part
        return groups

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        valid, level = self.data.valid, self.cfg.prior.level
        if not len(valid):
            return {}
        self.model.eval()
        speakers = [self._speaker_index(s, h) for s, h in zip(valid.speakers, valid.heldout, strict=True)]
        upper = valid.codes[level + 1] if self.cfg.prior.upper else None
        bits = utterance_bits(self.model, valid.codes[level], speakers, upper)
        self.model.train()
        result = {"valid/bits": _mean_bits(bits)}
        for name, want in (("seen", False), ("heldout", True)):
            part = [b for b, h in zip(bits, valid.heldout, strict=True) if h == want]
            if part and len(part) < len(bits):
                result[f"valid/bits/{name}"] = _mean_bits(part)
        return result

    def describe(self, metrics: dict[str, float]) -> str:
        groups = "".join(
            f", {name} {metrics[f'valid/bits/{name}']:.3f}"
            for name in ("seen", "heldout")
            if f"valid/bits/{name}" in metrics
        )
        base = self.baselines["all"]
        return (
            f"step {self.step}: valid bits/code {metrics['valid/bits']:.3f}{groups} "
            f"(bigram {base.bigram_bits:.3f}, unigram {base.unigram_bits:.3f}, log2 K {base.log2_k:.3f})"
        )

    def write_model(self, path: Path, extra: dict[str, Any]) -> None:
        save_prior(
            path,
            unwrap(self.model),
            self.cfg,
            self.vqvae,
            self.step,
            vqvae_source=self.vqvae_source,
            extra=extra,
        )

    def task_state(self) -> dict[str, Any]:
        return {"optimizer": self.opt.state_dict()}

    def load_task_state(self, state: dict[str, Any]) -> None:
        self.opt.load_state_dict(state["optimizer"])


def _source_of(vqvae: str | Path | None) -> str:
    """What a prior records of where its VQ-VAE came from: an existing path made absolute, a shipped
    model's name as given, or (``None``) the checkpoint that names today."""
    if vqvae is not None and not Path(vqvae).exists():
        return str(vqvae)
    return str(Path(vqvae).resolve() if vqvae is not None else resolve_checkpoint(None).resolve())


def _mean_bits(bits: Sequence[np.ndarray]) -> float:
    total = sum(len(b) for b in bits)
    return float(sum(float(b.sum()) for b in bits) / max(total, 1))


def train_prior(
    cfg: PriorRunConfig,
    out_dir: str | Path,
    vqvae: str | Path | None = None,
    resume: bool = False,
    *,
    stop_after: int | None = None,
    console: Console | None = None,
) -> TrainResult:
    """Train (or resume) a prior over ``vqvae``'s codes into ``out_dir``.

    ``vqvae``: a checkpoint, run directory or shipped model's name (``None``: on ``resume`` the model the
    run was started with, else ``$VQAUDIO_MODEL`` or the shipped default). ``stop_after`` stops early as a
    signal would.
    """
    return run_loop(lambda: PriorTrainer(cfg, Path(out_dir), resume, console, vqvae), stop_after)
