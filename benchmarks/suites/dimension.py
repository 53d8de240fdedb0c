"""Where the spherical autoencoder's sampling holds: the same encoder/decoder and budget for the spherical
autoencoder, the VAE and the S-VAE across latent dimensions d_z; reconstruction FD and MSE, decoder samples
from four priors (FD, precision/recall), the geometry of the codes against Lemma 1, and the spherical
autoencoder's options (a prior fitted to the codes, noise on the sphere, a uniformity term) at equal budget.

The same-prior study (benchmarks.same_prior_study) adds a plain autoencoder, a VAE at beta 0.1 and a
regularized autoencoder, and samples every model from the same priors fitted to its codes: what the sphere
adds once every autoencoder has one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from benchmarks import same_prior_study as study
from benchmarks.common import PRIORS, Options, markdown_table, mixed_precision, pick
from benchmarks.context import Context
from benchmarks.evaluation import feature_network, generator_seed, in_batches
from benchmarks.inputs import load_data, train_test_split
from benchmarks.plots import pyplot
from sphere_plugins.data import ImageSet, load_images
from sphere_plugins.latent import centerize_spherize
from sphere_plugins.metrics import extract_features, fd_label, frechet_distance_from_features
from sphere_plugins.priors import get_prior, redraw_degenerate
from sphere_plugins.theory import lemma1_mean, lemma1_pdf, lemma1_std
from sphere_plugins.training import TrainConfig, conv_objective, train

NAME = "dimension"
DESCRIPTION = "spherical autoencoder vs VAE and S-VAE across d_z: samples, code geometry and the options"
MODEL_SCHEMES: tuple[str, ...] = ()
METHODS = {"sae": "spherical autoencoder", "vae": "VAE", "svae": "S-VAE (von Mises-Fisher)"}
# The options of the spherical autoencoder, each against the plain one at the same budget: (label, training
# arguments of conv_objective, fitted prior (kind) or None).
OPTIONS = {
    "fitted-gmm": ({}, "gmm"),
    "fitted-vmf": ({}, "vmf"),
    "noise-0.1": ({"latent_noise": 0.1}, None),
    "noise-0.25": ({"latent_noise": 0.25}, None),
    "uniformity-0.5": ({"uniformity": 0.5}, None),
}


@dataclass(frozen=True)
class Preset:
    """One scale of the suite: image side and width of the conv autoencoders, their training budget, the
    code sizes `dims` (the S-VAE up to `svae_max_dim`), the options measured at `option_dims` (None: all of
    OPTIONS), the fitted mixture's components, codes and iterations, and the sample, test and geometry sizes.
    The same-prior study fits mixtures to the codes of `study_models` (names of study.MODELS; those the suite
    does not train anyway are trained for it) at `study_dims` (None: all dims), with equal-parameter mixtures
    from `equal_params_from` on and `memo_train` training images (None: all) as the memorization reference."""

    resolution: int
    width: int
    steps: int
    batch: int
    lr: float
    dims: list[int]
    svae_max_dim: int
    option_dims: list[int]
    components: int
    fit_codes: int
    fit_iter: int
    n_samples: int
    n_test: int
    n_geometry: int
    options: list[str] | None = None
    limit: int | None = None
    study_models: tuple[str, ...] = ()
    study_dims: list[int] | None = None
    equal_params_from: int = 256
    memo_train: int | None = None


PRESETS = {
    "quick": Preset(resolution=16, width=16, steps=150, batch=64, lr=1e-3, dims=[8, 64, 512],
                    svae_max_dim=64, option_dims=[8, 512],
                    options=["fitted-gmm", "fitted-vmf", "noise-0.1", "uniformity-0.5"], components=10,
                    fit_codes=2000, fit_iter=30,
                    n_samples=500, n_test=1000, n_geometry=500, limit=None,
                    study_models=("sae", "ae"), study_dims=[8, 512], memo_train=10000),
    "standard": Preset(resolution=16, width=32, steps=1000, batch=64, lr=1e-3,
                       dims=[8, 16, 32, 64, 128, 256, 512], svae_max_dim=512, option_dims=[8, 512],
                       options=list(OPTIONS), components=10, fit_codes=5000, fit_iter=100,
                       n_samples=2000, n_test=5000, n_geometry=2000, limit=None,
                       study_models=tuple(study.MODELS), study_dims=None, memo_train=None),
}


def settings(ctx: Context) -> Preset:
    """The preset of the run's scale; scales without their own preset ('paper') use the largest one."""
    presets = PRESETS if ctx.options.scale in PRESETS else {**PRESETS, ctx.options.scale: PRESETS["standard"]}
    return pick(ctx.options, presets, steps=ctx.options.steps, n_samples=ctx.options.n_samples)


