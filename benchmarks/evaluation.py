"""Metric plumbing shared by the image suites: the feature network (FID with Inception, else the offline
classifier as FD-<name>), sample-count checks, and generator callables that metrics can draw from."""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from benchmarks.common import PRIORS, BenchmarkError
from benchmarks.context import Context
from benchmarks.plots import pyplot
from sphere_plugins import metrics
from sphere_plugins.errors import MissingWeightsError
from sphere_plugins.metrics import (LPIPS, RealManifold, compute_fid, compute_lpips, compute_mse, compute_swd,
                                    fd_label)
from sphere_plugins.metrics.fid import extract_features, feature_record, frechet_distance_from_features


def feature_network(ctx: Context, real: Any) -> Any:
    """clean-fid's Inception when its weight file is present, else the classifier trained (and cached) on the
    labelled data; a note says which. Unlabelled data without Inception is a clear error."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            # The suites train their offline network on the data's own labels, never a stand-in network.
            features = "auto" if getattr(real, "labels", None) is not None else "inception"
            extractor = metrics.resolve_features(features, real, device=ctx.device, cache_dir=ctx.cache_dir)
        except MissingWeightsError as error:
            raise BenchmarkError(f"{error} Without it, FD needs labelled data (digits, or a folder with one "
                                 "sub-folder per class) to train the offline feature network") from None
    messages = [str(w.message) for w in caught]
    if not messages:
        messages = [f"features: {getattr(extractor, 'description', extractor.name)}"]
    for message in messages:
        if not any(message in note for note in ctx.notes):
            ctx.note(f"{fd_label(extractor)}: {message}")
    return extractor


def feature_dim(extractor: Any, real: Any) -> int:
    """The width of the extractor's features (from two real images)."""
    return int(extractor(real.images[:2]).shape[1])


def check_sample_count(n: int, extractor: Any, real: Any, what: str) -> None:
    """A Frechet distance needs more samples than feature dimensions: fail early with the numbers."""
    needed = feature_dim(extractor, real) + 1
    if n < needed:
        raise BenchmarkError(f"too few samples for {what}: {n} (set by --n-samples or the data's size) but a "
                             f"Frechet distance on {needed - 1}-d features needs at least {needed}")
    if len(real) < needed:
        raise BenchmarkError(f"too few real images for {what}: the data has {len(real)} but a Frechet distance on "
                             f"{needed - 1}-d features needs at least {needed}")


def clamped(sample: Callable[[int], Tensor], device: str) -> Callable[[int], Tensor]:
    """A metric source drawing batches from `sample(batch)`, clamped to [-1, 1] (as a saved image would be)."""
    def draw(batch: int) -> Tensor:
        with torch.no_grad():
            return sample(batch).float().clamp(-1, 1).cpu()

    return draw


def frechet(ctx: Context, real: Any, fake: Any, extractor: Any, n: int, **fields: Any) -> dict:
    """FD (or FID) of n fake images against every real image, as a record dict (not yet added); the processes
    of an `accelerate launch` share the feature extraction, so every one of them must call."""
    record = compute_fid(real, fake, features=extractor, n_fake=n, device=ctx.device, batch_size=250,
                         seed=ctx.options.seed, cache_dir=ctx.cache_dir, distributed=True).to_dict()
    record["extra"].update(fields.pop("extra", {}))
    record.update(fields)
    return record


PR_K = 3  # precision/recall's neighbourhood size (Kynkaanniemi et al. 2019)
DC_K = 5  # density/coverage's (Naeem et al. 2020)
QUALITY_METRICS = ("precision", "recall", "density", "coverage")


def sample_quality(ctx: Context, real: Any, fake: Any, extractor: Any, n: int, **fields: Any) -> list[dict]:
    """FD, precision and recall (k = 3), density and coverage (k = 5) of n fake images against every real image,
    all from one computation of the features of each set; records (not yet added) in that order, each with
    `fields` (prior, model, data, extra, ...). The real set's features are cached by the feature network.
    The processes of an `accelerate launch` share the feature extraction: every one of them must call."""
    f_real = extract_features(real, extractor, None, 250, ctx.cache_dir, "real", distributed=True)
    f_fake = extract_features(fake, extractor, n, 250, ctx.cache_dir, "fake", distributed=True)
    fd = feature_record(fd_label(extractor), frechet_distance_from_features(f_real, f_fake), extractor, f_real,
                        f_fake, real, ctx.options.seed)
    precision, recall, density, coverage = real_manifold(f_real).all(f_fake, pr_k=PR_K, dc_k=DC_K)
    records = [fd.to_dict()]
    for metric, value, k in (("precision", precision, PR_K), ("recall", recall, PR_K), ("density", density, DC_K),
                             ("coverage", coverage, DC_K)):
        record = fd.to_dict()
        record.update(metric=metric, value=float(value))
        record["extra"]["k"] = k
        records.append(record)
    extra = fields.pop("extra", {})
    for record in records:
        record["extra"].update(extra)
        record.update(fields)
    return records


