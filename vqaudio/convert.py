"""Voice conversion: encode with one level's codes (the words), decode with another speaker (the voice).

The VQ-VAE paper's speaker conversion (van den Oord et al., 2017, sec. 4.3): codes carry content,
the decoder's speaker conditioning supplies the voice.  The default level is the checkpoint's
``model.conversion_level`` (the tightest, most speaker-free level unless configured otherwise).
Outputs keep the input's sample rate and exact length and never exceed [-1, 1].
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from vqaudio.audio import AudioSource, output_format, write_blocks
from vqaudio.codec.compress import round_trip
from vqaudio.errors import UserError
from vqaudio.models import VQVAE

__all__ = ["conversion_level", "convert", "convert_file"]


def conversion_level(model: VQVAE) -> int:
    """The level a checkpoint marks for conversion (``model.conversion_level``), as an index."""
    return model.config.conversion_level % model.num_levels


def _checked_level(model: VQVAE, speaker: str | int | torch.Tensor, level: int | None) -> int:
    """The level to convert at (default :func:`conversion_level`), refused when it takes no speaker;
    unknown speaker names fail here, before any work, with close matches."""
    if not isinstance(speaker, torch.Tensor):
        model.speaker_index(speaker)
    lv = conversion_level(model) if level is None else model.check_level(level)
    if not model.level_model(lv).conditioned:
        raise UserError(
            f"level {lv} takes no speaker (speaker_conditioned: false), so it cannot convert; "
            f"use level {conversion_level(model)}"
        )
    return lv


def convert_file(
    model: VQVAE,
    source: str | Path | BinaryIO,
    target: str | Path | BinaryIO,
    speaker: str | int | torch.Tensor,
    level: int | None = None,
    chunk_seconds: float = 10.0,
) -> None:
    """Convert an audio file to ``speaker``'s voice (streaming, bounded memory; path targets atomic),
    at the file's rate and length (16-bit WAV/FLAC or Vorbis, by the target's extension).

    ``speaker`` is a training speaker (name or index) or an embedding ``[speaker_dim]`` from
    :meth:`VQVAE.embed_reference` or an enrolled voice (:mod:`vqaudio.voices`).
    """
    lv = _checked_level(model, speaker, level)
    if isinstance(target, (str, Path)):
        output_format(Path(target))  # so does an output format we cannot write
    src = AudioSource.read(source, model.sample_rate)
    write_blocks(round_trip(model, src, lv, speaker, chunk_seconds), target, src.sample_rate)


def convert(
    model: VQVAE,
    wav: np.ndarray | torch.Tensor,
    sample_rate: int,
    speaker: str | int | torch.Tensor,
    level: int | None = None,
    chunk_seconds: float = 10.0,
) -> np.ndarray:
    """Audio ``[T]`` (or ``[C, T]``, downmixed) at ``sample_rate`` -> ``[T]`` float32 in [-1, 1] in
    ``speaker``'s voice, at the same rate and length, not quantised: the level's codes
    (:func:`~vqaudio.codec.compress.encode_audio`) decoded in that voice."""
    lv = _checked_level(model, speaker, level)
    src = AudioSource.of_array(wav, sample_rate, model.sample_rate)
    return np.concatenate(list(round_trip(model, src, lv, speaker, chunk_seconds)))