def check(options: Options) -> None:
    """The dimension suite takes no options beyond those every suite shares (benchmarks.inputs checks them)."""


def load_split(ctx: Context, s: Preset) -> tuple[Any, Any, str]:
    """(training images, held-out images, data name): Fashion-MNIST's train/test splits for the default data
    (digits when Fashion-MNIST is not installed), else the --data set split at random."""
    spec = ctx.options.data
    if spec in ("digits", "fashion-mnist"):
        try:
            train = load_images("fashion-mnist:train", resolution=ctx.options.resolution or s.resolution,
                                limit=s.limit)
            test = load_images("fashion-mnist:test", resolution=ctx.options.resolution or s.resolution,
                               limit=s.n_test)
            return train, test, "fashion-mnist"
        except (OSError, ValueError) as error:
            ctx.note(f"Fashion-MNIST is not available ({error}); the digits were used instead")
    data = load_data(ctx.options, resolution=s.resolution, channels=1 if spec == "digits" else None,
                     limit=s.limit)
    train_idx, test_idx = train_test_split(len(data), 0.2, ctx.options.seed)
    test_idx = test_idx[: s.n_test]

    def part(idx: torch.Tensor, what: str) -> ImageSet:
        labels = None if data.labels is None else data.labels[idx]
        return ImageSet(data.images[idx], labels, data.name, f"{len(idx)} {what} images of {data.description}")

    return part(train_idx, "training"), part(test_idx, "held-out"), spec


