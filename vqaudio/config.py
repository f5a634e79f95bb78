"""The configuration tree: dataclasses that mirror the model, loaded from partial YAML recipes.

A recipe is a YAML mapping that overrides the defaults below; it may name a ``base:`` recipe (a path
relative to itself) whose values it refines.  Command-line ``--set key.path=value`` overrides come
last.  Unknown keys are errors that name the key's full path; values are validated in
``__post_init__``.  Derived values (hop, frame rate, bitrate) are computed, never stored.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from vqaudio.errors import ConfigError

__all__ = [
    "CORPUS_KINDS",
    "PriorConfig",
    "PriorDataConfig",
    "PriorRunConfig",
    "load_prior_config",
    "prior_config_from_dict",
    "LevelConfig",
    "QuantizerConfig",
    "ModelConfig",
    "GainAugmentConfig",
    "SpeedAugmentConfig",
    "NoiseAugmentConfig",
    "ReverbAugmentConfig",
    "EqAugmentConfig",
    "AugmentConfig",
    "DataConfig",
    "LossConfig",
    "AdversarialConfig",
    "TrainConfig",
    "RunConfig",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "apply_overrides",
]


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


@dataclass
class LevelConfig:
    """One level of the hierarchy: its own encoder, quantizer and decoder.

    The encoder downsamples by ``strides`` (hop = their product); channels start at ``channels``
    at the full sample rate and double after each stride, capped at ``max_channels``: narrow where
    the time resolution is high, wide where it is low (that is where the compute budget goes).
    ``istft_strides = j`` ends the decoder in an inverse STFT with hop ``prod(strides[:j])`` instead of
    upsampling through the first ``j`` strides (0: the decoder makes the waveform with convolutions).
    """

    strides: list[int] = field(default_factory=lambda: [4, 4, 5])
    codebook_size: int = 1024
    code_dim: int = 32
    channels: int = 16
    max_channels: int = 256
    blocks_per_scale: int = 1
    # residual blocks per time scale in the encoder only (None: blocks_per_scale). 0 leaves the encoder
    # strided convolutions up to its bottleneck: on the demo model that saves a third of a CPU step but
    # costs more quality per step than the time buys back (issue #11's measurements)
    encoder_blocks_per_scale: int | None = None
    bottleneck_blocks: int = 6
    dilations: list[int] = field(default_factory=lambda: [1, 3, 9])
    kernel_size: int = 3
    istft_strides: int = 0
    # false: this level's decoder takes no speaker vector, so its codes alone carry the voice (a codec
    # level that serves any voice, heard in training or not); conversion then uses another level
    speaker_conditioned: bool = True

    def __post_init__(self) -> None:
        _check(
            0 <= self.istft_strides <= len(self.strides),
            f"istft_strides must be in [0, {len(self.strides)}] (the number of strides), "
            f"got {self.istft_strides}",
        )
        _check(len(self.strides) >= 1, "strides must hold at least one stride")
        _check(all(s >= 1 for s in self.strides), f"strides must be >= 1, got {self.strides}")
        _check(self.codebook_size >= 2, f"codebook_size must be >= 2, got {self.codebook_size}")
        _check(self.codebook_size <= 65536, f"codebook_size must be <= 65536, got {self.codebook_size}")
        _check(self.code_dim >= 1, f"code_dim must be >= 1, got {self.code_dim}")
        _check(
            self.channels >= 1 and self.max_channels >= self.channels, "need 1 <= channels <= max_channels"
        )
        _check(
            min(self.blocks_per_scale, self.bottleneck_blocks, self.encoder_blocks_per_scale or 0) >= 0,
            "block counts must be >= 0",
        )
        _check(len(self.dilations) >= 1 and all(d >= 1 for d in self.dilations), "dilations must be >= 1")
        _check(
            self.kernel_size % 2 == 1, f"kernel_size must be odd (non-causal 'same'), got {self.kernel_size}"
        )

    @property
    def encoder_blocks(self) -> int:
        """Residual blocks per time scale in the encoder."""
        return (
            self.blocks_per_scale if self.encoder_blocks_per_scale is None else self.encoder_blocks_per_scale
        )

    @property
    def hop(self) -> int:
        """Samples per code frame: the product of the strides."""
        return math.prod(self.strides)

    @property
    def bits_per_code(self) -> float:
        return math.log2(self.codebook_size)


@dataclass
class QuantizerConfig:
    """Vector quantiser shared by all levels (VQ-VAE, van den Oord et al. 2017; EMA from Razavi 2019)."""

    mode: Literal["ema", "loss"] = "ema"
    decay: float = 0.99
    commitment: float = 0.25
    codebook_weight: float = 1.0
    normalize: bool = True
    init: Literal["kmeans", "random"] = "kmeans"
    kmeans_iters: int = 10
    restart_threshold: float = 0.5
    restart_every: int = 10
    entropy_weight: float = 0.0
    entropy_temperature: float = 0.1
    usage_window: int = 100
    standardize: bool = True
    stats_momentum: float = 0.05

    def __post_init__(self) -> None:
        _check(0.0 < self.stats_momentum <= 1.0, "quantizer.stats_momentum must be in (0, 1]")
        _check(self.mode in ("ema", "loss"), f"quantizer.mode must be 'ema' or 'loss', got {self.mode!r}")
        _check(0.0 < self.decay < 1.0, f"quantizer.decay must be in (0, 1), got {self.decay}")
        _check(self.commitment >= 0, "quantizer.commitment must be >= 0")
        _check(self.init in ("kmeans", "random"), f"quantizer.init must be kmeans|random, got {self.init!r}")
        _check(self.kmeans_iters >= 0, "quantizer.kmeans_iters must be >= 0")
        _check(self.restart_threshold >= 0, "quantizer.restart_threshold must be >= 0")
        _check(self.restart_every >= 1, "quantizer.restart_every must be >= 1")
        _check(self.entropy_weight >= 0, "quantizer.entropy_weight must be >= 0")
        _check(self.entropy_temperature > 0, "quantizer.entropy_temperature must be > 0")
        _check(self.usage_window >= 1, "quantizer.usage_window must be >= 1")


def _default_levels() -> list[LevelConfig]:
    # 16 kHz: hops 80 / 320 / 640 with K = 1024 -> 2000 / 500 / 250 bits/s.
    return [
        LevelConfig(strides=[4, 4, 5], channels=16, max_channels=128, bottleneck_blocks=6),
        LevelConfig(strides=[4, 4, 4, 5], channels=16, max_channels=256, bottleneck_blocks=6),
        LevelConfig(strides=[4, 4, 5, 8], channels=16, max_channels=256, bottleneck_blocks=6),
    ]


@dataclass
class ModelConfig:
    sample_rate: int = 16000
    levels: list[LevelConfig] = field(default_factory=_default_levels)
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)
    speaker_dim: int = 64
    speaker_encoder: bool = False
    speaker_encoder_mix: float = 0.0
    speaker_adversary: float = 0.0
    voice_perturbation: float = 0.0
    # the levels whose encoders hear the perturbed copies (None: every level); a codec level whose
    # decoder takes no speaker must hear the true voice, so it is left out of this list
    voice_perturbation_levels: list[int] | None = None
    time_jitter: float = 0.0
    conversion_level: int = -1
    # levels 1.. encode from level 0's encoder features (their strides must begin with level 0's): the
    # waveform-rate part of the encoders runs once instead of once per level; each level keeps its own
    # deeper encoder, quantiser and decoder and still decodes from its own codes alone
    shared_front: bool = False

    def __post_init__(self) -> None:
        _check(self.sample_rate >= 1000, f"model.sample_rate must be >= 1000, got {self.sample_rate}")
        _check(
            0.0 <= self.voice_perturbation <= 1.0,
            f"model.voice_perturbation must be in [0, 1], got {self.voice_perturbation}",
        )
        _check(0.0 <= self.time_jitter < 1.0, f"model.time_jitter must be in [0, 1), got {self.time_jitter}")
        _check(len(self.levels) >= 1, "model.levels must hold at least one level")
        _check(
            0.0 <= self.speaker_encoder_mix <= 1.0,
            f"model.speaker_encoder_mix must be in [0, 1], got {self.speaker_encoder_mix}",
        )
        _check(
            self.speaker_encoder_mix == 0.0 or self.speaker_encoder,
            "model.speaker_encoder_mix needs model.speaker_encoder=true",
        )
        _check(
            self.speaker_adversary >= 0.0,
            f"model.speaker_adversary must be >= 0, got {self.speaker_adversary}",
        )
        _check(self.speaker_dim >= 0, "model.speaker_dim must be >= 0 (0 = no speaker conditioning)")
        _check(
            not self.speaker_encoder or self.speaker_dim > 0,
            "model.speaker_encoder needs model.speaker_dim > 0",
        )
        n = len(self.levels)
        _check(-n <= self.conversion_level < n, f"model.conversion_level must index one of {n} levels")
        perturbed = self.voice_perturbation_levels
        _check(
            perturbed is None or (len(perturbed) > 0 and all(-n <= i < n for i in perturbed)),
            f"model.voice_perturbation_levels must list some of the {n} levels (0..{n - 1}), got {perturbed}",
        )
        _check(
            self.speaker_dim == 0 or self.levels[self.conversion_level].speaker_conditioned,
            f"model.conversion_level ({self.conversion_level % n}) must be a speaker-conditioned level "
            "(its speaker_conditioned is false)",
        )
        first = self.levels[0].strides
        for i, lv in enumerate(self.levels[1:], start=1):
            _check(
                not self.shared_front or lv.strides[: len(first)] == first,
                f"model.shared_front: the strides of level {i} ({lv.strides}) must begin with level 0's "
                f"({first})",
            )

    @property
    def num_levels(self) -> int:
        return len(self.levels)

    def frame_rate(self, level: int) -> float:
        """Code frames per second at ``level``."""
        return self.sample_rate / self.levels[level].hop

    def bitrate(self, level: int) -> float:
        """Nominal bitrate in bits/s: frame rate * log2(K)."""
        return self.frame_rate(level) * self.levels[level].bits_per_code


def _check_prob(value: float, key: str) -> None:
    _check(0.0 <= value <= 1.0, f"{key} must be in [0, 1], got {value}")


def _check_range(values: list[float], key: str, low: float | None = None, positive: bool = False) -> None:
    """``values`` must be ``[lo, hi]`` with ``lo <= hi`` (and ``lo >= low``, or ``lo > 0``)."""
    _check(
        len(values) == 2 and values[0] <= values[1],
        f"{key} must be [lo, hi] with lo <= hi, got {values}",
    )
    _check(low is None or values[0] >= low, f"{key} must lie in [{low}, ...), got {values}")
    _check(not positive or values[0] > 0, f"{key} must be > 0, got {values}")


@dataclass
class SpeedAugmentConfig:
    """Speed perturbation: each item resampled so that its pitch, formants and tempo all move by a
    factor drawn from ``factors`` (1.1 = 10% higher and 10% faster), then cropped or reflect-padded back
    to its length. The result is another voice (a longer or shorter vocal tract), not a recording
    condition: ``target: clean`` keeps it, and the item no longer counts as its speaker (its decoder
    conditioning comes from the speaker encoder, see :mod:`vqaudio.data.augment`)."""

    prob: float = 0.0
    factors: list[float] = field(default_factory=lambda: [0.85, 0.9, 0.95, 1.05, 1.1, 1.15])

    def __post_init__(self) -> None:
        _check_prob(self.prob, "data.augment.speed.prob")
        _check(len(self.factors) >= 1, "data.augment.speed.factors must hold at least one factor")
        _check(
            all(0.5 <= f < 2.0 for f in self.factors),
            f"data.augment.speed.factors must lie in [0.5, 2), got {self.factors}",
        )


@dataclass
class GainAugmentConfig:
    """Random gain per item, uniform in ``db`` (decibels); peak-normalised where it would clip."""

    prob: float = 0.0
    db: list[float] = field(default_factory=lambda: [-12.0, 6.0])

    def __post_init__(self) -> None:
        _check_prob(self.prob, "data.augment.gain.prob")
        _check_range(self.db, "data.augment.gain.db")


NoiseColor = Literal["white", "pink", "brown"]


@dataclass
class NoiseAugmentConfig:
    """Additive white / pink / brown noise at an SNR (dB, against the item's own power) uniform in
    ``snr_db``; each item draws one of ``colors``."""

    prob: float = 0.0
    snr_db: list[float] = field(default_factory=lambda: [5.0, 40.0])
    colors: list[NoiseColor] = field(default_factory=lambda: ["white", "pink", "brown"])

    def __post_init__(self) -> None:
        _check_prob(self.prob, "data.augment.noise.prob")
        _check_range(self.snr_db, "data.augment.noise.snr_db")
        _check(len(self.colors) >= 1, "data.augment.noise.colors must name at least one colour")
        bad = [c for c in self.colors if c not in ("white", "pink", "brown")]
        _check(not bad, f"data.augment.noise.colors: white|pink|brown, got {bad}")


@dataclass
class ReverbAugmentConfig:
    """Synthetic room reverberation: RT60 (seconds), direct-to-reverberant ratio (dB) and the tail's
    delay after the direct sound (ms), each uniform in its range."""

    prob: float = 0.0
    rt60: list[float] = field(default_factory=lambda: [0.2, 0.8])
    drr_db: list[float] = field(default_factory=lambda: [0.0, 12.0])
    predelay_ms: list[float] = field(default_factory=lambda: [0.0, 10.0])

    def __post_init__(self) -> None:
        _check_prob(self.prob, "data.augment.reverb.prob")
        _check_range(self.rt60, "data.augment.reverb.rt60", positive=True)
        _check(self.rt60[1] <= 10.0, f"data.augment.reverb.rt60 must be <= 10 s, got {self.rt60}")
        _check_range(self.drr_db, "data.augment.reverb.drr_db")
        _check_range(self.predelay_ms, "data.augment.reverb.predelay_ms", low=0.0)


@dataclass
class EqAugmentConfig:
    """Random channel colouring: band-limiting (Butterworth-shaped low- and high-pass with cutoffs in
    ``lowpass_hz`` / ``highpass_hz``; ``null`` turns one off), ``peaks`` peaking bands centred in
    ``peak_hz`` with gains in ``peak_db``, and a low and a high shelf with gains in ``shelf_db``."""

    prob: float = 0.0
    lowpass_hz: list[float] | None = field(default_factory=lambda: [3400.0, 8000.0])
    highpass_hz: list[float] | None = field(default_factory=lambda: [20.0, 300.0])
    peaks: int = 2
    peak_hz: list[float] = field(default_factory=lambda: [100.0, 6000.0])
    peak_db: list[float] = field(default_factory=lambda: [-9.0, 9.0])
    shelf_db: list[float] = field(default_factory=lambda: [-6.0, 6.0])

    def __post_init__(self) -> None:
        _check_prob(self.prob, "data.augment.eq.prob")
        if self.lowpass_hz is not None:
            _check_range(self.lowpass_hz, "data.augment.eq.lowpass_hz", positive=True)
        if self.highpass_hz is not None:
            _check_range(self.highpass_hz, "data.augment.eq.highpass_hz", positive=True)
        if self.lowpass_hz is not None and self.highpass_hz is not None:
            _check(
                self.highpass_hz[1] < self.lowpass_hz[0],
                f"data.augment.eq: highpass_hz {self.highpass_hz} must lie below lowpass_hz "
                f"{self.lowpass_hz}",
            )
        _check(self.peaks >= 0, f"data.augment.eq.peaks must be >= 0, got {self.peaks}")
        _check_range(self.peak_hz, "data.augment.eq.peak_hz", positive=True)
        _check_range(self.peak_db, "data.augment.eq.peak_db")
        _check_range(self.shelf_db, "data.augment.eq.shelf_db")


@dataclass
class AugmentConfig:
    """Training-time augmentation of the model's input (see :mod:`vqaudio.data.augment`); all off by
    default. ``target``: what the model must reconstruct, the ``augmented`` input itself (a codec codes
    what it is given) or the ``clean`` original (denoising / dereverberation)."""

    target: Literal["augmented", "clean"] = "augmented"
    reverb: ReverbAugmentConfig = field(default_factory=ReverbAugmentConfig)
    noise: NoiseAugmentConfig = field(default_factory=NoiseAugmentConfig)
    eq: EqAugmentConfig = field(default_factory=EqAugmentConfig)
    gain: GainAugmentConfig = field(default_factory=GainAugmentConfig)
    speed: SpeedAugmentConfig = field(default_factory=SpeedAugmentConfig)

    def __post_init__(self) -> None:
        _check(
            self.target in ("augmented", "clean"),
            f"data.augment.target must be augmented|clean, got {self.target!r}",
        )

    @property
    def enabled(self) -> bool:
        """Whether any augmentation can fire (some probability above 0)."""
        return any(kind.prob > 0 for kind in (self.speed, self.reverb, self.noise, self.eq, self.gain))


CorpusKind = Literal["vctk", "librispeech", "ljspeech", "folder", "tsv"]
CORPUS_KINDS: tuple[str, ...] = get_args(CorpusKind)
"""The corpus layouts ``data.kind`` names (:func:`vqaudio.data.scan_corpus` reads each)."""


@dataclass
class DataConfig:
    kind: CorpusKind = "folder"
    root: str | None = None
    mic: Literal["mic1", "mic2"] = "mic1"
    segment_seconds: float = 1.0
    batch_size: int = 16
    valid_per_speaker: int = 2
    valid_max_seconds: float = 4.0
    num_workers: int = 2
    preload: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        kinds = ", ".join(CORPUS_KINDS)
        _check(self.kind in CORPUS_KINDS, f"data.kind must be one of {kinds}, got {self.kind!r}")
        _check(self.mic in ("mic1", "mic2"), f"data.mic must be mic1 or mic2, got {self.mic!r}")
        _check(self.segment_seconds > 0, "data.segment_seconds must be > 0")
        _check(self.batch_size >= 1, "data.batch_size must be >= 1")
        _check(self.valid_per_speaker >= 0, "data.valid_per_speaker must be >= 0")
        _check(self.valid_max_seconds > 0, "data.valid_max_seconds must be > 0")
        _check(self.num_workers >= 0, "data.num_workers must be >= 0")


@dataclass
class LossConfig:
    speaker_encoder_weight: float = 1.0
    l1_weight: float = 1.0
    mel_weight: float = 1.0
    stft_weight: float = 1.0
    fft_sizes: list[int] = field(default_factory=lambda: [256, 512, 1024, 2048])
    phase_weight: float = 0.0
    phase_fft_sizes: list[int] = field(default_factory=lambda: [256, 512])
    phase_levels: list[int] | None = None  # levels the phase loss trains; None = every level

    def __post_init__(self) -> None:
        _check(
            min(self.l1_weight, self.mel_weight, self.stft_weight, self.phase_weight) >= 0,
            "loss weights must be >= 0",
        )
        _check(
            len(self.phase_fft_sizes) >= 1 and all(n >= 16 for n in self.phase_fft_sizes),
            "loss.phase_fft_sizes: >= 16",
        )
        _check(
            self.phase_levels is None or all(i >= 0 for i in self.phase_levels),
            "loss.phase_levels: level indices >= 0",
        )
        _check(len(self.fft_sizes) >= 1 and all(n >= 16 for n in self.fft_sizes), "loss.fft_sizes: >= 16")


@dataclass
class AdversarialConfig:
    """Multi-period (HiFi-GAN) + multi-scale STFT (EnCodec) discriminators with feature matching."""

    enabled: bool = False
    start_step: int = 0
    lr: float = 2e-4
    adv_weight: float = 1.0
    feature_weight: float = 2.0
    periods: list[int] = field(default_factory=lambda: [2, 3, 5, 7, 11])
    fft_sizes: list[int] = field(default_factory=lambda: [1024, 512, 256])
    channels: int = 32

    def __post_init__(self) -> None:
        _check(self.start_step >= 0, "adversarial.start_step must be >= 0")
        _check(self.lr > 0, "adversarial.lr must be > 0")
        _check(self.channels >= 1, "adversarial.channels must be >= 1")


@dataclass
class TrainConfig:
    max_steps: int = 100_000
    max_minutes: float = 0.0
    lr: float = 3e-4
    betas: list[float] = field(default_factory=lambda: [0.8, 0.99])
    weight_decay: float = 0.01
    warmup_steps: int = 1000
    # cosine: decay from the end of warm-up on; wsd (warm-up, stable, decay): constant, then a cosine decay
    # over the last decay_fraction of the schedule, which suits short and open-ended budgets
    schedule: Literal["cosine", "constant", "wsd"] = "cosine"
    decay_fraction: float = 0.2
    # "budget": the cosine decay ends at max_minutes if that comes before max_steps (see lr_at)
    schedule_by: Literal["steps", "budget"] = "steps"
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    amp: Literal["auto", "bf16", "off"] = "auto"
    device: str = "auto"
    seed: int = 0
    log_every: int = 50
    eval_every: int = 1000
    save_every: int = 1000
    keep_last: int = 3
    max_bad_steps: int = 10
    audio_examples: int = 2
    threads: int = 0
    compile: bool = False  # torch.compile each level's encoder and decoder (nn.Module.compile)
    # share of each batch that each level trains on (None = every level on every item): a level with a
    # fraction below 1 encodes, decodes and is scored on a slice of the batch only (see level_items)
    level_fraction: list[float] | None = None

    def __post_init__(self) -> None:
        _check(self.max_steps >= 1, "train.max_steps must be >= 1")
        _check(
            self.level_fraction is None or all(0 < f <= 1 for f in self.level_fraction),
            f"train.level_fraction: every value must be in (0, 1], got {self.level_fraction}",
        )
        _check(
            self.schedule_by in ("steps", "budget"),
            f"train.schedule_by: steps|budget, got {self.schedule_by!r}",
        )
        _check(self.max_minutes >= 0, "train.max_minutes must be >= 0 (0 = no time limit)")
        _check(self.lr > 0, "train.lr must be > 0")
        _check(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "train.betas: two values in [0,1)"
        )
        _check(self.warmup_steps >= 0, "train.warmup_steps must be >= 0")
        _check(
            self.schedule in ("cosine", "constant", "wsd"),
            f"train.schedule: cosine|constant|wsd, got {self.schedule!r}",
        )
        _check(0 < self.decay_fraction <= 1, "train.decay_fraction must be in (0, 1]")
        _check(0 <= self.min_lr_ratio <= 1, "train.min_lr_ratio must be in [0, 1]")
        _check(self.grad_clip >= 0, "train.grad_clip must be >= 0 (0 = off)")
        _check(self.amp in ("auto", "bf16", "off"), f"train.amp must be auto|bf16|off, got {self.amp!r}")
        for name in ("log_every", "eval_every", "save_every", "keep_last", "max_bad_steps"):
            _check(getattr(self, name) >= 1, f"train.{name} must be >= 1")
        _check(self.audio_examples >= 0 and self.threads >= 0, "train.audio_examples/threads must be >= 0")


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        n = self.model.num_levels
        levels = self.loss.phase_levels
        _check(
            levels is None or all(i < n for i in levels),
            f"loss.phase_levels: the model has levels 0-{n - 1}, got {levels}",
        )
        fractions = self.train.level_fraction
        _check(
            fractions is None or len(fractions) == n,
            f"train.level_fraction: one value per level ({n}), got {fractions}",
        )
        model = self.model
        conditioned = model.speaker_dim > 0 and any(lv.speaker_conditioned for lv in model.levels)
        _check(
            self.data.augment.speed.prob == 0 or not conditioned or model.speaker_encoder,
            "data.augment.speed makes voices that have no speaker-table entry; speaker-conditioned "
            "decoders then need model.speaker_encoder: true (or model.speaker_dim: 0)",
        )
        nyquist = self.model.sample_rate / 2
        eq = self.data.augment.eq
        bands = {"lowpass_hz": eq.lowpass_hz, "highpass_hz": eq.highpass_hz, "peak_hz": eq.peak_hz}
        for key, band in bands.items():
            _check(
                band is None or band[0] < nyquist,
                f"data.augment.eq.{key}: {band} starts above the Nyquist frequency ({nyquist:g} Hz)",
            )


@dataclass
class PriorConfig:
    """The prior over one level's codes (:class:`vqaudio.prior.CodePrior`); sizes of the codebook, the
    speaker table and the coarser level come from the VQ-VAE it belongs to."""

    level: int = 0
    width: int = 256
    layers: int = 4
    heads: int = 4
    context: int = 512  # positions each layer attends to (sliding window)
    dropout: float = 0.0
    speaker: bool = True  # conditioned on the VQ-VAE's speaker (index; "none" for other voices)
    # share of training examples shown with "none" for their speaker, so that voices the VQ-VAE never
    # heard (held-out voices, users' recordings) get a trained unconditional prior
    speaker_dropout: float = 0.1
    upper: bool = False  # conditioned on level + 1's codes (Jukebox's upsampler prior)

    def __post_init__(self) -> None:
        _check(self.level >= 0, "prior.level must be >= 0")
        _check(
            self.width >= 2 and self.layers >= 1 and self.heads >= 1, "prior.width/layers/heads must be >= 1"
        )
        _check(
            self.width % self.heads == 0 and (self.width // self.heads) % 2 == 0,
            f"prior.width ({self.width}) must split into prior.heads ({self.heads}) heads of an even size",
        )
        _check(self.context >= 1, "prior.context must be >= 1")
        _check(0.0 <= self.dropout < 1.0, "prior.dropout must be in [0, 1)")
        _check(0.0 <= self.speaker_dropout <= 1.0, "prior.speaker_dropout must be in [0, 1]")


@dataclass
class PriorDataConfig:
    """The corpus a prior trains on (encoded once by the VQ-VAE, see :mod:`vqaudio.prior.codes`)."""

    kind: CorpusKind = "folder"
    root: str | None = None
    mic: Literal["mic1", "mic2"] = "mic1"
    batch_size: int = 32
    segment_frames: int = 0  # frames per training example; 0: the prior's context
    valid_per_speaker: int = 2
    # where encoded corpora are kept (None: $XDG_CACHE_HOME/vqaudio/codes, else ~/.cache/vqaudio/codes)
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        kinds = ", ".join(CORPUS_KINDS)
        _check(self.kind in CORPUS_KINDS, f"data.kind must be one of {kinds}, got {self.kind!r}")
        _check(self.batch_size >= 1, "data.batch_size must be >= 1")
        _check(self.segment_frames >= 0, "data.segment_frames must be >= 0 (0 = the prior's context)")
        _check(self.valid_per_speaker >= 0, "data.valid_per_speaker must be >= 0")


@dataclass
class PriorRunConfig:
    """A prior's training run: ``vqaudio prior train RECIPE`` (recipes/prior_*.yaml)."""

    prior: PriorConfig = field(default_factory=PriorConfig)
    data: PriorDataConfig = field(default_factory=PriorDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        _check(
            self.train.level_fraction is None, "train.level_fraction is the codec's; a prior has one level"
        )


# --------------------------------------------------------------------------- dict <-> dataclass


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (recursively building dataclasses)."""
    origin = get_origin(tp)
    if origin is Union or origin is types.UnionType:
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{path}: bad value {value!r}")
    if origin is Literal:
        if value not in get_args(tp):
            choices = ", ".join(repr(a) for a in get_args(tp))
            raise ConfigError(f"{path}: must be one of {choices}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        (item_tp,) = get_args(tp)
        return [_coerce(v, item_tp, f"{path}.{i}") for i, v in enumerate(value)]
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return _build(tp, value, path)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "3e-4" as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{path}: unsupported type {_type_name(tp)}")  # pragma: no cover


def _build(cls: type, data: dict[str, Any], path: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in names]
    if unknown:
        where = f"{path}.{unknown[0]}" if path else str(unknown[0])
        raise ConfigError(f"unknown config key '{where}' (valid keys here: {', '.join(sorted(names))})")
    kwargs = {k: _coerce(v, hints[k], f"{path}.{k}" if path else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as err:
        msg = str(err)
        if path and not msg.startswith((path + ".", path + ":", path.rsplit(".", 1)[-1] + ".")):
            msg = f"{path}: {msg}"
        raise ConfigError(msg) from None


def _from_dict(data: dict[str, Any], cls: type) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping, got {type(data).__name__}")
    return _build(cls, data, "")


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Build a validated :class:`RunConfig` from a (partial) nested mapping."""
    return typing.cast(RunConfig, _from_dict(data, RunConfig))


def prior_config_from_dict(data: dict[str, Any]) -> PriorRunConfig:
    """Build a validated :class:`PriorRunConfig` from a (partial) nested mapping."""
    return typing.cast(PriorRunConfig, _from_dict(data, PriorRunConfig))


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The fully resolved config as plain JSON/YAML-able data."""
    return dataclasses.asdict(cfg)


# --------------------------------------------------------------------------- YAML recipes


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_recipe(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: circular 'base:' chain")
    if not path.is_file():
        raise ConfigError(f"recipe not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        line = getattr(getattr(err, "problem_mark", None), "line", None)
        where = f":{line + 1}" if line is not None else ""
        raise ConfigError(f"{path}{where}: invalid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a YAML mapping")
    base = data.pop("base", None)
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{path}: 'base' must be a path")
        data = _merge(_read_recipe(path.parent / base, (*seen, path)), data)
    return data


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node: Any = data
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        if isinstance(node, list):
            if not key.lstrip("-").isdigit() or not -len(node) <= int(key) < len(node):
                raise ConfigError(f"--set {dotted}: '{key}' is not an index of a list of {len(node)}")
            if last:
                node[int(key)] = value
            else:
                node = node[int(key)]
        else:
            if last:
                node[key] = value
            else:
                node = node.setdefault(key, {})
                if not isinstance(node, (dict, list)):
                    raise ConfigError(f"--set {dotted}: '{key}' is not a mapping")


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` strings (values parsed as YAML) to a nested mapping."""
    out = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key.path=value, got {item!r}")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"--set expects key.path=value, got {item!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        # lists of levels are overridden per item, so expand the defaults first
        if key.startswith("model.levels.") and "levels" not in out.get("model", {}):
            out.setdefault("model", {})["levels"] = config_to_dict(ModelConfig())["levels"]
        _set_path(out, key, value)
    return out


def load_config(recipe: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Defaults <- recipe (with its ``base:`` chain) <- ``overrides``; validated."""
    data = _read_recipe(Path(recipe)) if recipe is not None else {}
    return config_from_dict(apply_overrides(data, overrides or []))


def load_prior_config(recipe: str | Path | None = None, overrides: list[str] | None = None) -> PriorRunConfig:
    """:func:`load_config` for a prior's recipe: a :class:`PriorRunConfig`."""
    data = _read_recipe(Path(recipe)) if recipe is not None else {}
    return prior_config_from_dict(apply_overrides(data, overrides or []))
