"""latent_noise: Gaussian noise on the sphere before the decoder, in training mode only, off by default."""

import math

import pytest
import torch

from sphere_plugins.nets import ConvAutoencoder
from sphere_plugins.training import SAEObjective, TrainConfig, conv_objective, train
from sphere_plugins.wrap import wrap_autoencoder


def _sae(**kwargs):
    torch.manual_seed(0)
    return wrap_autoencoder(ConvAutoencoder(channels=1, resolution=8, z_dim=6, width=8), **kwargs)


def _images(n=8):
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1


def _codes(n, d, radius):
    z = torch.randn(n, d, generator=torch.Generator().manual_seed(2))
    z = z - z.mean(dim=1, keepdim=True)
    return radius * z / z.norm(dim=1, keepdim=True)


@pytest.mark.parametrize("center", [True, False])
def test_perturbed_codes_stay_on_the_sphere_and_in_the_centered_subspace(center):
    sae = wrap_autoencoder((torch.nn.Identity(), torch.nn.Identity()), z_shape=32, radius=3.0, center=center)
    noisy = sae.perturb(_codes(200, 32, 3.0), 0.5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(noisy.norm(dim=1), torch.full((200,), 3.0))
    if center:
        torch.testing.assert_close(noisy.mean(dim=1), torch.zeros(200), atol=1e-6, rtol=0)
    else:
        assert noisy.mean(dim=1).abs().max() > 1e-3  # no centering when the wrapper does not center


@pytest.mark.parametrize("sigma", [0.1, 0.5, 1.0])
def test_noise_turns_codes_by_the_angle_sigma_sets(sigma):
    # Noise of norm ~ sigma * r (one of its d dims removed by centering) nearly orthogonal to the code:
    # cos(code, noisy) ~ 1 / sqrt(1 + sigma^2 (d - 1) / d) for large d.
    d, radius = 512, math.sqrt(512)
    sae = wrap_autoencoder((torch.nn.Identity(), torch.nn.Identity()), z_shape=d)
    z = _codes(400, d, radius)
    noisy = sae.perturb(z, sigma, generator=torch.Generator().manual_seed(0))
    cos = (z * noisy).sum(dim=1) / radius**2
    expected = 1 / math.sqrt(1 + sigma**2 * (d - 1) / d)
    assert abs(float(cos.mean()) - expected) < 0.01
    assert float(cos.std()) < 0.03


def test_off_by_default_the_loss_is_bit_identical_and_draws_no_random_numbers():
    sae, x = _sae(), _images()
    assert sae.latent_noise == 0.0 and sae.training
    state = torch.random.get_rng_state()
    expected = sae.loss_fn(x, sae.adapter.decode(sae.encode(x)))
    assert torch.equal(sae.loss(x), expected)
    assert torch.equal(SAEObjective(sae)(x)[0], expected)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_training_mode_decodes_the_perturbed_code_against_the_clean_image():
    sae, x = _sae(latent_noise=0.3), _images()
    torch.manual_seed(5)
    loss = sae.loss(x)
    torch.manual_seed(5)
    expected = sae.loss_fn(x, sae.adapter.decode(sae.perturb(sae.encode(x), 0.3)))
    assert torch.equal(loss, expected)
    assert not torch.allclose(loss, sae.loss_fn(x, sae.adapter.decode(sae.encode(x))))


def test_eval_mode_and_encode_never_add_noise():
    sae, x = _sae(latent_noise=0.5).eval(), _images()
    state = torch.random.get_rng_state()
    rec, z = sae(x)
    assert torch.equal(rec, sae.adapter.decode(sae.encode(x)))
    assert torch.equal(z, sae.encode(x))
    assert torch.equal(torch.random.get_rng_state(), state)


def test_forward_returns_the_clean_code_while_training_with_noise():
    sae, x = _sae(latent_noise=0.5), _images()
    assert torch.equal(sae(x).latent, sae.encode(x))


def test_seeded_noise_reproduces_and_different_seeds_differ():
    sae, x = _sae(latent_noise=0.2), _images()
    losses = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        losses.append(sae.loss(x))
    assert torch.equal(losses[0], losses[1])
    assert not torch.equal(losses[0], losses[2])


def test_the_objectives_latent_noise_overrides_the_wrappers():
    sae, x = _sae(), _images()
    objective = SAEObjective(sae, latent_noise=0.4)
    torch.manual_seed(7)
    loss = objective(x)[0]
    torch.manual_seed(7)
    assert torch.equal(loss, ((x - sae.adapter.decode(sae.perturb(sae.encode(x), 0.4))) ** 2).mean())
    assert torch.equal(SAEObjective(_sae(latent_noise=0.4), latent_noise=0.0)(x)[0], sae.loss(x))


def test_gradients_reach_the_encoder_through_the_noise():
    sae, x = _sae(latent_noise=0.3), _images()
    sae.loss(x).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in sae.adapter.module.encoder.parameters())


def test_conv_objective_trains_with_latent_noise():
    torch.manual_seed(0)
    objective = conv_objective("sae", resolution=8, z_dim=6, width=8, latent_noise=0.2)
    assert objective.wrapper.latent_noise == 0.2
    config = TrainConfig(steps=3, batch_size=8, lr=1e-3, log_every=1, progress=False, cpu=True, seed=0)
    result = train(objective, _images(32), config)
    assert len(result.history) == 3 and all(math.isfinite(float(r["loss"])) for r in result.history)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "0.1", True])
def test_bad_latent_noise_is_rejected_naming_the_argument(bad):
    with pytest.raises(ValueError, match="latent_noise must be a finite number >= 0"):
        _sae(latent_noise=bad)
    with pytest.raises(ValueError, match="latent_noise"):
        SAEObjective(_sae(), latent_noise=bad)
    with pytest.raises(ValueError, match="latent_noise"):
        _sae()(_images(), latent_noise=bad)


def test_latent_noise_on_a_baseline_objective_is_rejected():
    with pytest.raises(ValueError, match="latent_noise applies to the spherical autoencoder"):
        conv_objective("vae", resolution=8, z_dim=6, width=8, latent_noise=0.1)
