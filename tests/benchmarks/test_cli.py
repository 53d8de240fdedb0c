"""The command line: bad input gives one clear line on stderr and a non-zero exit, before anything runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.cli import EXIT_BAD_INPUT, parse_options
from benchmarks.common import BenchmarkError
from benchmarks.suites import SUITE_NAMES

ROOT = Path(__file__).resolve().parents[2]


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_no_suite_means_every_suite_at_quick_scale_on_fashion_mnist_and_cpu():
    options = parse_options([])
    assert (options.suites, options.scale, options.data, options.device) == (
        list(SUITE_NAMES), "quick", "fashion-mnist", "cpu")


def test_unknown_suite_exits_2_naming_it_and_the_suites(run_cli, capsys, tmp_path):
    assert run_cli(["theory", "nosuch", "--out", str(tmp_path)]) == EXIT_BAD_INPUT
    line = error_line(capsys)
    assert "'nosuch'" in line and all(name in line for name in SUITE_NAMES)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("argv, words", [
    (["--scale", "huge"], ["--scale", "huge"]),
    (["--steps", "0"], ["--steps", "0"]),
    (["--rounds", "0"], ["--rounds", "0"]),
    (["--n-samples", "-3"], ["--n-samples"]),
    (["--seed", "x"], ["--seed"]),
    (["--resolution", "12"], ["--resolution", "power of two"]),
    (["--device", "cuda:7"] if not __import__("torch").cuda.is_available() else ["--device", "tpu"], ["--device"]),
])
def test_bad_option_values_exit_2_with_one_line(run_cli, capsys, tmp_path, argv, words):
    assert run_cli(["theory", *argv, "--out", str(tmp_path)]) == EXIT_BAD_INPUT
    line = error_line(capsys)
    assert all(word in line for word in words), line


@pytest.mark.parametrize("argv, words", [
    (["--resolution", "65536"], ["--resolution", "1024"]),
    (["--n-samples", str(10**12)], ["--n-samples", "1000000"]),
    (["--rounds", str(10**9)], ["--rounds", "100000"]),
    (["--steps", str(10**15)], ["--steps", "10000000"]),
])
def test_huge_sizes_exit_2_before_any_work(run_cli, capsys, tmp_path, argv, words):
    assert run_cli(["theory", *argv, "--out", str(tmp_path / "out")]) == EXIT_BAD_INPUT
    line = error_line(capsys)
    assert all(word in line for word in words), line
    assert not any(tmp_path.iterdir())


def test_out_pointing_at_a_file_exits_2(run_cli, capsys, tmp_path):
    target = tmp_path / "results.txt"
    target.write_text("keep")
    assert run_cli(["theory", "--out", str(target)]) == EXIT_BAD_INPUT
    assert "is a file" in error_line(capsys) and target.read_text() == "keep"


def test_empty_out_exits_2(run_cli, capsys, tmp_path):
    assert run_cli(["theory", "--out", ""]) == EXIT_BAD_INPUT
    assert "--out is empty" in error_line(capsys)


def test_out_under_a_file_or_unwritable_folder_exits_2(run_cli, capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    assert run_cli(["theory", "--out", str(tmp_path / "file" / "results")]) == EXIT_BAD_INPUT
    assert "cannot be written" in error_line(capsys)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if not os.access(locked, os.W_OK):  # root may write anywhere
        assert run_cli(["theory", "--out", str(locked / "results")]) == EXIT_BAD_INPUT
        assert "cannot be written" in error_line(capsys)


def test_unknown_data_spec_is_rejected(run_cli, capsys, tmp_path):
    assert run_cli(["theory", "--data", "imagenet", "--out", str(tmp_path)]) == EXIT_BAD_INPUT
    line = error_line(capsys)
    assert "'imagenet'" in line and "'fashion-mnist'" in line


def test_empty_image_folder_is_rejected(run_cli, capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli(["theory", "--data", f"folder:{empty}", "--out", str(tmp_path / "r")]) == EXIT_BAD_INPUT
    assert "no image files" in error_line(capsys)


def test_missing_image_folder_is_rejected(run_cli, capsys, tmp_path):
    assert run_cli(["theory", "--data", f"folder:{tmp_path / 'absent'}", "--out", str(tmp_path)]) == EXIT_BAD_INPUT
    assert "does not exist" in error_line(capsys)


def test_images_of_mixed_sizes_are_rejected_unless_resized(run_cli, capsys, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "a.png")
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(folder / "b.png")
    assert run_cli(["theory", "--data", f"folder:{folder}", "--out", str(tmp_path / "r")]) == EXIT_BAD_INPUT
    line = error_line(capsys)
    assert "different sizes" in line and "--resolution" in line


def test_missing_model_file_is_named(run_cli, capsys, tmp_path):
    missing = tmp_path / "ffhq.pkl"
    assert run_cli(["sampling", "--model", f"stylegan2:{missing}", "--out", str(tmp_path)]) == EXIT_BAD_INPUT
    line = error_line(capsys)
    assert str(missing) in line and "does not exist" in line


def test_model_scheme_no_chosen_suite_takes_is_rejected(run_cli, capsys, tmp_path):
    assert run_cli(["theory", "--model", "stylegan2:tiny", "--out", str(tmp_path)]) == EXIT_BAD_INPUT
    assert "no chosen suite takes" in error_line(capsys)


def test_model_spec_without_scheme_is_rejected(run_cli, capsys, tmp_path):
    assert run_cli(["sampling", "--model", "ffhq.pkl", "--out", str(tmp_path)]) == EXIT_BAD_INPUT
    assert "scheme" in error_line(capsys)


def test_every_suite_declares_its_own_documented_check():
    from benchmarks.suites import get_suite

    for name in SUITE_NAMES:
        check = getattr(get_suite(name), "check", None)
        assert callable(check) and check.__doc__, name


def test_options_reject_a_bad_scale_directly():
    from benchmarks.common import Options

    with pytest.raises(BenchmarkError, match="--scale"):
        Options(scale="medium")


@pytest.mark.parametrize("entry", ["file", "module"])
def test_both_entry_points_exit_2_on_an_unknown_suite(tmp_path, entry):
    # `python benchmarks/run.py` from anywhere, `python -m benchmarks.run` from the repository root
    command, cwd = (([str(ROOT / "benchmarks" / "run.py")], tmp_path) if entry == "file"
                    else (["-m", "benchmarks.run"], ROOT))
    done = subprocess.run([sys.executable, *command, "nosuch", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)
    assert done.returncode == EXIT_BAD_INPUT
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "nosuch" in done.stderr
