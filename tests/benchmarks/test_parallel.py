"""benchmarks.parallel: the processes it starts for seeds x shards, and the hard limit that stops them."""

from __future__ import annotations

import sys
import time

from benchmarks.parallel import report_commands, run_all, worker_commands


def test_one_process_per_seed_and_shard_then_one_report_per_seed(tmp_path):
    commands = worker_commands("dimension", [0, 2], 2, tmp_path, 200.0, ["--scale", "standard"])
    assert [name for name, _ in commands] == ["seed-0-shard-0", "seed-0-shard-1", "seed-2-shard-0", "seed-2-shard-1"]
    name, command = commands[3]
    assert command[2:] == ["dimension", "--scale", "standard", "--seed", "2", "--out", str(tmp_path / "seed-2"),
                           "--shard", "1/2", "--time-budget", "200"]
    single = worker_commands("dimension", [1], 1, tmp_path, None, [])
    assert "--shard" not in single[0][1] and "--time-budget" not in single[0][1]
    reports = report_commands("dimension", [0, 2], tmp_path, ["--scale", "standard"])
    expected = [["--out", str(tmp_path / f"seed-{s}"), "--time-budget", "0"] for s in (0, 2)]
    assert [c[-4:] for _, c in reports] == expected


def test_processes_still_running_at_the_hard_limit_are_stopped(tmp_path):
    quick = [sys.executable, "-c", "print('done')"]
    slow = [sys.executable, "-c", "import time; time.sleep(60)"]
    began = time.monotonic()
    status = run_all([("quick", quick), ("slow", slow)], tmp_path / "logs", {}, time.monotonic() + 2)
    assert status == {"quick": 0, "slow": "stopped"}
    assert time.monotonic() - began < 20
    assert (tmp_path / "logs" / "quick.log").read_text().strip() == "done"
