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

import importlib
from typing import TYPE_CHECKING, Any

from vqaudio._version import __version__

_LAZY = {
    "available_models": "vqaudio.pretrained",
    "load_model": "vqaudio.checkpoint",
    "read_checkpoint": "vqaudio.checkpoint",
    "save_checkpoint": "vqaudio.checkpoint",
    "RunConfig": "vqaudio.config",
    "load_config": "vqaudio.config",
    "VQVAE": "vqaudio.models",
    "Codes": "vqaudio.models",
    "build_model": "vqaudio.models",
    "compress": "vqaudio.codec.compress",
    "decompress": "vqaudio.codec.compress",
}

if TYPE_CHECKING:
    from vqaudio.checkpoint import load_model, read_checkpoint, save_checkpoint
    from vqaudio.codec.compress import compress, decompress
    from vqaudio.config import RunConfig, load_config
    from vqaudio.models import VQVAE, Codes, build_model
    from vqaudio.pretrained import available_models


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vqaudio' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


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
