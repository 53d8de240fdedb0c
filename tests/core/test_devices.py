"""The core keeps tensors on their device and dtype; these run where a CUDA device exists."""

import pytest
import torch

from sphere_plugins import SphericalLatent, list_priors, sample_prior, slerp, wrap_autoencoder, wrap_generator
from sphere_plugins.nets import ConvAutoencoder

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.parametrize("prior", list_priors())
def test_priors_draw_on_the_device_of_a_cuda_generator(prior):
    generator = torch.Generator("cuda").manual_seed(0)
    z = sample_prior(prior, (4, 32), generator=generator, device="cuda")
    again = sample_prior(prior, (4, 32), generator=torch.Generator("cuda").manual_seed(0), device="cuda")
    assert z.device.type == "cuda"
    assert torch.equal(z, again)


@cuda
def test_latent_ops_stay_on_cuda_in_half_precision():
    z = torch.randn(8, 512, device="cuda", dtype=torch.float16)
    out = SphericalLatent(radius=None)(z)
    assert out.device.type == "cuda" and out.dtype == torch.float16
    torch.testing.assert_close(out.float().norm(dim=1), torch.full((8,), 512**0.5, device="cuda"), rtol=2e-3, atol=0)
    assert slerp(out, out.flip(0), 0.5).device.type == "cuda"


@cuda
def test_wrappers_sample_on_the_model_device():
    ae = ConvAutoencoder(resolution=8, z_dim=6, width=8).cuda()
    sae = wrap_autoencoder(ae)
    assert sae.sample(3, prior="poisson").device.type == "cuda"
    g = wrap_generator(torch.nn.Linear(6, 2).cuda(), z_shape=6)
    assert g.sample(3, prior="chi2").device.type == "cuda"


def test_wrappers_sample_on_the_cpu_model_device_and_dtype():
    g = wrap_generator(torch.nn.Linear(6, 2).double(), z_shape=6)
    assert g.latents(3).dtype == torch.float64 and g.sample(3).device.type == "cpu"
