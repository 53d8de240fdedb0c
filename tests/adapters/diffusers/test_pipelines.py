"""Diffusion pipelines started from chosen (spherized) noise through their public parts."""

import math

import diffusers
import pytest
import torch

from sphere_plugins import list_priors, wrap_generator

SHAPE = (3, 8, 8)  # the tiny pipelines' noise: 3 channels, 8x8


def _noise(n, seed):
    return torch.randn(n, *SHAPE, generator=torch.Generator().manual_seed(seed))


class FirstUnetInput:
    """Records the sample of every unet call (a forward pre-hook; the model is not changed)."""

    def __init__(self, unet):
        self.inputs = []
        self.handle = unet.register_forward_pre_hook(lambda module, args: self.inputs.append(args[0].clone()))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def test_ddpm_with_both_steps_off_reproduces_the_pipeline_from_the_same_noise(ddpm):
    reference = ddpm(batch_size=2, generator=torch.Generator().manual_seed(0), num_inference_steps=10,
                     output_type="pt").images * 2 - 1
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(2, *SHAPE, generator=generator)  # the draw the pipeline makes first
    images = wrap_generator(ddpm, spherize=False, center=False)(noise, generator=generator, num_inference_steps=10)
    torch.testing.assert_close(images, reference, atol=1e-6, rtol=0)


def test_ddim_with_eta_reproduces_the_pipeline_from_the_same_noise(ddim):
    reference = ddim(batch_size=2, generator=torch.Generator().manual_seed(3), num_inference_steps=5, eta=0.5,
                     output_type="pt").images * 2 - 1
    generator = torch.Generator().manual_seed(3)
    noise = torch.randn(2, *SHAPE, generator=generator)
    wrapped = wrap_generator(ddim, spherize=False, center=False, options={"num_inference_steps": 5, "eta": 0.5})
    torch.testing.assert_close(wrapped(noise, generator=generator), reference, atol=1e-6, rtol=0)


def test_first_unet_call_receives_the_centerized_spherized_noise(ddpm):
    noise = _noise(2, 1) * 3 + 2
    expected = noise - noise.mean(dim=(1, 2, 3), keepdim=True)
    expected = expected / expected.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * math.sqrt(math.prod(SHAPE))
    with FirstUnetInput(ddpm.unet) as record:
        wrap_generator(ddpm)(noise)
    torch.testing.assert_close(record.inputs[0], expected)


def test_default_steps_are_the_pipeline_default_capped_at_the_training_steps(ddpm):
    with FirstUnetInput(ddpm.unet) as record:
        wrap_generator(ddpm).sample(1)
    assert len(record.inputs) == 10  # DDPMPipeline's default 1000 > num_train_timesteps=10


def test_num_inference_steps_option_sets_the_number_of_unet_calls(ddim):
    with FirstUnetInput(ddim.unet) as record:
        wrap_generator(ddim, options={"num_inference_steps": 3}).sample(1)
    assert len(record.inputs) == 3


def _seeded_sample(wrapped, seed):
    """Seed both the prior draw and the scheduler's own noise (DDPM adds noise at every step)."""
    return wrapped.sample(2, generator=torch.Generator().manual_seed(seed),
                          model_kwargs={"generator": torch.Generator().manual_seed(seed + 100)})


def test_sampling_with_seeded_generators_is_deterministic(ddpm):
    wrapped = wrap_generator(ddpm, prior="uniform")
    first, again, other = _seeded_sample(wrapped, 0), _seeded_sample(wrapped, 0), _seeded_sample(wrapped, 1)
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_one_seed_reproduces_ddpm_including_its_per_step_noise(ddpm):
    wrapped = wrap_generator(ddpm)
    first = wrapped.sample(2, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(321)  # the global RNG must not matter
    assert torch.equal(first, wrapped.sample(2, generator=torch.Generator().manual_seed(5)))
    assert not torch.equal(first, wrapped.sample(2, generator=torch.Generator().manual_seed(6)))


def test_ddim_with_eta_zero_depends_only_on_the_prior_seed(ddim):
    wrapped = wrap_generator(ddim, options={"num_inference_steps": 4})
    first = wrapped.sample(2, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(123)  # the global RNG is not used
    assert torch.equal(first, wrapped.sample(2, generator=torch.Generator().manual_seed(0)))


def test_samples_are_nchw_images_in_minus_one_one(ddim):
    images = wrap_generator(ddim).sample(3, generator=torch.Generator().manual_seed(0))
    assert images.shape == (3, *SHAPE)
    assert images.min() >= -1 and images.max() <= 1 and images.std() > 0


@pytest.mark.parametrize("prior", list_priors())
def test_pipeline_samples_every_registered_prior(ddim, prior):
    wrapped = wrap_generator(ddim, prior=prior, options={"num_inference_steps": 2})
    images = wrapped.sample(2, generator=torch.Generator().manual_seed(0))
    assert images.shape == (2, *SHAPE) and torch.isfinite(images).all()


def test_eta_is_rejected_for_a_scheduler_without_it(ddpm):
    with pytest.raises(ValueError, match="eta"):
        wrap_generator(ddpm, options={"eta": 0.5}).sample(1)


def test_wrong_noise_shape_is_rejected(ddpm):
    with pytest.raises(ValueError, match=r"\[N, 3, 8, 8\]"):
        wrap_generator(ddpm)(torch.randn(1, 3, 16, 16))


@pytest.fixture(scope="module")
def consistency():
    """A pipeline whose __call__ takes latents= (one-step consistency sampling)."""
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(32, 64),
                                 down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2,
                                 layers_per_block=1)
    return diffusers.ConsistencyModelPipeline(unet=unet, scheduler=diffusers.CMStochasticIterativeScheduler())


def test_latents_pipeline_with_both_steps_off_is_the_pipeline_called_with_those_latents(consistency):
    noise = _noise(2, 4)
    reference = consistency(batch_size=2, latents=noise, output_type="pt").images * 2 - 1
    images = wrap_generator(consistency, spherize=False, center=False)(noise)
    assert torch.equal(images, reference)


def test_latents_pipeline_first_unet_input_is_the_spherized_noise_scaled_by_the_scheduler(consistency):
    noise = _noise(2, 5)
    wrapped = wrap_generator(consistency)
    sigma, sigma_data = 80.0, 0.5  # CMStochasticIterativeScheduler's sigma_max and sigma_data
    with FirstUnetInput(consistency.unet) as record:
        wrapped(noise)
    expected = wrapped.adapt(noise) * sigma / math.sqrt(sigma**2 + sigma_data**2)
    torch.testing.assert_close(record.inputs[0], expected)


def test_pipeline_without_latents_or_a_known_loop_is_rejected(ddpm):
    pipe = diffusers.ScoreSdeVePipeline(unet=ddpm.unet, scheduler=diffusers.ScoreSdeVeScheduler())
    with pytest.raises(ValueError, match="DDPMPipeline, DDIMPipeline"):
        wrap_generator(pipe)
