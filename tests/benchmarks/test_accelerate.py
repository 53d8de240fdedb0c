"""Two processes under `accelerate launch`: one group forms, only the main process writes and reports, and the
processes share the metrics."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_write_the_results_once(tmp_path):
    # `--multi_gpu` is accelerate's multi-process launcher; with no GPU visible it runs the processes on the CPU.
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--num_cpu_threads_per_process", "1", "--main_process_port", str(free_port()),
               str(ROOT / "benchmarks" / "run.py"), "theory", "--n-samples", "500", "--data", "digits", "--out", str(tmp_path / "r")]
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("[theory]") == 1 and done.stdout.count("report:") == 1
    result = json.loads((tmp_path / "r" / "theory" / "results.json").read_text())
    assert result["machine"]["processes"] == 2
    assert result["command"].startswith("accelerate launch --num_processes 2 benchmarks/run.py theory")


def test_two_processes_share_a_suites_metrics_and_report_one_process_numbers(tmp_path):
    # The same trained models (the second run resumes the first one's checkpoints, its metric caches removed),
    # so the records must agree exactly: each batch of images holds the same images whatever the process count.
    args = [str(ROOT / "benchmarks" / "run.py"), "autoencoder", "--data", "digits", "--steps", "2", "--n-samples",
            "70"]
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")], capture_output=True, text=True,
                         timeout=600, env=env, cwd=tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    shutil.copytree(tmp_path / "one" / "cache", tmp_path / "two" / "cache")
    for cached in (tmp_path / "two" / "cache").rglob("*"):
        if cached.name.startswith("metrics-") or cached.suffix == ".npy":
            cached.unlink()
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--num_cpu_threads_per_process", "1", "--main_process_port", str(free_port()), *args,
               "--out", str(tmp_path / "two")]
    two = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    records = [json.loads((tmp_path / run / "autoencoder" / "results.json").read_text())["records"]
               for run in ("one", "two")]
    assert len(records[0]) == len(records[1]) > 0
    assert [(r["metric"], r["value"]) for r in records[0]] == [(r["metric"], r["value"]) for r in records[1]]