def run(ctx: Context) -> None:
    s = settings(ctx)
    train_set, test, data_name = load_split(ctx, s)
    extractor = feature_network(ctx, train_set)
    real = _features(ctx, test.images, extractor) if ctx.is_main else None
    n = min(s.n_samples, len(test))
    if not set(s.option_dims) <= set(s.dims) or not set(_study_dims(s)) <= set(s.dims):
        raise ValueError(f"option_dims {s.option_dims} and study_dims {s.study_dims} must be among dims {s.dims}")
    if any(fitted for _, fitted in _options(s).values()) and (
            "sae" not in s.study_models or not set(s.option_dims) <= set(_study_dims(s))):
        raise ValueError(f"the fitted options come from the same-prior study: study_models {s.study_models} must "
                         f"hold 'sae' and study_dims {s.study_dims} the option_dims {s.option_dims}")
    features = getattr(extractor, "fingerprint", extractor.name)
    models: dict[tuple[str, int, str], torch.nn.Module] = {}
    results: dict[tuple[str, int, str], dict] = {}
    found: dict[tuple[str, int], dict] = {}
    memo_images = train_set.images[: s.memo_train]
    reference: list[study.Reference] = []  # computed once, when the first study part needs it
    left_out: list[str] = []
    deferred: list[tuple] = []  # full-covariance fits at d_z >= equal_params_from, run last
    for kind, d, args in shard_of(plan(s), ctx.options.shard):
        tag = _tag(args)
        what = f"{kind} d_z {d}" + (f" ({tag})" if tag else "")
        if ctx.out_of_time() and ctx.training_step(training_folder(ctx, s, kind, d, args, data_name)) < s.steps:
            left_out.append(f"{what}: training")
            continue
        model = models[(kind, d, tag)] = train_model(ctx, s, kind, d, args, train_set.images, data_name)
        if not ctx.is_main:
            continue
        # Evaluated (and cached) right after training, so an interrupted sweep keeps every finished d_z.
        key = {**model_key(ctx, s, kind, d, args, data_name), "n": n, "n_test": len(test),
               "n_geometry": s.n_geometry, "features": features, "metrics": SAMPLE_METRICS}
        name = study.model_name(kind, args)
        priors = PRIORS if kind in METHODS and not tag else ("normal",)
        part = within_budget(ctx, f"metrics-{kind}-{d}-{tag}", key, lambda: evaluate(
            ctx, s, kind, model, test, real, extractor, n, priors=priors))
        if part is None:
            left_out.append(f"{what}: metrics")
            continue
        results[(kind, d, tag)] = part
        if name not in s.study_models or d not in _study_dims(s):
            continue

        def memo_reference() -> study.Reference:
            if not reference:
                reference.append(study.reference(_features(ctx, memo_images, extractor), real, ctx.device))
            return reference[0]

        study_key = {**key, "components": s.components, "fit_codes": s.fit_codes, "fit_iter": s.fit_iter,
                     "equal_params_from": s.equal_params_from, "memo_train": len(memo_images)}

        def study_part(label: str, compute: Any, what: str = what, study_key: dict = study_key, cell: tuple = (name, d),
                       part_name: str = f"study-{kind}-{d}-{tag}") -> dict | None:
            args = (f"{part_name}-{label}", {**study_key, "part": label}, compute)
            if label == "gmm-full" and cell[1] >= s.equal_params_from and not ctx.is_cached(*args[:2]):
                deferred.append((cell, label, what, args))  # the costliest fit, and more parameters than codes
                return None
            value = within_budget(ctx, *args)
            if value is None:
                left_out.append(f"{what}: {label}")
            return value

        found[(name, d)] = study.evaluate(ctx, s, name, d, model, train_set.images, test, real, extractor, n,
                                          memo_reference, study_part)
    for cell, label, what, args in deferred:  # after every model's other parts, so a time budget cuts these first
        value = within_budget(ctx, *args)
        if value is None:
            left_out.append(f"{what}: {label}")
        else:
            found[cell]["fitted"][label] = value
    if left_out:
        ctx.note(f"--time-budget {ctx.options.time_budget:g} s ran out; left out: {'; '.join(left_out)}")
    if not ctx.is_main:
        return
    if ctx.options.shard is not None:
        ctx.note(f"shard {ctx.options.shard[0]}/{ctx.options.shard[1]}: trained and measured its share of the models "
                 "(cached); a run without --shard and the same options reports them all")
        return
    for d in s.option_dims:  # the fitted options are the study's mixtures on the spherical autoencoder's codes
        for label, (_, fitted) in _options(s).items():
            prior = "gmm-full" if fitted == "gmm" else "vmf"
            if fitted is not None and prior in found.get(("sae", d), {}).get("fitted", {}):
                results[("sae", d, label)] = {"samples": {"fitted": found[("sae", d)]["fitted"][prior]}}
    report(ctx, s, results, extractor, data_name)
    fd = fd_label(extractor)
    plain = {(study.model_name(k, a), d): results[(k, d, _tag(a))] for k, d, a in plan(s)
             if study.model_name(k, a) is not None and (k, d, _tag(a)) in results}
    study.report(ctx, s, plain, found, fd, {"feature_network": getattr(extractor, "description", extractor.name),
                                            "data": data_name}, len(memo_images))
    if results:
        figures(ctx, s, results, models, test, fd)


SAMPLE_METRICS = ("FD", "precision", "recall", "density", "coverage")


def over_seeds(runs: list[dict]) -> dict:
    """What `python -m benchmarks.seeds dimension ... --out DIR` adds for this suite over runs at several seeds:
    the same-prior study's headline, targets (a win only in every seed) and FD table."""
    return study.over_seeds(runs)


