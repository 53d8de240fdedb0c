"""The command line never deletes or overwrites a user's files: --out must be new, empty or written by us, and a
refusal is one line naming the folder (exit 2) before any work."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "sphere_plugins", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env=env)


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def _users_folder(folder):
    (folder / "model" / "thesis").mkdir(parents=True)
    (folder / "model" / "thesis" / "ch1.tex").write_text("\\chapter{One}")
    for name in ("notes.txt", "wrapper_state.safetensors", "log.jsonl", "config.json", "seed0000.png", "grid.png"):
        (folder / name).write_text(f"the user's {name}")
    return folder


@pytest.fixture(scope="module")
def pickle_file(tmp_path_factory):
    from sphere_plugins import load_model
    from sphere_stylegan2.loader import save_nvlabs_pickle

    path = tmp_path_factory.mktemp("pkl") / "g.pkl"
    save_nvlabs_pickle(path, G_ema=load_model("stylegan2:tiny", seed=0))
    return path


@pytest.mark.parametrize("command", [
    ["finetune", "builtin:tiny-ae", "--data", "digits", "--steps", "1", "--out"],
    ["convert", "PICKLE"],
    ["sample", "stylegan2:tiny", "--seeds", "0-1", "--out"],
    ["interpolate", "stylegan2:tiny", "--seeds", "0,1", "--out"],
])
def test_a_folder_of_the_users_files_is_refused_before_any_work_and_left_as_it_was(command, tmp_path, pickle_file):
    folder = _users_folder(tmp_path / "u")
    before = _snapshot(folder)
    args = [pickle_file if arg == "PICKLE" else arg for arg in command]
    result = cli(*args, folder)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and f"refusing to write into '{folder}'" in result.stderr
    assert _snapshot(folder) == before


def test_out_home_is_refused_and_its_model_folder_kept(tmp_path):
    home = tmp_path / "home"
    (home / "model").mkdir(parents=True)
    (home / "model" / "weights.bin").write_bytes(b"\x00" * 8)
    result = cli("finetune", "builtin:tiny-ae", "--data", "digits", "--steps", "1", "--out", "~",
                 env=dict(os.environ, HOME=str(home)))
    assert result.returncode == 2 and f"refusing to write into '{home}'" in result.stderr, result.stderr
    assert (home / "model" / "weights.bin").read_bytes() == b"\x00" * 8


def test_sample_replaces_its_own_images_but_not_a_users_image_added_later(tmp_path):
    out = tmp_path / "samples"
    first = cli("sample", "stylegan2:tiny", "--option", "seed=0", "--seeds", "0-1", "--out", out)
    assert first.returncode == 0, first.stderr
    again = cli("sample", "stylegan2:tiny", "--option", "seed=1", "--seeds", "0-1", "--out", out)
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "sample.json").read_text())["options"]["option"] == ["seed=1"]
    (out / "seed0002.png").write_bytes(b"the user's picture")
    third = cli("sample", "stylegan2:tiny", "--seeds", "0-2", "--out", out)
    assert third.returncode == 2 and "seed0002.png' is not a file sphere-plugins wrote" in third.stderr, third.stderr
    assert (out / "seed0002.png").read_bytes() == b"the user's picture"


def test_evaluate_json_out_does_not_replace_a_users_file(tmp_path):
    mine = tmp_path / "results.json"
    mine.write_text('{"my": "results"}')
    result = cli("evaluate", "digits", "digits", "--json-out", mine)
    assert result.returncode == 2 and "--json-out" in result.stderr and "exists" in result.stderr, result.stderr
    assert mine.read_text() == '{"my": "results"}'
