"""AutoencoderKL, VQModel and AutoencoderTiny wrapped as spherical autoencoders and as decoders."""

import math

import diffusers
import pytest
import torch

from sphere_plugins import list_priors, plugin_names, wrap_autoencoder, wrap_generator


def _by_hand(code, dims):
    """centerize + spherize to radius sqrt(group size), written out independently of the core."""
    size = math.prod(code.shape[d] for d in dims)
    centered = code - code.mean(dim=dims, keepdim=True)
    return centered / centered.pow(2).sum(dim=dims, keepdim=True).sqrt() * math.sqrt(size)


def test_plugin_is_discovered_through_its_entry_point():
    assert "diffusers" in plugin_names()


@torch.no_grad()
def test_both_steps_off_encode_is_the_scaled_posterior_mode(vae, images):
    wrapped = wrap_autoencoder(vae, spherize=False, center=False)
    raw = vae.encode(images).latent_dist.mode() * vae.config.scaling_factor
    assert torch.equal(wrapped.encode(images), raw)


@torch.no_grad()
def test_both_steps_off_reconstruction_is_the_raw_decode_path(vae, images):
    reconstruction, _ = wrap_autoencoder(vae, spherize=False, center=False)(images)
    latents = vae.encode(images).latent_dist.mode() * vae.config.scaling_factor
    assert torch.equal(reconstruction, vae.decode(latents / vae.config.scaling_factor).sample)


@torch.no_grad()
def test_codes_are_the_hand_centerized_spherized_scaled_mode(vae, images):
    raw = vae.encode(images).latent_dist.mode() * vae.config.scaling_factor
    torch.testing.assert_close(wrap_autoencoder(vae).encode(images), _by_hand(raw, (1, 2, 3)))


@torch.no_grad()
def test_codes_lie_on_the_sphere_of_radius_sqrt_d_with_zero_mean(vae, images):
    z = wrap_autoencoder(vae).encode(images)
    assert z.shape == (4, 4, 8, 8)
    torch.testing.assert_close(z.flatten(1).norm(dim=1), torch.full((4,), 16.0))  # sqrt(4 * 8 * 8)
    assert z.flatten(1).mean(dim=1).abs().max() < 1e-5


@torch.no_grad()
def test_per_position_dims_put_every_latent_pixel_on_its_own_sphere(vae, images):
    z = wrap_autoencoder(vae, dims=(1,)).encode(images)
    torch.testing.assert_close(z.norm(dim=1), torch.full((4, 8, 8), 2.0))  # sqrt(4 channels)
    assert z.mean(dim=1).abs().max() < 1e-5


@torch.no_grad()
def test_per_channel_dims_put_every_latent_channel_on_its_own_sphere(vae, images):
    z = wrap_autoencoder(vae, dims=(2, 3)).encode(images)
    torch.testing.assert_close(z.flatten(2).norm(dim=2), torch.full((4, 4), 8.0))  # sqrt(8 * 8)
    assert z.flatten(2).mean(dim=2).abs().max() < 1e-5


def test_loss_is_the_mean_squared_reconstruction_error(vae, images):
    wrapped = wrap_autoencoder(vae)
    with torch.no_grad():
        reconstruction, _ = wrapped(images)
        loss = wrapped.loss(images)
    torch.testing.assert_close(loss, (images - reconstruction).pow(2).mean())


def test_loss_backpropagates_into_the_encoder_and_decoder_weights(images):
    model = diffusers.AutoencoderKL(block_out_channels=(32,), sample_size=16, latent_channels=4)
    wrap_autoencoder(model).loss(images).backward()
    for weight in (model.encoder.conv_in.weight, model.quant_conv.weight, model.decoder.conv_out.weight):
        assert weight.grad is not None and weight.grad.abs().sum() > 0


@torch.no_grad()
def test_decoder_generator_divides_the_latent_by_the_scaling_factor(vae):
    z = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    images = wrap_generator(vae, spherize=False, center=False)(z)
    assert torch.equal(images, vae.decode(z / vae.config.scaling_factor).sample)


