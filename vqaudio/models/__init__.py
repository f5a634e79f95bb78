"""Model building blocks and the hierarchical VQ-VAE."""

from vqaudio.models.blocks import Downsample, GatedResBlock, ResidualStack, Upsample
from vqaudio.models.decoder import Decoder
from vqaudio.models.encoder import Encoder
from vqaudio.models.meta import CheckpointMeta
from vqaudio.models.vqvae import (
    VQVAE,
    Codes,
    LevelModel,
    ReceptiveField,
    VQVAEOutput,
    as_batch,
    build_model,
)

__all__ = [
    "CheckpointMeta",
    "Codes",
    "Decoder",
    "Downsample",
    "Encoder",
    "GatedResBlock",
    "LevelModel",
    "ReceptiveField",
    "ResidualStack",
    "Upsample",
    "VQVAE",
    "VQVAEOutput",
    "as_batch",
    "build_model",
]
