"""The spread over seeds: `python -m benchmarks.seeds SUITE RUN_DIR RUN_DIR ...` gathers one suite's records
from runs that differ only in `--seed` and prints each number's mean +- std over them (Markdown).

A suite's own report shows one trained model per cell; training seeds are what a quality claim must be read
against, so this puts the runs side by side instead of asking for a suite that trains everything N times.
With `--out DIR` it also writes DIR/seeds/SUITE.json and .md and rewrites DIR/report.md, whose top then gives
the suite's answer over the seeds: a suite module may define over_seeds(runs) -> {"headline": [sentences],
"targets": [...], "tables": [...]} (the dimension suite judges "X beats Y" there, only when it holds in every seed).
Exit status 2 with one line for bad input (a missing results.json, runs of different suites, scales or data,
or runs that share a seed, whose spread would mean nothing).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Sequence

from benchmarks.common import BenchmarkError, markdown_table
from benchmarks.context import write_json
from benchmarks.report import SEEDS_FOLDER, write_report
from benchmarks.suites import SUITE_NAMES, get_suite

# What must agree between runs for their records to be comparable (the seed must differ).
SAME_OPTIONS = ("scale", "data", "steps", "n_samples", "model", "resolution")


def load_runs(suite: str, run_dirs: Sequence[str | Path]) -> list[dict]:
    """results.json of `suite` in each run folder, checked to be the same experiment at different seeds."""
    if len(run_dirs) < 2:
        raise BenchmarkError(f"the spread over seeds needs at least 2 run folders, got {len(run_dirs)}")
    runs = []
    for folder in run_dirs:
        path = Path(folder) / suite / "results.json"
        if not path.is_file():
            raise BenchmarkError(f"{path} does not exist: run `benchmarks/run.py {suite} --seed N --out {folder}`")
        try:
            runs.append(json.loads(path.read_text()))
        except (OSError, ValueError) as error:
            raise BenchmarkError(f"{path} is not a readable results file ({error})") from None
    first = runs[0].get("options", {})
    for folder, run in zip(run_dirs[1:], runs[1:]):
        options = run.get("options", {})
        differ = [k for k in SAME_OPTIONS if options.get(k) != first.get(k)]
        if differ:
            raise BenchmarkError(f"{folder} differs from {run_dirs[0]} in {', '.join(differ)} "
                                 f"({[options.get(k) for k in differ]} vs {[first.get(k) for k in differ]}); "
                                 "only --seed may differ")
    seeds = [run.get("options", {}).get("seed") for run in runs]
    if len(set(seeds)) != len(seeds):
        raise BenchmarkError(f"the runs' seeds {seeds} repeat; the spread over seeds needs a different --seed each")
    return runs


def _key(record: dict) -> tuple:
    extra = record.get("extra") or {}
    return (record["metric"], record["model"], record.get("prior"), extra.get("measured_on"))


def spread(runs: Sequence[dict], metrics: Sequence[str] = ()) -> list[dict]:
    """Per (metric, model, prior, what was measured) present in every run: the values in run order, their mean
    and sample standard deviation. `metrics` keeps only metrics whose name contains one of the strings."""
    per_run = []
    for run in runs:
        values: dict[tuple, float] = {}
        for record in run.get("records", []):
            if metrics and not any(m in record["metric"] for m in metrics):
                continue
            if isinstance(record.get("value"), (int, float)):
                values.setdefault(_key(record), float(record["value"]))
        per_run.append(values)
    common = [k for k in per_run[0] if all(k in values for values in per_run[1:])]
    rows = []
    for key in common:
        values = [values[key] for values in per_run]
        rows.append({"metric": key[0], "model": key[1], "prior": key[2], "measured_on": key[3], "values": values,
                     "mean": statistics.fmean(values), "std": statistics.stdev(values)})
    return rows


def spread_table(runs: Sequence[dict], rows: Sequence[dict]) -> str:
    """The rows as Markdown, one column per seed."""
    seeds = [run.get("options", {}).get("seed") for run in runs]
    header = ["metric", "model", "prior", *[f"seed {s}" for s in seeds], "mean", "std"]
    return markdown_table(header, [[r["metric"], r["model"], r["prior"] or "-", *r["values"], r["mean"], r["std"]]
                                   for r in rows])


def gathered(suite: str, runs: Sequence[dict], rows: Sequence[dict]) -> dict:
    """What --out writes: the seeds, every row's spread, and the suite's own over_seeds() summary when it has one."""
    summary = getattr(get_suite(suite), "over_seeds", None)
    extra = summary(runs) if summary is not None else {}
    return {"suite": suite, "seeds": [run.get("options", {}).get("seed") for run in runs],
            "options": runs[0].get("options", {}), **extra, "rows": list(rows)}


def write_gathered(out: Path, suite: str, value: dict, table: str) -> Path:
    """DIR/seeds/SUITE.json and .md, then DIR/report.md again (its top reads the gathered headline)."""
    folder = Path(out) / SEEDS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / f"{suite}.json", value)
    lines = [f"# {suite} over seeds {', '.join(map(str, value['seeds']))}", ""]
    lines += [f"- {sentence}" for sentence in value.get("headline", [])] + [""]
    for item in value.get("tables", []):
        lines += [f"## {item['title']}", "", item["markdown"], ""]
    if value.get("targets"):
        lines += ["## Targets", "", "| target | goal | measured | met |", "|---|---|---|---|"]
        lines += [f"| {t['name']} | {t['goal']} | {t['measured']} | {'yes' if t['met'] else 'NO'} |"
                  for t in value["targets"]] + [""]
    (folder / f"{suite}.md").write_text("\n".join(lines + ["## Every number", "", table, ""]))
    return write_report(Path(out))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.seeds", description=__doc__.splitlines()[0])
    parser.add_argument("suite", help="the suite whose records to gather, e.g. dimension")
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="--out folders of runs that differ in --seed")
    parser.add_argument("--metric", action="append", default=[],
                        help="keep metrics whose name contains this (repeatable), e.g. --metric FD --metric recall")
    parser.add_argument("--json-out", help="also write the rows as JSON to this file")
    parser.add_argument("--out", help="a results folder (usually the first run's): write its seeds/SUITE.json and "
                        ".md and rewrite its report.md with the answer over the seeds at the top")
    args = parser.parse_args(argv)
    try:
        if args.suite not in SUITE_NAMES:
            raise BenchmarkError(f"unknown suite {args.suite!r}; expected one of {', '.join(SUITE_NAMES)}")
        runs = load_runs(args.suite, args.runs)
    except BenchmarkError as error:
        print(f"benchmarks.seeds: error: {error}", file=sys.stderr)
        return 2
    rows = spread(runs, args.metric)
    table = spread_table(runs, rows)
    print(table)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=2) + "\n")
    if args.out:
        print(f"report: {write_gathered(Path(args.out), args.suite, gathered(args.suite, runs, rows), table)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
