"""The benchmark command line, run by `python benchmarks/run.py [SUITE ...] [options]` or `python -m benchmarks.run`
(no suite: all, quick scale, Fashion-MNIST, CPU).

Writes results/<suite>/{results.json, table.md, *.png} and results/report.md. Finished parts are cached
under results/cache, so a re-run resumes. Bad input prints one line and exits with status 2; a suite that
fails exits with status 1, keeping what finished. Runs under `accelerate launch`: the processes share training
and the sampling, autoencoder and finetune suites' metrics, and the main one writes (the dimension suite, whose
parts stop on a time budget each process would judge alone, measures on the main one).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from benchmarks.common import DEFAULT_DATA, SCALES, BenchmarkError, Options
from benchmarks.context import Context, Processes
from benchmarks.inputs import check_inputs
from benchmarks.report import write_report
from benchmarks.suites import SUITE_NAMES, get_suite
from sphere_plugins.errors import SpherePluginsError
from sphere_plugins.process_group import leave_process_group

EXIT_BAD_INPUT = 2
EXIT_SUITE_FAILED = 1


class _Parser(argparse.ArgumentParser):
    """argparse that raises BenchmarkError (one line) instead of printing usage and exiting."""

    def error(self, message: str) -> None:
        raise BenchmarkError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="benchmarks/run.py", description="Run the benchmark suites (no suite: all, quick scale, "
                     "Fashion-MNIST, CPU).")
    parser.add_argument("suites", nargs="*", metavar="SUITE", help=f"any of {', '.join(SUITE_NAMES)} (default: all)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)")
    parser.add_argument("--data", default=DEFAULT_DATA, help="'fashion-mnist' (its idx files in the default data "
                        "folder), 'fashion-mnist:PATH' or 'mnist:PATH' (a folder with the four idx files), 'digits' "
                        "(scikit-learn's, a one-minute smoke run) or 'folder:PATH' (default: fashion-mnist: models "
                        "train on the train split, samples are measured against the test split)")
    parser.add_argument("--model", default=None, help="model spec, e.g. stylegan2:PATH.pkl or diffusers:PATH "
                        "(default: each suite's own small model, trained and cached)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the scale's)")
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds of the overhead suite "
                        "(default: the scale's)")
    parser.add_argument("--n-samples", type=int, default=None, help="samples per metric (default: the scale's)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--scale", default="quick", choices=SCALES, help="quick (CPU minutes), standard (the "
                        "paper's latent sizes, within an hour on 2 CPU cores) or paper (a GPU)")
    parser.add_argument("--resolution", type=int, default=None, help="image side in pixels (default: the scale's)")
    parser.add_argument("--out", default="results", help="output folder (default: results)")
    parser.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                        help="start no new training or measurement after this many seconds of a suite (0: report only "
                        "what is cached); the report covers what finished and names what was left out (the dimension "
                        "suite; default: none)")
    parser.add_argument("--shard", default=None, metavar="I/N",
                        help="train and measure only the I-th of N shares of the dimension suite's models (N "
                        "processes sharing one --out, I = 0..N-1); a later run without --shard reports them all "
                        "from the cache")
    return parser


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'I/N' -> (I, N); None stays None; anything else is a BenchmarkError."""
    if text is None:
        return None
    index, slash, count = text.partition("/")
    if not slash or not index.strip().isdigit() or not count.strip().isdigit():
        raise BenchmarkError(f"--shard must be I/N with whole numbers, e.g. 0/2, got {text!r}")
    return int(index), int(count)


def command_line(argv: list[str]) -> str:
    """The command as a user would type it again."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    launcher = f"accelerate launch --num_processes {world} " if world > 1 else "python "
    return launcher + shlex.join(["benchmarks/run.py", *argv])


def parse_options(argv: list[str]) -> Options:
    """Options from the command line; unknown suites and bad values raise BenchmarkError."""
    args = build_parser().parse_args(argv)
    unknown = [s for s in args.suites if s not in SUITE_NAMES]
    if unknown:
        raise BenchmarkError(f"unknown suite {unknown[0]!r}; expected any of: {', '.join(SUITE_NAMES)}")
    if not args.out.strip():
        raise BenchmarkError("--out is empty; expected an output folder such as results")
    suites = list(dict.fromkeys(args.suites)) or list(SUITE_NAMES)
    return Options(suites=suites, device=args.device, data=args.data, model=args.model, steps=args.steps,
                   rounds=args.rounds, n_samples=args.n_samples, seed=args.seed, scale=args.scale, out=Path(args.out),
                   resolution=args.resolution, time_budget=args.time_budget, shard=parse_shard(args.shard),
                   command=command_line(argv))


def one_line(error: BaseException) -> str:
    """An exception's message on one line."""
    return " ".join(str(error).split()) or type(error).__name__


def run_suites(options: Options) -> int:
    """Run the chosen suites in order, writing each one's results and the report as they finish."""
    processes = Processes(options.device)
    status = 0
    for name in options.suites:
        suite = get_suite(name)
        ctx = Context(options, name, suite.DESCRIPTION, processes)
        start = time.perf_counter()
        try:
            suite.run(ctx)
        except (BenchmarkError, SpherePluginsError, ValueError, OSError) as error:
            if processes.is_main:
                print(f"error: suite {name}: {one_line(error)}", file=sys.stderr)
            status = EXIT_SUITE_FAILED
            break
        written = ctx.write()
        processes.barrier()
        if processes.is_main:
            print(f"[{name}] {time.perf_counter() - start:.1f} s -> {written}", flush=True)
    if processes.is_main:
        print(f"report: {write_report(options.out)}", flush=True)
    return status


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        options = parse_options(argv)
        check_inputs(options)
    except BenchmarkError as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return run_suites(options)
    finally:
        leave_process_group()

