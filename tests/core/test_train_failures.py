"""Runs that must stop with one error of ours: a diverged run (nothing written after its last good checkpoint)
and a second run on a checkpoint folder in use."""

import json

import pytest
import torch
from safetensors.torch import load_file

from sphere_plugins.checkpoint import CheckpointError, checkpoint_lock, list_checkpoints
from sphere_plugins.data import load_images
from sphere_plugins.errors import TrainingDivergedError
from sphere_plugins.training import TrainConfig, conv_objective, train


@pytest.fixture(scope="module")
def digits():
    return load_images("digits", resolution=16, limit=200).images


def _config(folder, **overrides):
    return TrainConfig(**{"steps": 6, "batch_size": 16, "lr": 3e-3, "log_every": 1, "progress": False,
                          "checkpoint_every": 1, "checkpoint_dir": str(folder / "checkpoints"),
                          "log_path": str(folder / "log.jsonl"), "seed": 7, "cpu": True, **overrides})


def _objective():
    torch.manual_seed(0)
    return conv_objective("ae", z_dim=6, width=8)


def _strict(text):
    def refuse(constant):
        raise ValueError(f"bare {constant} in JSON")

    return json.loads(text, parse_constant=refuse)


def test_a_diverging_run_stops_naming_the_step_and_keeps_only_good_checkpoints(digits, tmp_path):
    with pytest.raises(TrainingDivergedError, match=r"the loss was not finite at step 2 \(lr 1e\+30\); the last "
                                                    r"good checkpoint, .*step-00000001, is kept"):
        train(_objective(), digits, _config(tmp_path, lr=1e30))
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["step-00000001"]
    weights = load_file(tmp_path / "checkpoints" / "step-00000001" / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in weights.values())
    assert [_strict(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()] == [1]


def test_a_run_whose_weights_stop_being_finite_stops_before_saving_them(digits, tmp_path):
    objective, backward_passes = _objective(), []

    def infinite_gradient_on_the_fourth_step(parameter):  # the loss of step 4 is finite, its update is not
        backward_passes.append(1)
        if len(backward_passes) == 4:
            parameter.grad.fill_(float("inf"))

    next(objective.parameters()).register_post_accumulate_grad_hook(infinite_gradient_on_the_fourth_step)
    with pytest.raises(TrainingDivergedError, match="the weights were not finite after step 4"):
        train(objective, digits, _config(tmp_path, log_every=10))
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")][-1] == "step-00000003"


def test_a_diverged_run_without_checkpoints_says_none_was_written(digits, tmp_path):
    with pytest.raises(TrainingDivergedError, match="no checkpoint was written"):
        train(_objective(), digits, TrainConfig(steps=4, batch_size=16, lr=1e30, progress=False, cpu=True))


def test_a_checkpoint_folder_in_use_by_another_run_is_refused(digits, tmp_path):
    with checkpoint_lock(tmp_path / "checkpoints"):
        with pytest.raises(CheckpointError, match=r"checkpoints is in use by another run \(process [0-9]+\)"):
            train(_objective(), digits, _config(tmp_path, steps=2))
        assert not list_checkpoints(tmp_path / "checkpoints")
    assert train(_objective(), digits, _config(tmp_path, steps=2)).step == 2  # free again once released
