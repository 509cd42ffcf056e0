"""torchrun support: joining the job, rank and world size, and running a map over items
split between the ranks. Outside torchrun every function is the plain single-process one."""

from __future__ import annotations

import os
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def init_distributed(device: str) -> str | None:
    """Join the torch.distributed job torchrun started (gloo on CPU; NCCL on GPUs, one GPU
    per local rank). Returns the device this rank uses, or None when not under torchrun."""
    from datetime import timedelta

    import torch

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or torch.distributed.is_initialized():
        return None
    # A long timeout: ranks that finish their shards wait at a barrier for the slowest one.
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = f"cuda:{local}"
        torch.cuda.set_device(local)
        torch.distributed.init_process_group(backend="nccl", timeout=timedelta(hours=6),
                                             device_id=torch.device(device))
    else:
        torch.distributed.init_process_group(backend="gloo", timeout=timedelta(hours=6))
    return device


def dist_rank_world() -> tuple[int, int]:
    """(rank, world size) of the torch.distributed job, (0, 1) outside one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def dist_barrier() -> None:
    import torch.distributed as dist

    if dist_rank_world()[1] > 1:
        dist.barrier()


def broadcast(value):
    """Rank 0's `value` on every rank (the value itself outside torchrun)."""
    import torch.distributed as dist

    if dist_rank_world()[1] == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def split_map(fn: Callable[[list[T]], list[R]], items: Sequence[T]) -> list[R]:
    """fn(items) computed in parts: rank r of W takes the r-th of W contiguous slices, and every
    rank gets the whole result in order. Every rank must call it with the same items."""
    rank, world = dist_rank_world()
    items = list(items)
    if world == 1:
        return fn(items)
    import torch.distributed as dist

    bounds = [len(items) * r // world for r in range(world + 1)]
    mine = fn(items[bounds[rank]:bounds[rank + 1]]) if bounds[rank] < bounds[rank + 1] else []
    parts: list = [None] * world
    dist.all_gather_object(parts, mine)
    return [x for part in parts for x in part]
