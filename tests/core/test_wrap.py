import math

import pytest
import torch
from torch import nn

from sphere_plugins import (SAELoss, SphericalAutoencoder, UnknownAdapterError, list_priors, wrap_autoencoder,
                            wrap_generator)
from sphere_plugins.nets import ConvAutoencoder, ConvDecoder, ConvEncoder


class TinyGenerator(nn.Module):
    """z [N, 16] -> images [N, 1, 4, 4]; records what it was called with."""

    z_dim = 16

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 16)
        self.seen = None
        self.kwargs = None

    def forward(self, z, **kwargs):
        self.seen, self.kwargs = z, kwargs
        return torch.tanh(self.fc(z)).view(-1, 1, 4, 4)


def test_wrapper_with_both_steps_off_is_bit_identical_to_the_raw_model():
    torch.manual_seed(0)
    g = TinyGenerator()
    z = torch.randn(5, 16) * 3 + 1
    assert torch.equal(wrap_generator(g, spherize=False, center=False)(z), g(z))


def test_the_model_receives_centerized_latents_on_the_sqrt_d_sphere():
    g = TinyGenerator()
    wrap_generator(g)(torch.rand(4, 16) * 5)
    torch.testing.assert_close(g.seen.norm(dim=1), torch.full((4,), 4.0))
    torch.testing.assert_close(g.seen.mean(dim=1), torch.zeros(4), atol=1e-6, rtol=0)


def test_an_explicit_radius_overrides_the_adapter():
    g = TinyGenerator()
    wrap_generator(g, radius=1.5)(torch.randn(2, 16))
    torch.testing.assert_close(g.seen.norm(dim=1), torch.full((2,), 1.5))


def test_model_keyword_arguments_pass_through():
    g = TinyGenerator()
    wrap_generator(g)(torch.randn(2, 16), truncation_psi=0.7)
    assert g.kwargs == {"truncation_psi": 0.7}


@pytest.mark.parametrize("prior", list_priors())
def test_sample_works_for_every_registered_prior(prior):
    g = wrap_generator(TinyGenerator())
    images = g.sample(6, prior=prior, generator=torch.Generator().manual_seed(0))
    assert images.shape == (6, 1, 4, 4)
    assert torch.isfinite(images).all()


