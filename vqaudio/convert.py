"""Voice conversion: encode with one level's codes (the words), decode with another speaker (the voice).

The VQ-VAE paper's speaker conversion (van den Oord et al., 2017, sec. 4.3): codes carry content,
the decoder's speaker conditioning supplies the voice.  The default level is the checkpoint's
``model.conversion_level`` (the tightest, most speaker-free level unless configured otherwise).
Outputs keep the input's sample rate and exact length and never exceed [-1, 1].
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import torch

from vqaudio.codec.compress import decode_file, encode_file, output_format
from vqaudio.errors import UserError
from vqaudio.models import VQVAE

__all__ = ["conversion_level", "convert", "convert_file"]


def conversion_level(model: VQVAE) -> int:
    """The level a checkpoint marks for conversion (``model.conversion_level``), as an index."""
    return model.config.conversion_level % model.num_levels


def convert_file(
    model: VQVAE,
    source: str | Path | BinaryIO,
    target: str | Path | BinaryIO,
    speaker: str | int | torch.Tensor,
    level: int | None = None,
    chunk_seconds: float = 10.0,
) -> None:
    """Convert an audio file to ``speaker``'s voice (streaming, bounded memory; path targets atomic).

    ``speaker`` is a training speaker (name or index) or an embedding ``[speaker_dim]`` from
    :meth:`VQVAE.embed_reference` or an enrolled voice (:mod:`vqaudio.voices`).
    """
    if not isinstance(speaker, torch.Tensor):
        model.speaker_index(speaker)  # unknown names fail before any work, with close matches
    if isinstance(target, (str, Path)):
        output_format(Path(target))  # so does an output format we cannot write
    lv = conversion_level(model) if level is None else level
    if -model.num_levels <= lv < model.num_levels and not model.levels[lv].conditioned:
        raise UserError(
            f"level {lv % model.num_levels} takes no speaker (speaker_conditioned: false), so it cannot "
            f"convert; use level {conversion_level(model)}"
        )
    codes = io.BytesIO()
    encode_file(model, source, codes, [lv], chunk_seconds=chunk_seconds)
    codes.seek(0)
    decode_file(model, codes, target, lv, speaker, sample_rate=0)


@torch.no_grad()
def convert(
    model: VQVAE,
    wav: np.ndarray | torch.Tensor,
    sample_rate: int,
    speaker: str | int | torch.Tensor,
    level: int | None = None,
) -> np.ndarray:
    """Audio ``[T]`` (or ``[C, T]``, downmixed) at ``sample_rate`` -> ``[T']`` float32 in ``speaker``'s voice,
    at the same rate and length as the input."""
    x = wav.detach().cpu().float().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav, np.float32)
    x = x.T if x.ndim == 2 else x
    src, out = io.BytesIO(), io.BytesIO()
    sf.write(src, x, sample_rate, format="WAV", subtype="FLOAT")
    src.seek(0)
    convert_file(model, src, out, speaker, level)
    out.seek(0)
    y, _ = sf.read(out, dtype="float32")
    return y
