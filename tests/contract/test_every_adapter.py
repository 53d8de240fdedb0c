"""Promises every adapter keeps, checked on the small example model each plugin offers.

A new plugin that implements sphere_example_models() is tested here for free.
"""

import math

import pytest
import torch

from sphere_plugins import list_priors, load_model, wrap_autoencoder, wrap_generator
from sphere_plugins.plugins import adapt_autoencoder, adapt_generator
from sphere_plugins.schemes import example_models

SPECS = example_models()
PAPER_PRIORS = ["normal", "uniform", "poisson", "chi2"]


def _model(spec):
    torch.manual_seed(0)
    model = load_model(spec)
    return model.eval() if isinstance(model, torch.nn.Module) else model


def _roles(spec):
    model = _model(spec)
    return [role for role, adapt in (("generator", adapt_generator), ("autoencoder", adapt_autoencoder))
            if adapt(model, {}) is not None]


CASES = [(spec, role) for spec in SPECS for role in _roles(spec)]
GENERATORS = [spec for spec, role in CASES if role == "generator"]
AUTOENCODERS = [spec for spec, role in CASES if role == "autoencoder"]


def test_every_example_model_is_recognized_by_some_adapter():
    assert SPECS, "no plugin offers an example model"
    assert {spec for spec, _ in CASES} == set(SPECS)


@torch.no_grad()
@pytest.mark.parametrize("spec", GENERATORS)
def test_generator_with_both_steps_off_is_the_raw_model(spec):
    wrapped = wrap_generator(_model(spec), spherize=False, center=False)
    z = torch.randn(2, *wrapped.z_shape) * 2 + 0.5
    torch.manual_seed(1)
    via_wrapper = wrapped(z)
    torch.manual_seed(1)
    raw = wrapped.adapter.generate(z)
    assert torch.equal(via_wrapper, raw)


@torch.no_grad()
@pytest.mark.parametrize("spec", GENERATORS)
def test_generator_latents_sit_on_the_declared_sphere(spec):
    wrapped = wrap_generator(_model(spec))
    radius = wrapped.adapter.radius or math.sqrt(math.prod(wrapped.z_shape))
    z = wrapped.latents(3, prior="chi2", generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.flatten(1).norm(dim=1), torch.full((3,), float(radius)), rtol=1e-4, atol=0)


@torch.no_grad()
@pytest.mark.parametrize("prior", PAPER_PRIORS)
@pytest.mark.parametrize("spec", GENERATORS)
def test_generator_samples_every_paper_prior(spec, prior):
    wrapped = wrap_generator(_model(spec))
    images = wrapped.sample(2, prior=prior, generator=torch.Generator().manual_seed(0))
    low, high = wrapped.adapter.output_range
    assert images.dim() == 4 and images.shape[0] == 2
    assert torch.isfinite(images).all()
    assert images.min() >= low - 0.5 * (high - low) and images.max() <= high + 0.5 * (high - low)


def _inputs(wrapped):
    """Images shaped as the model wants them: decode a few latents, clamp into the output range."""
    low, high = wrapped.adapter.output_range
    return wrapped.sample(3, generator=torch.Generator().manual_seed(2)).clamp(low, high)


@torch.no_grad()
@pytest.mark.parametrize("spec", AUTOENCODERS)
def test_autoencoder_with_both_steps_off_is_the_raw_model(spec):
    model = _model(spec)
    x = _inputs(wrap_autoencoder(model, z_shape=None))
    wrapped = wrap_autoencoder(model, spherize=False, center=False)
    reconstruction, z = wrapped(x)
    assert torch.equal(z, wrapped.adapter.encode(x))
    assert torch.equal(reconstruction, wrapped.adapter.decode(wrapped.adapter.encode(x)))


@torch.no_grad()
@pytest.mark.parametrize("spec", AUTOENCODERS)
def test_autoencoder_codes_are_centerized_on_the_declared_sphere(spec):
    wrapped = wrap_autoencoder(_model(spec))
    z = wrapped.encode(_inputs(wrapped))
    radius = wrapped.adapter.radius or math.sqrt(math.prod(z.shape[1:]))
    torch.testing.assert_close(z.flatten(1).norm(dim=1), torch.full((3,), float(radius)), rtol=1e-4, atol=0)
    assert z.flatten(1).mean(dim=1).abs().max() < 1e-4 * radius


@torch.no_grad()
@pytest.mark.parametrize("prior", list_priors())
@pytest.mark.parametrize("spec", AUTOENCODERS)
def test_autoencoder_decodes_every_registered_prior(spec, prior):
    wrapped = wrap_autoencoder(_model(spec))
    images = wrapped.sample(2, prior=prior, generator=torch.Generator().manual_seed(0))
    assert images.shape[0] == 2 and torch.isfinite(images).all()


@torch.no_grad()
@pytest.mark.parametrize("spec, role", CASES)
def test_save_pretrained_round_trips_with_identical_outputs(spec, role, tmp_path):
    wrap = wrap_generator if role == "generator" else wrap_autoencoder
    wrapped = wrap(_model(spec), prior="uniform", low=-2.0, high=3.0)
    wrapped.save_pretrained(tmp_path / "saved")
    loaded = load_model(tmp_path / "saved")
    assert type(loaded) is type(wrapped)
    assert (loaded.prior, loaded.prior_params, loaded.z_shape) == ("uniform", {"low": -2.0, "high": 3.0},
                                                                   wrapped.z_shape)
    assert loaded.latent.radius == wrapped.latent.radius
    assert torch.equal(loaded.sample(2, generator=torch.Generator().manual_seed(4)),
                       wrapped.sample(2, generator=torch.Generator().manual_seed(4)))
    if role == "autoencoder":
        x = _inputs(wrapped)
        assert torch.equal(loaded(x).reconstruction, wrapped(x).reconstruction)
