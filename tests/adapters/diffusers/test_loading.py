"""load_model("diffusers:...") for the tiny builders, local folders and hub ids."""

import json

import diffusers
import huggingface_hub.constants
import pytest
import torch

from sphere_plugins import load_model


def _same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_tiny_vae_takes_channel_and_resolution_options():
    vae = load_model("diffusers:tiny-vae", channels=1, resolution=8, latent_channels=2)
    assert isinstance(vae, diffusers.AutoencoderKL)
    assert (vae.config.in_channels, vae.config.sample_size, vae.config.latent_channels) == (1, 8, 2)


def test_tiny_vae_seed_fixes_the_weights_and_leaves_the_global_rng_alone():
    torch.manual_seed(5)
    expected_next = torch.rand(3)
    torch.manual_seed(5)
    first = load_model("diffusers:tiny-vae", seed=0)
    assert torch.equal(torch.rand(3), expected_next)
    assert _same_weights(first, load_model("diffusers:tiny-vae", seed=0))


@pytest.mark.parametrize("scheduler, expected", [("ddpm", "DDPMPipeline"), ("ddim", "DDIMPipeline")])
def test_tiny_ddpm_builds_an_unconditional_pipeline(scheduler, expected):
    pipe = load_model("diffusers:tiny-ddpm", scheduler=scheduler, resolution=8)
    assert type(pipe).__name__ == expected and pipe.unet.config.sample_size == 8


def test_tiny_ddpm_rejects_an_unknown_scheduler():
    with pytest.raises(ValueError, match="scheduler must be one of"):
        load_model("diffusers:tiny-ddpm", scheduler="euler")


def test_local_autoencoder_folder_loads_the_saved_weights(vae, tmp_path):
    vae.save_pretrained(tmp_path)
    loaded = load_model(f"diffusers:{tmp_path}")
    assert isinstance(loaded, diffusers.AutoencoderKL) and _same_weights(loaded, vae)


def test_local_pipeline_folder_loads_the_saved_pipeline(ddpm, tmp_path):
    ddpm.save_pretrained(tmp_path)
    loaded = load_model(f"diffusers:{tmp_path}")
    assert isinstance(loaded, diffusers.DDPMPipeline) and _same_weights(loaded.unet, ddpm.unet)


def test_missing_folder_error_names_the_path(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        load_model(f"diffusers:{missing}")


def test_folder_without_a_diffusers_config_is_rejected(tmp_path):
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        load_model(f"diffusers:{tmp_path}")


def test_unsupported_model_class_lists_the_supported_ones(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel"}))
    with pytest.raises(ValueError, match="'UNet2DModel'.*AutoencoderKL, AutoencoderTiny, VQModel"):
        load_model(f"diffusers:{tmp_path}")


def test_unsupported_pipeline_class_lists_the_supported_ones(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "ScoreSdeVePipeline"}))
    with pytest.raises(ValueError, match="'ScoreSdeVePipeline'.*DDPMPipeline"):
        load_model(f"diffusers:{tmp_path}")


def test_hub_id_without_network_says_to_pass_a_local_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no network.*local folder"):
        load_model("diffusers:someone/unreachable-model", local_files_only=False)


def test_a_missing_relative_folder_never_becomes_a_hub_request(tmp_path, monkeypatch):
    import socket

    calls = []

    def connect(sock, address):
        calls.append(address)
        raise OSError("the test forbids network connections")

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="models/vae.*not in the local Hugging Face cache.*"
                                               "local_files_only=False"):
        load_model("diffusers:models/vae")
    assert calls == []


def test_local_files_only_must_be_a_bool():
    with pytest.raises(ValueError, match="local_files_only must be True or False"):
        load_model("diffusers:someone/model", local_files_only="no")


def test_spec_without_a_name_is_rejected():
    with pytest.raises(ValueError, match="names no model"):
        load_model("diffusers:")