def test_latents_from_different_priors_share_the_sphere():
    g = wrap_generator(TinyGenerator())
    for prior in ("normal", "uniform", "poisson", "chi2"):
        z = g.latents(8, prior=prior, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(z.norm(dim=1), torch.full((8,), 4.0))
        torch.testing.assert_close(z.mean(dim=1), torch.zeros(8), atol=1e-5, rtol=0)


def test_default_prior_and_its_parameters_come_from_the_wrapper():
    g = wrap_generator(TinyGenerator(), spherize=False, center=False, prior="uniform", low=5.0, high=6.0)
    z = g.latents(10)
    assert z.min() >= 5.0 and z.max() <= 6.0


def test_vectors_that_centerize_to_zero_are_redrawn():
    # Bernoulli with p=0.5 in d=2 gives a constant vector half the time.
    g = wrap_generator(nn.Identity(), z_shape=(2,), prior="bernoulli")
    z = g.latents(200, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.norm(dim=1), torch.full((200,), math.sqrt(2)))


def test_a_prior_that_only_gives_constant_vectors_fails_clearly():
    g = wrap_generator(nn.Identity(), z_shape=(3,), prior="bernoulli", p=1.0)
    with pytest.raises(ValueError, match="zero after centerize"):
        g.latents(4)


def test_wrong_latent_width_names_the_expected_shape():
    with pytest.raises(ValueError, match=r"z must have shape \[N, 16\].*\[3, 15\]"):
        wrap_generator(TinyGenerator())(torch.randn(3, 15))


def test_integer_latents_are_rejected():
    with pytest.raises(ValueError, match="floating-point"):
        wrap_generator(TinyGenerator())(torch.ones(2, 16, dtype=torch.int64))


def test_nan_latents_raise_instead_of_producing_nan_images():
    z = torch.randn(2, 16)
    z[1, 3] = float("nan")
    with pytest.raises(ValueError, match=r"samples \[1\]"):
        wrap_generator(TinyGenerator())(z)


def test_unknown_prior_fails_at_wrap_time():
    with pytest.raises(KeyError, match="registered priors"):
        wrap_generator(TinyGenerator(), prior="cauchy")


def test_wrapping_leaves_the_global_random_state_alone():
    g = TinyGenerator()
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    wrap_generator(g, prior="poisson")
    assert torch.equal(torch.rand(3), expected)


def test_a_model_no_adapter_recognizes_gets_a_helpful_error():
    with pytest.raises(UnknownAdapterError, match="Linear.*z_shape=.*register"):
        wrap_generator(nn.Linear(3, 3))


def test_z_shape_lets_any_module_be_wrapped():
    g = wrap_generator(nn.Linear(3, 2), z_shape=3)
    assert g.sample(4).shape == (4, 2)


def test_wrapping_twice_is_refused():
    with pytest.raises(ValueError, match="already"):
        wrap_generator(wrap_generator(TinyGenerator()))


def test_interpolate_walks_the_great_circle_between_adapted_ends():
    g = TinyGenerator()
    wrapped = wrap_generator(g)
    z0, z1 = torch.randn(16), torch.randn(16)
    images = wrapped.interpolate(z0, z1, steps=5)
    assert images.shape == (5, 1, 4, 4)
    path = g.seen
    torch.testing.assert_close(path.norm(dim=1), torch.full((5,), 4.0))
    torch.testing.assert_close(path[0], wrapped.adapt(z0[None])[0])
    torch.testing.assert_close(path[-1], wrapped.adapt(z1[None])[0])


def test_wrapper_moves_with_the_model_and_exposes_its_parameters():
    g = TinyGenerator()
    wrapped = wrap_generator(g).to(torch.float64)
    assert wrapped.latents(2).dtype == torch.float64
    assert {id(p) for p in wrapped.parameters()} == {id(p) for p in g.parameters()}


# autoencoders


def _ae():
    torch.manual_seed(0)
    return ConvAutoencoder(channels=1, resolution=8, z_dim=6, width=8)


def test_codes_are_centerized_and_on_the_sphere():
    sae = wrap_autoencoder(_ae())
    z = sae.encode(torch.rand(5, 1, 8, 8) * 2 - 1)
    torch.testing.assert_close(z.norm(dim=1), torch.full((5,), math.sqrt(6)))
    torch.testing.assert_close(z.mean(dim=1), torch.zeros(5), atol=1e-6, rtol=0)


def test_autoencoder_with_both_steps_off_matches_the_raw_model():
    ae = _ae()
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    rec, z = wrap_autoencoder(ae, spherize=False, center=False)(x)
    assert torch.equal(rec, ae(x))
    assert torch.equal(z, ae.encode(x))


def test_an_encoder_decoder_pair_is_an_autoencoder():
    pair = (ConvEncoder(1, 8, 6, 8), ConvDecoder(1, 8, 6, 8))
    sae = wrap_autoencoder(pair, z_shape=6)
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    rec, z = sae(x)
    assert rec.shape == x.shape and z.shape == (2, 6)
    assert sae.sample(3, prior="chi2").shape == (3, 1, 8, 8)


def test_the_code_shape_is_learned_from_the_first_encode():
    pair = (ConvEncoder(1, 8, 5, 8), ConvDecoder(1, 8, 5, 8))
    sae = wrap_autoencoder(pair)
    with pytest.raises(ValueError, match="z_shape="):
        sae.sample(2)
    sae.encode(torch.zeros(1, 1, 8, 8) + 0.1 * torch.randn(1, 1, 8, 8))
    assert sae.sample(2).shape == (2, 1, 8, 8)


def test_loss_is_reconstruction_only_and_trains_the_autoencoder():
    sae = wrap_autoencoder(_ae())
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    rec, _ = sae(x)
    torch.testing.assert_close(sae.loss(x), ((x - rec) ** 2).mean())
    sae.loss(x).backward()
    assert all(p.grad is not None for p in sae.parameters())


def test_a_custom_loss_is_used():
    sae = wrap_autoencoder(_ae(), loss=SAELoss(p=1))
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    torch.testing.assert_close(sae.loss(x), (x - sae(x).reconstruction).abs().mean())


def test_decode_rejects_codes_of_the_wrong_shape():
    sae = wrap_autoencoder(_ae())
    with pytest.raises(ValueError, match=r"\[N, 6\]"):
        sae.decode(torch.randn(2, 7))


def test_encoder_output_of_the_wrong_shape_is_reported():
    sae = wrap_autoencoder(_ae(), z_shape=4)
    with pytest.raises(ValueError, match="encoder output must have shape"):
        sae.encode(torch.zeros(1, 1, 8, 8))


def test_out_of_range_images_are_rejected_when_the_adapter_declares_a_range():
    sae = wrap_autoencoder(_ae())
    sae.adapter.input_range = (-1.0, 1.0)
    with pytest.raises(ValueError, match=r"images in \[-1, 1\].*255"):
        sae.encode(torch.full((1, 1, 8, 8), 255.0))


def test_unchecked_forward_gives_the_checked_result_and_skips_only_value_checks():
    sae = wrap_autoencoder(_ae())
    sae.adapter.input_range = (-1.0, 1.0)
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    checked, unchecked = sae(x), sae(x, check=False)
    assert torch.equal(checked.reconstruction, unchecked.reconstruction) and torch.equal(checked.latent, unchecked.latent)
    assert sae(torch.full((1, 1, 8, 8), 255.0), check=False).reconstruction.shape == (1, 1, 8, 8)
    with pytest.raises(ValueError, match="encoder output must have shape"):
        wrap_autoencoder(_ae(), z_shape=4).encode(x, check=False)


def test_sample_decodes_prior_draws_on_the_sphere():
    sae = wrap_autoencoder(_ae())
    assert isinstance(sae, SphericalAutoencoder)
    for prior in ("normal", "uniform", "poisson", "chi2"):
        assert torch.isfinite(sae.sample(4, prior=prior)).all()


def test_something_without_encode_and_decode_is_not_an_autoencoder():
    with pytest.raises(UnknownAdapterError, match="autoencoder"):
        wrap_autoencoder(nn.Linear(2, 2))


def test_interpolate_takes_batched_endpoints_pair_by_pair():
    gen = wrap_generator(TinyGenerator())
    z0, z1 = torch.randn(3, 16), torch.randn(3, 16)
    images = gen.interpolate(z0, z1, steps=4)
    assert images.shape == (12, 1, 4, 4)
    for pair in range(3):
        one = gen.interpolate(z0[pair], z1[pair], steps=4)
        torch.testing.assert_close(images[4 * pair: 4 * pair + 4], one)
    gen.interpolate(z0, z1, steps=4)
    ends = gen.model.seen.view(3, 4, 16)
    torch.testing.assert_close(ends[:, 0], gen.adapt(z0))
    torch.testing.assert_close(ends[:, -1], gen.adapt(z1))


def test_a_generator_given_only_in_model_kwargs_seeds_the_prior_draw_too():
    gen = wrap_generator(TinyGenerator())
    first = gen.sample(2, prior="chi2", model_kwargs={"generator": torch.Generator().manual_seed(5)})
    second = gen.sample(2, prior="chi2", model_kwargs={"generator": torch.Generator().manual_seed(5)})
    assert torch.equal(first, second)


def test_sample_latents_and_interpolate_build_no_autograd_graph_unless_asked():
    torch.manual_seed(0)
    g = wrap_generator(TinyGenerator())
    sae = wrap_autoencoder(ConvAutoencoder(channels=1, resolution=8, z_dim=6, width=8))
    z0, z1 = torch.randn(2, 16), torch.randn(2, 16)
    for out in (g.sample(3), g.latents(3), g.interpolate(z0, z1, 3), sae.sample(3), sae.latents(3)):
        assert out.grad_fn is None and not out.requires_grad
    assert not torch.is_inference(g.sample(3))  # plain tensors: a discriminator can still train on them
    for out in (g.sample(3, grad=True), g.interpolate(z0, z1, 3, grad=True), sae.sample(3, grad=True)):
        assert out.grad_fn is not None
    g.sample(2, grad=True).sum().backward()
    assert g.model.fc.weight.grad is not None


def test_grad_must_be_a_bool():
    with pytest.raises(ValueError, match="grad must be True or False, got 'yes'"):
        wrap_generator(TinyGenerator()).sample(2, grad="yes")
