"""von Mises-Fisher: Bessel ratio, normalizer, KL and the reparameterized sampler against quadrature,
closed forms and finite differences computed with scipy (independently of sphere_plugins.vmf)."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, optimize, special

from sphere_plugins import vmf
from sphere_plugins.loss import SVAELoss, reconstruction_error


def _integral(g, kappa, d, upper=1.0):
    """int_{-1}^{upper} g(t) exp(kappa (t - 1)) (1 - t^2)^((d - 3) / 2) dt: w = mu^T z's unnormalized density.

    For d = 2 the factor (1 - t^2)^(-1/2) is singular at the ends; quad's algebraic weight takes it.
    """
    if d == 2:
        if upper == 1.0:
            return integrate.quad(lambda t: g(t) * math.exp(kappa * (t - 1)), -1, 1, weight="alg",
                                  wvar=(-0.5, -0.5), epsabs=0)[0]
        return integrate.quad(lambda t: g(t) * math.exp(kappa * (t - 1)) / math.sqrt(1 - t), -1, upper,
                              weight="alg", wvar=(-0.5, 0), epsabs=0)[0]
    points = [p for p in (0.9, 0.99) if p < upper]
    return integrate.quad(lambda t: g(t) * math.exp(kappa * (t - 1)) * (1 - t * t) ** ((d - 3) / 2), -1, upper,
                          limit=200, points=points or None, epsabs=0, epsrel=1e-12)[0]


def _one(t):
    return 1.0


def _mean_w_by_quadrature(kappa, d):
    return _integral(lambda t: t, kappa, d) / _integral(_one, kappa, d)


def _bessel_ratio_scipy(kappa, d):
    return special.ive(d / 2, kappa) / special.ive(d / 2 - 1, kappa)


def _unit_mean(n, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(d, generator=g, dtype=torch.float64)
    return (mu / mu.norm()).expand(n, d).contiguous()


@pytest.mark.parametrize("d", [2, 3, 5, 10, 64])
@pytest.mark.parametrize("kappa", [0.5, 5.0, 50.0])
def test_mean_resultant_length_equals_the_mean_of_w_by_quadrature(d, kappa):
    got = vmf.mean_resultant_length(torch.tensor([kappa], dtype=torch.float64), d).item()
    assert got == pytest.approx(_mean_w_by_quadrature(kappa, d), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("d", [3, 10, 64])
def test_bessel_functions_have_correct_gradients(d):
    kappa = torch.tensor([0.3, 2.0, 40.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda k: vmf.mean_resultant_length(k, d), (kappa,))
    assert torch.autograd.gradcheck(lambda k: vmf.log_ive(d / 2 - 1, k), (kappa,))


def test_log_ive_stays_finite_where_scipy_underflows():
    kappa = torch.tensor([1e-3], dtype=torch.float64)
    v = 255.0
    expected = v * math.log(kappa.item() / 2) - math.lgamma(v + 1) - kappa.item()
    assert vmf.log_ive(v, kappa).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("d", [2, 3, 5, 10, 64])
@pytest.mark.parametrize("kappa", [0.5, 5.0, 50.0])
def test_log_normalizer_integrates_the_density_to_one(d, kappa):
    # Surface integral of exp(kappa mu^T z) = |S^{d-2}| * int exp(kappa t) (1 - t^2)^((d-3)/2) dt.
    log_area_below = math.log(2) + (d - 1) / 2 * math.log(math.pi) - math.lgamma((d - 1) / 2)
    log_integral = log_area_below + kappa + math.log(_integral(_one, kappa, d))
    got = vmf.log_normalizer(torch.tensor([kappa], dtype=torch.float64), d).item()
    assert got == pytest.approx(-log_integral, rel=1e-7, abs=1e-7)


def test_kl_to_uniform_on_the_two_sphere_matches_its_closed_form():
    kappa = torch.tensor([0.1, 1.0, 7.0, 60.0], dtype=torch.float64)
    expected = kappa / torch.tanh(kappa) - 1 + torch.log(kappa / torch.sinh(kappa))
    torch.testing.assert_close(vmf.kl_to_uniform(kappa, 3), expected)


@pytest.mark.parametrize("d", [5, 10, 64])
def test_kl_to_uniform_matches_a_monte_carlo_estimate(d):
    kappa, n = 8.0, 40_000
    z = vmf.sample_vmf(_unit_mean(n, d), torch.full((n,), kappa, dtype=torch.float64),
                       generator=torch.Generator().manual_seed(1))
    log_area_below = math.log(2) + (d - 1) / 2 * math.log(math.pi) - math.lgamma((d - 1) / 2)
    log_c = -(log_area_below + kappa + math.log(_integral(_one, kappa, d)))
    log_area = math.log(2) + d / 2 * math.log(math.pi) - math.lgamma(d / 2)
    w = (z * _unit_mean(1, d)).sum(dim=1)
    terms = kappa * w + log_c + log_area  # log q(z) - log u(z) for each draw
    estimate, error = terms.mean().item(), terms.std().item() / math.sqrt(n)
    assert abs(vmf.kl_to_uniform(torch.tensor([kappa], dtype=torch.float64), d).item() - estimate) < 5 * error


def test_kl_to_uniform_vanishes_as_kappa_goes_to_zero_and_grows_with_kappa():
    kl = vmf.kl_to_uniform(torch.tensor([1e-6, 1.0, 10.0, 100.0], dtype=torch.float64), 10)
    assert abs(kl[0].item()) < 1e-9
    assert bool((kl.diff() > 0).all())


def test_kl_gradient_matches_finite_differences():
    kappa = torch.tensor([0.5, 3.0, 30.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda k: vmf.kl_to_uniform(k, 10), (kappa,))


def test_draws_are_unit_vectors_of_the_mean_dtype():
    mu = _unit_mean(100, 7).float()
    z = vmf.sample_vmf(mu, torch.full((100, 1), 3.0))
    assert z.dtype == torch.float32 and z.shape == (100, 7)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(100))


@pytest.mark.parametrize("d", [3, 5, 10, 64])
@pytest.mark.parametrize("kappa", [1.0, 20.0])
def test_sample_mean_is_the_mean_resultant_length_times_mu(d, kappa):
    n = 20_000
    mu = _unit_mean(n, d, seed=d)
    z = vmf.sample_vmf(mu, torch.full((n,), kappa, dtype=torch.float64), generator=torch.Generator().manual_seed(d))
    expected = _bessel_ratio_scipy(kappa, d) * mu[0]
    error = z.std(dim=0) / math.sqrt(n)
    assert bool(((z.mean(dim=0) - expected).abs() < 5 * error + 1e-12).all())


def _closed_form_derivative(kappa, d, h=1e-5):
    return (_bessel_ratio_scipy(kappa + h, d) - _bessel_ratio_scipy(kappa - h, d)) / (2 * h)


@pytest.mark.parametrize("d", [3, 5, 10, 64])
@pytest.mark.parametrize("kappa", [2.0, 15.0])
def test_gradient_of_monte_carlo_mean_matches_derivative_of_closed_form(d, kappa):
    n = 20_000
    k = torch.full((n,), kappa, dtype=torch.float64, requires_grad=True)
    mu = _unit_mean(n, d, seed=d + 1)
    z = vmf.sample_vmf(mu, k, generator=torch.Generator().manual_seed(d + 1))
    (z * mu).sum(dim=1).sum().backward()
    per_draw = k.grad  # each draw's d(mu^T z)/d kappa
    error = per_draw.std().item() / math.sqrt(n)
    assert abs(per_draw.mean().item() - _closed_form_derivative(kappa, d)) < 5 * error + 1e-6


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
@pytest.mark.parametrize("d", [2, 5, 10])
def test_implicit_gradient_equals_the_derivative_of_the_quantile_function(d):
    kappa, h = 3.0, 1e-4

    def quantile(u, k):
        total = _integral(_one, k, d)
        return optimize.brentq(lambda w: _integral(_one, k, d, upper=w) / total - u, -1 + 1e-12, 1 - 1e-12,
                               xtol=1e-14)

    for u in (0.05, 0.5, 0.95):
        w = quantile(u, kappa)
        expected = (quantile(u, kappa + h) - quantile(u, kappa - h)) / (2 * h)
        got = vmf.dw_dkappa(torch.tensor([w], dtype=torch.float64), torch.tensor([kappa], dtype=torch.float64), d)
        assert got.item() == pytest.approx(expected, rel=1e-4)


def test_gradient_with_respect_to_the_mean_direction_matches_the_closed_form():
    # E[c^T z] = A c^T m / |m| for mu = m / |m|, so its gradient in m is A (I - mu mu^T) c / |m|.
    d, kappa, n = 6, 4.0, 40_000
    g = torch.Generator().manual_seed(3)
    m = torch.randn(d, generator=g, dtype=torch.float64).mul(2).requires_grad_(True)
    c = torch.randn(d, generator=g, dtype=torch.float64)
    mu = (m / m.norm()).expand(n, d)
    z = vmf.sample_vmf(mu, torch.full((n,), kappa, dtype=torch.float64), generator=g)
    (z @ c).mean().backward()
    u = (m / m.norm()).detach()
    expected = _bessel_ratio_scipy(kappa, d) * (c - (u @ c) * u) / m.norm().detach()
    torch.testing.assert_close(m.grad, expected, atol=0.02, rtol=0)


def test_a_seeded_generator_makes_draws_reproducible():
    mu, kappa = _unit_mean(50, 8), torch.full((50,), 2.0, dtype=torch.float64)
    a = vmf.sample_vmf(mu, kappa, generator=torch.Generator().manual_seed(5))
    b = vmf.sample_vmf(mu, kappa, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("mu", "kappa", "match"),
    [
        (torch.ones(4, 3) / math.sqrt(3), torch.tensor([1.0, 1.0, 0.0, 1.0]), "positive"),
        (torch.ones(4, 3) / math.sqrt(3), torch.ones(3), "kappa must have shape"),
        (torch.ones(3), torch.ones(3), "mu must be"),
        (torch.ones(4, 1), torch.ones(4), "d must be"),
    ],
)
def test_bad_sampler_inputs_are_rejected(mu, kappa, match):
    with pytest.raises(ValueError, match=match):
        vmf.sample_vmf(mu, kappa)


def test_svae_loss_adds_beta_times_kl_per_image_entry():
    x, x_rec = torch.randn(2, 1, 4, 4, dtype=torch.float64), torch.randn(2, 1, 4, 4, dtype=torch.float64)
    mu = torch.nn.functional.normalize(torch.randn(2, 3, dtype=torch.float64), dim=1)
    kappa = torch.tensor([1.5, 9.0], dtype=torch.float64)
    kl = kappa / torch.tanh(kappa) - 1 + torch.log(kappa / torch.sinh(kappa))  # d = 3 closed form
    expected = (reconstruction_error(x, x_rec) + 0.25 * kl / 16).mean()
    torch.testing.assert_close(SVAELoss(beta=0.25)(x, x_rec, mu, kappa), expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_sampler_and_kl_keep_the_cuda_device_and_dtype():
    mu = torch.nn.functional.normalize(torch.randn(64, 10, device="cuda"), dim=1)
    kappa = torch.full((64,), 5.0, device="cuda", requires_grad=True)
    z = vmf.sample_vmf(mu, kappa)
    z.sum().backward()
    kl = vmf.kl_to_uniform(kappa, 10)
    assert z.device.type == kl.device.type == kappa.grad.device.type == "cuda"
    assert z.dtype == kl.dtype == torch.float32


def test_log_prob_in_three_dimensions_matches_the_closed_form():
    # In d=3 the vMF density is kappa / (4 pi sinh kappa) * exp(kappa mu.z) (surface measure).
    from sphere_plugins.vmf import log_prob

    z = torch.nn.functional.normalize(torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)), dim=1)
    mu = torch.nn.functional.normalize(torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)), dim=1)
    kappa = torch.tensor([0.5, 1.0, 2.0, 5.0, 10.0], dtype=torch.float64)
    expected = torch.log(kappa / (4 * math.pi * torch.sinh(kappa))) + kappa * (mu * z).sum(1)
    torch.testing.assert_close(log_prob(z, mu, kappa), expected)


@pytest.mark.parametrize("v, kappa", [(255.0, 10.0), (255.0, 1.0), (255.0, 12.9), (1023.0, 30.0), (2047.0, 0.5)])
def test_log_bessel_is_exact_where_scipy_underflows(v, kappa):
    """At d = 512 (v = 255) and small kappa scipy's ive underflows; the fallback must still be exact."""
    mpmath = pytest.importorskip("mpmath")
    from sphere_plugins.vmf import _log_ive_numpy

    with mpmath.workdps(40):
        exact = float(mpmath.log(mpmath.besseli(v, kappa)) - kappa)
    got = float(_log_ive_numpy(v, np.array([kappa]))[0])
    assert got == pytest.approx(exact, rel=1e-12, abs=1e-9)
