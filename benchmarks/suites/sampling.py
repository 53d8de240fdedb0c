"""Table 1: a generator trained with N(0, I) latents, sampled with four priors, each {vanilla, centerized} x
{no spherization, spherization}; FD (FID with Inception) per cell, and image grids per prior and column.

Quick scale trains the small generator a plugin offers through `sphere_trainable_generators` (the stylegan2
adapter's StyleGAN2 by default) on the train split of the data (Fashion-MNIST by default), with cached checkpoints; `--model SCHEME:...` measures a given
model of any plugin scheme that gives generators instead. "No spherization" also switches off a model's own
normalization of z where its adapter declares one (`normalizes_z`, switched off with the adapter option
normalize_z=False; StyleGAN2's mapping network), since that normalization is a spherization already."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmarks.common import PRIORS, BenchmarkError, Options, markdown_table, pick, progress
from benchmarks.context import Context
from benchmarks.evaluation import (DC_K, PR_K, QUALITY_METRICS, by_metric, check_sample_count, clamped,
                                   feature_network, generator_seed, sample_quality)
from benchmarks.inputs import file_stamp, load_splits
from benchmarks.plots import image_square, pyplot, show_images
from benchmarks.suites import accepted_schemes
from sphere_plugins import load_model, trainable_generators, wrap_generator

NAME = "sampling"
DESCRIPTION = "Table 1: sampling a generator trained with N(0, I) latents from four priors"
MODEL_KIND = "generator"
PRIOR_PARAMETERS = {"normal": "N(0, 1)", "uniform": "U(-1, 1)", "poisson": "Poisson(rate 1)",
                    "chi2": "chi-squared(df 1)"}
# (label, center, spherize): the paper's four columns.
COLUMNS = (("vanilla, no spherization", False, False), ("vanilla, spherization", False, True),
           ("centerized, no spherization", True, False), ("centerized, spherization", True, True))


@dataclass(frozen=True)
class Preset:
    """One scale of the suite. `generator` names the plugin's trainable generator (sphere_trainable_generators);
    `width` is its largest channel count and `depth` its latent-to-style layers; `seeds` is how many independent
    sets of prior draws measure the centerized + spherized column (the spread over them is reported)."""

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
    seeds: int = 1


# Fashion-MNIST is padded from 28 to 32 pixels (as the paper pads MNIST); the digits smoke run stays at 16x16.
PRESETS = {
    "quick": Preset(resolution=32, z_dim=128, width=32, depth=2, steps=500, batch=32, lr=0.0025, n_samples=2000),
    "standard": Preset(resolution=32, z_dim=512, width=64, depth=8, steps=1200, batch=32, lr=0.0025,
                       n_samples=5000, seeds=3),
    "paper": Preset(resolution=32, z_dim=512, width=256, depth=8, steps=20000, batch=64, lr=0.0025,
                    n_samples=50000, seeds=3),
}
SMOKE = {"resolution": 16, "steps": 300, "n_samples": 1000}


def settings(ctx: Context) -> Preset:
    return pick(ctx.options, PRESETS, SMOKE, steps=ctx.options.steps, n_samples=ctx.options.n_samples)


def check(options: Options) -> None:
    """Without a --model of a generator scheme, a loaded plugin must offer the preset's trainable generator."""
    if options.model is None or options.model.partition(":")[0] not in accepted_schemes(sys.modules[__name__]):
        offered_generator(pick(options, PRESETS, SMOKE).generator)


def offered_generator(name: str) -> Any:
    """The trainable generator `name` a loaded plugin offers (sphere_trainable_generators), or BenchmarkError."""
    offered = trainable_generators()
    if name not in offered:
        raise BenchmarkError(f"the sampling suite trains the generator {name!r}, which no loaded plugin offers "
                             f"(offered: {', '.join(sorted(offered)) or 'none'}); run `bash scripts/setup.sh` to "
                             "install the adapters, or pass --model")
    return offered[name]


