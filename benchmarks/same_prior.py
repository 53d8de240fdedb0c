"""The pieces of the same-prior study (the dimension suite): every autoencoder's decoder sampled from a mixture
fitted to its own codes, parameter counts for comparing mixtures fairly, the memorization check, midpoints of
pairs of codes, and the "X beats Y in k of n seeds" verdicts the report's headline is made of.

A prior fitted after training is ex-post density estimation (Ghosh et al. 2020; Dai and Wipf 2019's second
stage): any autoencoder can have one, so it is the fair baseline for what the sphere adds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sphere_plugins.fitted_prior import FittedSpherePrior, fit_sphere_prior
from sphere_plugins.latent import slerp

# (label, mixture kind, covariance) of the fitted priors every model gets, the cheapest to fit first; "vmf" only
# for codes on a sphere.
FITTED = (("gmm-diag", "gmm", "diag"), ("gmm-full", "gmm", "full"), ("vmf", "vmf", None))
SPHERICAL = ("sae", "svae")  # the kinds whose codes lie on a sphere


def mixture_parameters(kind: str, components: int, dim: int, covariance: str | None = None) -> int:
    """Free parameters of a K-component mixture on D-dimensional codes: K - 1 weights, plus per component a mean
    (D) and a full (D(D+1)/2) or diagonal (D) covariance, or a mean direction on the sphere (D - 1) and a
    concentration (vMF)."""
    if components < 1 or dim < 2:
        raise ValueError(f"components must be >= 1 and dim >= 2, got {components} and {dim}")
    if kind == "vmf":
        per = (dim - 1) + 1
    elif kind == "gmm" and covariance == "full":
        per = dim + dim * (dim + 1) // 2
    elif kind == "gmm" and covariance == "diag":
        per = 2 * dim
    else:
        raise ValueError(f"expected kind 'vmf', or 'gmm' with covariance 'full' or 'diag'; "
                         f"got {kind!r}, {covariance!r}")
    return components * per + components - 1


def equal_parameter_components(components: int, dim: int) -> int:
    """The vMF mixture's component count whose parameters come nearest a diagonal Gaussian mixture's with
    `components` components on the same D-dimensional codes (about twice as many: D + 1 against 2D + 1 each)."""
    target = mixture_parameters("gmm", components, dim, "diag")
    return min(range(1, 4 * components + 1), key=lambda k: (abs(mixture_parameters("vmf", k, dim) - target), k))


def nearest_distances(query: np.ndarray | Tensor, reference: np.ndarray | Tensor, device: str = "cpu",
                      chunk: int = 1024) -> np.ndarray:
    """Euclidean distance from each query row to its nearest reference row, computed on `device` in chunks."""
    q = torch.as_tensor(np.asarray(query), dtype=torch.float32, device=device)
    r = torch.as_tensor(np.asarray(reference), dtype=torch.float32, device=device)
    if q.dim() != 2 or r.dim() != 2 or q.shape[1] != r.shape[1] or len(r) == 0:
        raise ValueError(f"query [N, D] and reference [M >= 1, D] must share D, got {list(q.shape)} and "
                         f"{list(r.shape)}")
    out = [torch.cdist(q[i:i + chunk], r).min(dim=1).values for i in range(0, len(q), chunk)]
    return torch.cat(out).double().cpu().numpy() if out else np.zeros(0)


def memorization(sample_features: np.ndarray, train_features: np.ndarray, test_nn_median: float,
                 device: str = "cpu") -> dict:
    """The memorization check: the median distance from each sample to its nearest training image (features),
    against the held-out test images' `test_nn_median`. A ratio well below 1 means samples sit closer to
    training images than unseen real images do: the prior copies its training set."""
    median = float(np.median(nearest_distances(sample_features, train_features, device)))
    return {"sample_nn_median": median, "test_nn_median": float(test_nn_median),
            "ratio": median / test_nn_median if test_nn_median > 0 else math.nan}


def midpoints(a: Tensor, b: Tensor, spherical: bool) -> Tensor:
    """Midpoints of pairs of codes: on the great circle (slerp at t = 1/2, the norm kept) for codes on a sphere,
    on the straight line otherwise."""
    if a.shape != b.shape:
        raise ValueError(f"codes a and b must share a shape, got {list(a.shape)} and {list(b.shape)}")
    return slerp(a, b, 0.5) if spherical else (a + b) / 2


@dataclass
class FittedSampler:
    """Codes drawn from a mixture fitted to a model's codes, in the form its decoder takes them."""

    prior: FittedSpherePrior
    draw: Callable[[int, torch.Generator], Tensor]
    parameters: int