def within_budget(ctx: Context, name: str, key: dict, compute: Any) -> dict | None:
    """ctx.cached(name, key, compute), or None when it is not cached and --time-budget has run out."""
    if ctx.out_of_time() and not ctx.is_cached(name, key):
        return None
    return ctx.cached(name, key, compute)


def _study_dims(s: Preset) -> list[int]:
    return list(s.dims) if s.study_dims is None else list(s.study_dims)


def plan(s: Preset) -> list[tuple[str, int, dict]]:
    """(method, d_z, options) in training order, the most telling first so an interrupted sweep keeps them:
    the spherical autoencoder, the VAE and the plain autoencoder at the smallest and largest d_z, then at the
    other d_z, then the study's other baselines, the S-VAE (up to svae_max_dim), then the trained options."""
    dims = sorted(s.dims)
    ends = [dims[0], dims[-1]] if len(dims) > 1 else dims
    unknown = sorted(set(s.study_models) - set(study.MODELS))
    if unknown:
        raise ValueError(f"unknown study_models {unknown}; expected some of {', '.join(study.MODELS)}")
    first = [study.MODELS[name][:2] for name in s.study_models if name == "ae"]
    later = [study.MODELS[name][:2] for name in s.study_models if name in study.EXTRA_MODELS and name != "ae"]
    order = ends + [d for d in dims if d not in ends]

    def at(group: list[int], extra: list[tuple[str, dict]]) -> list[tuple[str, int, dict]]:
        return [(kind, d, args) for d in group if d in _study_dims(s) for kind, args in extra]

    steps = []
    for group in (ends, [d for d in dims if d not in ends]):
        steps += [(kind, d, {}) for d in group for kind in ("sae", "vae")] + at(group, first)
    steps += at(order, later) + [("svae", d, {}) for d in order if d <= s.svae_max_dim]
    return steps + [("sae", d, args) for d in s.option_dims for args, _ in _options(s).values() if args]


# Rough relative cost of training (and measuring) one model, for sharing the plan out between processes.
_COST = {"svae": 6.0}


def shard_of(steps: list[tuple[str, int, dict]], shard: tuple[int, int] | None) -> list[tuple[str, int, dict]]:
    """The steps of shard (I, N): each step goes, in order, to the shard with the least estimated cost so far
    (the S-VAE's training costs several of the others'), so N processes finish at about the same time."""
    if shard is None:
        return steps
    index, count = shard
    loads = [0.0] * count
    mine = []
    for step in steps:
        worker = loads.index(min(loads))
        loads[worker] += _COST.get(step[0], 1.0) * (2.0 if step[1] >= 256 else 1.0)
        if worker == index:
            mine.append(step)
    return mine