def run(ctx: Context) -> None:
    s = settings(ctx)
    spec = ctx.model_spec(accepted_schemes(sys.modules[__name__]))
    channels = 1 if ctx.options.data == "digits" else None
    if spec:
        G, model_label, model_key = given_generator(ctx, spec)
        channels, size = output_shape(G, ctx)
        splits = load_splits(ctx.options, resolution=size, channels=channels, limit=s.limit)
    else:
        splits = load_splits(ctx.options, resolution=s.resolution, channels=channels, limit=s.limit)
    real = splits.real
    extractor = feature_network(ctx, real)
    check_sample_count(s.n_samples, extractor, real, "the sampling table")
    if not spec:
        G, model_label, model_key = trained_generator(ctx, s, splits.train)
    data_key = {"data": ctx.options.data, "resolution": tuple(real.images.shape[1:]), "n_real": len(real),
                "real": real.description}
    cells = {}
    grid = [(prior, column, repeat) for prior in PRIORS for column in COLUMNS
            for repeat in range(s.seeds if column == COLUMNS[3] else 1)]
    for prior, (label, center, spherize), repeat in progress(grid, "sampling: metrics per cell"):
        key = {**model_key, **data_key, "prior": prior, "column": label, "n": s.n_samples,
               "seed": ctx.options.seed, "features": getattr(extractor, "fingerprint", extractor.name),
               "metrics": QUALITY_METRICS, "draws": repeat}
        name = f"quality-{prior}-{label.replace(', ', '-').replace(' ', '_')}" + (f"-draws{repeat}" if repeat else "")
        cells[(prior, label, repeat)] = ctx.cached(name, key, lambda: measure(
            ctx, G, real, extractor, s, prior, center, spherize, model_label, repeat))
    if not ctx.is_main:  # every process shared the metrics; the main one reports
        return
    report(ctx, s, cells, model_label)
    figures(ctx, s, cells)
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


