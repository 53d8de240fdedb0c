"""A diffusers AutoencoderKL fine-tuned into a spherical autoencoder: reconstruction and sampling metrics
before and after. Quick scale pre-trains a tiny AutoencoderKL briefly as a VAE on the data's train split (cached);
`--model diffusers:PATH` fine-tunes a given one."""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from benchmarks.common import PRIORS, BenchmarkError, Options, markdown_table, mixed_precision, pick, progress
from benchmarks.context import Context
from benchmarks.evaluation import (DC_K, PR_K, QUALITY_METRICS, by_metric, check_sample_count, clamped,
                                   feature_network, generator_seed, in_batches, lpips_metric, reconstruction_records,
                                   prior_quality_figure, sample_quality, samples_per_prior)
from benchmarks.inputs import file_stamp, load_splits
from benchmarks.plots import image_square, image_strip, pyplot, show_images
from sphere_plugins import load_model, wrap_autoencoder, wrap_generator
from sphere_plugins.data import list_image_files
from sphere_plugins.loss import VAELoss, reparameterize
from sphere_plugins.metrics import ClassifierConfig, inception_available
from sphere_plugins.training import TrainConfig, finetune_autoencoder_to_sae, train

NAME = "finetune"
DESCRIPTION = "a diffusers AutoencoderKL fine-tuned into a spherical autoencoder, before and after"
MODEL_SCHEMES = ("diffusers",)
# (label, which weights, latents on the sphere): the rows of the table.
VARIANTS = (("VAE (before)", "before", False), ("VAE, latents on the sphere (no fine-tuning)", "before", True),
            ("fine-tuned spherical autoencoder (after)", "after", True))


@dataclass(frozen=True)
class Preset:
    """One scale of the suite: the AutoencoderKL built here (image side, block widths, latent channels, group
    norm groups), its VAE pre-training and spherical fine-tuning steps, the KL weight `beta`, samples per
    metric, the held-out share and size (None: all), an optional image cap, and the mixture fitted to the
    codes (`components`, on `fit_codes` training codes)."""

    resolution: int
    blocks: list[int]
    latent_channels: int
    norm_groups: int
    pretrain_steps: int
    steps: int
    batch: int
    lr: float
    beta: float
    n_samples: int
    held_out: float
    n_test: int | None
    components: int
    fit_codes: int
    limit: int | None = None


# Fashion-MNIST (28x28) is padded to 32x32; the digits smoke run stays at 16x16.
PRESETS = {
    "quick": Preset(resolution=32, blocks=[16, 32, 32], latent_channels=4, norm_groups=8,
                    pretrain_steps=400, steps=200, batch=64, lr=1e-3, beta=1.0, n_samples=2000,
                    held_out=0.2, n_test=2000, limit=None, components=10, fit_codes=2000),
    "standard": Preset(resolution=32, blocks=[16, 32, 32], latent_channels=4, norm_groups=8,
                       pretrain_steps=1500, steps=750, batch=64, lr=1e-3, beta=1.0, n_samples=5000,
                       held_out=0.2, n_test=5000, limit=None, components=10, fit_codes=5000),
    "paper": Preset(resolution=32, blocks=[64, 128, 128], latent_channels=4, norm_groups=32,
                    pretrain_steps=20000, steps=5000, batch=128, lr=1e-4, beta=1.0, n_samples=10000,
                    held_out=0.2, n_test=10000, limit=None, components=10, fit_codes=10000),
}
SMOKE = {"resolution": 16, "pretrain_steps": 200, "steps": 100, "n_samples": 500}
FITTED_LABEL = "fine-tuned spherical autoencoder, prior fitted to its codes"
ORIGINAL_FITTED_LABEL = "original VAE (no fine-tuning), the same prior fitted to its codes"


def settings(ctx: Context) -> Preset:
    return pick(ctx.options, PRESETS, SMOKE, steps=ctx.options.steps, n_samples=ctx.options.n_samples)


