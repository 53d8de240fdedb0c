"""Checkpoints: exact round trips of weights and optimizer state, atomic writes, pruning, corruption."""

import json
import os

import pytest
import torch
from torch import nn

from sphere_plugins.checkpoint import (
    CheckpointError,
    flatten_optimizer_state,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    unflatten_optimizer_state,
)


def _trained(seed=0, steps=3):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    for _ in range(steps):
        model(torch.randn(5, 4)).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    return model, optimizer


def _save(root, step, model, optimizer, keep=None):
    return save_checkpoint(root, step, model, optimizer, {"note": "test"}, {"rng/cpu/0": torch.get_rng_state()},
                           keep=keep)


def test_optimizer_state_survives_flattening_exactly():
    _, optimizer = _trained()
    tensors, meta = flatten_optimizer_state(optimizer.state_dict())
    json.dumps(meta)
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())
    restored = unflatten_optimizer_state(tensors, json.loads(json.dumps(meta)))
    original = optimizer.state_dict()
    assert restored["param_groups"][0]["betas"] == list(original["param_groups"][0]["betas"])
    for param_id, entries in original["state"].items():
        for key, value in entries.items():
            assert torch.equal(restored["state"][param_id][key], value)


def test_training_continues_identically_after_a_round_trip(tmp_path):
    model, optimizer = _trained()
    path = _save(tmp_path, 3, model, optimizer)
    twin, twin_optimizer = _trained(seed=1, steps=1)  # different weights and state, same structure
    checkpoint = load_checkpoint(path)
    checkpoint.load_model(twin)
    twin_optimizer.load_state_dict(checkpoint.optimizer_state)
    batch = torch.randn(5, 4)
    for m, o in ((model, optimizer), (twin, twin_optimizer)):
        m(batch).square().mean().backward()
        o.step()
    for a, b in zip(model.state_dict().values(), twin.state_dict().values()):
        assert torch.equal(a, b)


def test_checkpoint_records_step_state_and_extra_tensors(tmp_path):
    model, optimizer = _trained()
    rng = torch.get_rng_state()
    checkpoint = load_checkpoint(_save(tmp_path, 7, model, optimizer))
    assert checkpoint.step == 7 and checkpoint.state["note"] == "test"
    assert torch.equal(checkpoint.tensors["rng/cpu/0"], rng)


def test_tied_weights_are_saved_and_restored(tmp_path):
    model = nn.Sequential(nn.Linear(3, 3, bias=False), nn.Linear(3, 3, bias=False))
    model[1].weight = model[0].weight
    path = save_checkpoint(tmp_path, 1, model, None, {})
    fresh = nn.Sequential(nn.Linear(3, 3, bias=False), nn.Linear(3, 3, bias=False))
    fresh[1].weight = fresh[0].weight
    load_checkpoint(path).load_model(fresh)
    assert torch.equal(fresh[0].weight, model[0].weight) and fresh[1].weight is fresh[0].weight


