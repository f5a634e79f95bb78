"""Which torch device a command or a training run uses (``--device`` / ``train.device``).

A small module of its own, so that inference commands (encode, decode, convert, analyze, ...) need
nothing from :mod:`vqaudio.train`.
"""

from __future__ import annotations

import torch

from vqaudio.errors import UserError

__all__ = ["flush_denormals", "resolve_device"]


def resolve_device(name: str, local_rank: int = 0, option: str = "--device") -> torch.device:
    """``auto`` -> the local CUDA device when there is one, else CPU; ``cuda`` -> ``cuda:local_rank``.

    ``option`` names the setting in errors (``--device`` for commands, ``train.device`` for training).

    Raises:
        UserError: a name torch does not know, or a CUDA device this machine does not have.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise UserError(f"{option} {name!r} is not a device (cpu, cuda, cuda:N or auto)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"{option} is {name} but no CUDA device is available")
        count = torch.cuda.device_count()
        if dev.index is None:
            dev = torch.device("cuda", local_rank % count)
        elif dev.index >= count:
            raise UserError(f"{option} is {name} but this machine has {count} CUDA device(s)")
    elif dev.type not in ("cpu", "mps"):
        raise UserError(f"{option} {name!r} is not a device (cpu, cuda, cuda:N or auto)")
    return dev


def flush_denormals() -> None:
    """Flush subnormal floats to zero in CPU math: subnormal activations made CPU steps and convolutions
    up to 100x slower in a run; flushing them is harmless for these models. Process-wide and idempotent."""
    torch.set_flush_denormal(True)