class KLAutoencoderObjective(nn.Module):
    """An AutoencoderKL trained as a VAE: reconstruction + beta * KL of its Gaussian posterior (VAELoss)."""

    def __init__(self, vae: nn.Module, beta: float = 1.0):
        super().__init__()
        self.vae = vae
        self.loss_fn = VAELoss(beta=beta)

    def forward(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        posterior = self.vae.encode(x).latent_dist
        mu, logvar = posterior.mean, posterior.logvar
        x_rec = self.vae.decode(reparameterize(mu, logvar)).sample
        loss = self.loss_fn(x, x_rec, mu, logvar)
        with torch.no_grad():
            mse = (x - x_rec).square().mean()
        return loss, {"loss": loss.detach(), "mse": mse}


def train_config(ctx: Context, steps: int, s: Preset, folder) -> Any:
    return TrainConfig(steps=steps, batch_size=s.batch, lr=s.lr, seed=ctx.options.seed,
                       mixed_precision=mixed_precision(ctx.device), checkpoint_dir=str(folder),
                       checkpoint_every=max(100, steps // 4), keep_checkpoints=1, resume=True,
                       log_path=str(folder / "log.jsonl"), progress=ctx.is_main,
                       cpu=torch.device(ctx.device).type == "cpu")


def run_training(ctx: Context, name: str, folder, steps: int, start_training) -> Any:
    """Run (or resume, or skip when finished) a cached training and note its status."""
    return ctx.checkpointed(name, folder, ctx.training_step(folder), steps, start_training)


def given_vae(spec: str) -> nn.Module:
    """The diffusers autoencoder --model names."""
    vae = load_model(spec)
    if not hasattr(vae, "encode") or not hasattr(getattr(vae, "config", None), "latent_channels"):
        raise BenchmarkError(f"--model {spec!r} is a {type(vae).__name__}; the finetune suite needs "
                             "a diffusers autoencoder folder (AutoencoderKL)")
    return vae


def base_vae(ctx: Context, s: Preset, images: Tensor, given: nn.Module | None) -> tuple[nn.Module, str, dict]:
    """The AutoencoderKL to fine-tune: the given one, or a tiny one pre-trained here as a VAE (cached)."""
    if given is not None:
        return given.to(ctx.device), ctx.options.model, {"model": ctx.options.model, **file_stamp(ctx.options.model)}
    config = {"channels": int(images.shape[1]), "resolution": int(images.shape[-1]), "block_out_channels": s.blocks,
              "latent_channels": s.latent_channels, "norm_num_groups": s.norm_groups, "scaling_factor": 1.0,
              "seed": ctx.options.seed}
    key = {**config, "steps": s.pretrain_steps, "batch": s.batch, "lr": s.lr, "beta": s.beta,
           "data": ctx.options.data, "n_images": len(images)}
    vae = load_model("diffusers:tiny-vae", **config)
    folder = ctx.cache_path("pretrain-vae", key, suffix="")
    objective = KLAutoencoderObjective(vae, s.beta)
    run_training(ctx, "pretrain_vae", folder, s.pretrain_steps,
                 lambda: train(objective, images, train_config(ctx, s.pretrain_steps, s, folder)))
    label = (f"diffusers AutoencoderKL (blocks {s.blocks}, {s.latent_channels} latent channels) pre-trained "
             f"{s.pretrain_steps} steps as a VAE (beta {s.beta:g}) on {ctx.options.data}")
    return vae.to(ctx.device).eval(), label, key


def latent_options(vae: nn.Module, resolution: int) -> dict:
    """Adapter options giving the latent size for images of `resolution`."""
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    return {"latent_size": resolution // factor}


def fd_minimum() -> int:
    """Images a Frechet distance needs on the feature network this run will use (its width + 1), known
    before anything is trained: Inception's 2048 when its file is present, else the offline classifier's."""
    return 2049 if inception_available() else ClassifierConfig().feature_dim + 1


def held_out_share(n_images: int, held_out: float) -> float:
    """The preset's held-out share, raised (with a warning) when it leaves too few images for FD; the training
    share must keep as many. Raises BenchmarkError when the data is too small for both."""
    needed = fd_minimum()
    if n_images < 2 * needed:
        raise BenchmarkError(f"--data holds {n_images} images; the finetune suite needs at least {2 * needed} "
                             f"({needed} held out for FD on {needed - 1}-d features, as many to train on)")
    if round(n_images * held_out) >= needed:
        return held_out
    share = needed / n_images
    warnings.warn(f"finetune: {n_images} images give {round(n_images * held_out)} held out at {held_out:.0%}; holding "
                  f"out {needed} ({share:.0%}) so the reconstruction FD has enough images", stacklevel=2)
    return share


def check(options: Options) -> None:
    """A folder of images must hold enough for held-out FD and as many to train on (see held_out_share)."""
    if options.data.startswith("folder:"):
        with warnings.catch_warnings():  # only the error matters here; run() warns when it raises the share
            warnings.simplefilter("ignore")
            held_out_share(len(list_image_files(options.data[len("folder:"):])), pick(options, PRESETS, SMOKE).held_out)


def run(ctx: Context) -> None:
    s = settings(ctx)
    spec = ctx.model_spec(MODEL_SCHEMES)
    given = given_vae(spec) if spec else None
    if given is not None:
        resolution, channels = given.config.get("sample_size") or s.resolution, int(given.config.in_channels)
    else:
        resolution, channels = s.resolution, 1 if ctx.options.data == "digits" else None
    splits = load_splits(ctx.options, resolution=resolution, channels=channels, limit=s.limit,
                         held_out=lambda n: held_out_share(n, s.held_out), n_test=s.n_test)
    data, test, train_images = splits.real, splits.test, splits.train.images
    extractor = feature_network(ctx, data)
    check_sample_count(s.n_samples, extractor, data, "the fine-tuned decoders' samples")
    check_sample_count(len(test), extractor, data, "reconstructions of the held-out images")
    vae, label, key = base_vae(ctx, s, train_images, given)
    options = latent_options(vae, int(data.images.shape[-1]))
    before = copy.deepcopy(vae).eval()
    folder = ctx.cache_path("finetune-sae", {**key, "finetune_steps": s.steps, "batch": s.batch, "lr": s.lr},
                            suffix="")
    result = run_training(ctx, "finetune_sae", folder, s.steps, lambda: finetune_autoencoder_to_sae(
        vae, train_images, train_config(ctx, s.steps, s, folder), options=options))
    after = result.objective.wrapper.to(ctx.device).eval()
    models = {"before": before, "after": after.model}
    lpips = lpips_metric(ctx)
    results = {}
    for variant, weights, sphere in progress(VARIANTS, "finetune: metrics"):
        part_key = {**key, "variant": variant, "finetune_steps": s.steps if weights == "after" else 0,
                    "n": s.n_samples, "n_test": len(test), "lpips": lpips is not None,
                    "real": data.description, "metrics": QUALITY_METRICS,
                    "features": getattr(extractor, "fingerprint", extractor.name)}
        results[variant] = ctx.cached(f"metrics-{weights}-{'sphere' if sphere else 'raw'}", part_key,
                                      lambda: evaluate(ctx, s, models[weights], sphere, options, data, test, extractor,
                                                       lpips, f"{variant}: {label}"))
    fit_key = {**key, "finetune_steps": s.steps, "fitted": "gmm", "components": s.components,
               "fit_codes": s.fit_codes, "n": s.n_samples, "real": data.description, "metrics": QUALITY_METRICS,
               "features": getattr(extractor, "fingerprint", extractor.name)}
    fitted = ctx.cached("metrics-after-fitted", fit_key, lambda: evaluate_fitted(
        ctx, s, after, train_images, data, extractor, f"{FITTED_LABEL}: {label}"))
    original, _ = codec(before, False, options)
    fitted_before = ctx.cached("metrics-before-fitted", {**fit_key, "finetune_steps": 0}, lambda: evaluate_fitted(
        ctx, s, original, train_images, data, extractor, f"{ORIGINAL_FITTED_LABEL}: {label}"))
    if not ctx.is_main:  # every process shared the metrics; the main one reports
        return
    report(ctx, s, results, label)
    fitted_report(ctx, s, results, fitted, fitted_before)
    prior_quality_figure(ctx, results, "Decoder samples before and after fine-tuning: precision vs recall (k = 3) "
                         "and density vs coverage (k = 5); colour = row, marker = prior.")
    figures(ctx, models, options, test)


def codec(vae: nn.Module, sphere: bool, options: dict) -> tuple[Any, Any]:
    """The autoencoder and the decoder-as-generator for one row: raw VAE latents, or latents on the sphere."""
    return (wrap_autoencoder(vae, spherize=sphere, center=sphere, options=dict(options)),
            wrap_generator(vae, spherize=sphere, center=sphere, options=dict(options)))


def evaluate(ctx: Context, s: Preset, vae: nn.Module, sphere: bool, options: dict, data: Any, test: Any,
             extractor: Any, lpips: Any, model: str) -> dict:
    autoencoder, generator = codec(vae, sphere, options)
    recon = in_batches(lambda x: autoencoder(x).reconstruction, test.images, ctx.device)
    records = reconstruction_records(ctx, test, recon, extractor, lpips, model)
    samples = samples_per_prior(ctx, generator, data, extractor, s.n_samples, ("finetune-samples", sphere), model,
                                {"latents_on_sphere": sphere})
    return {"reconstruction": records, "samples": samples}


def evaluate_fitted(ctx: Context, s: Preset, wrapper: Any, train_images: Tensor, data: Any, extractor: Any,
                    model: str) -> list:
    """Decoder samples of a wrapper from a Gaussian mixture fitted to the codes of training images (the dimension
    study's recommended option; reconstruction is unchanged, the mixture is fitted afterwards). The fine-tuned
    wrapper's codes lie on its sphere; the original VAE's (a wrapper that neither centers nor spherizes) are its
    posterior means, and its draws are decoded as they are."""
    sphere = bool(wrapper.latent.spherize)
    wrapper.fit_prior(train_images[: s.fit_codes].to(ctx.device), kind="gmm", components=s.components,
                      seed=ctx.options.seed)
    draws = generator_seed(ctx, "finetune-samples-fitted", *(() if sphere else ("original",)))
    fake = clamped(lambda b: wrapper.sample(b, prior="fitted", generator=draws), ctx.device)
    return sample_quality(ctx, data, fake, extractor, s.n_samples, prior="fitted", model=model,
                          data=data.description, extra={"measured_on": "decoder samples from the fitted prior",
                                                        "latents_on_sphere": sphere, "components": s.components,
                                                        "fit_codes": s.fit_codes})


def fitted_report(ctx: Context, s: Preset, results: dict, fitted: list, fitted_before: list) -> None:
    """The fine-tuned decoder sampled from the normal prior and from the fitted mixture, beside the original VAE
    with the same kind of mixture fitted to its own codes."""
    for record in [*fitted, *fitted_before]:
        ctx.add_record(record)
    plain = by_metric(results[VARIANTS[2][0]]["samples"]["normal"])
    mixture, original = by_metric(fitted), by_metric(fitted_before)
    fd_name = plain["FD"]["metric"]
    rows = [[f"{VARIANTS[2][0]}, normal prior", *(plain[m]["value"] for m in ("FD", "precision", "recall"))],
            [f"{FITTED_LABEL} (Gaussian mixture, K = {s.components})",
             *(mixture[m]["value"] for m in ("FD", "precision", "recall"))],
            [f"{ORIGINAL_FITTED_LABEL} (Gaussian mixture, K = {s.components})",
             *(original[m]["value"] for m in ("FD", "precision", "recall"))]]
    better = mixture["FD"]["value"] < original["FD"]["value"]
    ctx.target("fine-tuned AutoencoderKL + fitted mixture: lower FD than the original + the same mixture", "lower",
               f"{mixture['FD']['value']:.4g} vs {original['FD']['value']:.4g} (one seed)", better)
    ctx.table("The fine-tuned decoder sampled from a prior fitted to its codes",
              markdown_table(["sampled from", fd_name, f"precision (k = {PR_K})", f"recall (k = {PR_K})"], rows),
              f"The mixture is fitted after fine-tuning to the codes of {s.fit_codes} training images "
              f"(`fit_prior(images, kind='gmm', components={s.components})`, then `sample(n, prior='fitted')`); "
              "the original VAE gets the same fit to its own codes (posterior means, off the sphere); "
              f"{s.n_samples} samples each.")


def report(ctx: Context, s: Preset, results: dict, label: str) -> None:
    first = next(iter(results.values()))
    fd_name = first["reconstruction"]["FD"]["metric"]
    has_lpips = "LPIPS" in first["reconstruction"]
    rows = []
    for variant, result in results.items():
        rec, smp = result["reconstruction"], result["samples"]
        for record in [*rec.values(), *[r for records in smp.values() for r in records]]:
            ctx.add_record(record)
        cells = {p: by_metric(smp[p]) for p in PRIORS}
        values = [cells[p]["FD"]["value"] for p in PRIORS]
        rows.append([variant, rec["FD"]["value"], rec["SWD"]["value"], rec["MSE"]["value"],
                     *([rec["LPIPS"]["value"]] if has_lpips else []),
                     *[f"{cells[p]['FD']['value']:.4g} ({cells[p]['precision']['value']:.3f} / "
                       f"{cells[p]['recall']['value']:.3f})" for p in PRIORS], max(values) / min(values)])
    header = ["model", f"reconstruction {fd_name}", "SWD x1e3", "MSE", *(["LPIPS"] if has_lpips else []),
              *[f"{fd_name} {p} (P / R)" for p in PRIORS], "FD max/min"]
    ctx.table("Fine-tuning an AutoencoderKL into a spherical autoencoder (lower is better)",
              markdown_table(header, rows),
              f"Base model: {label}; fine-tuned {s.steps} steps on reconstruction alone. Reconstructions of "
              f"{first['reconstruction']['MSE']['n_samples']} held-out images; {s.n_samples} decoder samples "
              f"per prior against the real set ({by_metric(first['samples']['normal'])['FD']['data']}); precision / "
              f"recall with k = {PR_K}, density and coverage (k = {DC_K}) in results.json and "
              "density_coverage.png. 'VAE (before)' decodes prior draws as drawn; the other rows "
              "centerize and spherize them (radius sqrt(d)).")
    before, after = results[VARIANTS[0][0]], results[VARIANTS[2][0]]
    ctx.note(f"Reconstruction MSE {before['reconstruction']['MSE']['value']:.4g} before, "
             f"{after['reconstruction']['MSE']['value']:.4g} after fine-tuning; sampling spread across priors "
             f"(max/min {fd_name}) {rows[0][-1]:.3f} before, {rows[2][-1]:.3f} after.")


def figures(ctx: Context, models: dict, options: dict, test: Any) -> None:
    plt = pyplot()
    shown = test.images[:12]
    rows = [("original", shown)]
    for variant, weights, sphere in VARIANTS:
        autoencoder, _ = codec(models[weights], sphere, options)
        rows.append((variant, in_batches(lambda x: autoencoder(x).reconstruction, shown, ctx.device).clamp(-1, 1)))
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 1.0 * len(rows) + 0.4))
    for ax, (label, images) in zip(axes, rows):
        show_images(ax, image_strip(images))
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    ctx.figure(fig, "reconstructions.png", "Held-out images and their reconstructions before and after fine-tuning.")
    fig, axes = plt.subplots(len(VARIANTS), len(PRIORS), figsize=(2.4 * len(PRIORS), 2.5 * len(VARIANTS)))
    for i, (variant, weights, sphere) in enumerate(VARIANTS):
        _, generator = codec(models[weights], sphere, options)
        for j, prior in enumerate(PRIORS):
            with torch.no_grad():
                images = generator.sample(16, prior=prior, generator=generator_seed(ctx, "finetune-grid", prior))
            show_images(axes[i, j], image_square(images, 4), title=prior if i == 0 else None,
                        ylabel=variant.split(" (")[0] if j == 0 else None, fontsize=8)
    ctx.figure(fig, "samples.png", "Decoder samples from four priors before and after fine-tuning (same draws per "
               "prior in every row).")
