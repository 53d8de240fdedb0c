"""The plugin layer's cost: wrap_generator(G)(z) against G(z), centerize + spherize against a tensor copy
(the memory-bound floor), and a spherical-autoencoder training step against a VAE step. Ratios are
medians of interleaved repeats in one process; timings are reported, never asserted."""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass

import torch

from benchmarks.common import Options, code_fingerprint, markdown_table, pick
from benchmarks.context import Context
from benchmarks.plots import pyplot
from sphere_plugins import centerize, centerize_spherize, load_model, spherize, wrap_generator
from sphere_plugins.nets import ConvDecoder
from sphere_plugins.timing import interleaved_times, median_ratio, synchronize
from sphere_plugins.training import conv_objective
from sphere_plugins.training.speed import compare_step_times

NAME = "overhead"
DESCRIPTION = "cost of the plugin layer: wrapper vs raw model, centerize+spherize vs a copy, training steps"
MODEL_SCHEMES: tuple[str, ...] = ()
WRAPPER_TARGET, COPY_TARGET = 1.02, 3.0


@dataclass(frozen=True)
class Preset:
    """One scale of the suite: timing rounds, the generators' batch, training-step rounds, whether to time
    torch.compile (minutes on a CPU), and the tensor shapes centerize + spherize is timed on."""

    repeats: int
    batch: int
    step_repeats: int
    copy_shapes: list[list[int]]
    compile: bool = False


# torch.compile timing costs minutes of compiling on 2 CPU cores, more than the default run can spend: it runs
# at the larger scales only.
PRESETS = {
    "quick": Preset(repeats=100, batch=64, step_repeats=40, compile=False,
                    copy_shapes=[[64, 512], [1024, 512], [64, 4, 32, 32], [8192, 512]]),
    "standard": Preset(repeats=100, batch=64, step_repeats=40, compile=True,
                       copy_shapes=[[64, 512], [1024, 512], [64, 4, 32, 32], [8192, 512]]),
    "paper": Preset(repeats=200, batch=256, step_repeats=100, compile=True,
                    copy_shapes=[[64, 512], [1024, 512], [64, 4, 64, 64], [65536, 512], [16, 4, 128, 128]]),
}


def settings(ctx: Context) -> Preset:
    return pick(ctx.options, PRESETS, repeats=ctx.options.rounds)


def check(options: Options) -> None:
    """The overhead suite takes no options beyond those every suite shares (benchmarks.inputs checks them)."""


def generators(device: str) -> dict[str, tuple[torch.nn.Module, int, dict]]:
    """Small generators to wrap: the core's conv decoder and, when its plugin is installed, StyleGAN2 tiny."""
    models = {"conv decoder (z 64, 32x32)": (ConvDecoder(channels=3, resolution=32, z_dim=64), 64, {})}
    try:
        G = load_model("stylegan2:tiny", seed=0)
        models["StyleGAN2 tiny (z 64, 16x16)"] = (G, G.z_dim, {"noise_mode": "const"})
    except Exception as error:  # the stylegan2 adapter is optional for this suite
        models["StyleGAN2 tiny (unavailable)"] = (None, 0, {"error": str(error)})
    return {name: (None if m is None else m.to(device).eval(), z, kw) for name, (m, z, kw) in models.items()}


def wrapper_times(device: str, batch: int, repeats: int, seed: int) -> list[dict]:
    """Median ms of G(z), wrap_generator(G)(z), a second G(z) series (the noise floor: same work twice), and
    of the wrapper's latent handling alone (validate, centerize, spherize), which gives 1 + adapt / raw."""
    rows = []
    torch.manual_seed(seed)
    for name, (model, z_dim, kwargs) in generators(device).items():
        if model is None:
            rows.append({"model": name, "error": kwargs["error"]})
            continue
        wrapped = wrap_generator(model)
        z = torch.randn(batch, z_dim, device=device)
        with torch.no_grad():
            times = interleaved_times({"raw": lambda: model(z, **kwargs), "wrapped": lambda: wrapped(z, **kwargs),
                                       "raw again": lambda: model(z, **kwargs)}, repeats, device)
            latent = interleaved_times({"adapt": lambda: wrapped.adapt(z)}, repeats, device)
        medians = {k: statistics.median(v) for k, v in {**times, **latent}.items()}
        rows.append({"model": name, "batch": batch, **{f"{k}_ms": 1e3 * v for k, v in medians.items()},
                     "ratio": median_ratio(times, "wrapped", "raw"), "noise_ratio": median_ratio(times, "raw again", "raw"),
                     "component_ratio": 1 + medians["adapt"] / medians["raw"]})
    return rows


