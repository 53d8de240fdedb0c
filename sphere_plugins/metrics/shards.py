"""Work split across the processes of a torch.distributed group (what `accelerate launch` starts): process r of
W maps batches r, r + W, r + 2W, ... and every process gets all results back in batch order.

A batch holds the same images whatever W is (batches are cut before they are dealt out), so the gathered
features equal one process's bit for bit on the same hardware and thread count. Every process of the group
must make the same calls, in the same order (each gather is a collective).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import torch

T = TypeVar("T")


def process_group() -> tuple[int, int]:
    """(rank, world size) of the initialized torch.distributed group; (0, 1) when there is none."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def map_sharded(fn: Callable[[Any], T], items: Iterable[Any], distributed: bool) -> list[T]:
    """[fn(item) for item in items], item i mapped by process i % W only and the results gathered in order on
    every process. Every process walks all items, so a stream (batches drawn in turn from one generator) stays
    in step; give items that cost nothing to walk (functions that read a batch) to split the reading too."""
    rank, world = process_group() if distributed else (0, 1)
    mine = [fn(item) for i, item in enumerate(items) if i % world == rank]
    if world == 1:
        return mine
    gathered: list[Any] = [None] * world
    torch.distributed.all_gather_object(gathered, mine)
    count = sum(len(part) for part in gathered)
    return [gathered[i % world][i // world] for i in range(count)]


def from_main(value: T, distributed: bool) -> T:
    """The main process's `value` on every process (so that all take the same branch, e.g. on a cache hit)."""
    rank, world = process_group() if distributed else (0, 1)
    if world == 1:
        return value
    box = [value if rank == 0 else None]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def is_main(distributed: bool) -> bool:
    """Whether this process writes shared files (caches): rank 0, or any process when not `distributed`."""
    return not distributed or process_group()[0] == 0
