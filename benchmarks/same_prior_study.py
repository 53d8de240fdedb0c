"""The dimension suite's same-prior study: each trained model's decoder sampled from the same priors fitted to
its codes (Gaussian mixtures with full and diagonal covariances; vMF mixtures for codes on a sphere, also with
as many parameters as the diagonal mixture from `equal_params_from` on), each with the memorization check,
and the midpoints of pairs of test codes; then the tables, the targets and the headline, from one run or from
runs over several training seeds (`python -m benchmarks.seeds dimension ... --out DIR`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from benchmarks.common import markdown_table
from benchmarks.evaluation import DC_K, PR_K, generator_seed, in_batches, real_manifold
from benchmarks.same_prior import (FITTED, SPHERICAL, Verdict, compare, decoder_of, equal_parameter_components,
                                   fit_codes, headline, memorization, midpoints, nearest_distances)
from sphere_plugins.metrics import frechet_distance_from_features

# Every model of the study: name -> (conv_objective kind, its arguments, label). The dimension suite trains
# "sae", "vae" and "svae" anyway; a preset's study_models adds the others.
MODELS = {
    "sae": ("sae", {}, "spherical autoencoder"),
    "ae": ("ae", {}, "plain autoencoder"),
    "vae": ("vae", {}, "VAE (beta 1)"),
    "vae-beta0.1": ("vae", {"beta": 0.1}, "VAE (beta 0.1)"),
    "svae": ("svae", {}, "S-VAE"),
    "rae": ("rae", {}, "regularized autoencoder (RAE-L2)"),
}
EXTRA_MODELS = ("ae", "vae-beta0.1", "rae")
EQUAL = "vmf-equal-params"  # the vMF mixture with as many parameters as the diagonal Gaussian mixture
PRIOR_NAMES = {"plain": "plain prior", "gmm-full": "full-covariance Gaussian mixture",
               "gmm-diag": "diagonal Gaussian mixture", "vmf": "vMF mixture", EQUAL: "vMF mixture (equal parameters)"}
ORDER = (*(label for label, _, _ in FITTED), EQUAL)  # the fitted priors in the tables' and records' order
STUDY = "same-prior study"  # the measured_on of every record of the study
MAJORITY = "at a majority of the d_z measured (4 when all 7 of the standard scale are), each in every seed"


def model_name(kind: str, args: dict) -> str | None:
    """The study's name of a trained (kind, arguments), or None for the spherical autoencoder's options."""
    return next((name for name, (k, a, _) in MODELS.items() if k == kind and a == args), None)


@dataclass
class Reference:
    """The memorization check's reference: features of training images, and the held-out test images' median
    distance to their nearest one."""

    train: np.ndarray
    test_nn_median: float


def reference(train_features: np.ndarray, test_features: np.ndarray, device: str) -> Reference:
    return Reference(train_features, float(np.median(nearest_distances(test_features, train_features, device))))


def features_of(images: torch.Tensor, extractor: Any) -> np.ndarray:
    return np.concatenate([extractor(images[i:i + 250]) for i in range(0, len(images), 250)]).astype(np.float64)


def quality(real: np.ndarray, fake: np.ndarray) -> dict:
    """FD against every real feature; precision/recall (k = 3) and density/coverage (k = 5) against as many."""
    precision, recall, density, coverage = real_manifold(real[: len(fake)]).all(fake, pr_k=PR_K, dc_k=DC_K)
    return {"FD": frechet_distance_from_features(real, fake), "precision": precision, "recall": recall,
            "density": density, "coverage": coverage, "n_real": len(real), "n_fake": len(fake)}


def draw_images(sample: Callable[[int], torch.Tensor], n: int, batch: int = 250) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([sample(min(batch, n - i)).float().clamp(-1, 1).cpu() for i in range(0, n, batch)])


def fitted_priors(kind: str, d: int, components: int, equal_params_from: int) -> list[tuple]:
    """(label, mixture, covariance, components) of the priors fitted to a `kind` model's d-dimensional codes."""
    out = [(label, mixture, covariance, components) for label, mixture, covariance in FITTED
           if mixture != "vmf" or kind in SPHERICAL]  # in FITTED's order: the diagonal mixture, the cheapest, first
    if kind in SPHERICAL and d >= equal_params_from:
        free = d - 1 if kind == "sae" else d  # the spherical autoencoder's codes are fitted in their zero-mean subspace
        out.append((EQUAL, "vmf", None, equal_parameter_components(components, free)))
    return out


