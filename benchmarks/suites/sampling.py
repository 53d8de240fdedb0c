"""Table 1: a generator trained with N(0, I) latents, sampled with four priors, each {vanilla, centerized} x
{no spherization, spherization}; FD (FID with Inception) per cell, and image grids per prior and column.

Quick scale trains the small generator a plugin offers through `sphere_trainable_generators` (the stylegan2
adapter's StyleGAN2 by default) on the digits, with cached checkpoints; `--model SCHEME:...` measures a given
model of any plugin scheme that gives generators instead. "No spherization" also switches off a model's own
normalization of z where its adapter declares one (`normalizes_z`, switched off with the adapter option
normalize_z=False; StyleGAN2's mapping network), since that normalization is a spherization already."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from benchmarks.common import BenchmarkError, markdown_table, pick, progress
from benchmarks.context import Context
from benchmarks.evaluation import check_sample_count, clamped, feature_network, frechet, generator_seed
from benchmarks.inputs import file_stamp, load_data
from benchmarks.plots import image_square, pyplot, show_images
from benchmarks.suites import accepted_schemes
from sphere_plugins import load_model, trainable_generators, wrap_generator

NAME = "sampling"
DESCRIPTION = "Table 1: sampling a generator trained with N(0, I) latents from four priors"
MODEL_KIND = "generator"
PRIORS = {"normal": "N(0, 1)", "uniform": "U(-1, 1)", "poisson": "Poisson(rate 1)", "chi2": "chi-squared(df 1)"}
# (label, center, spherize): the paper's four columns.
COLUMNS = (("vanilla, no spherization", False, False), ("vanilla, spherization", False, True),
           ("centerized, no spherization", True, False), ("centerized, spherization", True, True))


@dataclass(frozen=True)
class Preset:
    """One scale of the suite. `generator` names the plugin's trainable generator (sphere_trainable_generators);
    `width` is its largest channel count and `depth` its latent-to-style layers."""

    resolution: int
    z_dim: int
    width: int
    depth: int
    steps: int
    batch: int
    lr: float
    n_samples: int
    grid: int = 16
    limit: int | None = None
    generator: str = "stylegan2"


PRESETS = {
    "quick": Preset(resolution=16, z_dim=128, width=32, depth=2, steps=1500, batch=32, lr=0.0025, n_samples=10000),
    "paper": Preset(resolution=32, z_dim=512, width=256, depth=8, steps=20000, batch=64, lr=0.0025,
                    n_samples=50000),
}


def settings(ctx: Context) -> Preset:
    return pick(ctx.options, PRESETS, steps=ctx.options.steps, n_samples=ctx.options.n_samples)


def run(ctx: Context) -> None:
    s = settings(ctx)
    spec = ctx.model_spec(accepted_schemes(sys.modules[__name__]))
    if spec:
        G, model_label, model_key = given_generator(ctx, spec)
        channels, size = output_shape(G, ctx)
        real = load_data(ctx.options, resolution=size, channels=channels, limit=s.limit)
    else:
        real = load_data(ctx.options, resolution=s.resolution,
                         channels=1 if ctx.options.data == "digits" else None, limit=s.limit)
    extractor = feature_network(ctx, real)
    check_sample_count(s.n_samples, extractor, real, "the sampling table")
    if not spec:
        G, model_label, model_key = trained_generator(ctx, s, real)
    if not ctx.is_main:
        return
    data_key = {"data": ctx.options.data, "resolution": tuple(real.images.shape[1:]), "n_real": len(real)}
    cells = {}
    grid = [(prior, column) for prior in PRIORS for column in COLUMNS]
    for prior, (label, center, spherize) in progress(grid, "sampling: FD per cell"):
        key = {**model_key, **data_key, "prior": prior, "column": label, "n": s.n_samples,
               "seed": ctx.options.seed, "features": getattr(extractor, "fingerprint", extractor.name)}
        cells[(prior, label)] = ctx.cached(f"fd-{prior}-{label.replace(', ', '-').replace(' ', '_')}", key,
                                           lambda: measure(ctx, G, real, extractor, s, prior, center, spherize,
                                                           model_label))
    report(ctx, s, cells, model_label)
    grids(ctx, G, s)


def given_generator(ctx: Context, spec: str) -> tuple[torch.nn.Module, str, dict]:
    """The model --model names, on the run's device; its cache key includes the file's size and time."""
    G = load_model(spec)
    if isinstance(G, torch.nn.Module):
        G = G.to(ctx.device).eval()
    return G, spec, {"model": spec, **file_stamp(spec)}


def output_shape(G: Any, ctx: Context) -> tuple[int, int]:
    """Channels and side of the images the generator makes (one sample drawn): the data is loaded to match."""
    with torch.no_grad():
        image = wrap_generator(G).sample(1, generator=generator_seed(ctx, "probe"))
    return int(image.shape[1]), int(image.shape[-1])


def trained_generator(ctx: Context, s: Preset, real: Any) -> tuple[torch.nn.Module, str, dict]:
    """The preset's trainable generator (offered by a plugin) trained on the data with N(0, I) latents;
    checkpoints in the cache resume it."""
    offered = trainable_generators()
    if s.generator not in offered:
        raise BenchmarkError(f"the sampling suite trains the generator {s.generator!r}, which no loaded plugin offers "
                             f"(offered: {', '.join(sorted(offered)) or 'none'}); run `bash scripts/setup.sh` to "
                             "install the adapters, or pass --model")
    trainable = offered[s.generator]
    size = int(real.images.shape[-1])
    network = {"generator": s.generator, "resolution": size, "channels": int(real.images.shape[1]),
               "z_dim": s.z_dim, "width": s.width, "depth": s.depth, "seed": ctx.options.seed}
    key = {**network, "steps": s.steps, "batch": s.batch, "lr": s.lr, "data": ctx.options.data,
           "n_images": len(real)}
    folder = ctx.cache_path(s.generator, key, suffix="")
    start = trainable.completed_steps(folder)
    with tqdm(total=s.steps, initial=start, desc=f"sampling: train {s.generator}", disable=not ctx.is_main,
              mininterval=2.0, dynamic_ncols=True) as bar:
        G = ctx.checkpointed(f"train_{s.generator}", folder, start, s.steps, lambda: trainable.train(
            real.images, z_dim=s.z_dim, width=s.width, depth=s.depth, steps=s.steps, batch=s.batch, lr=s.lr,
            seed=ctx.options.seed, device=ctx.device, checkpoint_dir=folder,
            checkpoint_every=max(50, s.steps // 10), callback=lambda step: bar.update(1)))
    label = (f"{trainable.describe(size, s.z_dim, s.width, s.depth)} trained {s.steps} steps x {s.batch} on "
             f"{ctx.options.data} with N(0, I)")
    return G, label, key


def wrapped(G: Any, center: bool, spherize: bool) -> Any:
    """The generator under one of the table's columns; "no spherization" also switches off a normalization of z
    the model does itself (adapters that declare normalizes_z take options["normalize_z"]=False)."""
    if not spherize and wrap_generator(G).adapter.normalizes_z:
        return wrap_generator(G, spherize=False, center=center, options={"normalize_z": False})
    return wrap_generator(G, spherize=spherize, center=center)


def measure(ctx: Context, G: Any, real: Any, extractor: Any, s: Preset, prior: str, center: bool, spherize: bool,
            model_label: str) -> dict:
    """FD of n samples of one cell."""
    generator = wrapped(G, center, spherize)
    draws = generator_seed(ctx, "fd", prior, center, spherize)
    fake = clamped(lambda b: generator.sample(b, prior=prior, generator=draws), ctx.device)
    return frechet(ctx, real, fake, extractor, s.n_samples, prior=prior, model=model_label,
                   data=ctx.options.data, extra={"center": center, "spherize": spherize,
                                                 "prior_parameters": PRIORS[prior]})


def report(ctx: Context, s: Preset, cells: dict, model_label: str) -> None:
    metric = next(iter(cells.values()))["metric"]
    for record in cells.values():
        ctx.add_record(record)
    rows = [[f"{prior} ({PRIORS[prior]})", *[cells[(prior, c[0])]["value"] for c in COLUMNS]] for prior in PRIORS]
    ctx.table(f"Table 1: {metric} of samples from four priors (lower is better)",
              markdown_table(["prior", *[c[0] for c in COLUMNS]], rows),
              f"{s.n_samples} samples per cell against all {cells[('normal', COLUMNS[0][0])]['extra']['n_real']} "
              f"real images; model: {model_label}. No spherization = the mapping network's own normalization of z "
              "switched off (normalize_z=False) where the model does one.")
    ratios = [[prior, *[cells[(prior, c[0])]["value"] / cells[("normal", c[0])]["value"] for c in COLUMNS]]
              for prior in PRIORS]
    ctx.table(f"{metric} relative to the normal prior in the same column", markdown_table(
        ["prior", *[c[0] for c in COLUMNS]], ratios))
    projected = [cells[(p, COLUMNS[3][0])]["value"] for p in PRIORS]
    spread = max(projected) / min(projected)
    ctx.target("centerized + spherized: FD across the four priors", "max/min <= 1.05", f"{spread:.3f}",
               spread <= 1.05)
    vanilla = {p: cells[(p, COLUMNS[0][0])]["value"] / cells[("normal", COLUMNS[0][0])]["value"] for p in PRIORS}
    for prior in ("poisson", "chi2"):
        ctx.target(f"vanilla, no spherization: {prior} vs normal", ">= 2x", f"{vanilla[prior]:.2f}x",
                   vanilla[prior] >= 2)


def grids(ctx: Context, G: Any, s: Preset) -> None:
    """One grid of samples per prior and column, laid out like Table 1 (same latent draws across columns)."""
    plt = pyplot()
    fig, axes = plt.subplots(len(PRIORS), len(COLUMNS), figsize=(2.6 * len(COLUMNS), 2.7 * len(PRIORS)))
    side = int(s.grid ** 0.5)
    for i, prior in enumerate(PRIORS):
        for j, (label, center, spherize) in enumerate(COLUMNS):
            with torch.no_grad():
                images = wrapped(G, center, spherize).sample(side * side, prior=prior,
                                                             generator=generator_seed(ctx, "grid", prior))
            show_images(axes[i, j], image_square(images, side), title=label if i == 0 else None,
                        ylabel=prior if j == 0 else None)
    ctx.figure(fig, "samples.png", "Samples per prior (rows) and column (as in Table 1); each grid uses the same "
               "prior draws in every column.")

