"""Latent arguments at the wrapper boundary: batching of sample(n), empty batches, dims, and flags or
numbers given as the wrong type."""

import inspect

import pytest
import torch
from torch import nn

from sphere_plugins import (
    GeneratorAdapter,
    SphericalAutoencoder,
    SphericalGenerator,
    SphericalLatent,
    sample_prior,
    wrap_autoencoder,
    wrap_generator,
)


class Recording(nn.Module):
    """A deterministic generator that records the batch sizes it was called with."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, 12)
        self.batches = []

    def forward(self, z):
        self.batches.append(z.shape[0])
        return self.linear(z).tanh()


def test_sample_runs_the_model_in_batches_and_matches_one_batch():
    model = Recording()
    wrapper = wrap_generator(model, z_shape=(8,))
    batched = wrapper.sample(10, generator=torch.Generator().manual_seed(0), batch_size=4)
    assert model.batches == [4, 4, 2]
    whole = wrapper.sample(10, generator=torch.Generator().manual_seed(0), batch_size=10)
    z = wrapper.latents(10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(whole, model(z))
    torch.testing.assert_close(batched, whole)  # other batch shapes may round differently in the last bit


def test_a_large_sample_never_runs_the_model_on_every_latent_at_once():
    model = Recording()
    images = wrap_generator(model, z_shape=(8,)).sample(5000)
    assert images.shape == (5000, 12) and max(model.batches) <= 1024


def test_autoencoder_sample_batches_its_decoder():
    decoder = Recording()
    wrapper = wrap_autoencoder((nn.Linear(12, 8), decoder), z_shape=(8,))
    assert wrapper.sample(7, batch_size=3).shape == (7, 12) and decoder.batches == [3, 3, 1]


@pytest.mark.parametrize("batch_size", [0, -1, True, 2.0])
def test_batch_size_must_be_a_positive_int(batch_size):
    with pytest.raises(ValueError, match=f"batch_size must be a positive int, got {batch_size!r}"):
        wrap_generator(Recording(), z_shape=(8,)).sample(3, batch_size=batch_size)


def test_an_empty_batch_is_a_clear_error_not_a_model_crash():
    with pytest.raises(ValueError, match=r"z is an empty batch \(shape \[0, 8\]\)"):
        wrap_generator(Recording(), z_shape=(8,))(torch.empty(0, 8))
    with pytest.raises(ValueError, match="x is an empty batch"):
        wrap_autoencoder((nn.Linear(6, 4), nn.Linear(4, 6)), z_shape=(4,)).encode(torch.empty(0, 6))


@pytest.mark.parametrize("n", [True, False, 0, 2.0])
def test_sample_count_must_be_a_positive_int_not_a_bool(n):
    with pytest.raises(ValueError, match=f"n must be a positive int, got {n!r}"):
        wrap_generator(Recording(), z_shape=(8,)).sample(n)


@pytest.mark.parametrize("dims", [3, -4, (1, 5), True])
def test_dims_out_of_range_are_refused_not_wrapped_around(dims):
    latent = SphericalLatent(dims=dims)
    with pytest.raises(ValueError, match="dims must be ints in \\[-3, 2\\]"):
        latent(torch.randn(2, 4, 5))


def test_negative_dims_in_range_still_work():
    z = torch.randn(2, 4, 5)
    assert torch.equal(SphericalLatent(dims=-1)(z), SphericalLatent(dims=2)(z))


@pytest.mark.parametrize("flag", ["spherize", "center"])
@pytest.mark.parametrize("value", ["no", 0, None])
def test_flags_must_be_booleans(flag, value):
    with pytest.raises(ValueError, match=f"{flag} must be True or False, got {value!r}"):
        wrap_generator(Recording(), z_shape=(8,), **{flag: value})


def test_radius_must_be_a_number_not_a_bool():
    with pytest.raises(ValueError, match="radius must be a positive finite number or None"):
        wrap_generator(Recording(), z_shape=(8,), radius=True)


def test_prior_parameters_must_be_numbers_not_bools():
    with pytest.raises(ValueError, match="rate must be a positive finite number, got True"):
        sample_prior("poisson", (2, 3), rate=True)


def test_a_tiny_but_non_constant_vector_is_not_called_constant():
    z = torch.tensor([[1e-30, -2e-30, 3e-30, 0.0]])  # squares underflow in float32
    with pytest.raises(ValueError, match="underflow to zero in torch.float32.*not constant"):
        SphericalLatent(center=False)(z)
    expected = torch.tensor([[1.0, -2.0, 3.0, 0.0]]) / 14 ** 0.5
    torch.testing.assert_close(SphericalLatent(center=False)(z.double()).float(), expected)


def test_a_constant_vector_is_still_reported_as_constant():
    with pytest.raises(ValueError, match="zero vectors \\(a constant vector"):
        SphericalLatent()(torch.full((1, 4), 2.0))


@pytest.mark.parametrize("build", [
    lambda: wrap_generator(Recording(), False, z_shape=(8,)),
    lambda: wrap_autoencoder(nn.Linear(4, 4), False),
    lambda: SphericalLatent(False),
    lambda: SphericalGenerator(GeneratorAdapter(z_shape=(8,), generate=Recording()), False),
], ids=["wrap_generator", "wrap_autoencoder", "SphericalLatent", "SphericalGenerator"])
def test_everything_after_the_model_is_keyword_only(build):
    with pytest.raises(TypeError, match="positional argument"):
        build()


def test_the_wrappers_and_the_latent_module_take_the_sphere_settings_in_one_order():
    order = ["center", "spherize", "radius", "dims"]
    for function in (wrap_generator, wrap_autoencoder, SphericalLatent, SphericalGenerator, SphericalAutoencoder):
        parameters = inspect.signature(function).parameters
        assert [p for p in parameters if p in order] == order, function.__name__
        assert all(parameters[name].kind is inspect.Parameter.KEYWORD_ONLY for name in order), function.__name__
