"""Table 2 and Figures 4-5 / 13-14: VAE, S-VAE, plain autoencoder and spherical autoencoder with one
architecture and budget on the train split of the data (Fashion-MNIST by default; d_z = 10, as the paper's MNIST appendix): reconstruction FD, SWD, MSE
(LPIPS when its weights are present), decoders sampled from four priors, reconstruction grids, t-SNE of codes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from benchmarks.common import PRIORS, Options, markdown_table, mixed_precision, pick, progress
from benchmarks.context import Context
from benchmarks.evaluation import (DC_K, PR_K, QUALITY_METRICS, by_metric, check_sample_count,
                                   feature_network, generator_seed, in_batches, lpips_metric, reconstruction_records,
                                   prior_quality_figure, samples_per_prior)
from benchmarks.inputs import load_splits
from benchmarks.plots import image_square, image_strip, pyplot, show_images
from sphere_plugins.training import TrainConfig, conv_objective, train

NAME = "autoencoder"
DESCRIPTION = "Table 2: spherical autoencoder vs VAE, S-VAE and plain autoencoder at equal budget"
MODEL_SCHEMES: tuple[str, ...] = ()
METHODS = {"sae": "spherical autoencoder", "vae": "VAE", "svae": "S-VAE (von Mises-Fisher)", "ae": "plain autoencoder"}


@dataclass(frozen=True)
class Preset:
    """One scale of the suite: the conv autoencoders' image side, code size and width, their training budget,
    samples per metric, the held-out share and size (None: all held-out images), t-SNE points, and an
    optional cap on the images loaded."""

    resolution: int
    z_dim: int
    width: int
    steps: int
    batch: int
    lr: float
    n_samples: int
    held_out: float
    n_test: int | None
    tsne_points: int
    limit: int | None = None


# Fashion-MNIST (28x28) is padded to 32x32; `n_test` held-out images are reconstructed (its test split's first
# ones; other data holds out a `held_out` share). The digits smoke run stays at 16x16.
PRESETS = {
    "quick": Preset(resolution=32, z_dim=10, width=32, steps=600, batch=64, lr=1e-3,
                    n_samples=2000, held_out=0.2, n_test=2000, tsne_points=600, limit=None),
    "standard": Preset(resolution=32, z_dim=10, width=32, steps=3000, batch=64, lr=1e-3,
                       n_samples=10000, held_out=0.2, n_test=10000, tsne_points=1000, limit=None),
    "paper": Preset(resolution=32, z_dim=10, width=64, steps=20000, batch=128, lr=1e-3,
                    n_samples=10000, held_out=0.2, n_test=10000, tsne_points=2000, limit=None),
}
SMOKE = {"resolution": 16, "steps": 300, "n_samples": 500}


def settings(ctx: Context) -> Preset:
    return pick(ctx.options, PRESETS, SMOKE, steps=ctx.options.steps, n_samples=ctx.options.n_samples)


def check(options: Options) -> None:
    """The autoencoder suite takes no options beyond those every suite shares (benchmarks.inputs checks them)."""


def run(ctx: Context) -> None:
    s = settings(ctx)
    splits = load_splits(ctx.options, resolution=s.resolution,
                         channels=1 if ctx.options.data == "digits" else None, limit=s.limit,
                         held_out=s.held_out, n_test=s.n_test)
    data, test = splits.real, splits.test
    extractor = feature_network(ctx, data)
    check_sample_count(s.n_samples, extractor, data, "the autoencoder's sampled decoders")
    check_sample_count(len(test), extractor, data, "reconstructions of the held-out images")
    models = {kind: train_model(ctx, s, kind, splits.train.images, splits.train) for kind in METHODS}
    lpips = lpips_metric(ctx)
    results = {}
    for kind, objective in progress(models.items(), "autoencoder: metrics", total=len(models)):
        key = {**model_key(ctx, s, kind, splits.train), "n": s.n_samples, "n_test": len(test),
               "real": data.description, "metrics": QUALITY_METRICS,
               "features": getattr(extractor, "fingerprint", extractor.name), "lpips": lpips is not None}
        results[kind] = ctx.cached(f"metrics-{kind}", key, lambda: evaluate(ctx, s, kind, objective, data, test,
                                                                            extractor, lpips))
    if not ctx.is_main:  # every process shared the metrics; the main one reports
        return
    report(ctx, s, results)
    prior_quality_figure(ctx, {METHODS[kind]: result for kind, result in results.items()},
                         "Decoder samples: precision vs recall (k = 3) and density vs coverage (k = 5); colour = "
                         "method, marker = prior.")
    figures(ctx, s, models, data, test)


def model_key(ctx: Context, s: Preset, kind: str, train: Any) -> dict:
    return {"kind": kind, "resolution": s.resolution, "z_dim": s.z_dim, "width": s.width,
            "steps": s.steps, "batch": s.batch, "lr": s.lr, "seed": ctx.options.seed,
            "data": ctx.options.data, "n_images": len(train), "train": train.description}


def train_model(ctx: Context, s: Preset, kind: str, images: torch.Tensor, train_set: Any) -> torch.nn.Module:
    """One objective trained on the training split; checkpoints in the cache make a re-run resume or skip."""
    folder = ctx.cache_path(f"train-{kind}", model_key(ctx, s, kind, train_set), suffix="")
    with torch.random.fork_rng(devices=[]):  # the same initial weights whatever ran before in this process
        torch.manual_seed(ctx.options.seed)
        objective = conv_objective(kind, channels=int(images.shape[1]), resolution=int(images.shape[-1]),
                                   z_dim=s.z_dim, width=s.width)
    config = TrainConfig(steps=s.steps, batch_size=s.batch, lr=s.lr, seed=ctx.options.seed,
                         mixed_precision=mixed_precision(ctx.device), checkpoint_dir=str(folder),
                         checkpoint_every=max(100, s.steps // 5), keep_checkpoints=1, resume=True,
                         log_path=str(folder / "log.jsonl"), progress=ctx.is_main,
                         cpu=torch.device(ctx.device).type == "cpu")
    result = ctx.checkpointed(f"train_{kind}", folder, ctx.training_step(folder), s.steps,
                              lambda: train(objective, images, config))
    return result.objective.to(ctx.device).eval()


def evaluate(ctx: Context, s: Preset, kind: str, objective: Any, data: Any, test: Any, extractor: Any,
             lpips: Any) -> dict:
    """Reconstruction metrics on the held-out images and FD of decoder samples from each prior."""
    label = f"{METHODS[kind]} (conv, d_z {s.z_dim}, {s.steps} steps)"
    recon = in_batches(objective.reconstruct, test.images, ctx.device)
    records = reconstruction_records(ctx, test, recon, extractor, lpips, label)
    samples = samples_per_prior(ctx, objective, data, extractor, s.n_samples, ("samples", kind), label)
    return {"reconstruction": records, "samples": samples}


def report(ctx: Context, s: Preset, results: dict) -> None:
    fd_name = results["sae"]["reconstruction"]["FD"]["metric"]
    has_lpips = "LPIPS" in results["sae"]["reconstruction"]
    rows = []
    for kind, result in results.items():
        rec = result["reconstruction"]
        for record in [*rec.values(), *[r for records in result["samples"].values() for r in records]]:
            ctx.add_record(record)
        rows.append([METHODS[kind], rec["FD"]["value"], rec["SWD"]["value"], rec["MSE"]["value"],
                     *([rec["LPIPS"]["value"]] if has_lpips else [])])
    header = ["method", f"{fd_name}", "SWD x1e3", "MSE ([0, 1] pixels)", *(["LPIPS"] if has_lpips else [])]
    any_rec = results["sae"]["reconstruction"]
    ctx.table("Table 2: reconstruction of held-out images (lower is better)", markdown_table(header, rows),
              f"{any_rec['MSE']['n_samples']} held-out images; every method has the same encoder/decoder "
              f"(d_z {s.z_dim}), {s.steps} Adam steps of batch {s.batch}, seed {ctx.options.seed}.")
    spread = {}
    sample_rows = []
    for kind, result in results.items():
        cells = {p: by_metric(result["samples"][p]) for p in PRIORS}
        values = [cells[p]["FD"]["value"] for p in PRIORS]
        spread[kind] = max(values) / min(values)
        sample_rows.append([METHODS[kind], *[f"{cells[p]['FD']['value']:.4g} ({cells[p]['precision']['value']:.3f} / "
                                             f"{cells[p]['recall']['value']:.3f})" for p in PRIORS],
                            spread[kind], float(np.std(values) / np.mean(values))])
    n_real = by_metric(results["sae"]["samples"]["normal"])["FD"]["extra"]["n_real"]
    ctx.table(f"Decoders sampled from four priors: {fd_name} (precision / recall, k = {PR_K}); FD lower is better, "
              "precision and recall higher",
              markdown_table(["method", *PRIORS, "FD max/min", "FD std/mean"], sample_rows),
              f"{s.n_samples} samples per prior against all {n_real} images of the real set "
              f"({results['sae']['samples']['normal'][0]['data']}). The spherical autoencoder and the S-VAE "
              "centerize and spherize the prior draw; the VAE and the plain autoencoder decode it as drawn. "
              f"Density and coverage (k = {DC_K}) are in results.json and density_coverage.png.")
    sae, vae = results["sae"]["reconstruction"], results["vae"]["reconstruction"]
    ctx.target("spherical autoencoder MSE vs VAE", "<= VAE's", f"{sae['MSE']['value']:.4g} vs {vae['MSE']['value']:.4g}",
               sae["MSE"]["value"] <= vae["MSE"]["value"])
    ctx.target(f"spherical autoencoder {fd_name} vs VAE", "<= VAE's",
               f"{sae['FD']['value']:.4g} vs {vae['FD']['value']:.4g}", sae["FD"]["value"] <= vae["FD"]["value"])
    ctx.target("sampling spread across priors (max/min FD)", "spherical autoencoder < VAE",
               f"{spread['sae']:.3f} vs {spread['vae']:.3f}", spread["sae"] < spread["vae"])


def figures(ctx: Context, s: Preset, models: dict, data: Any, test: Any) -> None:
    plt = pyplot()
    shown = test.images[:12]
    rows = [("original", shown)] + [(METHODS[k], in_batches(m.reconstruct, shown, ctx.device)) for k, m in models.items()]
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 1.0 * len(rows) + 0.4))
    for ax, (label, images) in zip(axes, rows):
        show_images(ax, image_strip(images.clamp(-1, 1)))
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    ctx.figure(fig, "reconstructions.png", "Reconstructions of held-out images (Figure 4 / 13).")
    fig, axes = plt.subplots(len(models), len(PRIORS), figsize=(2.4 * len(PRIORS), 2.5 * len(models)))
    for i, (kind, model) in enumerate(models.items()):
        for j, prior in enumerate(PRIORS):
            with torch.no_grad():
                images = model.sample(16, prior=prior, generator=generator_seed(ctx, "grid", kind, prior))
            show_images(axes[i, j], image_square(images, 4), title=prior if i == 0 else None,
                        ylabel=METHODS[kind] if j == 0 else None)
    ctx.figure(fig, "samples.png", "Decoders sampled from four priors (Figure 5 / 14): rows are methods.")
    tsne(ctx, s, models, data)


def tsne(ctx: Context, s: Preset, models: dict, data: Any) -> None:
    """t-SNE of the codes of each method, coloured by class (Figure 13's right panels)."""
    from sklearn.manifold import TSNE

    count = min(s.tsne_points, len(data))
    images = data.images[:count]
    labels = None if data.labels is None else data.labels[:count].numpy()
    plt = pyplot()
    fig, axes = plt.subplots(1, len(models), figsize=(3.4 * len(models), 3.4))
    for ax, (kind, model) in zip(axes, models.items()):
        codes = in_batches(model.codes, images, ctx.device).flatten(1).numpy()
        embedded = TSNE(n_components=2, init="pca", perplexity=30, random_state=ctx.options.seed).fit_transform(codes)
        ax.scatter(embedded[:, 0], embedded[:, 1], c=labels, cmap="tab10", s=4)
        ax.set_title(METHODS[kind], fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    ctx.figure(fig, "tsne.png", f"t-SNE of the codes of {count} images, coloured by class.")