def test_a_write_leaves_no_temporary_folder_and_keeps_only_the_newest(tmp_path):
    model, optimizer = _trained()
    for step in (1, 2, 3, 4):
        _save(tmp_path, step, model, optimizer, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000003", "step-00000004"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_half_written_checkpoint_from_a_killed_writer_is_ignored_and_cleaned(tmp_path):
    model, optimizer = _trained()
    good = _save(tmp_path, 2, model, optimizer)
    dead = tmp_path / ".tmp-step-00000004-999999"  # a writer killed before its rename
    dead.mkdir()
    (dead / "model.safetensors").write_bytes(b"partial")
    assert latest_checkpoint(tmp_path) == good
    _save(tmp_path, 3, model, optimizer)
    assert not dead.exists()


def test_a_temporary_checkpoint_of_a_live_writer_is_left_alone(tmp_path):
    model, optimizer = _trained()
    live = tmp_path / f".tmp-step-00000004-{os.getppid()}"  # another process, still running, is writing it
    live.mkdir()
    (live / "model.safetensors").write_bytes(b"partial")
    _save(tmp_path, 3, model, optimizer)
    assert (live / "model.safetensors").read_bytes() == b"partial"


def test_saving_a_step_again_replaces_it(tmp_path):
    model, optimizer = _trained()
    _save(tmp_path, 5, model, optimizer)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    path = _save(tmp_path, 5, model, optimizer)
    fresh, _ = _trained(seed=3)
    load_checkpoint(path).load_model(fresh)
    assert torch.equal(fresh[0].weight, model[0].weight)


def _truncate(file):
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda p: _truncate(p / "model.safetensors"), "model.safetensors"),
        (lambda p: (p / "state.json").write_text("{not json"), "state.json"),
        (lambda p: (p / "optimizer.safetensors").unlink(), "optimizer.safetensors"),
        (lambda p: (p / "optimizer.json").write_text((p / "optimizer.json").read_text().replace("0.8", "0.7")),
         "optimizer.json"),
    ],
)
def test_loading_a_corrupt_checkpoint_names_the_bad_file(tmp_path, damage, named):
    model, optimizer = _trained()
    path = _save(tmp_path, 1, model, optimizer)
    damage(path)
    with pytest.raises(CheckpointError, match=named):
        load_checkpoint(path)


def test_latest_checkpoint_falls_back_past_a_corrupt_one_with_a_warning(tmp_path):
    model, optimizer = _trained()
    older = _save(tmp_path, 1, model, optimizer)
    newer = _save(tmp_path, 2, model, optimizer)
    _truncate(newer / "model.safetensors")
    with pytest.warns(UserWarning, match="step-00000002.*model.safetensors"):
        assert latest_checkpoint(tmp_path) == older


def test_latest_checkpoint_raises_when_every_checkpoint_is_corrupt(tmp_path):
    model, optimizer = _trained()
    path = _save(tmp_path, 1, model, optimizer)
    (path / "state.json").write_text("")
    with pytest.warns(UserWarning), pytest.raises(CheckpointError, match="no valid checkpoint"):
        latest_checkpoint(tmp_path)


def test_latest_checkpoint_of_an_empty_or_missing_folder_is_none(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    assert latest_checkpoint(tmp_path / "absent") is None


def test_weights_of_another_model_are_rejected_naming_the_file(tmp_path):
    model, optimizer = _trained()
    checkpoint = load_checkpoint(_save(tmp_path, 1, model, optimizer))
    with pytest.raises(CheckpointError, match="model.safetensors"):
        checkpoint.load_model(nn.Linear(4, 2))


def test_a_missing_checkpoint_folder_is_reported(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "step-00000001")


def _edit_state(path, **changes):
    state = json.loads((path / "state.json").read_text())
    state.update(changes)
    (path / "state.json").write_text(json.dumps(state))


def test_pruning_leaves_a_users_folder_named_like_a_checkpoint_and_its_files(tmp_path):
    model, optimizer = _trained()
    mine = tmp_path / "step-00000001"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    stray = tmp_path / "step-00009999"  # higher-numbered, not written by save_checkpoint
    stray.mkdir()
    (stray / "results.csv").write_text("a,b\n")
    with pytest.warns(UserWarning, match="step-00000001.*step-00009999"):
        for step in (2, 3, 4):
            _save(tmp_path, step, model, optimizer, keep=2)
    assert (mine / "notes.txt").read_text() == "my notes" and (stray / "results.csv").read_text() == "a,b\n"
    assert {p.name for p in tmp_path.iterdir()} == {"step-00000001", "step-00009999", "step-00000003",
                                                    "step-00000004"}


def test_pruning_spares_a_checkpoint_holding_a_users_file(tmp_path):
    model, optimizer = _trained()
    first = _save(tmp_path, 1, model, optimizer)
    (first / "keep-me.txt").write_text("x")
    with pytest.warns(UserWarning, match="step-00000001"):
        _save(tmp_path, 2, model, optimizer, keep=1)
    assert (first / "keep-me.txt").exists() and (first / "model.safetensors").exists()


def test_pruning_leaves_foreign_hidden_folders_alone(tmp_path):
    model, optimizer = _trained()
    foreign = tmp_path / ".tmp-cache"
    foreign.mkdir()
    (foreign / "data.bin").write_bytes(b"1")
    looks_like_ours = tmp_path / ".tmp-step-00000001-1"
    looks_like_ours.mkdir()
    (looks_like_ours / "thesis.tex").write_text("x")
    with pytest.warns(UserWarning, match=r"\.tmp-cache"):
        _save(tmp_path, 2, model, optimizer, keep=1)
    assert (foreign / "data.bin").exists() and (looks_like_ours / "thesis.tex").exists()


def test_a_foreign_folder_at_the_step_being_saved_is_moved_aside_not_deleted(tmp_path):
    model, optimizer = _trained()
    theirs = tmp_path / "step-00000005"
    theirs.mkdir()
    (theirs / "data.txt").write_text("theirs")
    with pytest.warns(UserWarning, match="moved it to"):
        path = _save(tmp_path, 5, model, optimizer)
    assert load_checkpoint(path).step == 5
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("step-00000005.replaced-")]
    assert len(moved) == 1 and (moved[0] / "data.txt").read_text() == "theirs"


