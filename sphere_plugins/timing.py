"""Interleaved timing: every variant is timed once per round, in an order that rotates from round to round,
so drifts in machine load hit all variants alike and no variant always runs first or right after another."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import torch


def synchronize(device: str | torch.device) -> None:
    """Wait for queued GPU work (timings of asynchronous kernels are meaningless without it)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(torch.device(device))


def _seconds(fn: Callable[[], object], number: int, device: str | torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    for _ in range(number):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / number


def interleaved_times(variants: dict[str, Callable[[], object]], repeats: int, device: str | torch.device = "cpu",
                      warmup: int = 3, min_seconds: float = 2e-3) -> dict[str, list[float]]:
    """Seconds per call of each variant over `repeats` timed rounds, after `warmup` untimed ones.

    With min_seconds > 0 each timing spans enough calls to last about that long (the same count for all,
    chosen from the slowest variant); min_seconds=0 times single calls (e.g. training steps).
    """
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive int, got {repeats!r}")
    names = list(variants)

    def order(round_index: int) -> list[str]:
        shift = round_index % len(names)
        return names[shift:] + names[:shift]

    for round_index in range(warmup):
        for name in order(round_index):
            variants[name]()
    number = 1
    if min_seconds > 0:
        slowest = max(_seconds(fn, 1, device) for fn in variants.values())
        number = max(1, math.ceil(min_seconds / max(slowest, 1e-9)))
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_index in range(warmup, warmup + repeats):
        for name in order(round_index):
            times[name].append(_seconds(variants[name], number, device))
    return times


def median_ratio(times: dict[str, list[float]], numerator: str, denominator: str) -> float:
    """Median of `numerator`'s times over the median of `denominator`'s."""
    return statistics.median(times[numerator]) / statistics.median(times[denominator])
