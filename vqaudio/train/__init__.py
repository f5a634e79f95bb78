"""Training: the loop, losses, discriminators, run directories and DDP plumbing."""

from __future__ import annotations

from vqaudio.train.discriminators import (
    CombinedDiscriminator,
    DiscriminatorOutput,
    MultiPeriodDiscriminator,
    MultiScaleSTFTDiscriminator,
)
from vqaudio.train.losses import (
    MultiResolutionMelLoss,
    PhaseLoss,
    discriminator_loss,
    feature_matching_loss,
    generator_adv_loss,
    mel_distance,
)
from vqaudio.train.rundir import RunDir
from vqaudio.train.trainer import TrainingError, TrainResult, level_items, lr_at, train

__all__ = [
    "CombinedDiscriminator",
    "DiscriminatorOutput",
    "MultiPeriodDiscriminator",
    "MultiResolutionMelLoss",
    "MultiScaleSTFTDiscriminator",
    "PhaseLoss",
    "RunDir",
    "TrainResult",
    "TrainingError",
    "discriminator_loss",
    "feature_matching_loss",
    "generator_adv_loss",
    "level_items",
    "lr_at",
    "mel_distance",
    "train",
]
