"""One suite's run: where it writes, its cache of finished parts, and the records, tables, figures and
target checks that end up in results/<suite>/results.json, table.md and the report."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import Options
from sphere_plugins.checkpoint import latest_checkpoint, load_checkpoint
from sphere_plugins.files import atomic_path
from sphere_plugins.metrics.record import MetricRecord, library_versions

# Bump when a change makes earlier cached parts wrong; it is part of every cache key.
CACHE_VERSION = 1
RESULTS_FILE = "results.json"
TABLE_FILE = "table.md"


class Processes:
    """The process group of an `accelerate launch` run (or a single process): rank and barrier."""

    def __init__(self, device: str = "cpu") -> None:
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self._state = None
        if self.world_size > 1:
            import torch
            from accelerate import PartialState

            # Without cpu=True, accelerate on a machine with no GPU quietly runs every process as its own main.
            self._state = PartialState(cpu=torch.device(device).type == "cpu")
            if self._state.num_processes != self.world_size:
                raise RuntimeError(f"accelerate formed a group of {self._state.num_processes} processes, but "
                                   f"WORLD_SIZE is {self.world_size}")

    @property
    def is_main(self) -> bool:
        """Only the main process writes results, caches and figures."""
        return self._state is None or self._state.is_main_process

    def barrier(self) -> None:
        """Wait for every process (a no-op in a single process)."""
        if self._state is not None:
            self._state.wait_for_everyone()


def key_digest(key: dict[str, Any]) -> str:
    """A short stable hash of a JSON-able cache key."""
    text = json.dumps({"cache_version": CACHE_VERSION, **key}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def write_json(path: Path, value: Any) -> None:
    """Write JSON atomically (a temporary file renamed into place)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(value, indent=1, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return value.as_posix()
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


@dataclass
class Figure:
    """A figure file (relative to the suite's folder) and what it shows."""

    file: str
    caption: str


class Context:
    """What a suite uses to cache parts and record its outputs; `write()` saves them."""

    def __init__(self, options: Options, suite: str, description: str, processes: Processes | None = None):
        self.options = options
        self.suite = suite
        self.description = description
        self.processes = processes or Processes(options.device)
        self.dir = options.out / suite
        self.cache_dir = options.out / "cache"
        self.versions = library_versions()
        self.records: list[dict[str, Any]] = []
        self.tables: list[dict[str, str]] = []
        self.figures: list[Figure] = []
        self.targets: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.headlines: list[str] = []
        self.parts: dict[str, dict[str, Any]] = {}
        self.started = time.time()
        if self.is_main:
            self.dir.mkdir(parents=True, exist_ok=True)

    @property
    def is_main(self) -> bool:
        return self.processes.is_main

    @property
    def device(self) -> str:
        return self.options.device

    def model_spec(self, schemes: tuple[str, ...]) -> str | None:
        """--model when this suite takes its scheme; otherwise None (the suite uses its own model) and a note."""
        spec = self.options.model
        if spec is None:
            return None
        if spec.partition(":")[0] in schemes:
            return spec
        self.note(f"--model {spec} is not used here (this suite takes {', '.join(schemes) or 'no'} models); "
                  "it ran with its own model")
        return None

    # caching -----------------------------------------------------------------------------------------
    def cache_path(self, name: str, key: dict[str, Any], suffix: str = ".json") -> Path:
        """Where the part `name` computed with `key` is kept (a file, or a folder when suffix is '')."""
        return self.cache_dir / self.suite / f"{name}-{key_digest({'suite': self.suite, 'part': name, **key})}{suffix}"

    def cached(self, name: str, key: dict[str, Any], compute: Callable[[], Any]) -> Any:
        """The JSON value of part `name` for `key`: read from the cache, else computed and stored."""
        path = self.cache_path(name, key)
        if path.is_file():
            try:
                stored = json.loads(path.read_text())
                if stored["key"] == json.loads(json.dumps(key, default=str)):
                    self.parts[name] = {"status": "cached", "seconds": stored.get("seconds", 0.0),
                                        "cache": path.name}
                    return stored["value"]
            except (ValueError, KeyError, TypeError) as error:
                warnings.warn(f"cache file {path} is unreadable ({error}); recomputing it", stacklevel=2)
        start = time.perf_counter()
        value = compute()
        seconds = time.perf_counter() - start
        self.parts[name] = {"status": "computed", "seconds": seconds, "cache": path.name}
        if self.is_main:
            write_json(path, {"key": key, "value": value, "seconds": seconds})
        return value

    def is_cached(self, name: str, key: dict[str, Any]) -> bool:
        """Whether part `name` for `key` has a cache file (read by cached() without computing)."""
        return self.cache_path(name, key).is_file()

    def out_of_time(self) -> bool:
        """True once the suite has run longer than --time-budget: start nothing new, report what finished."""
        budget = self.options.time_budget
        return budget is not None and time.time() - self.started > budget

    def note_part(self, name: str, status: str, seconds: float, **details: Any) -> None:
        """Record a part that caches itself (e.g. a training run resumed from its checkpoints)."""
        self.parts[name] = {"status": status, "seconds": seconds, **details}

    @staticmethod
    def training_step(folder: Path) -> int:
        """The step of the newest checkpoint `sphere_plugins.training.train` left in `folder` (0 when none)."""
        latest = latest_checkpoint(folder) if Path(folder).exists() else None
        return load_checkpoint(latest).step if latest is not None else 0

    def checkpointed(self, name: str, folder: Path, start: int, steps: int, run: Callable[[], Any]) -> Any:
        """Run a training that resumes from its checkpoints in `folder` (`start` steps are done of `steps`) and
        note it as cached (nothing left to run), resumed or computed; returns what `run()` returns."""
        began = time.perf_counter()
        result = run()
        status = "cached" if start >= steps else ("resumed" if start else "computed")
        self.note_part(name, status, time.perf_counter() - began, from_step=start, steps=steps,
                       checkpoints=Path(folder).name)
        return result

    # outputs -------------------------------------------------------------------------------------------
    def record(self, metric: str, value: float, **fields: Any) -> dict[str, Any]:
        """Add one labelled number: metric, value, feature network, n, seed, prior, model, data, extra."""
        extra = fields.pop("extra", {})
        known = {k: fields.pop(k) for k in ("feature_network", "n_samples", "seed", "prior", "model", "data")
                 if k in fields}
        known.setdefault("seed", self.options.seed)
        record = MetricRecord(metric=metric, value=float(value), versions=self.versions,
                              extra={**fields, **extra}, **known).to_dict()
        self.records.append(record)
        return record

    def add_record(self, record: dict[str, Any], **updates: Any) -> dict[str, Any]:
        """Add a record made by sphere_plugins.metrics (as a dict), with fields set or replaced."""
        merged = {**record, **updates, "versions": self.versions}
        self.records.append(merged)
        return merged

    def table(self, title: str, markdown: str, note: str = "") -> None:
        """Add a Markdown table (shaped like the paper's) with a title and an optional note under it."""
        self.tables.append({"title": title, "markdown": markdown, "note": note})

    def figure(self, fig: Any, filename: str, caption: str) -> Path:
        """Save a matplotlib figure as a PNG in the suite's folder (main process) and close it."""
        import matplotlib.pyplot as plt

        path = self.dir / filename
        if self.is_main:
            fig.savefig(path, dpi=110, bbox_inches="tight")
            self.figures.append(Figure(filename, caption))
        plt.close(fig)
        return path

    def target(self, name: str, goal: str, measured: str, met: bool) -> None:
        """Record a quick-scale target of the project and whether this run met it."""
        self.targets.append({"name": name, "goal": goal, "measured": measured, "met": bool(met)})

    def headline(self, sentence: str) -> None:
        """A sentence the report puts at its top: the suite's answer, in one line."""
        self.headlines.append(sentence)

    def note(self, text: str) -> None:
        """A sentence for the report (how a number was obtained, what was unavailable)."""
        self.notes.append(text)

    def machine(self) -> dict[str, Any]:
        import torch

        info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                "torch_threads": torch.get_num_threads(), "device": self.device,
                "processes": self.processes.world_size}
        if torch.device(self.device).type == "cuda" and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(torch.device(self.device))
        return info

    def write(self) -> Path | None:
        """Write results.json and table.md for this suite (main process only)."""
        if not self.is_main:
            return None
        seconds = time.time() - self.started
        result = {
            "suite": self.suite,
            "description": self.description,
            "command": self.options.command,
            "options": self.options.to_dict(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.started)),
            "seconds": seconds,
            "machine": self.machine(),
            "versions": self.versions,
            "parts": self.parts,
            "targets": self.targets,
            "headline": self.headlines,
            "notes": self.notes,
            "tables": self.tables,
            "figures": [{"file": f.file, "caption": f.caption} for f in self.figures],
            "records": self.records,
        }
        write_json(self.dir / RESULTS_FILE, result)
        with atomic_path(self.dir / TABLE_FILE) as tmp:
            tmp.write_text(render_tables(result))
        return self.dir / RESULTS_FILE


def render_tables(result: dict[str, Any], heading: str = "#") -> str:
    """The Markdown of one suite's tables, targets and notes (also used by the report)."""
    lines = [f"{heading} {result['suite']}: {result['description']}", "",
             f"Command: `{result['command']}` ({result['seconds']:.1f} s)", ""]
    if result.get("headline"):
        lines += [line for sentence in result["headline"] for line in (f"**{sentence}**", "")]
    for table in result["tables"]:
        lines += [f"{heading}# {table['title']}", "", table["markdown"], ""]
        if table.get("note"):
            lines += [table["note"], ""]
    if result["targets"]:
        lines += [f"{heading}# Targets", "", "| target | goal | measured | met |", "|---|---|---|---|"]
        lines += [f"| {t['name']} | {t['goal']} | {t['measured']} | {'yes' if t['met'] else 'NO'} |"
                  for t in result["targets"]]
        lines.append("")
    if result["notes"]:
        lines += [f"- {note}" for note in result["notes"]] + [""]
    return "\n".join(lines)
