"""Benchmark options, the error type the CLI turns into a one-line message, and small shared helpers."""

from __future__ import annotations

import hashlib
import importlib.util
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from sphere_plugins.plugins import get_plugin_manager

SCALES = ("quick", "standard", "paper")
# The data of the default run, and the built-in set of the one-minute smoke run.
DEFAULT_DATA = "fashion-mnist"
SMOKE_DATA = "digits"
# The paper's four sampling priors (each at its registered defaults), in the order its tables list them.
PRIORS = ("normal", "uniform", "poisson", "chi2")
# Far above the paper scale (32x32 images, 20000 steps, 10000 samples), far below what exhausts a machine.
UPPER_BOUNDS = {"steps": 10_000_000, "rounds": 100_000, "n_samples": 1_000_000, "resolution": 1024}


class BenchmarkError(Exception):
    """Bad input or a missing prerequisite: the CLI prints the message on one line and exits non-zero."""


@dataclass
class Options:
    """Everything a run was asked to do; suites read the fields that matter to them."""

    suites: list[str] = field(default_factory=list)
    device: str = "cpu"
    data: str = DEFAULT_DATA
    model: str | None = None
    steps: int | None = None
    rounds: int | None = None
    n_samples: int | None = None
    seed: int = 0
    scale: str = "quick"
    out: Path = Path("results")
    resolution: int | None = None
    time_budget: float | None = None
    shard: tuple[int, int] | None = None
    command: str = ""

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.scale not in SCALES:
            raise BenchmarkError(f"--scale must be one of {', '.join(SCALES)}, got {self.scale!r}")
        for name in ("steps", "rounds", "n_samples", "resolution"):
            value = getattr(self, name)
            bound = UPPER_BOUNDS.get(name)
            if value is not None and (type(value) is not int or value < 1 or (bound is not None and value > bound)):
                limit = f" <= {bound}" if bound is not None else ""
                raise BenchmarkError(f"--{name.replace('_', '-')} must be a positive integer{limit}, got {value!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise BenchmarkError(f"--seed must be a non-negative integer, got {self.seed!r}")
        if self.time_budget is not None and not (isinstance(self.time_budget, (int, float))
                                                 and 0 <= self.time_budget < math.inf):
            raise BenchmarkError(f"--time-budget must be a number of seconds >= 0 (0: report only what is cached), "
                                 f"got {self.time_budget!r}")
        if self.shard is not None:
            index, count = self.shard
            if not (type(index) is int and type(count) is int and 0 <= index < count):
                raise BenchmarkError(f"--shard must be I/N with 0 <= I < N, got {index}/{count}")
        if self.resolution is not None and self.resolution & (self.resolution - 1):
            raise BenchmarkError(f"--resolution must be a power of two (the networks halve it), got {self.resolution}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready options (paths as strings)."""
        values = asdict(self)
        values["out"] = str(self.out)
        values["shard"] = None if self.shard is None else list(self.shard)
        return values


def pick(options: Options, presets: dict[str, Any], smoke: dict[str, Any] | None = None, **overrides: Any) -> Any:
    """The preset of the run's scale (each suite's frozen Preset dataclass), with `smoke` on top for a quick
    run on the digits (the one-minute smoke run), then the command-line values that were given (not None)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if smoke and options.scale == "quick" and options.data == SMOKE_DATA:
        given = {**smoke, **given}
    return replace(presets[options.scale], **given)


def mixed_precision(device: str) -> str:
    """The training loop's precision setting for a device: bf16 on a GPU, none on the CPU."""
    import torch

    return "bf16" if torch.device(device).type == "cuda" else "no"


def progress(iterable: Any, desc: str, total: int | None = None) -> Any:
    """A tqdm progress bar over `iterable`, shown by the main process only (all processes share the metrics)."""
    from tqdm.auto import tqdm

    from sphere_plugins.metrics.shards import process_group

    return tqdm(iterable, desc=desc, total=total, mininterval=2.0, dynamic_ncols=True, leave=False,
                disable=process_group()[0] != 0)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 4) -> str:
    """A GitHub Markdown table; floats keep `digits` significant digits."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            if math.isnan(value):
                return "n/a"
            return f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.{digits - 1}e}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def code_fingerprint(packages: Sequence[str] | None = None) -> str:
    """A short hash of the Python sources of `packages` (default: the core, every loaded plugin's package and the
    benchmarks): timings cached under it are measured again after any change to the code they time or to the
    suite that times it."""
    if packages is None:
        modules = [plugin.__name__ if isinstance(plugin, ModuleType) else type(plugin).__module__
                   for _, plugin in get_plugin_manager().list_name_plugin()]
        plugin_packages = sorted({name.split(".")[0] for name in modules} - {"sphere_plugins"})
        packages = ("sphere_plugins", *plugin_packages, "benchmarks")
    digest = hashlib.sha256()
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            digest.update(f"{name}: absent".encode())
            continue
        for root in spec.submodule_search_locations:
            for path in sorted(Path(root).rglob("*.py")):
                digest.update(path.relative_to(root).as_posix().encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
