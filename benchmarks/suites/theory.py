"""The paper's theory, computed and checked by simulation: Lemma 1 (Figure 3), Theorem 1, Theorem 2."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from benchmarks.common import PRIORS, Options, markdown_table, pick, progress
from benchmarks.context import Context
from benchmarks.plots import pyplot
from sphere_plugins import centerize, sample_prior, spherize, theory
from sphere_plugins.priors import redraw_degenerate
from sphere_plugins.theory import (inner_volume_fraction, lemma1_pdf, uniform_on_sphere, wasserstein2,
                                   wasserstein2_asymptote)

NAME = "theory"
DESCRIPTION = "Lemma 1 (distance between random points on a sphere), Theorem 1 (annulus), Theorem 2 (W2 of point sets)"
MODEL_SCHEMES: tuple[str, ...] = ()


@dataclass(frozen=True)
class Preset:
    """One scale of the suite: `dims` for Lemma 1 and Theorem 1, Monte Carlo `pairs` per d, Theorem 2's point
    sets of `w2_points` drawn `w2_repeats` times, and the dimensions whose distance histograms are drawn."""

    dims: list[int]
    pairs: int
    w2_points: int
    w2_repeats: int
    pdf_dims: list[int]


PRESETS = {
    "quick": Preset(dims=[2, 3, 4, 8, 16, 32, 64, 128, 256, 512, 1024], pairs=20000, w2_points=128,
                    w2_repeats=3, pdf_dims=[3, 16, 512]),
    "standard": Preset(dims=[2, 3, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048], pairs=100000, w2_points=500,
                       w2_repeats=3, pdf_dims=[3, 16, 512]),
    "paper": Preset(dims=[2, 3, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096], pairs=200000,
                    w2_points=1000, w2_repeats=5, pdf_dims=[3, 16, 512]),
}
PAPER_MEAN_512, PAPER_STD_512 = 1.4139, 0.0313


def settings(ctx: Context) -> Preset:
    """The preset for the run's scale; --n-samples sets the Monte Carlo pairs, --steps is not used."""
    return pick(ctx.options, PRESETS, pairs=ctx.options.n_samples)


def check(options: Options) -> None:
    """The theory suite takes no options beyond those every suite shares (benchmarks.inputs checks them)."""


