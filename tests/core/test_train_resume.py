"""Interrupted runs: resuming after an exception or a SIGKILL gives bit-identical weights and optimizer state
to an uninterrupted run; corrupt checkpoints are skipped (automatic resume) or reported (named resume)."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from sphere_plugins.checkpoint import CheckpointError, list_checkpoints, load_checkpoint, save_checkpoint
from sphere_plugins.data import load_images
from sphere_plugins.training import ShardedBatches, TrainConfig, conv_objective, train

pytestmark = pytest.mark.usefixtures("one_thread")


class Interrupt(Exception):
    """Raised by a callback to stop a run as a crash would."""


@pytest.fixture(scope="module")
def digits():
    return load_images("digits", resolution=16, limit=200).images


def _config(folder, **overrides):
    return TrainConfig(**{"steps": 10, "batch_size": 16, "lr": 3e-3, "log_every": 1, "progress": False,
                          "checkpoint_every": 3, "checkpoint_dir": str(folder), "seed": 7, "cpu": True, **overrides})


def _objective(kind="vae"):
    torch.manual_seed(0)
    return conv_objective(kind, z_dim=6, width=8)


def _stop_at(step):
    def callback(current, logs):
        if current == step:
            raise Interrupt

    return callback


def _final_tensors(folder):
    """Weights and optimizer tensors of the newest checkpoint in `folder`."""
    newest = list_checkpoints(folder)[-1]
    return {**load_file(newest / "model.safetensors"), **load_file(newest / "optimizer.safetensors")}


def _assert_identical(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_after_an_exception_matches_an_uninterrupted_run(digits, tmp_path):
    full = train(_objective(), digits, _config(tmp_path / "full"))
    with pytest.raises(Interrupt):
        train(_objective(), digits, _config(tmp_path / "cut", log_path=tmp_path / "cut.jsonl"),
              callbacks=[_stop_at(7)])
    resumed = train(_objective(), digits, _config(tmp_path / "cut", resume=True, log_path=tmp_path / "cut.jsonl"))
    assert resumed.resumed_from.name == "step-00000006"  # only step 7 was lost
    for a, b in zip(full.objective.state_dict().values(), resumed.objective.state_dict().values()):
        assert torch.equal(a, b)
    _assert_identical(_final_tensors(tmp_path / "full"), _final_tensors(tmp_path / "cut"))


def test_the_log_of_a_resumed_run_has_each_step_once(digits, tmp_path):
    log = tmp_path / "train.jsonl"
    with pytest.raises(Interrupt):
        train(_objective("ae"), digits, _config(tmp_path / "ck", log_path=log), callbacks=[_stop_at(5)])
    train(_objective("ae"), digits, _config(tmp_path / "ck", log_path=log, resume=True))
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == list(range(1, 11))


_KILLED_RUN = """
import os, signal, sys
import torch
torch.set_num_threads({threads})
from sphere_plugins.data import load_images
from sphere_plugins.training import TrainConfig, conv_objective, train

def kill_at(step, logs):
    if step == 5:
        os.kill(os.getpid(), signal.SIGKILL)

torch.manual_seed(0)
objective = conv_objective("sae", z_dim=6, width=8)
config = TrainConfig(steps=8, batch_size=8, grad_accum=2, lr=3e-3, progress=False, checkpoint_every=2,
                     checkpoint_dir=sys.argv[1], seed=7, cpu=True)
