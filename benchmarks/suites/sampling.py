"""Table 1: a generator trained with N(0, I) latents, sampled with four priors, each {vanilla, centerized} x
{no spherization, spherization}; FD (FID with Inception) per cell, and image grids per prior and column.

Quick scale trains a small StyleGAN2 on the digits through the stylegan2 adapter (cached checkpoints);
`--model stylegan2:PATH.pkl` or `--model diffusers:PATH` measures a given model instead. "No spherization"
switches off the StyleGAN2 mapping network's own normalization of z (the adapter's normalize_z=False),
since that normalization is a spherization already."""

from __future__ import annotations

import time
from typing import Any

import torch

from benchmarks.common import BenchmarkError, markdown_table, pick, progress
from benchmarks.context import Context
from benchmarks.evaluation import check_sample_count, clamped, feature_network, frechet, generator_seed
from benchmarks.inputs import file_stamp, load_data
from benchmarks.plots import image_square, pyplot, show_images

NAME = "sampling"
DESCRIPTION = "Table 1: sampling a generator trained with N(0, I) latents from four priors"
MODEL_SCHEMES = ("stylegan2", "diffusers")
PRIORS = {"normal": "N(0, 1)", "uniform": "U(-1, 1)", "poisson": "Poisson(rate 1)", "chi2": "chi-squared(df 1)"}
# (label, center, spherize): the paper's four columns.
COLUMNS = (("vanilla, no spherization", False, False), ("vanilla, spherization", False, True),
           ("centerized, no spherization", True, False), ("centerized, spherization", True, True))

PRESETS = {
    "quick": {"resolution": 16, "z_dim": 128, "channel_max": 32, "mapping_layers": 2, "steps": 1500,
              "batch": 32, "lr": 0.0025, "n_samples": 10000, "grid": 16, "limit": None},
    "paper": {"resolution": 32, "z_dim": 512, "channel_max": 256, "mapping_layers": 8, "steps": 20000,
              "batch": 64, "lr": 0.0025, "n_samples": 50000, "grid": 16, "limit": None},
}


def settings(ctx: Context) -> dict:
    return pick(ctx.options, PRESETS, steps=ctx.options.steps, n_samples=ctx.options.n_samples)


def run(ctx: Context) -> None:
    s = settings(ctx)
    spec = ctx.model_spec(MODEL_SCHEMES)
    if spec:
        G, model_label, model_key = given_generator(ctx, spec)
        channels, size = output_shape(G, ctx)
        real = load_data(ctx.options, resolution=size, channels=channels, limit=s["limit"])
    else:
        real = load_data(ctx.options, resolution=s["resolution"],
                         channels=1 if ctx.options.data == "digits" else None, limit=s["limit"])
    extractor = feature_network(ctx, real)
    check_sample_count(s["n_samples"], extractor, real, "the sampling table")
    if not spec:
        G, model_label, model_key = trained_generator(ctx, s, real)
    if not ctx.is_main:
        return
    data_key = {"data": ctx.options.data, "resolution": tuple(real.images.shape[1:]), "n_real": len(real)}
    cells = {}
    grid = [(prior, column) for prior in PRIORS for column in COLUMNS]
    for prior, (label, center, spherize) in progress(grid, "sampling: FD per cell"):
        key = {**model_key, **data_key, "prior": prior, "column": label, "n": s["n_samples"],
               "seed": ctx.options.seed, "features": getattr(extractor, "fingerprint", extractor.name)}
        cells[(prior, label)] = ctx.cached(f"fd-{prior}-{label.replace(', ', '-').replace(' ', '_')}", key,
                                           lambda: measure(ctx, G, real, extractor, s, prior, center, spherize,
                                                           model_label))
    report(ctx, s, cells, model_label)
    grids(ctx, G, s)


def given_generator(ctx: Context, spec: str) -> tuple[torch.nn.Module, str, dict]:
    """The model --model names, on the run's device; its cache key includes the file's size and time."""
    from sphere_plugins import load_model

    G = load_model(spec)
    if isinstance(G, torch.nn.Module):
        G = G.to(ctx.device).eval()
    return G, spec, {"model": spec, **file_stamp(spec)}


def output_shape(G: Any, ctx: Context) -> tuple[int, int]:
    """Channels and side of the images the generator makes (one sample drawn): the data is loaded to match."""
    from sphere_plugins import wrap_generator

    with torch.no_grad():
        image = wrap_generator(G).sample(1, generator=generator_seed(ctx, "probe"))
    return int(image.shape[1]), int(image.shape[-1])


