"""vqaudio: neural audio coding and voice conversion with hierarchical VQ-VAEs.

Quick use::

    import vqaudio
    model = vqaudio.load_model()                       # the shipped model ($VQAUDIO_MODEL overrides)
    model = vqaudio.load_model("runs/vctk")          # a checkpoint, a run directory or a shipped name
    codes = model.encode(wav, level=1)                 # wav: [T], [B, T] or [B, 1, T] at model.sample_rate
    out = model.decode(codes, level=1, speaker="p226") # [B, 1, T]

The top-level names are imported lazily, so ``import vqaudio.codec.bitstream`` (which needs only
numpy) does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vqaudio._lazy import lazy_exports
from vqaudio._version import __version__

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "vqaudio.checkpoint": ("load_model", "read_checkpoint", "save_checkpoint"),
        "vqaudio.codec.compress": ("compress", "decompress"),
        "vqaudio.config": ("RunConfig", "load_config"),
        "vqaudio.models": ("VQVAE", "Codes", "build_model"),
        "vqaudio.pretrained": ("available_models",),
    },
)

if TYPE_CHECKING:
    from vqaudio.checkpoint import load_model, read_checkpoint, save_checkpoint
    from vqaudio.codec.compress import compress, decompress
    from vqaudio.config import RunConfig, load_config
    from vqaudio.models import VQVAE, Codes, build_model
    from vqaudio.pretrained import available_models


__all__ = [
    "Codes",
    "RunConfig",
    "VQVAE",
    "__version__",
    "available_models",
    "build_model",
    "compress",
    "decompress",
    "load_config",
    "load_model",
    "read_checkpoint",
    "save_checkpoint",
]
