"""torch.compile runs our StyleGAN2 networks and the spherical wrapper with eager's outputs (float32, 1e-5)."""

import torch
from sphere_stylegan2.configs import tiny_discriminator, tiny_generator

from sphere_plugins import wrap_generator


def test_compiled_discriminator_and_wrapped_generator_match_eager():
    """The wrapped generator compiles G's mapping and synthesis with the constraint (the check's host read
    splits the graph there); compile_threads=1 spares worker-pool start-up on a small machine."""
    torch._dynamo.reset()
    G = tiny_generator(resolution=8, channel_max=16, z_dim=32, w_dim=32, seed=0).eval()
    D = tiny_discriminator(resolution=8, channel_max=16, seed=1).eval()
    wrapped = wrap_generator(G)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, 32, generator=g) * 3 + 1  # off the sphere, so the wrapper's constraint does real work
    images = torch.rand(3, 3, 8, 8, generator=g) * 2 - 1
    with torch.no_grad(), torch._inductor.config.patch(compile_threads=1):
        for net, args in ((D, (images,)), (wrapped, (z,))):
            expected = net(*args)
            got = torch.compile(net)(*args)
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert not torch.equal(wrapped(z), G(z))  # the wrapper changed the latents, so its parity is not G's again
