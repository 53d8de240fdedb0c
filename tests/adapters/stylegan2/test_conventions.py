"""NVIDIA's conventions from the command line and Python: seeds as np.random.RandomState draws, noise modes."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from sphere_plugins import load_model, save_model, wrap_generator
from sphere_plugins.generation import sample_seeds, seed_images, seed_latents

TINY = dict(resolution=8, channels=3, z_dim=16, w_dim=16, channel_max=8, seed=0)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "sphere_plugins", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def _noisy_generator():
    G = load_model("stylegan2:tiny", **TINY)
    with torch.no_grad():
        for name, parameter in G.named_parameters():
            if name.endswith("noise_strength"):  # zero at init: make the noise show in the images
                parameter.fill_(0.5)
    return G


def _nvidia_z(seed, z_dim):
    """NVIDIA's generate.py: z = np.random.RandomState(seed).randn(1, G.z_dim), cast to float32 by the mapping."""
    return torch.from_numpy(np.random.RandomState(seed).randn(1, z_dim)).float()


def _nvidia_pixels(image):
    """NVIDIA's generate.py: (img * 127.5 + 128).clamp(0, 255).to(uint8), HWC."""
    return (image.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0].numpy()


def test_nvlabs_seeds_give_numpys_randomstate_draws():
    G = load_model("stylegan2:tiny", **TINY)
    z = seed_latents(wrap_generator(G, center=False, spherize=False), [0, 7, 2**32 - 1], convention="nvlabs")
    expected = np.stack([np.random.RandomState(s).randn(16) for s in (0, 7, 2**32 - 1)]).astype(np.float32)
    assert z.dtype == torch.float32 and np.array_equal(z.numpy(), expected)
    on_sphere = seed_latents(wrap_generator(G), [7], convention="nvlabs")[0]
    centered = torch.from_numpy(expected[1]) - float(expected[1].mean())
    torch.testing.assert_close(on_sphere, centered / centered.norm() * 4.0)


def test_the_nvlabs_convention_refuses_other_priors_and_large_seeds():
    wrapper = wrap_generator(load_model("stylegan2:tiny", **TINY))
    with pytest.raises(ValueError, match="'nvlabs' draws N\\(0, I\\).*prior 'chi2'"):
        seed_latents(wrapper, [0], "chi2", convention="nvlabs")
    with pytest.raises(ValueError, match="takes seeds in 0..4294967295"):
        seed_latents(wrapper, [2**32], convention="nvlabs")
    with pytest.raises(ValueError, match="convention must be one of torch, nvlabs, got 'numpy'"):
        seed_latents(wrapper, [0], convention="numpy")


def test_sample_reproduces_nvidias_generate_images_exactly(tmp_path):
    G = _noisy_generator()
    save_model(G, tmp_path / "net")
    result = cli("sample", tmp_path / "net", "--seeds", "3,11", "--seed-convention", "nvlabs", "--no-center",
                 "--no-spherize", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    for seed in (3, 11):
        with torch.no_grad():
            expected = _nvidia_pixels(G(_nvidia_z(seed, 16), None, noise_mode="const"))
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / f"seed{seed:04d}.png")), expected)
    torch_seeds = cli("sample", tmp_path / "net", "--seeds", "3", "--no-center", "--no-spherize", "--out",
                      tmp_path / "torch")
    assert torch_seeds.returncode == 0, torch_seeds.stderr
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "torch" / "seed0003.png")),
                              np.asarray(Image.open(tmp_path / "out" / "seed0003.png")))


@torch.no_grad()
def test_noise_modes_differ_as_their_names_say():
    G = _noisy_generator()
    wrapper = wrap_generator(G, center=False, spherize=False)
    z = seed_latents(wrapper, [5])

    def image(mode, seed=5):
        return next(sample_seeds(wrapper, [seed], model_kwargs={"noise_mode": mode}))[1]

    assert torch.equal(image("const"), G(z, noise_mode="const")[0])  # the fixed noise_const buffers
    assert torch.equal(image("none"), G(z, noise_mode="none")[0])  # no noise at all
    assert not torch.equal(image("const"), image("none"))
    assert torch.equal(image("random"), image("random"))  # drawn from the seed: reproducible
    assert not torch.equal(image("random"), image("const")) and not torch.equal(image("random"), image("none"))
    assert not torch.equal(image("random", 5)[None], G(z, noise_mode="random"))  # not the global RNG's draw


def test_noise_mode_on_the_command_line_and_refused_for_models_without_noise(tmp_path):
    save_model(_noisy_generator(), tmp_path / "net")
    pixels = {}
    for mode in ("const", "random", "none"):
        result = cli("sample", tmp_path / "net", "--seeds", "1", "--noise-mode", mode, "--out", tmp_path / mode)
        assert result.returncode == 0, result.stderr
        pixels[mode] = np.asarray(Image.open(tmp_path / mode / "seed0001.png"))
    assert not np.array_equal(pixels["const"], pixels["none"]) and not np.array_equal(pixels["random"], pixels["const"])
    refused = cli("sample", "builtin:tiny-ae", "--seeds", "1", "--noise-mode", "random", "--out", tmp_path / "ae")
    assert refused.returncode == 1 and "--noise-mode does not apply to 'builtin:tiny-ae'" in refused.stderr
    assert not (tmp_path / "ae").exists()
    usage = cli("sample", tmp_path / "net", "--seed-convention", "nvlabs", "--prior", "chi2", "--out", tmp_path / "x")
    assert usage.returncode == 2 and "--seed-convention nvlabs draws N(0, I)" in usage.stderr


def test_only_random_noise_makes_seed_by_seed_generation_run_one_seed_at_a_time():
    wrapper = wrap_generator(_noisy_generator())
    calls = []
    generate = wrapper.adapter.generate
    wrapper.adapter.generate = lambda z, **kwargs: calls.append(z.shape[0]) or generate(z, **kwargs)
    for mode in ("const", "none", "random"):
        calls.clear()
        images = seed_images(wrapper, [1, 2, 3], model_kwargs={"noise_mode": mode})
        assert images.shape[0] == 3 and calls == ([1, 1, 1] if mode == "random" else [3])
