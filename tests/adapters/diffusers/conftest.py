"""Tiny diffusers models shared by the adapter tests (random weights, built once per module)."""

import pytest
import torch

from sphere_plugins import load_model


@pytest.fixture(scope="module")
def vae():
    return load_model("diffusers:tiny-vae", seed=0).eval()


@pytest.fixture(scope="module")
def ddpm():
    return load_model("diffusers:tiny-ddpm", resolution=8, num_train_timesteps=10, seed=0)


@pytest.fixture(scope="module")
def ddim():
    return load_model("diffusers:tiny-ddpm", resolution=8, num_train_timesteps=10, scheduler="ddim", seed=0)


@pytest.fixture
def images():
    """Four 3-channel 16x16 images in [-1, 1]."""
    return torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
