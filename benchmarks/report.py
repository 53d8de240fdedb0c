"""results/report.md: every suite's tables, targets and figures, each with the command that produced it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from benchmarks.context import RESULTS_FILE, render_tables, write_json
from benchmarks.suites import SUITE_NAMES
from sphere_plugins.files import atomic_path

REPORT_FILE = "report.md"


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


def render_report(results: list[dict]) -> str:
    """The Markdown of the whole report."""
    lines = ["# sphere-plugins benchmark report", "",
             f"Written {time.strftime('%Y-%m-%d %H:%M:%S')}. Each section names the command that produced it; "
             "every number is also in the suite's results.json with its metric, feature network, sample count, "
             "seed, prior, model, data and library versions.", ""]
    if not results:
        return "\n".join(lines + ["No suite has finished yet.", ""])
    lines += ["| suite | seconds | targets met | command |", "|---|---|---|---|"]
    for result in results:
        targets = result["targets"]
        met = f"{sum(t['met'] for t in targets)}/{len(targets)}" if targets else "-"
        lines.append(f"| [{result['suite']}](#{result['suite']}) | {result['seconds']:.1f} | {met} | "
                     f"`{result['command']}` |")
    lines += ["", f"Total: {sum(r['seconds'] for r in results):.1f} s.", ""]
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
        tmp.write_text(render_report(results))
    write_json(Path(out) / "summary.json", {r["suite"]: {"seconds": r["seconds"], "command": r["command"],
                                                         "targets": r["targets"]} for r in results})
    return path
