"""What a model knows about the checkpoint it was loaded from (``model.checkpoint``).

The type lives with the models, below :mod:`vqaudio.checkpoint`, which fills it in: a model can carry
its metadata without importing the module that reads and writes checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vqaudio.config import RunConfig

__all__ = ["CheckpointMeta"]


@dataclass
class CheckpointMeta:
    """A checkpoint's metadata: schema version, the fully resolved run config, speaker names in index
    order, sample rate, the vqaudio version that wrote it, training step, SHA-256 of the weights, the
    producer's ``extra`` record, the entropy coder's frequency table of each level (serialised, as the
    producer handed them over; may be empty) and what the corpus says about each speaker."""

    schema: int
    config: RunConfig
    speakers: list[str]
    sample_rate: int
    version: str
    step: int
    weights_sha256: str
    extra: dict[str, Any]
    code_tables: dict[int, bytes]
    speaker_info: dict[str, dict[str, str | None]]