def sphere_distances(d: int, pairs: int, seed: int, chunk_entries: int = 2**24) -> np.ndarray:
    """Distances between `pairs` independent pairs of uniform points on the unit sphere in R^d, drawn in
    chunks of about `chunk_entries` coordinates so large d and many pairs fit in memory."""
    generator = torch.Generator().manual_seed(seed)
    step = max(1, chunk_entries // d)
    parts = []
    for start in range(0, pairs, step):
        count = min(step, pairs - start)
        a = uniform_on_sphere(count, d, generator=generator)
        b = uniform_on_sphere(count, d, generator=generator)
        parts.append(torch.linalg.vector_norm(a - b, dim=1))
    return torch.cat(parts).numpy()


def lemma1_rows(dims: list[int], pairs: int, seed: int) -> list[dict]:
    """Closed form, Monte Carlo and large-d forms of the mean and std of the distance, per d."""
    rows = []
    for d in progress(dims, "theory: Lemma 1 Monte Carlo"):
        sample = sphere_distances(d, pairs, seed + d)
        rows.append({"d": d, "mean": theory.lemma1_mean(d), "std": theory.lemma1_std(d),
                     "mc_mean": float(sample.mean()), "mc_std": float(sample.std(ddof=1)),
                     "mean_asymptotic": theory.lemma1_mean_asymptotic(d),
                     "std_asymptotic": theory.lemma1_std_asymptotic(d)})
    return rows


def annulus_rows(dims: list[int]) -> list[dict]:
    """Theorem 1: the relative width of the outer shell holding 99% of a d-ball's volume, per d."""
    return [{"d": d, "eps_99": theory.shell_width_holding(0.99, d),
             "inner_share_at_0.009": theory.inner_volume_fraction(0.009, d)} for d in dims]


def point_set(prior: str, n: int, d: int, projected: bool, generator: torch.Generator) -> torch.Tensor:
    """n points of a prior in R^d; `projected` centerizes and spherizes them onto the unit sphere."""
    def draw(k: int) -> torch.Tensor:
        return sample_prior(prior, (k, d), generator=generator, dtype=torch.float64)

    z = draw(n)
    if not projected:
        return z
    return spherize(centerize(redraw_degenerate(z, draw, what=f"prior {prior!r} in d={d}")))


def w2_rows(dims: list[int], n: int, repeats: int, seed: int) -> list[dict]:
    """Theorem 2: exact W2 between an n-point set of each prior and an independent N(0, I) set, raw and
    centerized + spherized (unit sphere), normalized by the asymptote sqrt(2n) r (r = sqrt(d) for raw
    points, the radius N(0, I) points concentrate on; r = 1 on the sphere)."""
    rows = []
    for d in progress(dims, "theory: Theorem 2 W2"):
        for prior in PRIORS:
            for projected in (False, True):
                values = []
                for repeat in range(repeats):
                    generator = torch.Generator().manual_seed(seed * 100_003 + d * 1_009 + repeat)
                    reference = point_set("normal", n, d, projected, generator)
                    values.append(wasserstein2(point_set(prior, n, d, projected, generator), reference))
                radius = 1.0 if projected else math.sqrt(d)
                ratio = np.asarray(values) / wasserstein2_asymptote(n, radius)
                rows.append({"d": d, "prior": prior, "projected": projected, "w2_mean": float(np.mean(values)),
                             "w2_std": float(np.std(values, ddof=1)) if repeats > 1 else 0.0,
                             "ratio_mean": float(ratio.mean()),
                             "ratio_std": float(ratio.std(ddof=1)) if repeats > 1 else 0.0})
    return rows


def run(ctx: Context) -> None:
    s = settings(ctx)
    seed = ctx.options.seed
    if not ctx.is_main:
        return
    lemma = ctx.cached("lemma1", {"dims": s.dims, "pairs": s.pairs, "seed": seed},
                       lambda: lemma1_rows(s.dims, s.pairs, seed))
    annulus = ctx.cached("theorem1", {"dims": s.dims}, lambda: annulus_rows(s.dims))
    w2 = ctx.cached("theorem2", {"dims": s.dims, "n": s.w2_points, "repeats": s.w2_repeats, "seed": seed},
                    lambda: w2_rows(s.dims, s.w2_points, s.w2_repeats, seed))
    report_lemma1(ctx, lemma, s)
    report_pdf(ctx, s)
    report_theorem1(ctx, annulus)
    report_theorem2(ctx, w2, s)


def report_lemma1(ctx: Context, rows: list[dict], s: Preset) -> None:
    for row in rows:
        for name, value in (("lemma1_mean_closed_form", row["mean"]), ("lemma1_std_closed_form", row["std"]),
                            ("lemma1_mean_asymptotic", row["mean_asymptotic"]),
                            ("lemma1_std_asymptotic", row["std_asymptotic"])):
            ctx.record(name, value, d=row["d"], radius=1.0)
        ctx.record("lemma1_mean_monte_carlo", row["mc_mean"], n_samples=s.pairs, d=row["d"], radius=1.0,
                   prior="uniform on the sphere")
        ctx.record("lemma1_std_monte_carlo", row["mc_std"], n_samples=s.pairs, d=row["d"], radius=1.0,
                   prior="uniform on the sphere")
    ctx.table("Lemma 1: distance between two random points on the unit sphere",
              markdown_table(["d", "mean (closed form)", "mean (Monte Carlo)", "sqrt(2)(1 - 1/8d)",
                              "std (closed form)", "std (Monte Carlo)", "1/sqrt(2d)"],
                             [[r["d"], r["mean"], r["mc_mean"], r["mean_asymptotic"], r["std"], r["mc_std"],
                               r["std_asymptotic"]] for r in rows], digits=5),
              f"Monte Carlo: {s.pairs} pairs of normalized Gaussian points per d, seed {ctx.options.seed}.")
    at512 = next((r for r in rows if r["d"] == 512), None)
    if at512 is not None:
        ctx.target("Lemma 1 mean at d=512", f"{PAPER_MEAN_512} (paper)", f"{at512['mean']:.4f}",
                   round(at512["mean"], 4) == PAPER_MEAN_512)
        ctx.target("Lemma 1 std at d=512", f"{PAPER_STD_512} (paper)", f"{at512['std']:.4f}",
                   round(at512["std"], 4) == PAPER_STD_512)
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    d = [r["d"] for r in rows]
    for ax, key, label, asym in ((axes[0], "mean", "mean distance", "sqrt(2)(1 - 1/(8d))"),
                                 (axes[1], "std", "std of the distance", "1/sqrt(2d)")):
        ax.plot(d, [r[key] for r in rows], "-", color="C0", label="closed form (Lemma 1)")
        ax.plot(d, [r[f"mc_{key}"] for r in rows], "o", color="C1", label=f"Monte Carlo ({s.pairs} pairs)")
        ax.plot(d, [r[f"{key}_asymptotic"] for r in rows], "--", color="C2", label=asym)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("dimension d")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    axes[0].axhline(math.sqrt(2), color="grey", lw=0.8, ls=":")
    fig.suptitle("Lemma 1 on the unit sphere (the paper's Figure 3)")
    ctx.figure(fig, "lemma1_mean_std.png", "Lemma 1: mean and standard deviation of the distance between two "
               "random points on the unit sphere against d; closed form, Monte Carlo and large-d forms.")


def report_pdf(ctx: Context, s: Preset) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(s.pdf_dims), figsize=(4 * len(s.pdf_dims), 3.4))
    for ax, d in zip(np.atleast_1d(axes), s.pdf_dims):
        sample = sphere_distances(d, s.pairs, ctx.options.seed + 7 * d)
        ax.hist(sample, bins=60, density=True, color="C1", alpha=0.5, label="Monte Carlo")
        low, high = sample.min(), sample.max()
        span = high - low
        xi = np.linspace(max(low - 0.2 * span, 1e-6), min(high + 0.2 * span, 2 - 1e-6), 400)
        ax.plot(xi, lemma1_pdf(xi, d), color="C0", label="pdf (Lemma 1)")
        ax.set_title(f"d = {d}")
        ax.set_xlabel("distance")
        ax.legend(fontsize=8)
    ctx.figure(fig, "lemma1_pdf.png", "Lemma 1: the density of the distance against a histogram of "
               f"{s.pairs} Monte Carlo pairs, for several d.")