@pytest.mark.parametrize("change", [{"step": 7}, {"note": "edited"}, {"data_order": {"epoch": 3}}])
def test_an_edited_state_file_is_refused_as_corrupt(tmp_path, change):
    model, optimizer = _trained()
    path = _save(tmp_path, 1, model, optimizer)
    _edit_state(path, **change)
    with pytest.raises(CheckpointError, match="state.json"):
        load_checkpoint(path)


@pytest.mark.parametrize("drop", ["files", "step", "format"])
def test_a_state_file_missing_a_field_makes_the_checkpoint_skipped_with_a_warning(tmp_path, drop):
    model, optimizer = _trained()
    good = _save(tmp_path, 1, model, optimizer)
    bad = _save(tmp_path, 2, model, optimizer)
    state = json.loads((bad / "state.json").read_text())
    del state[drop]
    (bad / "state.json").write_text(json.dumps(state))
    with pytest.warns(UserWarning, match="skipping corrupt checkpoint"):
        assert latest_checkpoint(tmp_path) == good


def test_a_file_entry_without_its_size_is_skipped_with_a_warning(tmp_path):
    model, optimizer = _trained()
    good = _save(tmp_path, 1, model, optimizer)
    bad = _save(tmp_path, 2, model, optimizer)
    state = json.loads((bad / "state.json").read_text())
    del state["files"]["model.safetensors"]["bytes"]
    (bad / "state.json").write_text(json.dumps(state))
    with pytest.warns(UserWarning, match="bytes"):
        assert latest_checkpoint(tmp_path) == good


def test_a_caller_check_rejects_a_state_without_the_fields_it_needs(tmp_path):
    model, optimizer = _trained()
    good = save_checkpoint(tmp_path, 1, model, optimizer, {"data_order": {"epoch": 0}})
    save_checkpoint(tmp_path, 2, model, optimizer, {})

    def needs_order(state):
        if "data_order" not in state:
            raise CheckpointError("no data_order")

    with pytest.warns(UserWarning, match="no data_order"):
        assert latest_checkpoint(tmp_path, check=needs_order) == good


def test_folders_with_odd_step_names_are_ignored(tmp_path):
    model, optimizer = _trained()
    for name in ("step-²", "step-1.5", "step-", "step-٣"):
        (tmp_path / name).mkdir()
    good = _save(tmp_path, 1, model, optimizer)
    assert list_checkpoints(tmp_path) == [good] and latest_checkpoint(tmp_path) == good