def centerize_spherize_two_reads(z: torch.Tensor, radius: float = 1.0) -> torch.Tensor:
    """A reference formula, not the core's: mean and norm from two reads of z (||z - m||^2 = ||z||^2 - d m^2),
    then one fused write; it loses digits when |mean| is much larger than the spread."""
    dims = tuple(range(1, z.dim()))
    d = z[0].numel()
    mean = z.mean(dim=dims, keepdim=True)
    squared = torch.linalg.vector_norm(z, dim=dims, keepdim=True).square() - d * mean.square()
    scale = radius * torch.rsqrt(squared.clamp_min(torch.finfo(z.dtype).tiny))
    return torch.addcmul(-mean * scale, z, scale)


def copy_times(device: str, shapes: list[list[int]], repeats: int, seed: int) -> list[dict]:
    """Median ms of z.clone(), the core's centerize_spherize(z) (checked and unchecked), the two calls
    chained, layer norm's kernel alone (the floor of the core's path) and the two-read reference formula,
    per shape."""
    rows = []
    generator = torch.Generator().manual_seed(seed)
    for shape in shapes:
        z = torch.randn(shape, generator=generator).to(device)
        vector_shape = z.shape[1:]
        weight = torch.full(vector_shape, z[0].numel() ** -0.5, device=device)
        with torch.no_grad():
            times = interleaved_times({
                "copy": lambda: z.clone(),
                "copy again": lambda: z.clone(),
                "c+s": lambda: centerize_spherize(z, 1.0),
                "c+s unchecked": lambda: centerize_spherize(z, 1.0, check=False),
                "chained": lambda: spherize(centerize(z), 1.0),
                "layer norm kernel": lambda: torch.native_layer_norm(z, vector_shape, weight, None, 0.0),
                "two-read formula": lambda: centerize_spherize_two_reads(z),
            }, repeats, device)
        rows.append({"shape": list(shape), "megabytes": z.numel() * z.element_size() / 2**20,
                     **{f"{k}_ms": 1e3 * statistics.median(v) for k, v in times.items()},
                     "ratio": median_ratio(times, "c+s", "copy"),
                     "ratio_unchecked": median_ratio(times, "c+s unchecked", "copy"),
                     "ratio_chained": median_ratio(times, "chained", "copy"),
                     "ratio_kernel": median_ratio(times, "layer norm kernel", "copy"),
                     "ratio_copy_again": median_ratio(times, "copy again", "copy"),
                     "ratio_two_reads": median_ratio(times, "two-read formula", "copy")})
    return rows


def step_times(device: str, repeats: int, seed: int) -> dict:
    """Training-step medians of the four objectives on one conv architecture (sphere_plugins.training.speed)."""
    return compare_step_times(kinds=("sae", "vae", "svae", "ae"), reference="vae", batch_size=64, resolution=16,
                              z_dim=10, width=32, repeats=repeats, warmup=3, device=device, seed=seed)


def compile_times(device: str, repeats: int, seed: int) -> list[dict]:
    """torch.compile against eager: the first call's seconds (compiling) and the steady-state median ratio,
    for the tiny StyleGAN2 forward pass (no grad) and a spherical-autoencoder training step."""
    torch.manual_seed(seed)
    rows = []
    G = load_model("stylegan2:tiny", seed=seed).to(device).eval()
    z = torch.randn(64, G.z_dim, device=device)
    objective = conv_objective("sae", resolution=16, z_dim=10, width=32).to(device)
    twin = copy.deepcopy(objective)
    batch = torch.rand(64, 1, 16, 16, device=device) * 2 - 1
    optimizers = {id(objective): torch.optim.Adam(objective.parameters()), id(twin): torch.optim.Adam(twin.parameters())}

    def step(module: torch.nn.Module, forward) -> None:
        loss, _ = forward(batch)
        loss.backward()
        optimizers[id(module)].step()
        optimizers[id(module)].zero_grad(set_to_none=True)

    compiled_G, compiled_step = torch.compile(G), torch.compile(twin)
    cases = {"StyleGAN2 tiny forward (batch 64, 16x16)": (lambda: G(z), lambda: compiled_G(z), True),
             "spherical autoencoder step (batch 64, 16x16)": (lambda: step(objective, objective),
                                                              lambda: step(twin, compiled_step), False)}
    for name, (eager, compiled, no_grad) in cases.items():
        with torch.no_grad() if no_grad else torch.enable_grad():
            synchronize(device)
            start = time.perf_counter()
            compiled()
            synchronize(device)
            first = time.perf_counter() - start
            times = interleaved_times({"eager": eager, "compiled": compiled}, repeats, device)
        rows.append({"case": name, "compile_s": first, "eager_ms": 1e3 * statistics.median(times["eager"]),
                     "compiled_ms": 1e3 * statistics.median(times["compiled"]),
                     "speedup": median_ratio(times, "eager", "compiled")})
    return rows


