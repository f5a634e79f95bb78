"""torchrun / DDP plumbing: one process per device, NCCL on CUDA and gloo on CPU."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar, cast

import torch
import torch.distributed as dist

from vqaudio.device import resolve_device
from vqaudio.errors import TrainingError

__all__ = [
    "DistInfo",
    "init_distributed",
    "cleanup_distributed",
    "resolve_device",
    "all_reduce_flag",
    "all_reduce_max",
    "main_rank_first",
]

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_name: str) -> tuple[DistInfo, torch.device]:
    """Join the process group that torchrun describes in the environment (no-op when alone)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local, option="train.device")
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, local, world), device


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_flag(flag: bool, device: torch.device, op: str = "max") -> bool:
    """Agree on a boolean across ranks (``max`` = any rank, ``min`` = every rank)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.MIN)
    return bool(t.item() > 0.5)


def all_reduce_max(value: float, device: torch.device) -> float:
    """The largest of every rank's ``value`` (the value itself when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    t = torch.tensor([value], dtype=torch.float64 if device.type == "cpu" else torch.float32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def main_rank_first(work: Callable[[], T], what: str, hours: float = 6.0) -> T:
    """``work()`` on rank 0 first, then on the other ranks (which find what it left, e.g. a cache file).

    The others wait on a gloo group of its own whose timeout is ``hours`` (a one-off job such as encoding
    a corpus can outlast NCCL's 10-minute default), and stop with an error naming ``what`` when rank 0's
    ``work`` failed, rather than waiting for it forever. Alone: just ``work()``."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return work()
    group = cast(dist.ProcessGroup, dist.new_group(backend="gloo", timeout=timedelta(hours=hours)))
    ok = torch.ones(1)
    if dist.get_rank() == 0:
        try:
            result = work()
        except BaseException:
            dist.all_reduce(ok.zero_(), op=dist.ReduceOp.MIN, group=group)
            raise
        dist.all_reduce(ok, op=dist.ReduceOp.MIN, group=group)
        return result
    dist.all_reduce(ok, op=dist.ReduceOp.MIN, group=group)
    if ok.item() < 0.5:
        raise TrainingError(f"rank 0 failed while {what} (its error is above); this rank stops too")
    return work()
