"""Wall time of the named parts of training steps, for ``bench/train_speed.py`` (off in normal runs)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["StepTimer"]


class StepTimer:
    """Accumulates seconds per section name; a disabled timer costs one branch per section.

    On CUDA every section boundary synchronises the device (only while enabled), so a section's time
    is the time its kernels took, not the time it took to queue them.
    """

    def __init__(self, device: torch.device, enabled: bool = False) -> None:
        self.device = device
        self.enabled = enabled
        self.seconds: defaultdict[str, float] = defaultdict(float)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        self._sync()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.seconds[name] += time.perf_counter() - t0

    def reset(self) -> None:
        self.seconds.clear()
