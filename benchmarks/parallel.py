"""One suite at several training seeds on one machine, in parallel processes, then gathered:
`python -m benchmarks.parallel SUITE --seeds 0 1 2 --shards 2 --out DIR [options] -- [run.py options]`.

Each seed runs in DIR/seed-S; with --shards N > 1 every seed is split into N processes (run.py --shard I/N)
sharing that folder's cache, then one more run per seed reports them all from the cache (--time-budget 0: it
starts nothing new). Then `benchmarks.seeds` gathers the seeds into DIR/seed-<first>/seeds/ and rewrites that
folder's report.md with the answer over the seeds at its top. --time-budget and --hard-limit bound the
processes (a process still running at the hard limit is stopped; what it finished is in the cache), so a run
on a lent machine ends on time and keeps what it measured. Logs: DIR/logs/.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "benchmarks" / "run.py"


def seed_folder(out: Path, seed: int) -> Path:
    return Path(out) / f"seed-{seed}"


def worker_commands(suite: str, seeds: Sequence[int], shards: int, out: Path, budget: float | None,
                    run_args: Sequence[str]) -> list[tuple[str, list[str]]]:
    """(log name, command) of every process of the first phase: one per seed and shard."""
    commands = []
    for seed in seeds:
        for shard in range(shards):
            command = [sys.executable, str(RUN), suite, *run_args, "--seed", str(seed),
                       "--out", str(seed_folder(out, seed))]
            if shards > 1:
                command += ["--shard", f"{shard}/{shards}"]
            if budget is not None:
                command += ["--time-budget", f"{budget:g}"]
            commands.append((f"seed-{seed}-shard-{shard}", command))
    return commands


def report_commands(suite: str, seeds: Sequence[int], out: Path, run_args: Sequence[str]) -> list[tuple[str, list]]:
    """One run per seed that reports every shard's models from the cache and starts nothing new."""
    return [(f"seed-{seed}-report", [sys.executable, str(RUN), suite, *run_args, "--seed", str(seed), "--out",
                                     str(seed_folder(out, seed)), "--time-budget", "0"]) for seed in seeds]


def run_all(commands: Sequence[tuple[str, list[str]]], logs: Path, env: dict, deadline: float) -> dict[str, int]:
    """Start every command at once (output to logs/NAME.log); stop those still running at `deadline`
    (time.monotonic()); their exit status, or 'stopped'."""
    logs.mkdir(parents=True, exist_ok=True)
    running = {}
    for name, command in commands:
        handle = open(logs / f"{name}.log", "w")
        running[name] = (subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=ROOT), handle)
    status: dict[str, int | str] = {}
    while running:
        for name, (process, handle) in list(running.items()):
            code = process.poll()
            if code is None and time.monotonic() >= deadline:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                code = "stopped"
            if code is not None:
                handle.close()
                status[name] = code
                del running[name]
        time.sleep(0.5)
    return status


def copy_cache(source: Path, out: Path, seeds: Sequence[int]) -> None:
    """The files of `source` into every seed's cache/features (a feature network trained elsewhere)."""
    files = [p for p in Path(source).iterdir() if p.is_file() and p.suffix in (".safetensors", ".json")]
    if not files:
        raise SystemExit(f"benchmarks.parallel: error: --features-cache {source} holds no .safetensors/.json files")
    for seed in seeds:
        folder = seed_folder(out, seed) / "cache" / "features"
        folder.mkdir(parents=True, exist_ok=True)
        for path in files:
            shutil.copy2(path, folder / path.name)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    run_args = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks.parallel", description=__doc__.splitlines()[0])
    parser.add_argument("suite")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--shards", type=int, default=1, help="processes per seed (default 1)")
    parser.add_argument("--out", required=True, help="folder for seed-S/ and logs/")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per process (OMP/MKL/torch)")
    parser.add_argument("--time-budget", type=float, default=None, help="each process's --time-budget")
    parser.add_argument("--hard-limit", type=float, default=None,
                        help="seconds from the start after which running processes are stopped")
    parser.add_argument("--report-limit", type=float, default=120.0,
                        help="seconds the reporting runs may take after the first phase (default 120)")
    parser.add_argument("--features-cache", default=None,
                        help="a folder of feature-network files to copy into each seed's cache first")
    args = parser.parse_args(own)
    if args.shards < 1 or len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--shards must be >= 1 and --seeds distinct, got {args.shards} and {args.seeds}")
    out = Path(args.out).resolve()
    started = time.monotonic()
    if args.features_cache:
        copy_cache(Path(args.features_cache), out, args.seeds)
    env = dict(os.environ)
    if args.threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[name] = str(args.threads)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    hard = started + (args.hard_limit if args.hard_limit else 1e9)
    status = run_all(worker_commands(args.suite, args.seeds, args.shards, out, args.time_budget, run_args),
                     out / "logs", env, hard)
    print(f"[parallel] workers done after {time.monotonic() - started:.0f} s: {status}", flush=True)
    if args.shards > 1:
        status = run_all(report_commands(args.suite, args.seeds, out, run_args), out / "logs", env,
                         time.monotonic() + args.report_limit)
        print(f"[parallel] reports done after {time.monotonic() - started:.0f} s: {status}", flush=True)
    done = [seed_folder(out, s) for s in args.seeds
            if (seed_folder(out, s) / args.suite / "results.json").is_file()]
    if len(done) < 2:
        print(f"[parallel] {len(done)} seed(s) finished; no spread over seeds to gather", flush=True)
        return 1
    gather = [sys.executable, "-m", "benchmarks.seeds", args.suite, *map(str, done), "--out", str(done[0])]
    with open(out / "logs" / "gather.log", "w") as handle:
        code = subprocess.call(gather, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    print(f"[parallel] gathered {len(done)} seeds into {done[0]} (status {code}) after "
          f"{time.monotonic() - started:.0f} s", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