def run(ctx: Context) -> None:
    if not ctx.is_main:
        return
    s = settings(ctx)
    device, seed = ctx.device, ctx.options.seed
    key = {"device": device, "seed": seed, "threads": torch.get_num_threads(), "code": code_fingerprint()}
    wrap_rows = ctx.cached("wrapper", {**key, "batch": s.batch, "repeats": s.repeats},
                           lambda: wrapper_times(device, s.batch, s.repeats, seed))
    copy_rows = ctx.cached("copy", {**key, "shapes": s.copy_shapes, "repeats": s.repeats},
                           lambda: copy_times(device, s.copy_shapes, s.repeats, seed))
    try:
        steps = ctx.cached("train_step", {**key, "repeats": s.step_repeats},
                           lambda: step_times(device, s.step_repeats, seed))
    except ImportError as error:
        steps = None
        ctx.note(f"training-step timing skipped: {error}")
    report(ctx, s, wrap_rows, copy_rows, steps)
    if s.compile:
        try:
            rows = ctx.cached("compile", {**key, "repeats": s.step_repeats},
                              lambda: compile_times(device, s.step_repeats, seed))
        except Exception as error:  # torch.compile unavailable here (no compiler, unsupported backend)
            ctx.note(f"torch.compile timing skipped: {type(error).__name__}: {error}")
        else:
            report_compile(ctx, s, rows)


def report_compile(ctx: Context, s: Preset, rows: list[dict]) -> None:
    for r in rows:
        ctx.record("compile_speedup", r["speedup"], model=r["case"], n_samples=s.step_repeats,
                   compile_s=r["compile_s"], eager_ms=r["eager_ms"], compiled_ms=r["compiled_ms"])
    ctx.table("torch.compile against eager",
              markdown_table(["case", "first call s (compiling)", "eager ms", "compiled ms", "eager / compiled"],
                             [[r["case"], r["compile_s"], r["eager_ms"], r["compiled_ms"], r["speedup"]]
                              for r in rows]),
              f"Medians of {s.step_repeats} interleaved rounds after the first (compiling) call; the step is "
              "forward, backward and Adam with the module compiled (what TrainConfig(compile=True) does).")


