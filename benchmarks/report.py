"""results/report.md: every suite's tables, targets and figures, each with the command that produced it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from benchmarks.context import RESULTS_FILE, render_tables, write_json
from benchmarks.suites import SUITE_NAMES
from sphere_plugins.files import atomic_path

REPORT_FILE = "report.md"
SEEDS_FOLDER = "seeds"  # <out>/seeds/<suite>.json: a suite's records gathered over training seeds (benchmarks.seeds)


def load_results(out: Path) -> list[dict]:
    """The results.json of every suite found under `out`, in the suites' order."""
    found = []
    for name in SUITE_NAMES:
        path = Path(out) / name / RESULTS_FILE
        if path.is_file():
            try:
                found.append(json.loads(path.read_text()))
            except ValueError:
                continue
    return found


def load_gathered(out: Path) -> dict[str, dict]:
    """The spreads over seeds written by `python -m benchmarks.seeds ... --out OUT`, by suite."""
    found = {}
    for name in SUITE_NAMES:
        path = Path(out) / SEEDS_FOLDER / f"{name}.json"
        if path.is_file():
            try:
                found[name] = json.loads(path.read_text())
            except ValueError:
                continue
    return found


def headlines(results: list[dict], gathered: dict[str, dict]) -> list[str]:
    """The suites' one-line answers, first in the report: over seeds where they were gathered, else this run's."""
    lines = []
    for result in results:
        name = result["suite"]
        if name in gathered and gathered[name].get("headline"):
            seeds = ", ".join(map(str, gathered[name]["seeds"]))
            source, sentences = f"{len(gathered[name]['seeds'])} training seeds ({seeds})", gathered[name]["headline"]
        elif result.get("headline"):
            source, sentences = f"one training seed ({result['options']['seed']})", result["headline"]
        else:
            continue
        lines += [f"**{name}**, over {source}:", ""] + [f"- {sentence}" for sentence in sentences] + [""]
    return (["## In brief", ""] + lines) if lines else []


def render_report(results: list[dict], gathered: dict[str, dict] | None = None) -> str:
    """The Markdown of the whole report; `gathered` (by suite) holds spreads over seeds (load_gathered)."""
    lines = ["# sphere-plugins benchmark report", "",
             f"Written {time.strftime('%Y-%m-%d %H:%M:%S')}. Each section names the command that produced it; "
             "every number is also in the suite's results.json with its metric, feature network, sample count, "
             "seed, prior, model, data and library versions.", ""]
    if not results:
        return "\n".join(lines + ["No suite has finished yet.", ""])
    lines += headlines(results, gathered or {})
    lines += ["| suite | seconds | targets met | command |", "|---|---|---|---|"]
    for result in results:
        targets = result["targets"]
        met = f"{sum(t['met'] for t in targets)}/{len(targets)}" if targets else "-"
        lines.append(f"| [{result['suite']}](#{result['suite']}) | {result['seconds']:.1f} | {met} | "
                     f"`{result['command']}` |")
    lines += ["", f"Total: {sum(r['seconds'] for r in results):.1f} s.", ""]
    for name, value in (gathered or {}).items():
        lines += [f"## {name} over training seeds {', '.join(map(str, value['seeds']))}", ""]
        for table in value.get("tables", []):
            lines += [f"### {table['title']}", "", table["markdown"], ""]
        if value.get("targets"):
            lines += ["### Targets over the seeds", "", "| target | goal | measured | met |", "|---|---|---|---|"]
            lines += [f"| {t['name']} | {t['goal']} | {t['measured']} | {'yes' if t['met'] else 'NO'} |"
                      for t in value["targets"]] + [""]
        lines += [f"Every number's mean and std: `{SEEDS_FOLDER}/{name}.md`.", ""]
    for result in results:
        lines.append(f'<a id="{result["suite"]}"></a>')
        lines.append(render_tables(result, heading="##"))
        for figure in result["figures"]:
            lines += [f"![{figure['caption']}]({result['suite']}/{figure['file']})", "", f"*{figure['caption']}*", ""]
    return "\n".join(lines)


def write_report(out: Path) -> Path:
    """Gather the suites' results under `out` into report.md (and a summary.json of their timings)."""
    results = load_results(out)
    path = Path(out) / REPORT_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(render_report(results, load_gathered(out)))
    write_json(Path(out) / "summary.json", {r["suite"]: {"seconds": r["seconds"], "command": r["command"],
                                                         "targets": r["targets"]} for r in results})
    return path
