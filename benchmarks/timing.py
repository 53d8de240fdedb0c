"""Interleaved timing: every variant is measured once per round, so machine-load drifts hit all alike."""

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


def _seconds(fn: Callable[[], object], number: int, device: str) -> float:
    synchronize(device)
    start = time.perf_counter()
    for _ in range(number):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / number


def interleaved_times(variants: dict[str, Callable[[], object]], repeats: int, device: str = "cpu",
                      warmup: int = 3, min_seconds: float = 2e-3) -> dict[str, list[float]]:
    """Seconds per call of each variant: `repeats` rounds, each timing every variant over enough calls to
    last about `min_seconds` (the same call count for all, chosen from the slowest). The order of the
    variants rotates from round to round, so no variant always runs first or right after another."""
    if repeats < 1:
        raise ValueError(f"repeats must be a positive int, got {repeats!r}")
    for _ in range(warmup):
        for fn in variants.values():
            fn()
    slowest = max(_seconds(fn, 1, device) for fn in variants.values())
    number = max(1, math.ceil(min_seconds / max(slowest, 1e-9)))
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(_seconds(variants[name], number, device))
    return times


def median_ratio(times: dict[str, list[float]], numerator: str, denominator: str) -> float:
    """Median of `numerator`'s times over the median of `denominator`'s."""
    return statistics.median(times[numerator]) / statistics.median(times[denominator])