def fit_codes(kind: str, model: Any, codes: Tensor, mixture: str, components: int, covariance: str | None,
              seed: int, max_iter: int) -> FittedSampler:
    """A mixture fitted to `codes` of a model of `kind` (conv_objective's), drawing decoder inputs.

    The spherical autoencoder's goes through its wrapper (fitted in the codes' zero-mean subspace, draws put back
    on its sphere, as `fit_prior` documents); the S-VAE's draws are scaled onto its unit sphere; every other
    model decodes the mixture's draws as they are (for a VAE, `codes` are the posterior means).
    """
    if mixture == "vmf" and kind not in SPHERICAL:
        raise ValueError(f"a vMF mixture needs codes on a sphere; {kind!r} codes are not ({', '.join(SPHERICAL)} are)")
    options = {"covariance": covariance} if mixture == "gmm" else {}
    if kind == "sae":
        wrapper = model.wrapper
        prior = wrapper.fit_prior(codes.to(next(wrapper.parameters()).device), kind=mixture, components=components,
                                  codes=True, seed=seed, max_iter=max_iter, **options)

        def draw(n: int, generator: torch.Generator) -> Tensor:
            return wrapper.latents(n, "fitted", generator)
    else:
        prior = fit_sphere_prior(codes, mixture, components, seed=seed, max_iter=max_iter, **options)

        def draw(n: int, generator: torch.Generator) -> Tensor:
            z = prior.sample(n, generator, device=generator.device, dtype=torch.float32)
            return torch.nn.functional.normalize(z, dim=1) if kind == "svae" else z
    dim = int(prior.means.shape[1])
    return FittedSampler(prior, draw, mixture_parameters(mixture, components, dim, covariance))


def decoder_of(kind: str, model: Any) -> Callable[[Tensor], Tensor]:
    """The function from decoder inputs to images of a conv_objective model."""
    return model.wrapper.decode if kind == "sae" else model.decoder


@dataclass(frozen=True)
class Verdict:
    """One comparison over seeds: `wins` of `n` seeds where the first FD is strictly lower, and the means."""

    d: int
    prior: str
    a_values: tuple[float, ...]
    b_values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.a_values)

    @property
    def wins(self) -> int:
        return sum(a < b for a, b in zip(self.a_values, self.b_values))

    @property
    def losses(self) -> int:
        return sum(a > b for a, b in zip(self.a_values, self.b_values))

    @property
    def outcome(self) -> str:
        """'beats' (all seeds), 'loses' (all seeds) or 'tie'."""
        return "beats" if self.wins == self.n else "loses" if self.losses == self.n else "tie"

    @property
    def change(self) -> float:
        """(mean a - mean b) / mean b: negative when the first is better."""
        mean_b = float(np.mean(self.b_values))
        return (float(np.mean(self.a_values)) - mean_b) / mean_b


def compare(values: dict[tuple[str, str, int], Sequence[float]], a: tuple[str, str],
            b: tuple[str, str]) -> list[Verdict]:
    """(model, prior) `a` against `b` at every d_z both have, from values[(model, prior, d)] = FD per seed (the
    same seeds in the same order for every key)."""
    dims = sorted({d for (m, p, d) in values if (m, p) == a} & {d for (m, p, d) in values if (m, p) == b})
    out = []
    for d in dims:
        va, vb = tuple(values[(*a, d)]), tuple(values[(*b, d)])
        if len(va) != len(vb) or not va:
            raise ValueError(f"{a} and {b} at d_z {d} have {len(va)} and {len(vb)} values; expected one per seed")
        out.append(Verdict(d, a[1] if a[1] == b[1] else f"{a[1]} vs {b[1]}", va, vb))
    return out


def _spread(values: Sequence[float]) -> str:
    return f"{np.mean(values):.3g} +- {np.std(values, ddof=1):.2g}" if len(values) > 1 else f"{values[0]:.3g}"


def headline(found: list[Verdict], a: str, b: str, prior_names: dict[str, str]) -> list[str]:
    """Two sentences: where `a` beats `b` in every seed (with its FD against b's and the mean change), and where
    it does not (ties, and where b wins in every seed)."""
    if not found:
        return [f"No {a} / {b} pair with the same prior has finished yet."]
    n = found[0].n
    seeds = f"{n} of {n} seed{'s' if n > 1 else ''}"
    won = [v for v in found if v.outcome == "beats"]
    rest = [v for v in found if v.outcome != "beats"]

    def cell(v: Verdict) -> str:
        return (f"d_z {v.d} {prior_names.get(v.prior, v.prior)} (FD {_spread(v.a_values)} vs {_spread(v.b_values)}, "
                f"{100 * v.change:+.0f}%, {v.wins}/{v.n})")

    first = (f"Where the {a} beats the {b} with the same fitted prior (lower FD in {seeds}): "
             + ("; ".join(cell(v) for v in won) if won else "nowhere") + ".")
    lost = [v for v in rest if v.outcome == "loses"]
    ties = [v for v in rest if v.outcome == "tie"]
    second = (f"Where it does not: " + ("; ".join(cell(v) for v in rest) if rest else "nowhere")
              + f" ({len(ties)} tie{'s' if len(ties) != 1 else ''}, {len(lost)} where the {b} wins in every seed).")
    return [first, second]
