"""A prior fitted to a spherical autoencoder's codes after training (ex-post density estimation on the sphere).

Prior draws decode well only where the decoder has seen codes; when the codes cluster, a prior fitted to
them puts the draws there. Two kinds:
- "vmf": a mixture of von Mises-Fisher distributions, fitted by EM with soft assignments (Banerjee et al.,
  2005, "Clustering on the unit hypersphere using von Mises-Fisher distributions"); each concentration
  starts from their approximation r(D - r^2)/(1 - r^2) and takes two Newton steps on A_D(kappa) = r
  (Sra, 2012). No maintained Python library fits vMF mixtures (spherecluster's last release is from
  2018), hence the EM here; Bessel functions come from sphere_plugins.vmf (scipy, underflow-safe at d=512).
- "gmm": scikit-learn's GaussianMixture; the wrapper centerizes and spherizes its draws.

When the wrapper centers each code over all its entries, codes lie in the (d-1)-dimensional subspace
orthogonal to the all-ones vector. Both kinds are then fitted in coordinates of that subspace (a
Householder reflection maps it onto the first d-1 axes): the vMF directions and the Gaussian covariances
live where the codes do, and no covariance is singular along the all-ones direction.

FittedSpherePrior keeps everything in buffers, so the prior travels in its owner's state_dict (and
in safetensors files); config() is its JSON-able description.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sphere_plugins.vmf import log_normalizer, mean_resultant_length, sample_vmf

KINDS = ("vmf", "gmm")
COVARIANCES = ("full", "diag")
_NEWTON_STEPS = 2
_MIN_KAPPA = 1e-6


def _ones_reflection(x: Tensor) -> Tensor:
    """Apply the Householder reflection H (H = H^T = H^-1) that swaps e_D and the unit all-ones vector."""
    d = x.shape[-1]
    u = torch.full((d,), -1 / math.sqrt(d), dtype=x.dtype, device=x.device)
    u[-1] += 1.0
    u = u / torch.linalg.vector_norm(u)
    return x - 2 * (x @ u).unsqueeze(-1) * u


def to_subspace(codes: Tensor) -> Tensor:
    """Coordinates [N, d-1] of zero-mean vectors [N, d] in an orthonormal basis of the zero-mean subspace."""
    return _ones_reflection(codes)[:, :-1]


def from_subspace(coords: Tensor) -> Tensor:
    """Zero-mean vectors [N, d] from their coordinates [N, d-1] (inverse of to_subspace)."""
    return _ones_reflection(torch.cat([coords, coords.new_zeros(coords.shape[0], 1)], dim=1))


class FittedSpherePrior(nn.Module):
    """A mixture fitted to codes: weights [K], means [K, D] and kappas [K] (vMF) or scale_tril (Gaussian:
    [K, D, D] Cholesky factors, or [K, D] standard deviations for diagonal covariances).

    D is the code's entry count, or one less when `subspace` (the codes' zero-mean subspace). sample()
    returns draws in code space; the owning wrapper puts them on its sphere.
    """

    def __init__(self, kind: str, components: int, z_shape: Sequence[int], subspace: bool,
                 covariance: str = "full"):
        super().__init__()
        _check_kind(kind)
        if kind == "gmm" and covariance not in COVARIANCES:
            raise ValueError(f"covariance must be one of {', '.join(COVARIANCES)}, got {covariance!r}")
        if type(components) is not int or components < 1:
            raise ValueError(f"components must be a positive int, got {components!r}")
        if not isinstance(subspace, bool):
            raise ValueError(f"subspace must be True or False, got {subspace!r}")
        dim = _code_size(z_shape) - int(subspace)
        self.kind, self.covariance = kind, covariance if kind == "gmm" else None
        self.register_buffer("z_shape", torch.tensor(tuple(z_shape), dtype=torch.int64))
        self.register_buffer("subspace", torch.tensor(bool(subspace)))
        self.register_buffer("scale", torch.ones((), dtype=torch.float64))
        self.register_buffer("weights", torch.full((components,), 1 / components, dtype=torch.float64))
        self.register_buffer("means", torch.zeros(components, dim, dtype=torch.float64))
        if kind == "vmf":
            self.register_buffer("kappas", torch.ones(components, dtype=torch.float64))
        else:
            shape = (components, dim, dim) if covariance == "full" else (components, dim)
            self.register_buffer("scale_tril", torch.zeros(shape, dtype=torch.float64))

    @property
    def components(self) -> int:
        return self.weights.shape[0]

    def config(self) -> dict[str, Any]:
        """What the buffers' shapes need besides their values: JSON-able, rebuilds with from_state()."""
        config = {"kind": self.kind, "components": self.components, "z_shape": [int(s) for s in self.z_shape],
                  "subspace": bool(self.subspace)}
        if self.kind == "gmm":
            config["covariance"] = self.covariance
        return config

    def get_config(self) -> dict[str, Any]:
        """save_pretrained's name for config()."""
        return self.config()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> FittedSpherePrior:
        """An unfitted prior of the shapes `config` names; load_state_dict then fills in the fitted values."""
        return cls(**config)

    @classmethod
    def config_from_state(cls, state: dict[str, Tensor]) -> dict[str, Any]:
        """The config() of the prior a state_dict was taken from (it is inferable from the buffers)."""
        missing = {"z_shape", "subspace", "weights", "means"} - set(state)
        if missing or ("kappas" in state) == ("scale_tril" in state):
            raise ValueError(f"not a FittedSpherePrior state: keys {sorted(state)[:10]}")
        z_shape, subspace, weights = state["z_shape"], state["subspace"], state["weights"]
        if z_shape.dim() != 1 or z_shape.is_floating_point() or subspace.shape != () or weights.dim() != 1:
            raise ValueError(f"not a FittedSpherePrior state: z_shape {list(z_shape.shape)} ({z_shape.dtype}), "
                             f"subspace {list(subspace.shape)}, weights {list(weights.shape)}")
        config = {"kind": "vmf" if "kappas" in state else "gmm", "components": int(weights.shape[0]),
                  "z_shape": [int(s) for s in z_shape], "subspace": bool(subspace)}
        if config["kind"] == "gmm":
            config["covariance"] = "full" if state["scale_tril"].dim() == 3 else "diag"
        # Every buffer's shape follows from the config: check them all before anything of that size is built.
        k, dim = config["components"], _code_size(config["z_shape"]) - int(config["subspace"])
        expected = {"weights": (k,), "means": (k, dim), "scale": ()}
        if config["kind"] == "vmf":
            expected["kappas"] = (k,)
        else:
            expected["scale_tril"] = (k, dim, dim) if config["covariance"] == "full" else (k, dim)
        wrong = [f"{name} {list(state[name].shape)} (expected {list(shape)})" for name, shape in expected.items()
                 if name in state and tuple(state[name].shape) != shape]
        if wrong:
            raise ValueError(f"FittedSpherePrior state does not fit its z_shape {config['z_shape']} and "
                             f"{k} component(s): {', '.join(wrong)}")
        return config

    @classmethod
    def from_state(cls, state: dict[str, Tensor], config: dict[str, Any] | None = None) -> FittedSpherePrior:
        """Rebuild a prior from its state_dict (and its config(), inferred from the state when omitted)."""
        prior = cls(**(config or cls.config_from_state(state)))
        prior.load_state_dict(state)
        return prior

    def sample(self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None,
               dtype: torch.dtype | None = None) -> Tensor:
        """n draws [n, *z_shape] in code space (not yet on the wrapper's sphere), drawn where `generator` lives."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        at = generator.device if generator is not None else self.weights.device
        weights, means = self.weights.to(at, torch.float64), self.means.to(at, torch.float64)
        which = torch.multinomial(weights, n, replacement=True, generator=generator)
        if self.kind == "vmf":
            draws = sample_vmf(means[which], self.kappas.to(at, torch.float64)[which], generator) * self.scale.item()
        else:
            noise = torch.randn(n, means.shape[1], generator=generator, device=at, dtype=torch.float64)
            tril = self.scale_tril.to(at, torch.float64)
            draws = torch.empty_like(noise)
            for k in range(self.components):
                picked = which == k
                spread = noise[picked] @ tril[k].T if tril.dim() == 3 else noise[picked] * tril[k]
                draws[picked] = means[k] + spread
        if bool(self.subspace):
            draws = from_subspace(draws)
        shape = tuple(int(s) for s in self.z_shape)
        return draws.reshape(n, *shape).to(device=device or at, dtype=dtype or torch.get_default_dtype())

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config().items())


def _code_size(z_shape: Any) -> int:
    """Entries of one code of shape `z_shape` (positive ints); ValueError otherwise."""
    try:
        shape = tuple(z_shape)
    except TypeError:
        shape = None
    if not shape or len(shape) > 8 or not all(type(s) is int and 0 < s < 1 << 31 for s in shape):
        raise ValueError(f"z_shape must be up to 8 positive ints, got {z_shape!r}")
    return math.prod(shape)


def _check_kind(kind: Any) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}, got {kind!r}")


def fit_sphere_prior(codes: Tensor, kind: str = "vmf", components: int = 1, *, subspace: bool = False,
                     seed: int = 0, max_iter: int = 100, tol: float = 1e-6, covariance: str = "full",
                     reg_covar: float = 1e-6) -> FittedSpherePrior:
    """Fit a mixture to codes [N, *z_shape] that lie on a sphere (subspace=True: and have zero mean).

    `seed` fixes the initialization; `max_iter` and `tol` (on the mean log-likelihood) bound the EM;
    `covariance` and `reg_covar` are GaussianMixture's covariance_type and reg_covar.
    """
    _check_kind(kind)
    if not isinstance(codes, Tensor) or not codes.is_floating_point() or codes.dim() < 2:
        raise ValueError(f"codes must be a floating-point tensor [N, *z_shape], got {getattr(codes, 'shape', codes)!r}")
    n = codes.shape[0]
    if isinstance(components, bool) or not isinstance(components, int) or components < 1:
        raise ValueError(f"components must be a positive int, got {components!r}")
    if components > n:
        raise ValueError(f"components ({components}) must not exceed the number of codes ({n})")
    bad = (~torch.isfinite(codes.flatten(1))).any(dim=1).nonzero().flatten().tolist()
    if bad:
        raise ValueError(f"codes must be finite; samples {bad[:8]}{' ...' if len(bad) > 8 else ''} hold NaN or Inf")
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")
    flat = codes.detach().to("cpu", torch.float64).flatten(1)
    coords = to_subspace(flat) if subspace else flat
    prior = FittedSpherePrior(kind, components, codes.shape[1:], subspace, covariance)
    if coords.shape[1] < 2:
        raise ValueError(f"a prior on the sphere needs at least 2 free dimensions, the codes have {coords.shape[1]}")
    if kind == "vmf":
        norms = torch.linalg.vector_norm(coords, dim=1, keepdim=True)
        weights, means, kappas = _vmf_em(coords / norms, components, seed, max_iter, tol)
        prior.kappas.copy_(kappas)
        prior.scale.fill_(float(norms.mean()))
    else:
        weights, means, tril = _gmm(coords, components, seed, max_iter, covariance, reg_covar)
        prior.scale_tril.copy_(tril)
    prior.weights.copy_(weights)
    prior.means.copy_(means)
    return prior


def _vmf_kappa(rbar: Tensor, d: int) -> Tensor:
    """Concentration with mean resultant length rbar on S^{d-1}: Banerjee's approximation, then Newton."""
    rbar = rbar.clamp(1e-9, 1 - 1e-9)
    kappa = (rbar * (d - rbar.square()) / (1 - rbar.square())).clamp_min(_MIN_KAPPA)
    for _ in range(_NEWTON_STEPS):
        a = mean_resultant_length(kappa, d)
        slope = 1 - a.square() - (d - 1) * a / kappa
        step = torch.where(slope > 0, (a - rbar) / slope.clamp_min(1e-300), torch.zeros_like(kappa))
        kappa = torch.where(torch.isfinite(step), kappa - step, kappa).clamp_min(_MIN_KAPPA)
    return kappa


