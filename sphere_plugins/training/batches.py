"""Deterministic, sharded batch order over an in-memory image set: each process sees its own slice.

Every epoch shuffles all indices with a generator seeded by seed + epoch (the same permutation in every
process), drops the tail that does not divide by the number of processes, and gives process r the
entries r, r + P, r + 2P, ... Batches run on across epoch boundaries, so the state is two integers.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

_MAX_TORCH_SEED = 2**63  # torch.Generator.manual_seed takes less than 2**64; seed + epoch stays far below


class ShardedBatches:
    """Yield index batches for one process; `state()` / `load_state()` make the order resumable."""

    def __init__(self, n: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        if not isinstance(world_size, int) or world_size < 1:
            raise ValueError(f"world_size must be a positive int, got {world_size!r}")
        if not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"rank must be an int in [0, {world_size}), got {rank!r}")
        if not isinstance(n, int) or n < world_size:
            raise ValueError(f"the data set must hold at least one image per process ({world_size}), got {n!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.n, self.batch_size, self.seed = n, batch_size, int(seed)
        self.rank, self.world_size = rank, world_size
        self.epoch, self.offset = 0, 0
        self._shard: Tensor | None = None

    def shard(self, epoch: int) -> Tensor:
        """This process's indices for `epoch`, in order."""
        generator = torch.Generator().manual_seed(self.seed + epoch)
        order = torch.randperm(self.n, generator=generator)
        usable = (self.n // self.world_size) * self.world_size
        return order[:usable][self.rank::self.world_size]

    def next_indices(self) -> Tensor:
        """The next `batch_size` indices of this process's stream (crossing into the next epoch if needed)."""
        parts, needed = [], self.batch_size
        while needed:
            if self._shard is None:
                self._shard = self.shard(self.epoch)
            take = self._shard[self.offset:self.offset + needed]
            assert take.numel(), "the offset lies past the shard (load_state refuses such a state)"
            parts.append(take)
            needed -= take.numel()
            self.offset += take.numel()
            if self.offset == self._shard.numel():
                self.epoch, self.offset, self._shard = self.epoch + 1, 0, None
        return torch.cat(parts)

    def state(self) -> dict[str, Any]:
        """Everything needed to continue the stream exactly (JSON-serializable)."""
        return {"epoch": self.epoch, "offset": self.offset, "seed": self.seed, "n": self.n,
                "batch_size": self.batch_size, "world_size": self.world_size}

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from a `state()`; ValueError unless it is a position in this stream (same n and world_size,
        an offset inside one epoch's shard), so a crafted state cannot stall next_indices."""
        if state["n"] != self.n or state["world_size"] != self.world_size:
            raise ValueError(
                f"the saved data order is for {state['n']} images on {state['world_size']} processes; this run has "
                f"{self.n} images on {self.world_size} processes"
            )
        self.epoch = self.checked_epoch(state["epoch"])
        per_epoch = self.n // self.world_size
        if type(state["offset"]) is not int or not 0 <= state["offset"] < per_epoch:
            raise ValueError(f"the saved data order's offset {state['offset']!r} lies outside an epoch of this "
                             f"process's {per_epoch} images")
        self.offset, self._shard = state["offset"], None

    def checked_epoch(self, epoch: Any) -> int:
        """`epoch` if it is one this stream can seed (seed + epoch fits a torch seed), else ValueError."""
        if type(epoch) is not int or not 0 <= epoch < _MAX_TORCH_SEED - self.seed:
            raise ValueError(
                f"the saved data order's epoch {epoch!r} is not an int in [0, {_MAX_TORCH_SEED - self.seed})")
        return epoch
