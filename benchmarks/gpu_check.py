"""One command for a machine with a GPU: the CUDA tests, the overhead suite, centerize + spherize and the wrapper
under float16/bfloat16 autocast, our StyleGAN2 forward pass and training step eager vs torch.compile (batch 32,
64x64 and 256x256), the finetune suite at quick scale, and the peak memory of each, written to results/gpu/.

    python -m benchmarks.gpu_check                   # on cuda, about 8 minutes on one GPU
    python -m benchmarks.gpu_check --device cpu --size tiny --no-compile   # smoke test of the script itself

Each part runs on its own; one that fails is recorded with its error and the rest still run. Timings are
reported, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from sphere_plugins import centerize_spherize, load_model, wrap_generator
from sphere_plugins.timing import synchronize

ROOT = Path(__file__).resolve().parents[1]
SIZES = {
    # StyleGAN2 configurations (NVIDIA's 'paper256' shapes at full size), batch, timing repeats.
    "full": {"batch": 32, "resolutions": [64, 256], "z_dim": 512, "channel_base": 16384, "channel_max": 512,
             "mapping_layers": 8, "repeats": 20, "latent_shapes": [[64, 512], [512, 512], [8192, 512],
                                                                   [65536, 512]], "suites": True},
    "tiny": {"batch": 4, "resolutions": [8], "z_dim": 16, "channel_base": 64, "channel_max": 8,
             "mapping_layers": 1, "repeats": 1, "latent_shapes": [[4, 16]], "suites": False},
}


@contextlib.contextmanager
def peak_memory(device: torch.device, into: dict[str, Any]) -> Iterator[None]:
    """Record the peak memory of the block: allocated GPU memory on cuda, the process's peak RSS on cpu
    (a high-water mark for the whole process so far, so only an upper bound there)."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    yield
    if device.type == "cuda":
        synchronize(device)
        into["peak_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        into["peak_memory_kind"] = "torch.cuda.max_memory_allocated"
    else:
        into["peak_memory_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        into["peak_memory_kind"] = "process peak RSS (upper bound)"


def median_ms(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def first_call_s(fn: Callable[[], object], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def stylegan2_nets(size: dict, resolution: int, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    from sphere_stylegan2.discriminator import Discriminator
    from sphere_stylegan2.generator import Generator

    torch.manual_seed(0)
    common = dict(channel_base=size["channel_base"], channel_max=size["channel_max"])
    G = Generator(z_dim=size["z_dim"], c_dim=0, w_dim=size["z_dim"], img_resolution=resolution, img_channels=3,
                  mapping_kwargs=dict(num_layers=size["mapping_layers"]), synthesis_kwargs=common)
    D = Discriminator(c_dim=0, img_resolution=resolution, img_channels=3, **common)
    return G.to(device), D.to(device)


def stylegan2_rows(size: dict, device: torch.device, compile_too: bool) -> list[dict]:
    """Forward (no grad) and one non-saturating G + D training step, eager and compiled, per resolution."""
    import torch.nn.functional as F

    rows = []
    for resolution in size["resolutions"]:
        G, D = stylegan2_nets(size, resolution, device)
        opt_G = torch.optim.Adam(G.parameters(), lr=2e-3, betas=(0.0, 0.99))
        opt_D = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.0, 0.99))
        z = torch.randn(size["batch"], size["z_dim"], device=device)
        real = torch.rand(size["batch"], 3, resolution, resolution, device=device) * 2 - 1
        variants = {"eager": (G, D)}
        if compile_too:
            variants["compiled"] = (torch.compile(G), torch.compile(D))
        for name, (g, d) in variants.items():
            def forward(g=g):
                with torch.no_grad():
                    return g(z)

            def step(g=g, d=d):
                loss_G = F.softplus(-d(g(z))).mean()
                opt_G.zero_grad(set_to_none=True)
                loss_G.backward()
                opt_G.step()
                loss_D = F.softplus(d(g(z).detach())).mean() + F.softplus(-d(real)).mean()
                opt_D.zero_grad(set_to_none=True)
                loss_D.backward()
                opt_D.step()

            for kind, fn in (("forward", forward), ("train step", step)):
                row: dict[str, Any] = {"part": f"StyleGAN2 {kind}", "resolution": resolution,
                                       "batch": size["batch"], "variant": name}
                with peak_memory(device, row):
                    row["first_call_s"] = first_call_s(fn, device)
                    row["median_ms"] = median_ms(fn, device, size["repeats"])
                rows.append(row)
        del G, D, variants, opt_G, opt_D
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def autocast_rows(size: dict, device: torch.device) -> list[dict]:
    """centerize_spherize against a copy, and the wrapped tiny StyleGAN2 against the raw one, in float32 and
    under float16 / bfloat16 autocast."""
    G = load_model("stylegan2:tiny", seed=0).to(device).eval()
    wrapped = wrap_generator(G)
    z_G = torch.randn(size["batch"], G.z_dim, device=device)
    rows = []
    for dtype in (None, torch.float16, torch.bfloat16):
        label = "float32" if dtype is None else str(dtype).replace("torch.", "") + " autocast"
        context = (contextlib.nullcontext() if dtype is None
                   else torch.autocast(device_type=device.type, dtype=dtype))
        try:
            with torch.no_grad(), context:
                for shape in size["latent_shapes"]:
                    z = torch.randn(shape, device=device)
                    if dtype is not None:
                        z = z.to(dtype)  # what a model under autocast hands the constraint
                    row: dict[str, Any] = {"part": "centerize_spherize / copy", "shape": shape, "dtype": label}
                    with peak_memory(device, row):
                        copy_ms = median_ms(lambda: z.clone(), device, size["repeats"] * 5)
                        row["median_ms"] = median_ms(lambda: centerize_spherize(z), device, size["repeats"] * 5)
                    row["ratio"] = row["median_ms"] / copy_ms
                    rows.append(row)
                row = {"part": "wrapped / raw StyleGAN2 tiny", "batch": size["batch"], "dtype": label}
                with peak_memory(device, row):
                    raw_ms = median_ms(lambda: G(z_G), device, size["repeats"] * 5)
                    row["median_ms"] = median_ms(lambda: wrapped(z_G), device, size["repeats"] * 5)
                row["ratio"] = row["median_ms"] / raw_ms
                rows.append(row)
        except (RuntimeError, TypeError) as error:  # a dtype this device's autocast does not support
            rows.append({"part": "autocast", "dtype": label, "error": " ".join(str(error).split())[:300]})
    return rows


def run_cli(args: list[str], log: Path, timeout_s: float) -> dict:
    """Run a command, its output to `log`; the exit status and seconds."""
    start = time.perf_counter()
    with open(log, "w") as handle:
        try:
            code = subprocess.run(args, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout_s).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    return {"command": " ".join(args), "exit": code, "seconds": time.perf_counter() - start, "log": log.name}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for a smoke run")
    parser.add_argument("--size", default="full", choices=sorted(SIZES), help="full (default) or tiny")
    parser.add_argument("--out", default="results/gpu", help="output folder (default: results/gpu)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device; use --device cpu for a smoke run", file=sys.stderr)
        return 2
    size = SIZES[args.size]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "size": args.size, "command": " ".join(["python -m benchmarks.gpu_check",
                                                                          *(argv or sys.argv[1:])]), "parts": {}}
    start = time.perf_counter()
    python = sys.executable
    parts: list[tuple[str, Callable[[], Any]]] = []
    if size["suites"]:
        parts.append(("cuda tests", lambda: run_cli(
            [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda", "tests"],
            out / "cuda_tests.log", 120)))
        parts.append(("overhead suite", lambda: run_cli(
            [python, "benchmarks/run.py", "overhead", "--device", args.device, "--data", "digits", "--out", str(out / "suites")],
            out / "overhead.log", 150)))
    parts.append(("autocast", lambda: autocast_rows(size, device)))
    parts.append(("stylegan2", lambda: stylegan2_rows(size, device, not args.no_compile)))
    if size["suites"]:
        parts.append(("finetune suite", lambda: run_cli(
            [python, "benchmarks/run.py", "finetune", "--device", args.device, "--scale", "quick", "--data", "digits",
             "--out", str(out / "suites")], out / "finetune.log", 150)))
    for name, part in parts:
        begun = time.perf_counter()
        try:
            result["parts"][name] = part()
        except Exception as error:  # one broken part must not hide the others' figures
            result["parts"][name] = {"error": f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"}
        print(f"[{name}] {time.perf_counter() - begun:.1f} s", flush=True)
        (out / "gpu_check.json").write_text(json.dumps(result, indent=1, default=str))
    result["seconds"] = time.perf_counter() - start
    (out / "gpu_check.json").write_text(json.dumps(result, indent=1, default=str))
    print(f"gpu check: {result['seconds']:.0f} s -> {out / 'gpu_check.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