def samples_per_prior(ctx: Context, model: Any, real: Any, extractor: Any, n: int, seed_labels: tuple,
                      label: str, extra: dict | None = None) -> dict[str, list[dict]]:
    """{prior: sample_quality records} of n samples of `model.sample(batch, prior=P, generator=g)` for each of
    the PRIORS, each drawn with its own generator seeded from (*seed_labels, P)."""
    samples = {}
    for prior in PRIORS:
        draws = generator_seed(ctx, *seed_labels, prior)
        fake = clamped(lambda b: model.sample(b, prior=prior, generator=draws), ctx.device)
        samples[prior] = sample_quality(ctx, real, fake, extractor, n, prior=prior, model=label,
                                        data=real.description,
                                        extra={"measured_on": "decoder samples from the prior", **(extra or {})})
    return samples


_MANIFOLDS: OrderedDict[str, Any] = OrderedDict()  # the real sets' k-NN radii, most recently used last


def real_manifold(f_real: np.ndarray) -> Any:
    """The real features' k-NN radii for PR_K and DC_K (a metrics.RealManifold), computed once per distinct real
    feature set in this process: every cell of a suite meets the same real set, and its N x N distances are
    most of the cost of precision/recall and density/coverage."""
    key = f"{f_real.shape}:{f_real.dtype}:{hashlib.blake2b(np.ascontiguousarray(f_real).tobytes()).hexdigest()}"
    if key in _MANIFOLDS:
        _MANIFOLDS.move_to_end(key)
    else:
        _MANIFOLDS[key] = RealManifold(f_real, ks=(PR_K, DC_K))
        while len(_MANIFOLDS) > 4:
            _MANIFOLDS.popitem(last=False)
    return _MANIFOLDS[key]


def by_metric(records: list[dict]) -> dict[str, dict]:
    """sample_quality's records keyed "FD" (whatever its label) and by the other metrics' names."""
    return {("FD" if i == 0 else record["metric"]): record for i, record in enumerate(records)}


def generator_seed(ctx: Context, *labels: Any) -> torch.Generator:
    """A torch generator on the run's device, seeded from the run's seed and the labels of what it draws."""
    digest = hashlib.sha256(repr((ctx.options.seed, *labels)).encode()).digest()
    device = torch.device(ctx.device)
    return torch.Generator(device=device).manual_seed(int.from_bytes(digest[:7], "little"))


def in_batches(fn: Callable[[Tensor], Tensor], images: Tensor, device: str, size: int = 256) -> Tensor:
    """fn over images in batches on `device`, without gradients; float32 results on the CPU."""
    with torch.no_grad():
        return torch.cat([fn(images[i:i + size].to(device)).float().cpu() for i in range(0, len(images), size)])


def lpips_metric(ctx: Context) -> Any:
    """LPIPS-alex when its torchvision backbone file is present, else None with a note naming the file."""
    try:
        return LPIPS("alex", device=ctx.device)
    except MissingWeightsError as error:
        note = f"LPIPS not reported: {error}"
        if note not in ctx.notes:
            ctx.note(note)
        return None


def reconstruction_records(ctx: Context, test: Any, recon: Tensor, extractor: Any, lpips: Any,
                           model: str) -> dict[str, dict]:
    """MSE, SWD, FD (and LPIPS when available) of reconstructions against the held-out images, as records."""
    recon = recon.clamp(-1, 1)
    seed = ctx.options.seed
    records = {"MSE": compute_mse(test.images, recon, seed=seed).to_dict(),
               "SWD": compute_swd(test.images, recon, seed=seed).to_dict(),
               "FD": frechet(ctx, test, recon, extractor, len(test))}
    if lpips is not None:
        size = max(64, test.images.shape[-1])
        up = [F.interpolate(x, size=size, mode="bilinear", align_corners=False).clamp(-1, 1) for x in (test.images, recon)]
        records["LPIPS"] = compute_lpips(up[0], up[1], lpips, seed=seed).to_dict()
        records["LPIPS"]["extra"]["resized_to"] = size
    for record in records.values():
        record.update(model=model, data=test.description, prior=None)
        record["extra"]["measured_on"] = "reconstructions of held-out images"
    return records


def prior_quality_figure(ctx: Context, results: dict[str, dict], caption: str) -> None:
    """Precision vs recall and density vs coverage of decoder samples: one colour per labelled result, one marker
    per prior (the keys of each result's "samples")."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    priors = list(next(iter(results.values()))["samples"])
    markers = dict(zip(priors, "osD^vP*X"))
    for i, result in enumerate(results.values()):
        for prior in priors:
            m = by_metric(result["samples"][prior])
            for ax, (x, y) in zip(axes, (("recall", "precision"), ("coverage", "density"))):
                ax.scatter(m[x]["value"], m[y]["value"], marker=markers[prior], color=f"C{i}", s=36)
    for ax, (x, y, k) in zip(axes, (("recall", "precision", PR_K), ("coverage", "density", DC_K))):
        ax.set_xlabel(f"{x} (k = {k})")
        ax.set_ylabel(f"{y} (k = {k})")
    handles = [plt.Line2D([], [], color=f"C{i}", marker="o", linestyle="", label=label)
               for i, label in enumerate(results)]
    handles += [plt.Line2D([], [], color="grey", marker=markers[p], linestyle="", label=p) for p in priors]
    axes[1].legend(handles=handles, fontsize=7, loc="best")
    ctx.figure(fig, "density_coverage.png", caption)
