import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.integrate import quad

from sphere_plugins import centerize, sample_prior, spherize
from sphere_plugins import theory as th


def test_lemma1_reproduces_the_paper_numbers_at_d512():
    assert round(th.lemma1_mean(512), 4) == 1.4139
    assert round(th.lemma1_std(512), 4) == 0.0313


def test_theorem1_reproduces_the_paper_annulus():
    # (1 - 0.009)^512 = 0.0098: an annulus 0.9% of the radius wide holds 99% of the volume.
    assert round(th.inner_volume_fraction(0.009, 512), 4) == 0.0098
    assert th.shell_width_holding(0.99, 512) < 0.009


def test_theorem1_limit_is_exp_minus_t():
    t = 2.0
    assert abs(th.inner_volume_fraction(t / 1e6, 10**6) - math.exp(-t)) < 1e-5


def test_lemma1_mean_on_the_circle_is_four_over_pi():
    # Mean chord length between two uniform points on the unit circle: 4/pi.
    assert th.lemma1_mean(2) == pytest.approx(4 / math.pi, rel=1e-12)


def test_lemma1_mean_on_the_two_sphere_is_four_thirds():
    # On S^2 the chord length has density xi/2 on [0, 2]: mean 4/3.
    assert th.lemma1_mean(3) == pytest.approx(4 / 3, rel=1e-12)


@pytest.mark.parametrize("d", [3, 4, 10, 64, 512, 4096])
def test_lemma1_pdf_integrates_to_one(d):
    total, _ = quad(lambda x: th.lemma1_pdf(x, d), 0, 2, points=[math.sqrt(2)], limit=400)
    assert total == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("d,r", [(3, 1.0), (10, 2.0), (128, 1.0), (512, 0.5)])
def test_lemma1_moments_agree_with_the_pdf(d, r):
    mean, _ = quad(lambda x: x * th.lemma1_pdf(x, d, r), 0, 2 * r, points=[math.sqrt(2) * r], limit=400)
    second, _ = quad(lambda x: x * x * th.lemma1_pdf(x, d, r), 0, 2 * r, points=[math.sqrt(2) * r], limit=400)
    assert th.lemma1_mean(d, r) == pytest.approx(mean, rel=1e-6)
    assert th.lemma1_std(d, r) == pytest.approx(math.sqrt(second - mean**2), rel=1e-4)


@pytest.mark.parametrize("d", [5, 50, 512])
def test_lemma1_matches_monte_carlo(d):
    g = torch.Generator().manual_seed(d)
    a, b = th.uniform_on_sphere(20_000, d, 2.0, g), th.uniform_on_sphere(20_000, d, 2.0, g)
    distances = (a - b).norm(dim=1)
    assert distances.mean().item() == pytest.approx(th.lemma1_mean(d, 2.0), rel=3e-3)
    assert distances.std().item() == pytest.approx(th.lemma1_std(d, 2.0), rel=3e-2)


@pytest.mark.parametrize("d", [2, 7, 512, 10_000, 1_000_000])
def test_lemma1_mean_matches_arbitrary_precision_arithmetic(d):
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(50):
        exact = mpmath.power(2, d - 1) * mpmath.gamma(mpmath.mpf(d) / 2) ** 2 / (
            mpmath.sqrt(mpmath.pi) * mpmath.gamma(d - mpmath.mpf(1) / 2))
    assert th.lemma1_mean(d, 3.0) == pytest.approx(3.0 * float(exact), rel=1e-9)


def test_lemma1_pdf_vanishes_outside_the_diameter():
    assert np.all(th.lemma1_pdf(np.array([-1.0, 0.0, 2.0, 3.0]), 10) == 0)


@given(st.integers(2, 100_000))
def test_lemma1_asymptotic_forms_approach_the_exact_ones(d):
    assert abs(th.lemma1_mean(d) - th.lemma1_mean_asymptotic(d)) < 0.25 / d**2 + 1e-9  # next term O(1/d^2); 1e-9: float64 log-gamma at large d
    if d >= 100:
        assert th.lemma1_std(d) == pytest.approx(th.lemma1_std_asymptotic(d), rel=0.02)


def test_lemma1_rejects_a_dimension_below_two():
    with pytest.raises(ValueError, match="d .* >= 2"):
        th.lemma1_mean(1)


def test_wasserstein2_equals_brute_force_over_all_assignments():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    best = min(sum(np.sum((a[i] - b[p]) ** 2) for i, p in enumerate(perm))
               for perm in itertools.permutations(range(6)))
    assert th.wasserstein2(a, b) == pytest.approx(math.sqrt(best), rel=1e-12)


def test_wasserstein2_of_a_set_with_itself_is_zero():
    z = torch.randn(20, 5)
    assert th.wasserstein2(z, z[torch.randperm(20)]) == pytest.approx(0.0, abs=1e-6)


def test_wasserstein2_rejects_sets_of_different_sizes():
    with pytest.raises(ValueError, match="z1 and z2"):
        th.wasserstein2(torch.randn(3, 4), torch.randn(4, 4))


def test_theorem2_w2_approaches_sqrt_2n_r_as_d_grows():
    n, g = 64, torch.Generator().manual_seed(0)
    ratios = [th.wasserstein2(th.uniform_on_sphere(n, d, generator=g), th.uniform_on_sphere(n, d, generator=g))
              / th.wasserstein2_asymptote(n) for d in (4, 64, 4096)]
    assert ratios[0] < ratios[1] < ratios[2] <= 1.0
    assert ratios[2] > 0.97


def test_theorem2_w2_barely_depends_on_the_prior_after_centerize_and_spherize():
    n, d = 64, 1024
    g = torch.Generator().manual_seed(3)
    reference = spherize(torch.randn(n, d, generator=g, dtype=torch.float64))

    def on_sphere(prior):
        return spherize(centerize(sample_prior(prior, (n, d), generator=g, dtype=torch.float64)))

    distances = [th.wasserstein2(on_sphere(p), reference) for p in ("normal", "uniform", "poisson", "chi2")]
    assert (max(distances) - min(distances)) / th.wasserstein2_asymptote(n) < 0.01
    raw = [th.wasserstein2(sample_prior(p, (n, d), generator=g, dtype=torch.float64),
                           torch.randn(n, d, generator=g, dtype=torch.float64)) for p in ("normal", "chi2")]
    assert raw[1] > 1.3 * raw[0]  # without the two steps the prior shows