def trained_generator(ctx: Context, s: Preset, train: Any) -> tuple[torch.nn.Module, str, dict]:
    """The preset's trainable generator (offered by a plugin) trained on the data with N(0, I) latents;
    checkpoints in the cache resume it."""
    trainable = offered_generator(s.generator)
    size = int(train.images.shape[-1])
    network = {"generator": s.generator, "resolution": size, "channels": int(train.images.shape[1]),
               "z_dim": s.z_dim, "width": s.width, "depth": s.depth, "seed": ctx.options.seed}
    key = {**network, "steps": s.steps, "batch": s.batch, "lr": s.lr, "data": ctx.options.data,
           "n_images": len(train), "train": train.description}
    folder = ctx.cache_path(s.generator, key, suffix="")
    start = trainable.completed_steps(folder)
    with tqdm(total=s.steps, initial=start, desc=f"sampling: train {s.generator}", disable=not ctx.is_main,
              mininterval=2.0, dynamic_ncols=True) as bar:
        G = ctx.checkpointed(f"train_{s.generator}", folder, start, s.steps, lambda: trainable.train(
            train.images, z_dim=s.z_dim, width=s.width, depth=s.depth, steps=s.steps, batch=s.batch, lr=s.lr,
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
            model_label: str, repeat: int = 0) -> list[dict]:
    """FD, precision/recall and density/coverage of n samples of one cell (the `repeat`-th set of draws)."""
    generator = wrapped(G, center, spherize)
    draws = generator_seed(ctx, "fd", prior, center, spherize, *((repeat,) if repeat else ()))
    fake = clamped(lambda b: generator.sample(b, prior=prior, generator=draws), ctx.device)
    return sample_quality(ctx, real, fake, extractor, s.n_samples, prior=prior, model=model_label,
                          data=real.description, extra={"center": center, "spherize": spherize, "draws": repeat,
                                                        "prior_parameters": PRIOR_PARAMETERS[prior]})


def cell_table(cells: dict) -> tuple[list[str], list[list[Any]]]:
    """Table 1's header and rows: each cell 'FD (precision / recall)'; the centerized + spherized column gives
    FD as mean +- std over its sets of draws when there are several."""
    rows = []
    for prior in PRIORS:
        row: list[Any] = [f"{prior} ({PRIOR_PARAMETERS[prior]})"]
        for label, _, _ in COLUMNS:
            runs = [by_metric(cells[key]) for key in sorted(cells) if key[:2] == (prior, label)]
            fd = np.array([r["FD"]["value"] for r in runs])
            shown = f"{fd[0]:.4g}" if len(fd) == 1 else f"{fd.mean():.4g} +- {fd.std(ddof=1):.2g}"
            row.append(f"{shown} ({np.mean([r['precision']['value'] for r in runs]):.3f} / "
                       f"{np.mean([r['recall']['value'] for r in runs]):.3f})")
        rows.append(row)
    return ["prior", *[c[0] for c in COLUMNS]], rows


def fd_of(cells: dict, prior: str, label: str) -> float:
    """The cell's FD (the mean over its sets of draws)."""
    return float(np.mean([by_metric(cells[key])["FD"]["value"] for key in cells if key[:2] == (prior, label)]))


def report(ctx: Context, s: Preset, cells: dict, model_label: str) -> None:
    first = by_metric(cells[("normal", COLUMNS[0][0], 0)])
    metric = first["FD"]["metric"]
    for records in cells.values():
        for record in records:
            ctx.add_record(record)
    header, rows = cell_table(cells)
    repeats = sum(1 for key in cells if key[:2] == ("normal", COLUMNS[3][0]))
    ctx.table(f"Table 1: {metric} (precision / recall, k = {PR_K}) of samples from four priors "
              "(FD: lower is better; precision, recall: higher is better)", markdown_table(header, rows),
              f"{s.n_samples} samples per cell against all {first['FD']['extra']['n_real']} images of the "
              f"{ctx.options.data} real set ({first['FD']['data']}); model: {model_label}. No spherization = the "
              "mapping network's own normalization of z switched off (normalize_z=False) where the model does one."
              + (f" Centerized + spherized: mean +- std over {repeats} independent sets of prior draws (one "
                 "trained generator)." if repeats > 1 else ""))
    ratios = [[prior, *[fd_of(cells, prior, c[0]) / fd_of(cells, "normal", c[0]) for c in COLUMNS]]
              for prior in PRIORS]
    ctx.table(f"{metric} relative to the normal prior in the same column", markdown_table(
        ["prior", *[c[0] for c in COLUMNS]], ratios))
    if repeats > 1:
        spread_rows = []
        for prior in PRIORS:
            fd = np.array([by_metric(cells[(prior, COLUMNS[3][0], r)])["FD"]["value"] for r in range(repeats)])
            spread_rows.append([prior, *fd.tolist(), fd.mean(), fd.std(ddof=1)])
        ctx.table(f"Centerized + spherized: {metric} per set of prior draws",
                  markdown_table(["prior", *[f"draws {r}" for r in range(repeats)], "mean", "std"], spread_rows))
        means = [r[-2] for r in spread_rows]
        worst_std = max(r[-1] for r in spread_rows)
        ctx.note(f"Centerized + spherized: the four priors' mean {metric} differ by at most "
                 f"{max(means) - min(means):.3g}, against a largest std over sets of draws of {worst_std:.3g}; "
                 "differences below about twice that std are within the spread of the draws.")
    projected = [fd_of(cells, p, COLUMNS[3][0]) for p in PRIORS]
    spread = max(projected) / min(projected)
    ctx.target("centerized + spherized: FD across the four priors", "max/min <= 1.05", f"{spread:.3f}",
               spread <= 1.05)
    vanilla = {p: fd_of(cells, p, COLUMNS[0][0]) / fd_of(cells, "normal", COLUMNS[0][0]) for p in PRIORS}
    for prior in ("poisson", "chi2"):
        ctx.target(f"vanilla, no spherization: {prior} vs normal", ">= 2x", f"{vanilla[prior]:.2f}x",
                   vanilla[prior] >= 2)


def figures(ctx: Context, s: Preset, cells: dict) -> None:
    """Precision against recall (k = 3) and density against coverage (k = 5) of every cell."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    markers = dict(zip([c[0] for c in COLUMNS], "osD^"))
    colours = dict(zip(PRIORS, ("tab:blue", "tab:orange", "tab:green", "tab:red")))
    for (prior, label, _), records in cells.items():
        m = by_metric(records)
        for ax, (x, y) in zip(axes, (("recall", "precision"), ("coverage", "density"))):
            ax.scatter(m[x]["value"], m[y]["value"], marker=markers[label], color=colours[prior], s=36)
    for ax, (x, y, k) in zip(axes, (("recall", "precision", PR_K), ("coverage", "density", DC_K))):
        ax.set_xlabel(f"{x} (k = {k})")
        ax.set_ylabel(f"{y} (k = {k})")
    handles = [plt.Line2D([], [], color=colours[p], marker="o", linestyle="", label=p) for p in PRIORS]
    handles += [plt.Line2D([], [], color="grey", marker=markers[c[0]], linestyle="", label=c[0]) for c in COLUMNS]
    axes[1].legend(handles=handles, fontsize=7, loc="best")
    ctx.figure(fig, "precision_recall.png", "Precision vs recall (k = 3) and density vs coverage (k = 5) of every "
               "cell of Table 1: colour = prior, marker = column.")


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

