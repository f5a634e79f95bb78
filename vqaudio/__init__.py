"""vqaudio: neural audio coding and voice conversion with hierarchical VQ-VAEs.

Quick use::

    import vqaudio
    model = vqaudio.load_model("runs/vctk")          # a checkpoint or a run directory
    codes = model.encode(wav, level=1)                 # wav: [T], [B, T] or [B, 1, T] at model.sample_rate
    out = model.decode(codes, level=1, speaker="p226") # [B, 1, T]
"""

from __future__ import annotations

__version__ = "0.1.0"

from vqaudio.checkpoint import load_model, read_checkpoint, save_checkpoint  # noqa: E402
from vqaudio.config import RunConfig, load_config  # noqa: E402
from vqaudio.models import VQVAE, Codes, build_model  # noqa: E402

__all__ = ["Codes", "RunConfig", "VQVAE", "__version__", "build_model", "load_config", "load_model",
           "read_checkpoint", "save_checkpoint"]