def report_theorem1(ctx: Context, rows: list[dict]) -> None:
    for row in rows:
        ctx.record("theorem1_shell_width_holding_99pct", row["eps_99"], d=row["d"])
        ctx.record("theorem1_inner_share_at_eps_0.009", row["inner_share_at_0.009"], d=row["d"])
    ctx.table("Theorem 1: volume concentration in a d-ball",
              markdown_table(["d", "outer shell holding 99% (relative width)", "volume inside (1 - 0.009) r"],
                             [[r["d"], r["eps_99"], r["inner_share_at_0.009"]] for r in rows]))
    at512 = next((r for r in rows if r["d"] == 512), None)
    if at512 is not None:
        ctx.target("Theorem 1 at d=512", "99% of the volume within the outer 0.9% of the radius",
                   f"99% within the outer {100 * at512['eps_99']:.3f}%; {100 * (1 - at512['inner_share_at_0.009']):.2f}%"
                   " within the outer 0.9%", at512["eps_99"] <= 0.009)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    eps = np.linspace(0, 0.05, 300)
    for d in (16, 64, 128, 512, 1024):
        ax.plot(eps, inner_volume_fraction(eps, d), label=f"d = {d}")
    ax.axvline(0.009, color="grey", ls=":", lw=0.8)
    ax.set_xlabel("relative shell width eps")
    ax.set_ylabel("share of the volume inside (1 - eps) r")
    ax.legend(fontsize=8)
    ctx.figure(fig, "theorem1_volume.png", "Theorem 1: (1 - eps)^d, the share of a ball's volume away from its "
               "surface; at d = 512 the outer 0.9% of the radius holds 99% of the volume.")