train(objective, load_images("digits", resolution=16, limit=200).images, config, callbacks=[kill_at])
"""


def test_resume_after_sigkill_matches_an_uninterrupted_run(digits, tmp_path):
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(_KILLED_RUN.format(threads=torch.get_num_threads())))
    folder = tmp_path / "killed"
    run = subprocess.run([sys.executable, str(script), str(folder)], capture_output=True, text=True, timeout=120)
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    assert [p.name for p in list_checkpoints(folder)] == ["step-00000002", "step-00000004"]

    def config(where, **extra):
        return TrainConfig(steps=8, batch_size=8, grad_accum=2, lr=3e-3, progress=False, checkpoint_every=2,
                           checkpoint_dir=str(where), seed=7, cpu=True, **extra)

    full = train(_objective("sae"), digits, config(tmp_path / "full"))
    resumed = train(_objective("sae"), digits, config(folder, resume=True))
    assert resumed.resumed_from.name == "step-00000004"
    for a, b in zip(full.objective.state_dict().values(), resumed.objective.state_dict().values()):
        assert torch.equal(a, b)
    _assert_identical(_final_tensors(tmp_path / "full"), _final_tensors(folder))


def test_automatic_resume_skips_a_corrupt_newest_checkpoint_with_a_warning(digits, tmp_path):
    train(_objective("ae"), digits, _config(tmp_path, steps=6))
    newest = tmp_path / "step-00000006" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])
    with pytest.warns(UserWarning, match="step-00000006.*model.safetensors"):
        result = train(_objective("ae"), digits, _config(tmp_path, steps=8, resume=True))
    assert result.resumed_from.name == "step-00000003" and result.step == 8


def test_automatic_resume_skips_a_checkpoint_without_a_data_order_with_a_warning(digits, tmp_path):
    train(_objective("ae"), digits, _config(tmp_path, steps=6))
    save_checkpoint(tmp_path, 7, torch.nn.Linear(1, 1), None, {"config": {}})  # valid manifest, no data order
    with pytest.warns(UserWarning, match="step-00000007.*data_order"):
        result = train(_objective("ae"), digits, _config(tmp_path, steps=8, resume=True))
    assert result.resumed_from.name == "step-00000006" and result.step == 8


def test_resuming_from_a_named_checkpoint_without_a_data_order_raises(digits, tmp_path):
    save_checkpoint(tmp_path, 3, torch.nn.Linear(1, 1), None, {"config": {}})
    with pytest.raises(CheckpointError, match="data_order"):
        train(_objective("ae"), digits, _config(tmp_path, steps=6, resume=str(tmp_path / "step-00000003")))


def test_resuming_from_a_named_corrupt_checkpoint_raises_naming_the_file(digits, tmp_path):
    train(_objective("ae"), digits, _config(tmp_path, steps=3))
    state = tmp_path / "step-00000003" / "state.json"
    state.write_text(state.read_text()[:-20])
    with pytest.raises(CheckpointError, match="state.json"):
        train(_objective("ae"), digits, _config(tmp_path, steps=6, resume=str(tmp_path / "step-00000003")))


def test_resume_with_no_checkpoint_starts_from_scratch(digits, tmp_path):
    result = train(_objective("ae"), digits, _config(tmp_path / "empty", steps=2, resume=True))
    assert result.resumed_from is None and result.step == 2


def test_resuming_a_finished_run_changes_nothing(digits, tmp_path):
    done = train(_objective("ae"), digits, _config(tmp_path, steps=3))
    again = train(_objective("ae"), digits, _config(tmp_path, steps=3, resume=True))
    assert again.step == 3 and again.history == []
    for a, b in zip(done.objective.state_dict().values(), again.objective.state_dict().values()):
        assert torch.equal(a, b)


def test_resuming_with_a_changed_batch_size_warns(digits, tmp_path):
    train(_objective("ae"), digits, _config(tmp_path, steps=3))
    with pytest.warns(UserWarning, match="batch_size: 16 -> 8"):
        train(_objective("ae"), digits, _config(tmp_path, steps=4, batch_size=8, resume=True))


def test_checkpoint_state_records_step_data_order_and_config(digits, tmp_path):
    train(_objective("ae"), digits, _config(tmp_path, steps=3))
    state = json.loads((tmp_path / "step-00000003" / "state.json").read_text())
    assert state["step"] == 3 and state["data_order"]["epoch"] == 0 and state["data_order"]["offset"] == 48
    assert os.path.samefile(state["config"]["checkpoint_dir"], tmp_path)


def test_resuming_with_a_new_lr_sets_it_in_the_optimizer_and_says_so(digits, tmp_path):
    train(_objective("ae"), digits, _config(tmp_path, steps=3))
    with pytest.warns(UserWarning, match=r"lr: 0.003 -> 0.01\); the optimizer now uses the new lr"):
        train(_objective("ae"), digits, _config(tmp_path, steps=4, lr=1e-2, resume=True))
    groups = json.loads((tmp_path / "step-00000004" / "optimizer.json").read_text())["param_groups"]
    assert [group["lr"] for group in groups] == [1e-2]


def test_resuming_on_other_data_of_the_same_size_is_refused(digits, tmp_path):
    train(_objective("ae"), digits, _config(tmp_path, steps=3))
    with pytest.raises(CheckpointError, match=r"step-00000003 was trained on other data \(200 images of 1x16x16, "
                                              r"SHA-256 .*\) than this run's \(200 images.*start afresh"):
        train(_objective("ae"), digits.flip(-1), _config(tmp_path, steps=4, resume=True))


def test_resuming_a_checkpoint_of_another_model_spec_is_refused(digits, tmp_path):
    train(_objective("ae"), digits, _config(tmp_path, steps=3, model_spec="builtin:tiny-ae"))
    with pytest.raises(CheckpointError, match="a run of the model 'builtin:tiny-ae', but this run trains 'other'"):
        train(_objective("ae"), digits, _config(tmp_path, steps=4, model_spec="other", resume=True))


def test_resuming_with_another_architecture_names_a_tensor_and_both_shapes(digits, tmp_path):
    train(_objective("sae"), digits, _config(tmp_path, steps=3))
    torch.manual_seed(0)
    wider = conv_objective("sae", z_dim=6, width=16)
    with pytest.raises(CheckpointError, match=r"model.safetensors holds another architecture than this model: "
                                              r"'wrapper\.model\.decoder\.fc\.0\.bias' is \[128\] there but \[256\] "
                                              r"here; .*more tensors differ.*start afresh"):
        train(wider, digits, _config(tmp_path, steps=4, resume=True))


def test_a_checkpoint_whose_data_order_lies_past_the_data_is_refused(digits, tmp_path):
    train(_objective("ae"), digits, _config(tmp_path, steps=3))
    state = json.loads((tmp_path / "step-00000003" / "state.json").read_text())
    order = {**state["data_order"], "offset": 10**6}
    crafted = {"config": state["config"], "data": state["data"], "data_order": order}  # a manifest that verifies
    saved = load_checkpoint(tmp_path / "step-00000003")
    model = _objective("ae")
    saved.load_model(model)
    optimizer = torch.optim.Adam(model.parameters())
    optimizer.load_state_dict(saved.optimizer_state)
    save_checkpoint(tmp_path, 5, model, optimizer, crafted, saved.tensors)
    with pytest.raises(CheckpointError, match=r"step-00000005/state.json: .*offset 1000000 lies outside an epoch"):
        train(_objective("ae"), digits, _config(tmp_path, steps=6, resume=str(tmp_path / "step-00000005")))


@pytest.mark.parametrize("state, message", [
    ({"offset": 200}, "offset 200 lies outside an epoch of this process's 200 images"),
    ({"offset": -1}, "offset -1 lies outside"),
    ({"epoch": 2**63}, "epoch 9223372036854775808 is not an int"),
])
def test_a_data_order_state_outside_the_stream_is_refused(state, message):
    batches = ShardedBatches(200, 16, seed=7)
    with pytest.raises(ValueError, match=message):
        batches.load_state({**batches.state(), **state})
