import math

import pytest
import torch

import sphere_plugins
from sphere_plugins import UnknownPriorError, get_prior, hookimpl, list_priors, sample_prior

# (name, params, mean, variance) from the textbook formulas of each distribution.
MOMENTS = [
    ("normal", {}, 0.0, 1.0),
    ("normal", {"mean": 2.0, "std": 3.0}, 2.0, 9.0),
    ("uniform", {}, 0.0, 1 / 3),
    ("uniform", {"low": 0.0, "high": 2.0}, 1.0, 1 / 3),
    ("poisson", {}, 1.0, 1.0),
    ("poisson", {"rate": 4.0}, 4.0, 4.0),
    ("chi2", {}, 1.0, 2.0),
    ("chi2", {"df": 3.5}, 3.5, 7.0),
    ("laplace", {}, 0.0, 2.0),
    ("student_t", {"df": 5.0}, 0.0, 5 / 3),
    ("exponential", {"rate": 2.0}, 0.5, 0.25),
    ("rademacher", {}, 0.0, 1.0),
    ("bernoulli", {"p": 0.25}, 0.25, 0.1875),
]


@pytest.mark.parametrize("name,params,mean,var", MOMENTS)
def test_prior_moments_match_the_distribution(name, params, mean, var):
    n = 400_000
    x = sample_prior(name, (n,), generator=torch.Generator().manual_seed(0), dtype=torch.float64, **params)
    tolerance = 6 * math.sqrt(var / n) + 1e-9
    assert abs(x.mean().item() - mean) < tolerance
    assert abs(x.var().item() - var) < 0.03 * var


def test_the_four_paper_priors_are_registered():
    assert {"normal", "uniform", "poisson", "chi2"} <= set(list_priors())


def test_list_priors_filters_with_wildcards():
    assert list_priors("chi*") == ["chi2"]


@pytest.mark.parametrize("name", list_priors())
def test_every_prior_is_reproducible_with_a_generator(name):
    a = sample_prior(name, (3, 7), generator=torch.Generator().manual_seed(5))
    b = sample_prior(name, (3, 7), generator=torch.Generator().manual_seed(5))
    assert a.shape == (3, 7)
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", list_priors())
def test_every_prior_honours_the_requested_dtype(name):
    assert sample_prior(name, (2, 3), dtype=torch.float64).dtype == torch.float64


def test_unknown_prior_names_the_registered_ones():
    with pytest.raises(UnknownPriorError, match="'gauss'.*normal.*uniform"):
        sample_prior("gauss", (2, 3))


def test_unknown_prior_parameter_lists_the_accepted_ones():
    with pytest.raises(ValueError, match=r"\['lam'\].*accepted: rate"):
        sample_prior("poisson", (2, 3), lam=2.0)


@pytest.mark.parametrize("name,params", [("normal", {"std": -1.0}), ("uniform", {"low": 1.0, "high": 0.0}),
                                         ("chi2", {"df": 0.0}), ("bernoulli", {"p": 1.5})])
def test_invalid_prior_parameters_are_rejected(name, params):
    with pytest.raises(ValueError, match="|".join(params)):
        sample_prior(name, (2, 3), **params)


def test_integer_dtype_is_rejected():
    with pytest.raises(ValueError, match="floating-point"):
        sample_prior("normal", (2,), dtype=torch.int64)


class _ArcsinePlugin:
    @hookimpl
    def sphere_register_priors(self, register):
        def arcsine(shape, generator, device, dtype, scale):
            u = torch.rand(shape, generator=generator, device=device, dtype=dtype)
            return scale * torch.sin(math.pi * (u - 0.5))

        register("arcsine", arcsine, "arcsine on [-scale, scale]", scale=1.0)


def test_a_registered_plugin_adds_a_prior_and_removing_it_drops_the_prior():
    plugin = _ArcsinePlugin()
    sphere_plugins.register(plugin)
    try:
        assert "arcsine" in list_priors()
        x = sample_prior("arcsine", (10_000,), scale=2.0, generator=torch.Generator().manual_seed(1))
        assert x.abs().max() <= 2.0
        assert abs(x.var().item() - 2.0) < 0.1  # arcsine variance scale^2 / 2
        assert get_prior("arcsine").description.startswith("arcsine")
    finally:
        sphere_plugins.unregister(plugin)
    assert "arcsine" not in list_priors()


class _Shadow:
    def __init__(self, replace):
        self.replace = replace

    @sphere_plugins.hookimpl
    def sphere_register_priors(self, register):
        register("normal", lambda shape, generator, device, dtype: torch.full(shape, 7.0, dtype=dtype),
                 "sevens", replace=self.replace)


def test_a_prior_under_a_built_in_name_is_refused_without_replace():
    plugin = _Shadow(replace=False)
    sphere_plugins.register(plugin)
    try:
        with pytest.raises(ValueError, match="'normal', which plugin 'sphere_plugins.priors' already registered"):
            sample_prior("normal", (2,))
    finally:
        sphere_plugins.unregister(plugin)
    assert sample_prior("normal", (2,), generator=torch.Generator().manual_seed(0)).ne(7).all()


def test_replace_true_replaces_a_built_in_prior():
    plugin = _Shadow(replace=True)
    sphere_plugins.register(plugin)
    try:
        assert torch.equal(sample_prior("normal", (3,)), torch.full((3,), 7.0))
    finally:
        sphere_plugins.unregister(plugin)