def evaluate(ctx: Any, s: Any, name: str, d: int, model: Any, train_images: torch.Tensor, test: Any,
             real: np.ndarray, extractor: Any, n: int, reference: Callable[[], Reference],
             part: Callable[[str, Callable[[], dict]], dict | None]) -> dict:
    """Model `name` at d_z `d`: its test codes' midpoints decoded, then samples from each fitted prior (quality and
    memorization), cheapest first. Each is one part: part(label, compute) returns its cached or computed value,
    or None when the time budget left it out or the caller keeps `compute` to run later."""
    kind = MODELS[name][0]
    decode = decoder_of(kind, model)
    codes: list[torch.Tensor] = []

    def fitted(mixture: str, covariance: str | None, components: int, label: str) -> dict:
        if not codes:
            codes.append(in_batches(model.codes, train_images[: s.fit_codes], ctx.device))
        sampler = fit_codes(kind, model, codes[0], mixture, components, covariance, ctx.options.seed, s.fit_iter)
        try:
            # One stream per prior, shared by every model (common random numbers); the full-covariance Gaussian and
            # the vMF mixtures keep the labels the spherical autoencoder's fitted options always drew with.
            draws = generator_seed(ctx, "dimension-fitted", {"gmm-full": "gmm", "vmf": "vmf"}.get(label, label))
            images = draw_images(lambda b: decode(sampler.draw(b, draws)), n)
        finally:
            if kind == "sae":
                model.wrapper.fitted_prior = None
        fake = features_of(images, extractor)
        ref = reference()
        return {**quality(real, fake), "components": components, "parameters": sampler.parameters,
                "memorization": memorization(fake, ref.train, ref.test_nn_median, ctx.device)}

    def between() -> dict:
        test_codes = in_batches(model.codes, test.images, ctx.device)
        order = torch.randperm(len(test_codes), generator=torch.Generator().manual_seed(ctx.options.seed))
        m = min(n, len(order) // 2)
        mid = midpoints(test_codes[order[:m]], test_codes[order[m:2 * m]], spherical=kind in SPHERICAL)
        images = in_batches(decode, mid, ctx.device).clamp(-1, 1)
        return {**quality(real, features_of(images, extractor)),
                "path": "great circle" if kind in SPHERICAL else "straight line"}

    out: dict[str, Any] = {"fitted": {}}
    value = part("midpoints", between)
    if value is not None:
        out["midpoints"] = value
    for label, mixture, covariance, components in fitted_priors(kind, d, s.components, s.equal_params_from):
        value = part(label, lambda mixture=mixture, covariance=covariance, components=components, label=label:
                     fitted(mixture, covariance, components, label))  # bound now: a part may run later
        if value is not None:
            out["fitted"][label] = value
    return out


def _model_label(name: str, d: int, s: Any) -> str:
    return f"{MODELS[name][2]} (conv, d_z {d}, {s.steps} steps)"


def _cell(m: dict) -> str:
    return f"{m['FD']:.4g} ({m['precision']:.2f}/{m['recall']:.2f}, {m['density']:.2f}/{m['coverage']:.2f})"


def report(ctx: Any, s: Any, plain: dict[tuple[str, int], dict], found: dict[tuple[str, int], dict], fd: str,
           common: dict, n_reference: int) -> None:
    """Records, tables, targets and the headline of the study from this run (one seed). `plain` holds each
    model's dimension-suite result (reconstruction and plain-prior samples), `found` its study result."""
    rows, memo_rows, mid_rows, equal_rows = [], [], [], []
    for (name, d), res in sorted(found.items(), key=lambda item: (item[0][1], list(MODELS).index(item[0][0]))):
        label = _model_label(name, d, s)
        base = plain[(name, d)]
        cells = {"plain": base["samples"]["normal"], **{p: res["fitted"][p] for p in ORDER if p in res["fitted"]}}
        for prior, m in cells.items():
            _record(ctx, fd, m, label, name, d, prior, common)
            if "memorization" in m:
                ctx.record("memorization ratio", m["memorization"]["ratio"], model=label, prior=prior,
                           study_model=name, z_dim=d, n_samples=m["n_fake"], measured_on=STUDY,
                           sample_nn_median=m["memorization"]["sample_nn_median"],
                           test_nn_median=m["memorization"]["test_nn_median"], data=common["data"],
                           feature_network=common["feature_network"])
        if "midpoints" in res:
            _record(ctx, fd, res["midpoints"], label, name, d, "midpoints", common, path=res["midpoints"]["path"])
        rows.append([d, MODELS[name][2], base["recon"]["MSE"],
                     *[_cell(cells[p]) if p in cells else "-" for p in ("plain", "gmm-full", "gmm-diag", "vmf")]])
        if res["fitted"]:
            memo = {p: m["memorization"] for p, m in res["fitted"].items()}
            memo_rows.append([d, MODELS[name][2], next(iter(memo.values()))["test_nn_median"],
                              *[f"{memo[p]['sample_nn_median']:.3g} ({memo[p]['ratio']:.2f})" if p in memo else "-"
                                for p in ("gmm-full", "gmm-diag", "vmf", EQUAL)]])
        if "midpoints" in res:
            mid_rows.append([d, MODELS[name][2], res["midpoints"]["path"], _cell(res["midpoints"])])
        if d >= s.equal_params_from:
            for prior in ("gmm-diag", EQUAL):
                if prior in res["fitted"]:
                    m = res["fitted"][prior]
                    equal_rows.append([d, MODELS[name][2], PRIOR_NAMES[prior], m["components"], m["parameters"],
                                       _cell(m)])
    if not rows:
        ctx.note("same-prior study: no model finished (time budget or shard)")
        return
    cell = f"{fd} (precision/recall k = {PR_K}, density/coverage k = {DC_K})"
    ctx.table("Same prior: every model sampled from its plain prior and from mixtures fitted to its codes",
              markdown_table(["d_z", "model", "recon MSE", f"plain prior: {cell}", "full-covariance GMM",
                              "diagonal GMM", "vMF mixture"], rows),
              f"K = {s.components} components fitted after training to the codes of {s.fit_codes} training images "
              f"(posterior means for the VAEs; the spherical autoencoder's in their zero-mean subspace, draws put "
              f"back on its sphere), {s.fit_iter} EM iterations at most; {s.n_samples} samples each against the "
              f"held-out images. At d_z >= {s.equal_params_from} a full-covariance mixture has more parameters "
              "than there are codes.")
    ctx.table("Memorization check: median distance from a sample to its nearest training image (features)",
              markdown_table(["d_z", "model", "held-out test images", "full GMM (ratio)", "diagonal GMM",
                              "vMF mixture", "vMF, equal parameters"], memo_rows),
              "Distances in the FD network's features to the nearest of "
              f"{n_reference} training images; ratio = samples' median / the held-out test images' "
              "median. A prior that copies training images falls well below 1.")
    if equal_rows:
        ctx.table(f"Equal parameter counts at d_z >= {s.equal_params_from}: diagonal Gaussian mixture against "
                  "a vMF mixture on the sphere", markdown_table(["d_z", "model", "prior", "K", "parameters",
                                                                 cell], equal_rows),
                  "Parameters: K - 1 weights plus, per component, a mean and D variances (diagonal) or a mean "
                  "direction (D - 1) and a concentration (vMF); D = d_z, or d_z - 1 for the spherical "
                  "autoencoder's zero-mean codes.")
    ctx.table("Interpolation: decoded midpoints of pairs of held-out codes",
              markdown_table(["d_z", "model", "path", cell], mid_rows),
              f"{s.n_samples} pairs of test-image codes (a fixed random pairing), each midpoint decoded: on the "
              "great circle (slerp at t = 1/2) for codes on a sphere, on the straight line otherwise.")
    values = study_values([ctx.records])
    for sentence in summary(values)["headline"]:
        ctx.headline(sentence)
    for target in summary(values)["targets"]:
        ctx.target(**target)


def _record(ctx: Any, fd: str, m: dict, label: str, name: str, d: int, prior: str, common: dict, **extra: Any):
    for metric, key in ((fd, "FD"), (f"precision (k={PR_K})", "precision"), (f"recall (k={PR_K})", "recall"),
                        (f"density (k={DC_K})", "density"), (f"coverage (k={DC_K})", "coverage")):
        ctx.record(metric, m[key], model=label, n_samples=m["n_fake"], prior=prior, study_model=name, z_dim=d,
                   n_real=m["n_real"], measured_on=STUDY, **extra, **common)


def study_values(runs_records: Sequence[Sequence[dict]]) -> dict[str, dict[tuple[str, str, int], list[float]]]:
    """{"FD": ..., "memorization": ...}[(model, prior, d)] = one value per run, for the cells every run has."""
    per_run = []
    for records in runs_records:
        found: dict[str, dict] = {"FD": {}, "memorization": {}}
        for r in records:
            extra = r.get("extra") or {}
            if extra.get("measured_on") != STUDY:
                continue
            key = (extra["study_model"], r["prior"], int(extra["z_dim"]))
            if r["metric"].startswith("FD") or r["metric"].startswith("FID"):
                found["FD"][key] = float(r["value"])
            elif r["metric"] == "memorization ratio":
                found["memorization"][key] = float(r["value"])
        per_run.append(found)
    out = {}
    for what in ("FD", "memorization"):
        keys = set.intersection(*(set(run[what]) for run in per_run)) if per_run else set()
        out[what] = {k: [run[what][k] for run in per_run] for k in sorted(keys)}
    return out


def _count(found: list[Verdict]) -> str:
    return ", ".join(f"d_z {v.d}: {v.wins}/{v.n}" for v in found) or "none finished"


def summary(values: dict[str, dict]) -> dict:
    """The headline sentences and the targets of benchmarks/targets.md, judged from FD (and memorization ratios)
    per seed: "X beats Y" only where X's FD is lower in every seed."""
    fd = values["FD"]
    same = [v for prior in ("gmm-full", "gmm-diag") for v in compare(fd, ("sae", prior), ("ae", prior))]
    sentences = headline(same, "spherical autoencoder", "plain autoencoder", PRIOR_NAMES)
    targets = []

    def most(found: list[Verdict]) -> bool:  # a majority of the d_z measured: 4 of the standard scale's 7
        return sum(v.outcome == "beats" for v in found) > len(found) / 2

    for prior in ("gmm-full", "gmm-diag"):
        found = compare(fd, ("sae", prior), ("ae", prior))
        targets.append({"name": f"same prior ({PRIOR_NAMES[prior]}): spherical AE beats plain AE",
                        "goal": MAJORITY, "measured": _count(found),
                        "met": most(found)})
    for rival in ("vae-beta0.1", "rae"):
        found = compare(fd, ("sae", "gmm-full"), (rival, "gmm-full"))
        targets.append({"name": f"full-covariance GMM: spherical AE beats {MODELS[rival][2]}",
                        "goal": MAJORITY, "measured": _count(found),
                        "met": most(found)})
    found = compare(fd, ("sae", EQUAL), ("ae", "gmm-diag"))
    targets.append({"name": "equal parameters: vMF mixture on the spherical AE beats a diagonal GMM on the plain AE",
                    "goal": "at every d_z >= 256, each in every seed", "measured": _count(found),
                    "met": bool(found) and all(v.outcome == "beats" for v in found)})
    ratios = values["memorization"]
    low = {k: min(v) for k, v in ratios.items() if min(v) < 0.9}
    targets.append({"name": "memorization: samples' nearest-training-image distance >= 0.9x held-out images'",
                    "goal": "every fitted prior, every seed",
                    "measured": (f"lowest ratio {min(min(v) for v in ratios.values()):.3f} over {len(ratios)} cells"
                                 + (f"; below 0.9: {sorted(low)[:4]}" if low else "")) if ratios else "none finished",
                    "met": bool(ratios) and not low})
    found = compare(fd, ("sae", "midpoints"), ("ae", "midpoints"))
    targets.append({"name": "interpolation: spherical AE's great-circle midpoints beat plain AE's straight-line ones",
                    "goal": MAJORITY, "measured": _count(found), "met": most(found)})
    return {"headline": sentences, "targets": targets}


def spread_table(values: dict[str, dict]) -> str:
    """FD mean +- std over seeds: one row per model and prior, one column per d_z."""
    fd = values["FD"]
    dims = sorted({d for (_, _, d) in fd})
    rows = []
    for m in MODELS:
        for p in ("plain", "gmm-full", "gmm-diag", "vmf", EQUAL, "midpoints"):
            cells = [fd.get((m, p, d)) for d in dims]
            if any(cells):
                rows.append([MODELS[m][2], PRIOR_NAMES.get(p, p),
                             *["-" if v is None else _spread(v) for v in cells]])
    return markdown_table(["model", "sampled from", *[f"d_z {d}" for d in dims]], rows)


def _spread(v: Sequence[float]) -> str:
    return f"{np.mean(v):.3g} +- {np.std(v, ddof=1):.2g}" if len(v) > 1 else f"{v[0]:.3g}"


def over_seeds(runs: Sequence[dict]) -> dict:
    """What `python -m benchmarks.seeds dimension ...` adds for this suite: the study's headline, targets and
    FD table over the runs' seeds."""
    values = study_values([run.get("records", []) for run in runs])
    return {**summary(values), "tables": [{"title": "Same-prior study: FD mean +- std over seeds",
                                           "markdown": spread_table(values), "note": ""}]}