def report(ctx: Context, s: Preset, wrap_rows: list[dict], copy_rows: list[dict], steps: dict | None) -> None:
    timed = [r for r in wrap_rows if "error" not in r]
    for r in wrap_rows:
        if "error" in r:
            ctx.note(f"{r['model']}: {r['error']}")
    for r in timed:
        ctx.record("wrapper_time_ratio", r["ratio"], model=r["model"], n_samples=s.repeats, batch=r["batch"],
                   raw_ms=r["raw_ms"], wrapped_ms=r["wrapped_ms"], noise_floor_ratio=r["noise_ratio"],
                   adapt_ms=r["adapt_ms"], component_ratio=r["component_ratio"])
        ctx.target(f"wrapper overhead, {r['model']}", f"<= {WRAPPER_TARGET:.2f}x raw", f"{r['ratio']:.4f}x "
                   f"(same-work noise floor {r['noise_ratio']:.4f}x; latent handling alone "
                   f"{r['component_ratio']:.4f}x)", r["ratio"] <= WRAPPER_TARGET)
    ctx.table("Wrapper vs raw generator (forward pass, no grad)",
              markdown_table(["model", "batch", "raw ms", "wrapped ms", "wrapped / raw", "raw again / raw",
                              "latent handling ms", "1 + handling / raw"],
                             [[r["model"], r["batch"], r["raw_ms"], r["wrapped_ms"], r["ratio"], r["noise_ratio"],
                               r["adapt_ms"], r["component_ratio"]] for r in timed]),
              f"Medians of {s.repeats} interleaved rounds; 'raw again / raw' times the same call twice and shows "
              "how far two identical measurements drift on this machine; 'latent handling' times the wrapper's "
              "own work (checks, centerize, spherize) alone, a steadier estimate of its cost than the end-to-end "
              "ratio.")
    for r in copy_rows:
        ctx.record("centerize_spherize_over_copy", r["ratio"], n_samples=s.repeats, shape=r["shape"],
                   copy_ms=r["copy_ms"], cs_ms=r["c+s_ms"], unchecked_ratio=r["ratio_unchecked"],
                   chained_ratio=r["ratio_chained"], kernel_ratio=r["ratio_kernel"],
                   noise_floor_ratio=r["ratio_copy_again"],
                   two_read_formula_ratio=r["ratio_two_reads"])
        ctx.target(f"centerize+spherize, shape {r['shape']}", f"<= {COPY_TARGET:g}x a copy", f"{r['ratio']:.2f}x "
                   f"(unchecked {r['ratio_unchecked']:.2f}x)", r["ratio"] <= COPY_TARGET)
    ctx.table("centerize + spherize vs one tensor copy (z.clone())",
              markdown_table(["shape", "MiB", "copy ms", "copy again / copy", "c+s ms", "c+s / copy",
                              "unchecked / copy", "chained / copy", "layer norm kernel / copy",
                              "two-read formula / copy"],
                             [["x".join(map(str, r["shape"])), r["megabytes"], r["copy_ms"],
                               r["ratio_copy_again"], r["c+s_ms"], r["ratio"], r["ratio_unchecked"],
                               r["ratio_chained"], r["ratio_kernel"], r["ratio_two_reads"]]
                              for r in copy_rows]),
              "c+s = the core's centerize_spherize(z), what the wrappers run, with its NaN/zero-norm check; "
              "'copy again' times the same copy a second time: its ratio is this run's noise floor (large tensors "
              "swing with the allocator's page faults); "
              "'unchecked' passes check=False; 'chained' is spherize(centerize(z)), two public calls; "
              "'layer norm kernel' is torch.native_layer_norm with a prepared weight, the kernel c+s runs without "
              "its call's checks and set-up: the floor of the core's path, so c+s minus it is the call's own cost. "
              "The two-read formula is a reference written here (mean and norm in two reads, one fused write), "
              "to show how close to a copy the operation can get; it is not what the core runs.")
    if steps is not None:
        for kind, ms in steps["median_ms"].items():
            ctx.record("train_step_ms", ms, model=f"{kind} objective, conv 16x16, z {steps['z_dim']}",
                       n_samples=steps["repeats"], ratio_to_vae=steps["ratio_to_reference"][kind],
                       batch=steps["batch_size"])
        ctx.table("Training step (forward, backward, Adam) on one architecture",
                  markdown_table(["objective", "ms / step", "ratio to VAE"],
                                 [[k, v, steps["ratio_to_reference"][k]] for k, v in steps["median_ms"].items()]),
                  f"Batch {steps['batch_size']}, {steps['resolution']}x{steps['resolution']} images, z_dim "
                  f"{steps['z_dim']}, medians of {steps['repeats']} interleaved repeats; 'vae again' is a second "
                  "copy of the VAE timed alongside, so its ratio is this run's noise floor.")
        ratios = steps["ratio_to_reference"]
        floor = ratios.get(f"{steps['reference']} again")
        if "sae" in ratios and floor is not None:
            ctx.target("spherical autoencoder step vs VAE step", "<= 1.00x", f"{ratios['sae']:.4f}x (same-work "
                       f"noise floor {floor:.4f}x)", ratios["sae"] <= 1.0)
    plot(ctx, timed, copy_rows, steps)


def plot(ctx: Context, timed: list[dict], copy_rows: list[dict], steps: dict | None) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].bar(range(len(timed)), [r["ratio"] for r in timed], color="C0")
    axes[0].set_xticks(range(len(timed)), [r["model"].split(" (")[0] for r in timed], fontsize=8)
    axes[0].axhline(WRAPPER_TARGET, color="C3", ls="--", lw=0.8, label="target")
    axes[0].axhline(1.0, color="grey", lw=0.8)
    axes[0].set_ylim(0.9, max(1.1, max((r["ratio"] for r in timed), default=1) + 0.02))
    axes[0].set_title("wrapped / raw generator")
    labels = ["x".join(map(str, r["shape"])) for r in copy_rows]
    x = range(len(copy_rows))
    axes[1].bar([i - 0.27 for i in x], [r["ratio"] for r in copy_rows], width=0.27, label="core, checked")
    axes[1].bar(list(x), [r["ratio_unchecked"] for r in copy_rows], width=0.27, label="core, unchecked")
    axes[1].bar([i + 0.27 for i in x], [r["ratio_two_reads"] for r in copy_rows], width=0.27, label="two-read formula")
    axes[1].set_xticks(list(x), labels, fontsize=7)
    axes[1].axhline(COPY_TARGET, color="C3", ls="--", lw=0.8, label="target")
    axes[1].set_title("centerize+spherize / copy")
    axes[1].legend(fontsize=8)
    if steps is not None:
        kinds = list(steps["median_ms"])
        axes[2].bar(kinds, [steps["ratio_to_reference"][k] for k in kinds], color="C2")
        axes[2].axhline(1.0, color="grey", lw=0.8)
    axes[2].set_title("training step / VAE step")
    for ax in axes:
        ax.set_ylabel("time ratio")
    ctx.figure(fig, "overhead.png", "Time ratios: wrapped vs raw generator, centerize+spherize vs a tensor copy per "
               "shape, and training steps vs the VAE's (dashed: the targets).")
