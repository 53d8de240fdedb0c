"""save_spherical / load_spherical: save_pretrained plus sphere_adapter.json, loaded back to the same outputs."""

import json

import pytest
import torch

from sphere_diffusers import load_spherical, save_spherical
from sphere_plugins import load_model, wrap_autoencoder, wrap_generator


def test_autoencoder_round_trip_gives_identical_outputs(vae, images, tmp_path):
    wrapped = wrap_autoencoder(vae, radius=3.0, dims=(1,))
    save_spherical(wrapped, tmp_path)
    loaded = load_spherical(tmp_path).eval()
    with torch.no_grad():
        before, after = wrapped(images), loaded(images)
        assert torch.equal(before.latent, after.latent)
        assert torch.equal(before.reconstruction, after.reconstruction)


def test_autoencoder_record_holds_the_spherical_settings(vae, tmp_path):
    save_spherical(wrap_autoencoder(vae, center=False, radius=3.0, dims=(2, 3), options={"latent_size": 8}),
                   tmp_path)
    record = json.loads((tmp_path / "sphere_adapter.json").read_text())
    assert (record["role"], record["center"], record["spherize"], record["radius"], record["dims"]) == \
        ("autoencoder", False, True, 3.0, [2, 3])
    assert record["adapter"] == "sphere_diffusers" and record["options"] == {"latent_size": 8}
    assert record["versions"]["sphere-plugins"] and record["z_shape"] == [4, 8, 8]


def test_pipeline_generator_round_trip_gives_identical_samples(tmp_path):
    pipe = load_model("diffusers:tiny-ddpm", resolution=8, scheduler="ddim", seed=0)
    wrapped = wrap_generator(pipe, prior="poisson", options={"num_inference_steps": 3}, rate=2.0)
    save_spherical(wrapped, tmp_path)
    loaded = load_spherical(tmp_path)
    assert loaded.prior == "poisson" and loaded.prior_params == {"rate": 2.0}
    first = wrapped.sample(2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(first, loaded.sample(2, generator=torch.Generator().manual_seed(0)))


def test_loading_a_folder_without_the_adapter_file_is_rejected(vae, tmp_path):
    vae.save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="sphere_adapter.json"):
        load_spherical(tmp_path)


def test_saving_a_wrapper_of_a_non_diffusers_model_is_rejected(tmp_path):
    wrapped = wrap_autoencoder(load_model("builtin:tiny-ae"))
    with pytest.raises(ValueError, match="diffusers model"):
        save_spherical(wrapped, tmp_path)
    assert not any(tmp_path.iterdir())


def test_a_save_spherical_folder_loads_as_the_wrapper_through_load_model(tmp_path):
    from sphere_plugins import SphericalAutoencoder, load_model

    wrapped = wrap_autoencoder(load_model("diffusers:tiny-vae", seed=0), prior="chi2", radius=5.0)
    save_spherical(wrapped, tmp_path)
    for loaded in (load_model(tmp_path), load_model(f"diffusers:{tmp_path}")):
        assert isinstance(loaded, SphericalAutoencoder)
        assert (loaded.prior, loaded.latent.radius) == ("chi2", 5.0)
        torch.testing.assert_close(loaded.eval().sample(2, generator=torch.Generator().manual_seed(0)),
                                   wrapped.eval().sample(2, generator=torch.Generator().manual_seed(0)))
