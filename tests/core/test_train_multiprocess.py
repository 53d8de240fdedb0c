"""Two processes under `accelerate launch` (DDP over gloo on the CPU): different data, identical weights,
and the same result as one process on the union of their batches."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import torch
from safetensors.torch import load_file

from sphere_plugins.training import TrainConfig, conv_objective, train

N_IMAGES = 64

_SCRIPT = """
import json, sys
import torch
from accelerate import PartialState
from safetensors.torch import save_file
from sphere_plugins.training import TrainConfig, conv_objective, train

out = sys.argv[1]
n = {n}
# Image i is the constant 2 i / (n - 1) - 1, so a batch reveals which images it holds.
images = (torch.arange(n, dtype=torch.float32) / (n - 1) * 2 - 1).view(n, 1, 1, 1).expand(n, 1, 8, 8).contiguous()
torch.manual_seed(0)
objective = conv_objective("sae", resolution=8, z_dim=4, width=8)
seen = []
objective.register_forward_pre_hook(
    lambda module, args: seen.extend(torch.round((args[0][:, 0, 0, 0] + 1) / 2 * (n - 1)).long().tolist()))
config = TrainConfig(steps=4, batch_size=4, lr=1e-2, seed=3, progress=False, cpu=True, checkpoint_every=2,
                     checkpoint_dir=out + "/checkpoints")
result = train(objective, images, config)
state = PartialState()
rank = state.process_index
with open(f"{{out}}/rank{{rank}}.json", "w") as handle:
    json.dump({{"seen": seen, "processes": state.num_processes, "step": result.step}}, handle)
save_file({{k: v.contiguous() for k, v in result.objective.state_dict().items()}}, f"{{out}}/rank{{rank}}.safetensors")
state.destroy_process_group()  # leave the group: exiting inside it can abort in gloo's teardown
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _images():
    n = N_IMAGES
    return (torch.arange(n, dtype=torch.float32) / (n - 1) * 2 - 1).view(n, 1, 1, 1).expand(n, 1, 8, 8).contiguous()


def test_two_processes_see_different_data_and_end_with_identical_weights(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(textwrap.dedent(_SCRIPT.format(n=N_IMAGES)))
    # `--multi_gpu` is accelerate's multi-process launcher; on a machine without GPUs, and with the
    # script's TrainConfig(cpu=True), it runs DDP over gloo on the CPU (`--cpu` alone starts one process).
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--num_cpu_threads_per_process", "1", "--main_process_port", str(_free_port()),
               str(script), str(tmp_path)]
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    assert run.returncode == 0, run.stderr[-3000:]

    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["processes"] == 2 and r["step"] == 4 and len(r["seen"]) == 16 for r in reports)
    assert not set(reports[0]["seen"]) & set(reports[1]["seen"])

    weights = [load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1)]
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key

    # DDP averages the two processes' gradients: one process on batches of 8 (the same images per step)
    # must land on the same weights up to floating-point summation order.
    torch.manual_seed(0)
    single = train(conv_objective("sae", resolution=8, z_dim=4, width=8), _images(),
                   TrainConfig(steps=4, batch_size=8, lr=1e-2, seed=3, progress=False, cpu=True))
    for key, value in single.objective.state_dict().items():
        torch.testing.assert_close(weights[0][key], value, atol=1e-5, rtol=1e-4)
    written = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert written == [".lock", "step-00000002", "step-00000004"]  # the main process's lock file, no temporaries
