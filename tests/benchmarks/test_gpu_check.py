"""The GPU check's smoke mode: every part runs on the CPU at a tiny size and writes its figures."""

import json
import subprocess
from pathlib import Path

from benchmarks import gpu_check


def test_cpu_smoke_run_writes_every_part_with_peak_memory(tmp_path):
    assert gpu_check.main(["--device", "cpu", "--size", "tiny", "--no-compile", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert set(result["parts"]) == {"autocast", "stylegan2"}
    rows = [row for part in result["parts"].values() for row in part]
    assert not [row for row in rows if "error" in row]
    assert {row["dtype"] for row in result["parts"]["autocast"]} == {"float32", "float16 autocast",
                                                                      "bfloat16 autocast"}
    assert {(row["part"], row["variant"]) for row in result["parts"]["stylegan2"]} == {
        ("StyleGAN2 forward", "eager"), ("StyleGAN2 train step", "eager")}
    assert all(row["median_ms"] > 0 and row["peak_memory_mib"] > 0 for row in rows)


def test_cuda_without_a_gpu_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(gpu_check.torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "no CUDA device" in capsys.readouterr().err


ROOT = Path(__file__).resolve().parents[2]


def test_the_shell_entry_runs_the_smoke_check_with_the_project_interpreter(tmp_path):
    done = subprocess.run(["sh", str(ROOT / "benchmarks" / "gpu_check.sh"), "--device", "cpu", "--size", "tiny",
                           "--no-compile", "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert set(json.loads((tmp_path / "gpu_check.json").read_text())["parts"]) == {"autocast", "stylegan2"}


def test_install_from_a_folder_without_wheels_is_refused_before_pip_runs(tmp_path):
    done = subprocess.run(["sh", str(ROOT / "benchmarks" / "gpu_check.sh"), "--install", str(tmp_path), "--device",
                           "cpu"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"--install {tmp_path} holds no .whl files" in done.stderr and "offline_wheels.sh" in done.stderr


def test_the_offline_wheels_script_parses_and_asks_for_its_folder():
    script = ROOT / "scripts" / "offline_wheels.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "usage: scripts/offline_wheels.sh DIR" in done.stderr