def spread(values: list[float]) -> float:
    """max / min of positive values; NaN when the smallest is 0 (in d = 2 centerized points coincide)."""
    return max(values) / min(values) if min(values) > 0 else float("nan")


def report_theorem2(ctx: Context, rows: list[dict], s: Preset) -> None:
    n = s.w2_points
    for row in rows:
        mode = "centerized+spherized" if row["projected"] else "raw"
        ctx.record("theorem2_w2", row["w2_mean"], n_samples=n, prior=row["prior"], d=row["d"], latents=mode,
                   reference="independent N(0, I) set, same processing", repeats=s.w2_repeats,
                   std_over_repeats=row["w2_std"])
        ctx.record("theorem2_w2_over_sqrt2n_r", row["ratio_mean"], n_samples=n, prior=row["prior"], d=row["d"],
                   latents=mode, radius="1" if row["projected"] else "sqrt(d)", std_over_repeats=row["ratio_std"])
    dims = sorted({r["d"] for r in rows})
    table_rows = []
    for d in dims:
        at_d = {(r["prior"], r["projected"]): r for r in rows if r["d"] == d}
        raw = [at_d[(p, False)]["ratio_mean"] for p in PRIORS]
        proj = [at_d[(p, True)]["ratio_mean"] for p in PRIORS]
        table_rows.append([d, *raw, spread(raw), *proj, spread(proj)])
    header = ["d", *[f"{p} raw" for p in PRIORS], "raw max/min", *[f"{p} c+s" for p in PRIORS], "c+s max/min"]
    ctx.table("Theorem 2: exact W2 to an independent N(0, I) set, divided by sqrt(2n) r",
              markdown_table(header, table_rows),
              f"n = {n} points per set, mean of {s.w2_repeats} repeats; raw points use r = sqrt(d), "
              "centerized + spherized (c+s) points lie on the unit sphere (r = 1). 1.0 is the theorem's limit.")
    top = table_rows[-1]
    ctx.note(f"Theorem 2 at d = {top[0]}: W2 / (sqrt(2n) r) is {min(top[6:10]):.4f}..{max(top[6:10]):.4f} across "
             f"the four priors after centerize + spherize (max/min {top[10]:.4f}) and {min(top[1:5]):.4f}.."
             f"{max(top[1:5]):.4f} raw (max/min {top[5]:.4f}); the finite-d optimal assignment stays below the "
             "sqrt(2n) r limit.")
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, projected, title in ((axes[0], False, "raw latents (r = sqrt(d))"),
                                 (axes[1], True, "centerized + spherized (r = 1)")):
        for i, prior in enumerate(PRIORS):
            sel = [r for r in rows if r["prior"] == prior and r["projected"] == projected]
            ax.errorbar([r["d"] for r in sel], [r["ratio_mean"] for r in sel], yerr=[r["ratio_std"] for r in sel],
                        marker="o", ms=3, capsize=2, color=f"C{i}", label=prior)
        ax.axhline(1.0, color="grey", ls="--", lw=0.8, label="sqrt(2n) r")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("dimension d")
        ax.set_title(title)
    axes[0].set_ylabel("W2 / (sqrt(2n) r)")
    axes[0].legend(fontsize=8)
    ctx.figure(fig, "theorem2_w2.png", f"Theorem 2: exact W2 between {n}-point sets of each prior and an "
               "independent N(0, I) set, divided by sqrt(2n) r, against d (error bars: std over repeats).")
