"""Wrappers of diffusers models save through the one wrapper format (save_pretrained) and load back to the same
outputs, settings, latent noise and fitted prior included."""

import json

import pytest
import torch

from sphere_plugins import SphericalAutoencoder, SphericalGenerator, load_model, wrap_autoencoder, wrap_generator


def test_autoencoder_round_trip_gives_identical_outputs(vae, images, tmp_path):
    wrapped = wrap_autoencoder(vae, radius=3.0, dims=(1,))
    wrapped.save_pretrained(tmp_path)
    loaded = load_model(tmp_path).eval()
    assert isinstance(loaded, SphericalAutoencoder) and type(loaded.model) is type(vae)
    with torch.no_grad():
        before, after = wrapped(images), loaded(images)
        assert torch.equal(before.latent, after.latent)
        assert torch.equal(before.reconstruction, after.reconstruction)


def test_the_settings_record_holds_the_spherical_settings_and_the_diffusers_scheme(vae, tmp_path):
    wrap_autoencoder(vae, center=False, radius=3.0, dims=(2, 3), options={"latent_size": 8}).save_pretrained(tmp_path)
    record = json.loads((tmp_path / "sphere_model.json").read_text())
    assert (record["format"], record["format_version"]) == ("sphere-plugins-wrapper", 1)
    assert (record["role"], record["center"], record["spherize"], record["radius"], record["dims"]) == \
        ("autoencoder", False, True, 3.0, [2, 3])
    assert record["options"] == {"latent_size": 8} and record["z_shape"] == [4, 8, 8]
    assert record["model"] == {"scheme": "diffusers", "path": "model"}
    assert (tmp_path / "model" / "config.json").is_file()  # the VAE through diffusers' own save_pretrained


@pytest.mark.parametrize("kind", ["vmf", "gmm"])
def test_latent_noise_and_a_fitted_prior_survive_save_and_load(vae, images, tmp_path, kind):
    wrapped = wrap_autoencoder(vae, latent_noise=0.2)
    wrapped.fit_prior(images, kind=kind, components=2, seed=0, max_iter=5)
    wrapped.save_pretrained(tmp_path)
    loaded = load_model(tmp_path)
    assert loaded.latent_noise == 0.2
    assert loaded.fitted_prior.config() == wrapped.fitted_prior.config()
    for name, tensor in wrapped.fitted_prior.state_dict().items():
        assert torch.equal(loaded.fitted_prior.state_dict()[name], tensor), name
    expected = wrapped.eval().sample(3, prior="fitted", generator=torch.Generator().manual_seed(1))
    got = loaded.eval().sample(3, prior="fitted", generator=torch.Generator().manual_seed(1))
    assert torch.equal(got, expected)


def test_pipeline_generator_round_trip_gives_identical_samples(tmp_path):
    pipe = load_model("diffusers:tiny-ddpm", resolution=8, scheduler="ddim", seed=0)
    wrapped = wrap_generator(pipe, prior="poisson", options={"num_inference_steps": 3}, rate=2.0)
    wrapped.save_pretrained(tmp_path)
    loaded = load_model(tmp_path)
    assert isinstance(loaded, SphericalGenerator)
    assert loaded.prior == "poisson" and loaded.prior_params == {"rate": 2.0}
    first = wrapped.sample(2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(first, loaded.sample(2, generator=torch.Generator().manual_seed(0)))


def test_a_bare_diffusers_folder_loads_as_the_model_not_a_wrapper(vae, tmp_path):
    vae.save_pretrained(tmp_path)
    assert type(load_model(tmp_path)) is type(vae)
    assert type(load_model(f"diffusers:{tmp_path}")) is type(vae)
