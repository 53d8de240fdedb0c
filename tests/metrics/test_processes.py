"""Metrics under `accelerate launch` (gloo on the CPU): two processes split sampling and feature extraction and
get the number one process gets, bit for bit, since every batch holds the same images and runs the same ops."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import torch
import torch.nn.functional as F

from sphere_plugins import wrap_autoencoder
from sphere_plugins.metrics import SeededImages, compute_fid
from sphere_plugins.nets import ConvAutoencoder

N_REAL, N_FAKE, BATCH = 70, 90, 16

_SCRIPT = """
import json, sys
import torch
import torch.nn.functional as F
from accelerate import PartialState
from sphere_plugins.metrics import SeededImages, compute_fid

state = PartialState(cpu=True)
rows, drawn = [0], []

def features(images):
    rows[0] += images.shape[0]
    return F.adaptive_avg_pool2d(images, 4).flatten(1).double().numpy()

features.name = "pooled"

def draw(seeds):
    drawn.extend(seeds)
    return torch.stack([torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(s)) * 2 - 1 for s in seeds])

real = torch.rand({n_real}, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
record = compute_fid(real, SeededImages(draw, range(100, 100 + {n_fake})), features=features, batch_size={batch},
                     distributed=True)
with open(f"{{sys.argv[1]}}/rank{{state.process_index}}.json", "w") as handle:
    json.dump({{"value": record.value, "rows": rows[0], "drawn": drawn, "n_fake": record.extra["n_fake"],
               "world": state.num_processes}}, handle)
state.destroy_process_group()  # leave the group: exiting inside it can abort in gloo's teardown
"""


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(*args, cwd):
    # `--multi_gpu` is accelerate's multi-process launcher; with no GPU visible the processes run on the CPU (gloo).
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--num_cpu_threads_per_process", "1", "--main_process_port", str(_free_port()), *map(str, args)]
    env = {**os.environ, "HF_HOME": str(cwd / "hf"), "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=cwd)


def _features(images):
    return F.adaptive_avg_pool2d(images, 4).flatten(1).double().numpy()


_features.name = "pooled"


def _draw(seeds):
    return torch.stack([torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(s)) * 2 - 1 for s in seeds])


def test_two_processes_split_the_work_and_get_one_process_number_exactly(tmp_path):
    script = tmp_path / "metric.py"
    script.write_text(textwrap.dedent(_SCRIPT.format(n_real=N_REAL, n_fake=N_FAKE, batch=BATCH)))
    run = _launch(script, tmp_path, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 and r["n_fake"] == N_FAKE for r in ranks)
    # Each process drew and featurized its own share: every seed once (after one image of the first seed that
    # tells the image size), and about half of all images each.
    assert ranks[0]["drawn"][0] == ranks[1]["drawn"][0] == 100
    assert sorted(ranks[0]["drawn"][1:] + ranks[1]["drawn"][1:]) == list(range(100, 100 + N_FAKE))
    assert ranks[0]["rows"] + ranks[1]["rows"] == N_REAL + N_FAKE and max(r["rows"] for r in ranks) < 100

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        real = torch.rand(N_REAL, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
        one = compute_fid(real, SeededImages(_draw, range(100, 100 + N_FAKE)), features=_features, batch_size=BATCH)
    finally:
        torch.set_num_threads(threads)
    assert ranks[0]["value"] == ranks[1]["value"] == one.value


def test_evaluate_under_accelerate_launch_prints_once_the_number_of_one_process(tmp_path):
    torch.manual_seed(0)
    wrap_autoencoder(ConvAutoencoder(channels=1, resolution=8, z_dim=6, width=8)).save_pretrained(tmp_path / "sae")
    args = ["evaluate", "digits", tmp_path / "sae", "--n", "200", "--metric", "fd", "--metric", "precision",
            "--inception-dir", tmp_path, "--cache-dir", tmp_path / "cache"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "sphere_plugins", *map(str, args), "--json-out", tmp_path / "one.json"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert one.returncode == 0, one.stderr
    two = _launch("-m", "sphere_plugins", *args, "--json-out", tmp_path / "two.json", cwd=tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("FD-digits-cnn:") == 1 and two.stdout.count("precision-digits-cnn:") == 1
    records = [json.loads((tmp_path / name).read_text()) for name in ("one.json", "two.json")]
    assert [(r["metric"], r["value"], r["extra"]["n_fake"]) for r in records[0]] == \
           [(r["metric"], r["value"], r["extra"]["n_fake"]) for r in records[1]]