@torch.no_grad()
@pytest.mark.parametrize("prior", list_priors())
def test_decoder_samples_every_registered_prior(vae, prior):
    wrapped = wrap_generator(vae, prior=prior)
    images = wrapped.sample(2, generator=torch.Generator().manual_seed(0))
    assert images.shape == (2, 3, 16, 16) and torch.isfinite(images).all()


@torch.no_grad()
def test_latent_size_option_encodes_another_resolution(vae):
    wrapped = wrap_autoencoder(vae, options={"latent_size": 4})
    assert wrapped.encode(torch.zeros(2, 3, 8, 8).uniform_(-1, 1)).shape == (2, 4, 4, 4)


def test_shift_factor_is_subtracted_before_scaling(images):
    model = diffusers.AutoencoderKL(block_out_channels=(32,), sample_size=16, latent_channels=4,
                                    scaling_factor=0.5, shift_factor=0.25).eval()
    with torch.no_grad():
        code = wrap_autoencoder(model, spherize=False, center=False).encode(images)
        assert torch.equal(code, (model.encode(images).latent_dist.mode() - 0.25) * 0.5)


@torch.no_grad()
def test_vqmodel_codes_are_prequantization_latents_decoded_through_the_codebook(images):
    model = diffusers.VQModel(block_out_channels=(32,), sample_size=16, latent_channels=3,
                              num_vq_embeddings=16, scaling_factor=0.5).eval()
    wrapped = wrap_autoencoder(model, spherize=False, center=False)
    reconstruction, z = wrapped(images)
    assert torch.equal(z, model.encode(images).latents * 0.5)
    assert torch.equal(reconstruction, model.decode(z / 0.5).sample)
    spherical = wrap_autoencoder(model).encode(images)
    torch.testing.assert_close(spherical.flatten(1).norm(dim=1), torch.full((4,), math.sqrt(3 * 16 * 16)))


def _tiny_taesd():
    return diffusers.AutoencoderTiny(encoder_block_out_channels=(32, 32), decoder_block_out_channels=(32, 32),
                                     num_encoder_blocks=(1, 1), num_decoder_blocks=(1, 1)).eval()


def test_autoencoder_tiny_without_sample_size_asks_for_a_latent_size():
    with pytest.raises(ValueError, match="latent_size"):
        wrap_autoencoder(_tiny_taesd())


@torch.no_grad()
def test_autoencoder_tiny_both_steps_off_is_its_raw_encode_decode(images):
    model = _tiny_taesd()
    wrapped = wrap_autoencoder(model, spherize=False, center=False, options={"latent_size": 8})
    reconstruction, z = wrapped(images)
    assert torch.equal(z, model.encode(images).latents)
    assert torch.equal(reconstruction, model.decode(model.encode(images).latents).sample)


def test_wrong_channel_count_names_the_expected_channels(vae):
    with pytest.raises(ValueError, match="3 channel"):
        wrap_autoencoder(vae).encode(torch.zeros(2, 1, 16, 16))


def test_images_outside_minus_one_one_are_rejected(vae):
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        wrap_autoencoder(vae).encode(torch.full((2, 3, 16, 16), 255.0))


def test_wrong_resolution_points_to_the_latent_size_option(vae):
    with pytest.raises(ValueError, match="latent_size"):
        wrap_autoencoder(vae).encode(torch.zeros(2, 3, 32, 32))


def test_z_shape_with_the_wrong_latent_channels_is_rejected(vae):
    with pytest.raises(ValueError, match=r"z_shape must be \(4, h, w\)"):
        wrap_autoencoder(vae, z_shape=(3, 8, 8))


def test_unknown_adapter_option_is_rejected(vae):
    with pytest.raises(ValueError, match="num_steps"):
        wrap_autoencoder(vae, options={"num_steps": 3})


def test_unsupported_diffusers_autoencoder_lists_the_supported_classes():
    class Unsupported(diffusers.ModelMixin):
        def encode(self, x):
            return x

        def decode(self, z):
            return z

    with pytest.raises(ValueError, match="AutoencoderKL, AutoencoderTiny, VQModel"):
        wrap_autoencoder(Unsupported())
