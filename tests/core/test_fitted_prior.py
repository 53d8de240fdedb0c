"""fit_prior: a vMF or Gaussian mixture fitted to the codes, drawn with prior="fitted", kept in state_dict."""

import json
import math

import pytest
import torch
from scipy import special
from torch import nn

from sphere_plugins import FittedSpherePrior
from sphere_plugins.fitted_prior import from_subspace, to_subspace
from sphere_plugins.nets import ConvAutoencoder
from sphere_plugins.training import SAEObjective
from sphere_plugins.vmf import sample_vmf
from sphere_plugins.wrap import wrap_autoencoder

D, RADIUS, KAPPA = 16, 4.0, 40.0
WEIGHTS = torch.tensor([0.5, 0.3, 0.2])


def _identity_sae(d=D, **kwargs):
    return wrap_autoencoder((nn.Identity(), nn.Identity()), z_shape=d, **kwargs)


def _true_means(d=D, k=3, seed=0):
    mus = torch.randn(k, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    mus = mus - mus.mean(dim=1, keepdim=True)
    return mus / mus.norm(dim=1, keepdim=True)


def _vmf_codes(n=3000, d=D, kappa=KAPPA, seed=1):
    """Codes from a known 3-component vMF mixture, moved to the zero-mean sphere of radius RADIUS."""
    g = torch.Generator().manual_seed(seed)
    mus = _true_means(d)
    which = torch.multinomial(WEIGHTS, n, replacement=True, generator=g)
    x = sample_vmf(mus[which], torch.full((n,), kappa, dtype=torch.float64), g)
    x = x - x.mean(dim=1, keepdim=True)
    return (RADIUS * x / x.norm(dim=1, keepdim=True)).float(), mus


def _gaussian_codes(n=3000, seed=1):
    g = torch.Generator().manual_seed(seed)
    mus = _true_means()
    which = torch.multinomial(WEIGHTS, n, replacement=True, generator=g)
    x = mus[which] + 0.15 * torch.randn(n, D, generator=g, dtype=torch.float64)
    x = x - x.mean(dim=1, keepdim=True)
    return (RADIUS * x / x.norm(dim=1, keepdim=True)).float(), mus


def _match(estimated, truth):
    """Index of the true component nearest each estimated mean direction, and the cosines."""
    cos = torch.nn.functional.normalize(estimated.double(), dim=1) @ truth.T
    best = cos.argmax(dim=1)
    assert sorted(best.tolist()) == list(range(truth.shape[0])), cos
    return best, cos.max(dim=1).values


def _proportions(draws, truth):
    nearest = (draws.double() @ truth.T).argmax(dim=1)
    return torch.bincount(nearest, minlength=truth.shape[0]).double() / draws.shape[0]


def test_subspace_coordinates_are_an_isometry_onto_the_zero_mean_vectors():
    x = torch.randn(50, D, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = x - x.mean(dim=1, keepdim=True)
    coords = to_subspace(x)
    assert coords.shape == (50, D - 1)
    torch.testing.assert_close(coords @ coords.T, x @ x.T)
    back = from_subspace(torch.randn(20, D - 1, dtype=torch.float64))
    torch.testing.assert_close(back.sum(dim=1), torch.zeros(20, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(from_subspace(coords), x)


def test_a_vmf_mixture_recovers_known_means_weights_and_concentrations():
    codes, mus = _vmf_codes()
    sae = _identity_sae(radius=RADIUS)
    prior = sae.fit_prior(codes, kind="vmf", components=3)
    assert prior is sae.fitted_prior and prior.config()["subspace"] is True
    best, cos = _match(from_subspace(prior.means), mus)
    assert (cos > 0.99).all(), cos
    torch.testing.assert_close(prior.weights[torch.argsort(best)], WEIGHTS.double(), atol=0.03, rtol=0)
    # Centering one of 16 dims away keeps the concentration within a few percent.
    assert ((prior.kappas - KAPPA).abs() < 0.1 * KAPPA).all(), prior.kappas


def _component_means(draws, mus):
    nearest = (draws.double() @ mus.T).argmax(dim=1)
    return torch.stack([draws[nearest == k].double().mean(dim=0) for k in range(mus.shape[0])])


def test_fitted_vmf_draws_follow_the_components():
    codes, mus = _vmf_codes()
    sae = _identity_sae(radius=RADIUS)
    prior = sae.fit_prior(codes, kind="vmf", components=3)
    draws = sae.latents(6000, prior="fitted", generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(_proportions(draws, mus), WEIGHTS.double(), atol=0.03, rtol=0)
    # Mean cosine to the true mean = A_D(kappa) = I_{D/2}/I_{D/2-1} on the (D-1)-dim zero-mean sphere.
    nearest = (draws.double() @ mus.T).argmax(dim=1)
    cos = (draws.double() / RADIUS * mus[nearest]).sum(dim=1)
    kappa = float(prior.kappas.mean())
    dim = D - 1
    expected = special.ive(dim / 2, kappa) / special.ive(dim / 2 - 1, kappa)
    assert abs(float(cos.mean()) - expected) < 0.01


@pytest.mark.parametrize("kind", ["vmf", "gmm"])
@pytest.mark.parametrize("center", [True, False])
def test_fitted_draws_lie_on_the_wrappers_sphere(kind, center):
    codes, _ = _vmf_codes(n=600)
    sae = _identity_sae(radius=RADIUS, center=center)
    sae.fit_prior(codes, kind=kind, components=2)
    assert sae.fitted_prior.config()["subspace"] is center
    draws = sae.latents(300, prior="fitted", generator=torch.Generator().manual_seed(0))
    assert draws.shape == (300, D) and draws.dtype == torch.float32
    torch.testing.assert_close(draws.norm(dim=1), torch.full((300,), RADIUS))
    if center:
        torch.testing.assert_close(draws.mean(dim=1), torch.zeros(300), atol=1e-6, rtol=0)


def test_a_gaussian_mixture_recovers_weights_and_its_draws_follow_the_components():
    codes, mus = _gaussian_codes()
    sae = _identity_sae(radius=RADIUS)
    prior = sae.fit_prior(codes, kind="gmm", components=3)
    draws = sae.latents(6000, prior="fitted", generator=torch.Generator().manual_seed(3))
    best, cos = _match(_component_means(draws, mus), mus)
    assert (cos > 0.99).all()
    torch.testing.assert_close(_proportions(draws, mus), WEIGHTS.double(), atol=0.03, rtol=0)
    assert sorted(round(float(w), 1) for w in prior.weights) == [0.2, 0.3, 0.5]


@pytest.mark.parametrize("kind", ["vmf", "gmm"])
def test_state_dict_round_trip_restores_the_prior_and_its_draws(kind):
    codes, _ = _vmf_codes(n=500)
    source = SAEObjective(_identity_sae(radius=RADIUS))
    source.wrapper.fit_prior(codes, kind=kind, components=2)
    target = SAEObjective(_identity_sae(radius=RADIUS))
    assert target.wrapper.fitted_prior is None
    target.load_state_dict(source.state_dict())
    assert target.wrapper.fitted_prior.config() == source.wrapper.fitted_prior.config()
    for a, b in ((source, target), (source, source)):
        draws = [o.wrapper.latents(50, prior="fitted", generator=torch.Generator().manual_seed(9)) for o in (a, b)]
        assert torch.equal(*draws)


def test_a_prior_rebuilds_from_its_json_config_and_state():
    codes, _ = _vmf_codes(n=500)
    prior = _identity_sae(radius=RADIUS).fit_prior(codes, kind="gmm", components=2, covariance="diag")
    config = json.loads(json.dumps(prior.config()))
    assert config == {"kind": "gmm", "components": 2, "z_shape": [D], "subspace": True, "covariance": "diag"}
    rebuilt = FittedSpherePrior.from_state(prior.state_dict(), config)
    assert FittedSpherePrior.config_from_state(prior.state_dict()) == config
    assert torch.equal(rebuilt.sample(20, torch.Generator().manual_seed(1)),
                       prior.sample(20, torch.Generator().manual_seed(1)))


def test_loading_a_state_without_a_prior_drops_it_and_another_kind_replaces_it():
    codes, _ = _vmf_codes(n=500)
    sae = _identity_sae(radius=RADIUS)
    sae.fit_prior(codes, kind="vmf", components=2)
    sae.load_state_dict(_identity_sae(radius=RADIUS).state_dict())
    assert sae.fitted_prior is None
    other = _identity_sae(radius=RADIUS)
    other.fit_prior(codes, kind="gmm", components=3)
    sae.fit_prior(codes, kind="vmf", components=2)
    sae.load_state_dict(other.state_dict())
    assert sae.fitted_prior.config()["kind"] == "gmm" and sae.fitted_prior.components == 3


def test_the_same_seed_fits_the_same_prior():
    codes, _ = _vmf_codes(n=500)
    fits = [_identity_sae(radius=RADIUS).fit_prior(codes, "vmf", 3, seed=4).state_dict() for _ in range(2)]
    assert all(torch.equal(fits[0][k], fits[1][k]) for k in fits[0])


def test_fit_prior_on_images_encodes_them_in_eval_mode_and_sample_decodes_fitted_draws():
    torch.manual_seed(0)
    sae = wrap_autoencoder(ConvAutoencoder(channels=1, resolution=8, z_dim=6, width=8))
    images = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert sae.training
    sae.fit_prior(images, kind="vmf", components=2, batch_size=16)
    assert sae.training and sae.fitted_prior.config()["z_shape"] == [6]
    assert sae.sample(5, prior="fitted").shape == (5, 1, 8, 8)


def test_the_vmf_fit_is_numerically_safe_at_d_512():
    codes, mus = _vmf_codes(n=400, d=512, kappa=600.0)
    sae = _identity_sae(d=512, radius=RADIUS)
    prior = sae.fit_prior(codes, kind="vmf", components=3)
    assert torch.isfinite(prior.kappas).all() and (prior.kappas > 0).all()
    draws = sae.latents(500, prior="fitted", generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(draws.norm(dim=1), torch.full((500,), RADIUS))
    torch.testing.assert_close(_proportions(draws, mus), WEIGHTS.double(), atol=0.08, rtol=0)


@pytest.mark.parametrize("kwargs, match", [
    ({"components": 0}, "components must be a positive int"),
    ({"components": 2.5}, "components must be a positive int"),
    ({"components": True}, "components must be a positive int"),
    ({"components": 11}, r"components \(11\) must not exceed the number of codes \(10\)"),
    ({"kind": "kde"}, "kind must be one of 'vmf', 'gmm'"),
    ({"kind": "gmm", "covariance": "tied"}, "covariance must be one of full, diag"),
])
def test_bad_fit_arguments_are_rejected(kwargs, match):
    codes, _ = _vmf_codes(n=10)
    sae = _identity_sae(radius=RADIUS)
    with pytest.raises(ValueError, match=match):
        sae.fit_prior(codes, **kwargs)
    assert sae.fitted_prior is None


def test_codes_of_the_wrong_shape_or_with_nan_are_rejected():
    codes, _ = _vmf_codes(n=10)
    sae = _identity_sae(radius=RADIUS)
    with pytest.raises(ValueError, match=r"codes must have shape \[N, 16\], got \[10, 15\]"):
        sae.fit_prior(codes[:, :15], codes=True)
    codes[3, 2] = math.nan
    with pytest.raises(ValueError, match=r"codes must be finite; samples \[3\]"):
        sae.fit_prior(codes)


def test_sampling_the_fitted_prior_before_fitting_names_fit_prior():
    sae = _identity_sae()
    with pytest.raises(ValueError, match=r"fit_prior\(images or codes"):
        sae.sample(2, prior="fitted")
    sae.fit_prior(_vmf_codes(n=20)[0], components=1)
    with pytest.raises(ValueError, match="takes no parameters"):
        sae.latents(2, prior="fitted", std=2.0)