def _seeds(x: Tensor, k: int, seed: int) -> Tensor:
    """Greedy k-means++ seeding (Arthur and Vassilvitskii, 2007) of k of the unit vectors x, by squared
    chord distance 2(1 - cos): each step draws 2 + log k candidates and keeps the one that best covers x."""
    generator = torch.Generator().manual_seed(seed)
    trials = 2 + int(math.log(k))
    picked = [int(torch.randint(x.shape[0], (1,), generator=generator))]
    distance = (1 - x @ x[picked[0]]).clamp_min(0)
    for _ in range(k - 1):
        weights = distance if bool(distance.sum() > 0) else torch.ones_like(distance)
        candidates = torch.multinomial(weights, trials, replacement=True, generator=generator)
        covered = torch.minimum(distance, (1 - x[candidates] @ x.T).clamp_min(0))
        best = int(covered.sum(dim=1).argmin())
        picked.append(int(candidates[best]))
        distance = covered[best]
    return x[picked]


def _vmf_em(x: Tensor, k: int, seed: int, max_iter: int, tol: float) -> tuple[Tensor, Tensor, Tensor]:
    """Soft-assignment EM for a k-component vMF mixture on unit vectors x [N, D] (float64)."""
    n, d = x.shape
    means = _seeds(x, k, seed)
    resp = torch.nn.functional.one_hot((x @ means.T).argmax(dim=1), k).double()
    previous = -math.inf
    for _ in range(max_iter):
        counts = resp.sum(dim=0)
        weights = (counts / n).clamp_min(1e-300)
        resultant = resp.T @ x
        length = torch.linalg.vector_norm(resultant, dim=1)
        means = torch.where((length > 1e-12).unsqueeze(1), resultant / length.clamp_min(1e-300).unsqueeze(1), means)
        kappas = _vmf_kappa(length / counts.clamp_min(1e-300), d)
        log_joint = weights.log() + log_normalizer(kappas, d) + kappas * (x @ means.T)
        log_lik = torch.logsumexp(log_joint, dim=1, keepdim=True)
        resp = (log_joint - log_lik).exp()
        mean_log_lik = float(log_lik.mean())
        if mean_log_lik - previous < tol:
            break
        previous = mean_log_lik
    return weights, means, kappas


def _gmm(y: Tensor, k: int, seed: int, max_iter: int, covariance: str,
         reg_covar: float) -> tuple[Tensor, Tensor, Tensor]:
    """scikit-learn's GaussianMixture on y [N, D]: weights, means and Cholesky factors / standard deviations."""
    try:
        from sklearn.mixture import GaussianMixture
    except ImportError as error:
        raise ImportError("kind='gmm' fits with scikit-learn: pip install scikit-learn "
                          "(or sphere-plugins[train])") from error
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance must be one of {', '.join(COVARIANCES)}, got {covariance!r}")
    gmm = GaussianMixture(k, covariance_type=covariance, reg_covar=reg_covar, max_iter=max_iter,
                          random_state=seed).fit(y.numpy())
    cov = gmm.covariances_
    tril = np.linalg.cholesky(cov) if covariance == "full" else np.sqrt(cov)
    return tuple(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64)) for a in (gmm.weights_, gmm.means_, tril))