def trained_generator(ctx: Context, s: dict, real: Any) -> tuple[torch.nn.Module, str, dict]:
    """A small StyleGAN2 trained on the data with N(0, I) latents; checkpoints in the cache resume it."""
    try:
        from sphere_stylegan2.configs import tiny_discriminator, tiny_generator
        from sphere_stylegan2.train import train_gan
    except ImportError as error:
        raise BenchmarkError(f"the sampling suite trains its generator with the stylegan2 adapter, which is not "
                             f"installed ({error}); run `bash scripts/setup.sh`, or pass --model") from None
    from sphere_plugins.checkpoint import list_checkpoints

    size = real.images.shape[-1]
    network = {"resolution": size, "channels": int(real.images.shape[1]), "z_dim": s["z_dim"], "w_dim": s["z_dim"],
               "channel_max": s["channel_max"], "mapping_layers": s["mapping_layers"], "seed": ctx.options.seed}
    key = {**network, "steps": s["steps"], "batch": s["batch"], "lr": s["lr"], "data": ctx.options.data,
           "n_images": len(real)}
    folder = ctx.cache_path("stylegan2", key, suffix="")
    done = [int(p.name.split("-")[-1]) for p in list_checkpoints(folder)] if folder.exists() else []
    start = max(done, default=0)
    began = time.perf_counter()
    from tqdm.auto import tqdm

    with tqdm(total=s["steps"], initial=start, desc="sampling: train StyleGAN2", disable=not ctx.is_main,
              mininterval=2.0, dynamic_ncols=True) as bar:
        result = train_gan(tiny_generator(**network), tiny_discriminator(**network), real.images, s["steps"],
                           s["batch"], lr=s["lr"], latent="normal", device=ctx.device, checkpoint_dir=folder,
                           checkpoint_every=max(50, s["steps"] // 10), seed=ctx.options.seed,
                           callback=lambda step, record: bar.update(1))
    status = "cached" if start >= s["steps"] else ("resumed" if start else "computed")
    ctx.note_part("train_stylegan2", status, time.perf_counter() - began, from_step=start, steps=s["steps"],
                  checkpoints=folder.name)
    label = (f"StyleGAN2 (sphere_stylegan2, {size}x{size}, z_dim {s['z_dim']}, {s['mapping_layers']}-layer mapping, "
             f"{s['channel_max']} channels) trained {s['steps']} steps x {s['batch']} on {ctx.options.data} with N(0, I)")
    return result.G_ema.eval(), label, key


def stylegan_like(G: Any) -> bool:
    """Whether the stylegan2 adapter handles G (its mapping network normalizes z unless told not to)."""
    try:
        from sphere_stylegan2.plugin import is_stylegan_generator
    except ImportError:
        return False
    return is_stylegan_generator(G)


def wrapped(G: Any, center: bool, spherize: bool) -> Any:
    """The generator under one of the table's columns."""
    from sphere_plugins import wrap_generator

    options = {} if spherize or not stylegan_like(G) else {"normalize_z": False}
    return wrap_generator(G, spherize=spherize, center=center, options=options)


def measure(ctx: Context, G: Any, real: Any, extractor: Any, s: dict, prior: str, center: bool, spherize: bool,
            model_label: str) -> dict:
    """FD of n samples of one cell."""
    generator = wrapped(G, center, spherize)
    draws = generator_seed(ctx, "fd", prior, center, spherize)
    fake = clamped(lambda b: generator.sample(b, prior=prior, generator=draws), ctx.device)
    return frechet(ctx, real, fake, extractor, s["n_samples"], prior=prior, model=model_label,
                   data=ctx.options.data, extra={"center": center, "spherize": spherize,
                                                 "prior_parameters": PRIORS[prior]})


def report(ctx: Context, s: dict, cells: dict, model_label: str) -> None:
    metric = next(iter(cells.values()))["metric"]
    for record in cells.values():
        ctx.add_record(record)
    rows = [[f"{prior} ({PRIORS[prior]})", *[cells[(prior, c[0])]["value"] for c in COLUMNS]] for prior in PRIORS]
    ctx.table(f"Table 1: {metric} of samples from four priors (lower is better)",
              markdown_table(["prior", *[c[0] for c in COLUMNS]], rows),
              f"{s['n_samples']} samples per cell against all {cells[('normal', COLUMNS[0][0])]['extra']['n_real']} "
              f"real images; model: {model_label}. No spherization = the mapping network's own normalization of z "
              "switched off (normalize_z=False).")
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


def grids(ctx: Context, G: Any, s: dict) -> None:
    """One grid of samples per prior and column, laid out like Table 1 (same latent draws across columns)."""
    plt = pyplot()
    fig, axes = plt.subplots(len(PRIORS), len(COLUMNS), figsize=(2.6 * len(COLUMNS), 2.7 * len(PRIORS)))
    side = int(s["grid"] ** 0.5)
    for i, prior in enumerate(PRIORS):
        for j, (label, center, spherize) in enumerate(COLUMNS):
            with torch.no_grad():
                images = wrapped(G, center, spherize).sample(side * side, prior=prior,
                                                             generator=generator_seed(ctx, "grid", prior))
            show_images(axes[i, j], image_square(images, side), title=label if i == 0 else None,
                        ylabel=prior if j == 0 else None)
    ctx.figure(fig, "samples.png", "Samples per prior (rows) and column (as in Table 1); each grid uses the same "
               "prior draws in every column.")

