"""Time one training step (forward, backward, Adam update) of several objectives on one architecture.

Steps of the objectives are interleaved round by round, so drifts in machine load hit every objective
alike; the report is the median per objective and its ratio to a reference. Run as
`python -m sphere_plugins.training.speed [--device cuda] [--repeats 50] [--json PATH]`.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from sphere_plugins.timing import interleaved_times
from sphere_plugins.training.objectives import conv_objective


def step_times(objectives: dict[str, nn.Module], batch: Tensor, repeats: int = 30, warmup: int = 5,
               lr: float = 1e-3) -> dict[str, list[float]]:
    """Seconds per training step of each objective on `batch`, timed round-robin (sphere_plugins.timing)."""
    optimizers = {name: torch.optim.Adam(obj.parameters(), lr=lr) for name, obj in objectives.items()}

    def step(name: str) -> Callable[[], None]:
        def run() -> None:
            loss, _ = objectives[name](batch)
            loss.backward()
            optimizers[name].step()
            optimizers[name].zero_grad(set_to_none=True)
        return run

    return interleaved_times({name: step(name) for name in objectives}, repeats, device=batch.device,
                             warmup=warmup, min_seconds=0)


def compare_step_times(kinds: Sequence[str] = ("sae", "vae", "svae", "ae"), reference: str = "vae",
                       batch_size: int = 64, resolution: int = 16, z_dim: int = 10, width: int = 32,
                       repeats: int = 30, warmup: int = 5, device: str = "cpu", seed: int = 0) -> dict[str, Any]:
    """Median step time of each objective on the built-in conv architecture and its ratio to `reference`.

    A second, identical copy of the reference ("<reference> again") is timed too: its ratio is the noise
    floor, how far two measurements of the same work drift apart in this run.
    """
    if reference not in kinds:
        raise ValueError(f"reference must be one of kinds {list(kinds)}, got {reference!r}")
    torch.manual_seed(seed)
    target = torch.device(device)
    objectives = {k: conv_objective(k, resolution=resolution, z_dim=z_dim, width=width).to(target) for k in kinds}
    objectives[f"{reference} again"] = copy.deepcopy(objectives[reference])
    batch = torch.rand(batch_size, 1, resolution, resolution, device=target) * 2 - 1
    times = step_times(objectives, batch, repeats=repeats, warmup=warmup)
    medians = {k: statistics.median(v) for k, v in times.items()}
    return {
        "device": str(target), "batch_size": batch_size, "resolution": resolution, "z_dim": z_dim, "width": width,
        "repeats": repeats, "threads": torch.get_num_threads(), "reference": reference,
        "median_ms": {k: 1e3 * v for k, v in medians.items()},
        "ratio_to_reference": {k: v / medians[reference] for k, v in medians.items()},
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--z-dim", type=int, default=10)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--json", default=None, help="also write the result to this JSON file")
    args = parser.parse_args(argv)
    result = compare_step_times(batch_size=args.batch_size, resolution=args.resolution, z_dim=args.z_dim,
                                width=args.width, repeats=args.repeats, device=args.device)
    print(f"step time, median of {result['repeats']} interleaved repeats ({result['device']}, "
          f"{result['threads']} threads, batch {result['batch_size']}, {result['resolution']}px, z {result['z_dim']})")
    print("| objective | ms/step | ratio to VAE |\n|---|---|---|")
    for kind, ms in result["median_ms"].items():
        print(f"| {kind} | {ms:.3f} | {result['ratio_to_reference'][kind]:.3f} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