def _options(s: Preset) -> dict:
    """The options this scale measures (a preset's "options" names; all of them when it has none)."""
    names = list(OPTIONS) if s.options is None else s.options
    unknown = sorted(set(names) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown options {unknown}; expected some of {', '.join(OPTIONS)}")
    return {name: OPTIONS[name] for name in names}


def _tag(args: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(args.items()))


def model_key(ctx: Context, s: Preset, kind: str, d: int, args: dict, data_name: str) -> dict:
    return {"kind": kind, "z_dim": d, "options": args, "resolution": ctx.options.resolution or s.resolution,
            "width": s.width, "steps": s.steps, "batch": s.batch, "lr": s.lr, "seed": ctx.options.seed,
            "data": data_name, "limit": s.limit}


def training_folder(ctx: Context, s: Preset, kind: str, d: int, args: dict, data_name: str):
    """The cache folder of a training's checkpoints."""
    return ctx.cache_path(_training_name(kind, d, args), model_key(ctx, s, kind, d, args, data_name), suffix="")


def _training_name(kind: str, d: int, args: dict) -> str:
    return f"train_{kind}_{d}" + (f"_{_tag(args)}" if args else "")


def train_model(ctx: Context, s: Preset, kind: str, d: int, args: dict, images: torch.Tensor,
                data_name: str) -> torch.nn.Module:
    """One objective at d_z = d trained on the training images; checkpoints in the cache resume or skip it."""
    name = _training_name(kind, d, args)
    folder = training_folder(ctx, s, kind, d, args, data_name)
    with torch.random.fork_rng(devices=[]):  # the same initial weights whatever ran before, options or not
        torch.manual_seed(ctx.options.seed)
        objective = conv_objective(kind, channels=int(images.shape[1]), resolution=int(images.shape[-1]),
                                   z_dim=d, width=s.width, **args)
    config = TrainConfig(steps=s.steps, batch_size=s.batch, lr=s.lr, seed=ctx.options.seed,
                         mixed_precision=mixed_precision(ctx.device), checkpoint_dir=str(folder),
                         checkpoint_every=max(100, s.steps // 2), keep_checkpoints=1, resume=True,
                         log_path=str(folder / "log.jsonl"), progress=ctx.is_main,
                         cpu=torch.device(ctx.device).type == "cpu")
    result = ctx.checkpointed(name, folder, ctx.training_step(folder), s.steps,
                              lambda: train(objective, images, config))
    return result.objective.to(ctx.device).eval()


def _features(ctx: Context, images: torch.Tensor, extractor: Any) -> np.ndarray:
    return extract_features(images, extractor, batch_size=250, cache_dir=ctx.cache_dir)


def sample_metrics(real: np.ndarray, images: torch.Tensor, extractor: Any) -> dict:
    """FD of the images against every real feature; precision and recall (k = 3), density and coverage (k = 5)
    against as many real ones."""
    return study.quality(real, study.features_of(images, extractor))


def code_geometry(codes: torch.Tensor | np.ndarray, reference: torch.Tensor | np.ndarray) -> dict:
    """Distances between codes against reference points (prior draws as the decoder sees them), in units of
    the reference points' mean norm r: the codes' pairwise mean and std, the median distance from each code to
    its nearest other code, and the median distance from each reference point to its nearest code."""
    z = torch.as_tensor(np.asarray(codes), dtype=torch.float64).flatten(1)
    ref = torch.as_tensor(np.asarray(reference), dtype=torch.float64).flatten(1)
    if z.shape[0] < 3 or ref.shape[0] < 1 or z.shape[1] != ref.shape[1]:
        raise ValueError(f"codes [N >= 3, D] and reference [M, D] must share D, got {list(z.shape)} and "
                         f"{list(ref.shape)}")
    r = float(torch.linalg.vector_norm(ref, dim=1).mean())
    pair = torch.cdist(z, z)
    upper = pair[torch.triu_indices(len(z), len(z), 1).unbind()] / r
    own = pair.fill_diagonal_(float("inf")).min(dim=1).values / r
    from_ref = torch.cdist(ref, z).min(dim=1).values / r
    return {"radius": r, "pair_mean": float(upper.mean()), "pair_std": float(upper.std()),
            "code_nn_median": float(own.median()), "reference_nn_median": float(from_ref.median()),
            "nn_ratio": float(from_ref.median() / own.median())}


def lemma1_reference(d: int) -> dict:
    """Lemma 1's mean and std of the distance between uniform points on the unit sphere in R^d."""
    return {"dimension": d, "mean": lemma1_mean(d), "std": lemma1_std(d)}


def _reference_latents(kind: str, model: Any, n: int, generator: torch.Generator) -> torch.Tensor:
    """n draws of the normal prior in the form the method's decoder receives them."""
    if kind == "sae":
        return model.wrapper.latents(n, "normal", generator)
    if kind == "svae":
        return centerize_spherize(torch.randn(n, model.z_dim, generator=generator, device=generator.device))
    return torch.randn(n, *model.z_shape, generator=generator, device=generator.device)


def _svae_sampler(model: Any, prior: str, generator: torch.Generator) -> Any:
    """The S-VAE's sampling (a prior draw centerized onto the unit sphere), with draws that centerize to zero
    (discrete priors at small d_z) drawn again, as the spherical autoencoder's latents() does."""
    draw = get_prior(prior)

    def sample(b: int) -> torch.Tensor:
        device = next(model.parameters()).device
        z = draw.sample((b, model.z_dim), generator=generator, device=device)
        z = redraw_degenerate(z, lambda k: draw.sample((k, model.z_dim), generator=generator, device=device))
        return model.decoder(centerize_spherize(z))

    return sample


def effective_dimension(kind: str, d: int) -> int:
    """The spherical autoencoder's codes are centred, so they fill a sphere in a (d - 1)-dimensional subspace."""
    return d - 1 if kind == "sae" else d


def evaluate(ctx: Context, s: Preset, kind: str, model: Any, test: Any, real: np.ndarray, extractor: Any, n: int,
             priors: tuple[str, ...]) -> dict:
    """Reconstruction FD and MSE on the held-out images, samples from each prior, and the codes' geometry."""
    recon = in_batches(model.reconstruct, test.images, ctx.device).clamp(-1, 1)
    recon_f = np.concatenate([extractor(recon[i:i + 250]) for i in range(0, len(recon), 250)]).astype(np.float64)
    out = {"recon": {"MSE": float(((recon - test.images) / 2).square().mean()),  # on [0, 1] pixels
                     "FD": frechet_distance_from_features(real, recon_f), "n": len(recon)}, "samples": {}}
    for prior in priors:
        draws = generator_seed(ctx, "dimension-samples", kind, prior)
        sample = _svae_sampler(model, prior, draws) if kind == "svae" else (
            lambda b: model.sample(b, prior=prior, generator=draws))
        images = study.draw_images(sample, n)
        out["samples"][prior] = sample_metrics(real, images, extractor)
    m = min(s.n_geometry, len(test))
    codes = in_batches(model.codes, test.images[:m], ctx.device)
    with torch.no_grad():
        ref = _reference_latents(kind, model, m, generator_seed(ctx, "dimension-reference", kind)).float().cpu()
    d = int(codes[0].numel())
    out["geometry"] = {**code_geometry(codes, ref), "lemma1": lemma1_reference(effective_dimension(kind, d))}
    return out


def _label(kind: str, d: int, s: Preset, tag: str = "") -> str:
    option = f", {tag}" if tag else ""
    return f"{METHODS[kind]} (conv, d_z {d}, {s.steps} steps{option})"


def report(ctx: Context, s: Preset, results: dict, extractor: Any, data_name: str) -> None:
    fd = fd_label(extractor)
    net = getattr(extractor, "description", extractor.name)
    common = {"feature_network": net, "data": data_name}
    rows, sample_rows, geo_rows = [], [], []
    for (kind, d, tag), res in sorted(results.items(), key=lambda item: (item[0][1], item[0][0])):
        if tag or kind not in METHODS:
            continue
        label = _label(kind, d, s)
        rec = res["recon"]
        ctx.record(fd, rec["FD"], model=label, n_samples=rec["n"], prior=None, z_dim=d, method=kind,
                   measured_on="reconstructions of held-out images", **common)
        ctx.record("MSE", rec["MSE"], model=label, n_samples=rec["n"], prior=None, z_dim=d, method=kind,
                   measured_on="reconstructions of held-out images", data=data_name)
        for prior, m in res["samples"].items():
            for metric, name in ((fd, "FD"), ("precision (k=3)", "precision"), ("recall (k=3)", "recall"),
                                 ("density (k=5)", "density"), ("coverage (k=5)", "coverage")):
                ctx.record(metric, m[name], model=label, n_samples=m["n_fake"], prior=prior, z_dim=d, method=kind,
                           n_real=m["n_real"], measured_on="decoder samples from the prior", **common)
        g = res["geometry"]
        for metric in ("pair_mean", "pair_std", "code_nn_median", "reference_nn_median", "nn_ratio"):
            ctx.record(f"code {metric.replace('_', ' ')}", g[metric], model=label, n_samples=s.n_geometry,
                       z_dim=d, method=kind, lemma1=g["lemma1"], data=data_name,
                       measured_on="codes of held-out images vs the normal prior's draws, distances / radius")
        normal = res["samples"]["normal"]
        values = [res["samples"][p]["FD"] for p in PRIORS]
        rows.append([d, METHODS[kind], rec["MSE"], rec["FD"]])
        sample_rows.append([d, METHODS[kind], *values, normal["precision"], normal["recall"],
                            max(values) / min(values)])
        geo_rows.append([d, METHODS[kind], g["pair_mean"], g["lemma1"]["mean"], g["pair_std"], g["lemma1"]["std"],
                         g["code_nn_median"], g["reference_nn_median"], g["nn_ratio"]])
    note = (f"Every method has the same conv encoder/decoder (width {s.width}), {s.steps} Adam steps of batch "
            f"{s.batch}, seed {ctx.options.seed}, on {data_name}; held-out images from its test split.")
    ctx.table("Reconstruction of held-out images by d_z (lower is better)",
              markdown_table(["d_z", "method", "MSE ([0, 1] pixels)", fd], rows), note)
    ctx.table(f"Decoder samples from four priors by d_z: {fd} (lower is better), precision/recall (normal prior)",
              markdown_table(["d_z", "method", *PRIORS, "precision", "recall", "max/min FD"], sample_rows),
              f"{s.n_samples} samples per prior; FD against the held-out images' features, precision/recall "
              "(k = 3) against as many of them.")
    ctx.table("Code geometry: distances between codes of held-out images, in units of the prior draws' radius",
              markdown_table(["d_z", "method", "pair mean", "Lemma 1 mean", "pair std", "Lemma 1 std",
                              "median code NN", "median prior-draw-to-code NN", "ratio"], geo_rows),
              f"{s.n_geometry} codes. Lemma 1 is for uniform points on the unit sphere of the codes' dimension "
              "(d_z - 1 for the spherical autoencoder, whose codes are centred). The prior draws are the normal "
              "prior's, as the decoder receives them (raw N(0, I) for the VAE). ratio > 1: prior draws land "
              "farther from any code than codes lie from each other.")
    options_report(ctx, s, results, fd, common)
    normal_fd = {(kind, d): res["samples"]["normal"]["FD"] for (kind, d, tag), res in results.items() if not tag}
    vae_gap = [(d, normal_fd[("sae", d)], normal_fd[("vae", d)]) for d in s.dims
               if ("sae", d) in normal_fd and ("vae", d) in normal_fd]
    beats = [d for d, a, b in vae_gap if a <= b]
    ctx.target("spherical autoencoder's normal-prior sample FD <= VAE's", "at some d_z",
               ", ".join(f"d_z {d}: {a:.3g} vs {b:.3g}" for d, a, b in vae_gap), bool(beats))


def options_report(ctx: Context, s: Preset, results: dict, fd: str, common: dict) -> dict:
    """The options against the plain spherical autoencoder at each option d_z; returns {option: meets at all}."""
    rows, meets, verdicts = [], {label: True for label in _options(s)}, {label: [] for label in _options(s)}
    for d in s.option_dims:
        if ("sae", d, "") not in results:
            continue
        plain = results[("sae", d, "")]
        base, base_mse = plain["samples"]["normal"], plain["recon"]["MSE"]
        rows.append([d, "plain", base_mse, 1.0, base["FD"], base["precision"], base["recall"], "-"])
        for label, (args, fitted) in _options(s).items():
            res = results.get(("sae", d, _tag(args) if args else label))
            if res is None:
                meets[label] = False
                verdicts[label].append(f"d_z {d}: not measured")
                continue
            m = res["samples"]["fitted" if fitted else "normal"]
            mse = base_mse if fitted else res["recon"]["MSE"]
            # strictly better recall: two zeros (nothing of the real set covered) is no improvement
            ok = m["FD"] < base["FD"] and m["recall"] > base["recall"] and mse <= 1.1 * base_mse
            meets[label] &= ok
            verdicts[label].append(f"d_z {d}: {'yes' if ok else 'no'}")
            rows.append([d, label, mse, mse / base_mse, m["FD"], m["precision"], m["recall"], "yes" if ok else "no"])
            model = _label("sae", d, s, label)
            for metric, name in ((fd, "FD"), ("precision (k=3)", "precision"), ("recall (k=3)", "recall")):
                ctx.record(metric, m[name], model=model, n_samples=m["n_fake"], z_dim=d, method="sae", option=label,
                           prior="fitted" if fitted else "normal", measured_on="decoder samples", **common)
            if not fitted:
                ctx.record("MSE", mse, model=model, n_samples=res["recon"]["n"], z_dim=d, method="sae", option=label,
                           prior=None, measured_on="reconstructions of held-out images", data=common["data"])
    ctx.table("Options of the spherical autoencoder against the plain one at the same budget",
              markdown_table(["d_z", "option", "recon MSE", "MSE / plain", f"sample {fd}", "precision", "recall",
                              "better FD and recall, MSE <= 1.1x"], rows),
              f"Fitted priors: K = {s.components} components on the codes of {s.fit_codes} training images, "
              "sampled with prior='fitted' (reconstruction unchanged). The other options are trained with the "
              "option and sampled from the normal prior.")
    for label, ok in meets.items():
        ctx.target(f"option {label}: better sample FD and recall, MSE <= 1.1x plain",
                   f"at d_z {', '.join(map(str, s.option_dims))}", ", ".join(verdicts[label]), ok)
    return meets


def figures(ctx: Context, s: Preset, results: dict, models: dict, test: Any, fd: str) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(PRIORS), figsize=(3.3 * len(PRIORS), 3.2), sharey=True)
    for ax, prior in zip(axes, PRIORS):
        for kind in METHODS:
            dims = [d for d in s.dims if (kind, d, "") in results]
            ax.plot(dims, [results[(kind, d, "")]["samples"][prior]["FD"] for d in dims], "o-", label=METHODS[kind])
        for label in ("fitted-gmm", "fitted-vmf"):
            dims = [d for d in s.option_dims if ("sae", d, label) in results]
            if prior == "normal" and dims:
                ax.plot(dims, [results[("sae", d, label)]["samples"]["fitted"]["FD"] for d in dims], "s--",
                        label=f"spherical AE, {label} prior")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("d_z")
        ax.set_title(f"{prior} prior", fontsize=9)
    axes[0].set_ylabel(f"sample {fd}")
    axes[0].legend(fontsize=7)
    ctx.figure(fig, "sample_fd.png", f"Sample {fd} against d_z per method and prior (fitted priors dashed).")
    _histograms(ctx, s, models, test)


def _histograms(ctx: Context, s: Preset, models: dict, test: Any) -> None:
    plt = pyplot()
    kinds = [k for k in ("sae", "svae") if any((k, d, "") in models for d in s.dims)]
    fig, axes = plt.subplots(len(kinds), len(s.dims), figsize=(2.6 * len(s.dims), 2.4 * len(kinds)),
                             squeeze=False)
    m = min(s.n_geometry, len(test))
    for i, kind in enumerate(kinds):
        for j, d in enumerate(s.dims):
            ax = axes[i, j]
            if (kind, d, "") not in models:
                ax.axis("off")
                continue
            model = models[(kind, d, "")]
            codes = in_batches(model.codes, test.images[:m], ctx.device).flatten(1).double()
            r = float(torch.linalg.vector_norm(codes, dim=1).mean())
            dist = torch.pdist(codes).numpy() / r
            ax.hist(dist, bins=60, range=(0, 2), density=True, alpha=0.6, label="codes")
            xi = np.linspace(0.001, 1.999, 400)
            ax.plot(xi, lemma1_pdf(xi, effective_dimension(kind, d)), "k-", lw=1, label="Lemma 1")
            ax.set_title(f"{METHODS[kind].split(' (')[0]}, d_z {d}", fontsize=8)
            ax.set_yticks([])
    axes[0, 0].legend(fontsize=7)
    ctx.figure(fig, "code_distances.png", "Pairwise distances between codes of held-out images (divided by the "
               "radius) against Lemma 1's density for uniform points on a sphere of the codes' dimension.")
