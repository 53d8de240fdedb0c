"""timm backbones as spherical autoencoder encoders: shapes, sphere, offline weights, training on digits."""

import math

import huggingface_hub.constants
import pytest
import timm
import torch
from safetensors.torch import save_file
from sklearn.datasets import load_digits

from sphere_plugins import MissingWeightsError, list_priors, load_model, plugin_names, wrap_autoencoder
from sphere_plugins.nets import ConvDecoder
from sphere_timm import TimmAutoencoder, TimmEncoder

NAME = "test_resnet"  # timm's own tiny test network (about 0.4M parameters)


@pytest.fixture
def digits():
    """64 digits as 1-channel 8x8 images in [-1, 1]."""
    return torch.tensor(load_digits().images[:64], dtype=torch.float32).unsqueeze(1) / 8 - 1


@pytest.fixture
def autoencoder():
    torch.manual_seed(0)
    return load_model(f"timm:{NAME}", z_dim=8, resolution=8, channels=1, min_size=16)


class BackboneInput:
    """Records what the backbone receives (a forward pre-hook)."""

    def __init__(self, encoder):
        self.seen = []
        encoder.backbone.register_forward_pre_hook(lambda module, args: self.seen.append(args[0]))


def test_plugin_is_discovered_through_its_entry_point():
    assert "timm" in plugin_names()


def test_encoder_maps_images_to_z_dim_codes():
    assert TimmEncoder(NAME, 5, in_chans=1)(torch.zeros(3, 1, 8, 8)).shape == (3, 5)


def test_images_smaller_than_min_size_are_upsampled_to_it():
    encoder = TimmEncoder(NAME, 4, in_chans=1, min_size=32)
    record = BackboneInput(encoder)
    encoder(torch.zeros(2, 1, 8, 16))
    encoder(torch.zeros(2, 1, 40, 40))
    assert [tuple(x.shape[2:]) for x in record.seen] == [(32, 64), (40, 40)]


def test_images_are_normalized_with_the_backbone_statistics():
    encoder = TimmEncoder("resnet18", 4, min_size=1).eval()
    record = BackboneInput(encoder)
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    encoder(x)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)  # ImageNet statistics of resnet18's cfg
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(record.seen[0], ((x + 1) / 2 - mean) / std)


def test_resnet18_spec_builds_a_resnet_encoder_with_the_core_decoder():
    model = load_model("timm:resnet18", z_dim=6, resolution=8, channels=1)
    assert type(model.encoder.backbone).__name__ == "ResNet" and isinstance(model.decoder, ConvDecoder)
    assert model.z_dim == 6 and model.decode(model.encode(torch.zeros(2, 1, 8, 8))).shape == (2, 1, 8, 8)


@torch.no_grad()
def test_both_steps_off_is_the_raw_encode_decode(autoencoder, digits):
    x = digits[:4]
    reconstruction, z = wrap_autoencoder(autoencoder.eval(), spherize=False, center=False)(x)
    assert torch.equal(z, autoencoder.encode(x))
    assert torch.equal(reconstruction, autoencoder.decode(autoencoder.encode(x)))


@torch.no_grad()
def test_codes_are_centerized_on_the_sphere_of_radius_sqrt_z_dim(autoencoder, digits):
    z = wrap_autoencoder(autoencoder.eval()).encode(digits[:4])
    torch.testing.assert_close(z.norm(dim=1), torch.full((4,), math.sqrt(8)))
    assert z.mean(dim=1).abs().max() < 1e-6


@torch.no_grad()
def test_encoder_decoder_pair_wraps_with_a_known_latent_shape():
    wrapped = wrap_autoencoder((TimmEncoder(NAME, 6, in_chans=1), ConvDecoder(channels=1, resolution=8, z_dim=6)))
    assert isinstance(wrapped.model, TimmAutoencoder) and wrapped.z_shape == (6,)
    assert wrapped.sample(2).shape == (2, 1, 8, 8)


@torch.no_grad()
@pytest.mark.parametrize("prior", list_priors())
def test_decoder_samples_every_registered_prior(autoencoder, prior):
    images = wrap_autoencoder(autoencoder).sample(2, prior=prior, generator=torch.Generator().manual_seed(0))
    assert images.shape == (2, 1, 8, 8) and torch.isfinite(images).all()


def test_loss_backpropagates_into_the_backbone(autoencoder, digits):
    wrap_autoencoder(autoencoder).loss(digits[:4]).backward()
    stem = next(autoencoder.encoder.backbone.parameters())
    assert stem.grad is not None and stem.grad.abs().sum() > 0


def test_a_few_adam_steps_reduce_the_loss_on_digits(autoencoder, digits):
    wrapped = wrap_autoencoder(autoencoder)
    optimizer = torch.optim.Adam(wrapped.parameters(), lr=3e-3)
    with torch.no_grad():
        before = wrapped.loss(digits).item()
    for step in range(12):
        optimizer.zero_grad()
        wrapped.loss(digits[(step % 2) * 32:(step % 2 + 1) * 32]).backward()
        optimizer.step()
    with torch.no_grad():
        after = wrapped.loss(digits).item()
    assert after < 0.8 * before


def test_wrong_channel_count_names_in_chans(autoencoder):
    with pytest.raises(ValueError, match="in_chans=1"):
        wrap_autoencoder(autoencoder).encode(torch.zeros(2, 3, 8, 8))


def test_images_outside_minus_one_one_are_rejected(autoencoder):
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        wrap_autoencoder(autoencoder).encode(torch.full((2, 1, 8, 8), 16.0))


def test_unknown_model_name_suggests_similar_names():
    with pytest.raises(ValueError, match="test_resnet"):
        TimmEncoder("test_resne", 4)


def test_num_classes_is_reserved_for_the_feature_output():
    with pytest.raises(ValueError, match="num_classes"):
        TimmEncoder(NAME, 4, num_classes=10)


def test_checkpoint_path_without_pretrained_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="pretrained=True"):
        TimmEncoder(NAME, 4, checkpoint_path=tmp_path / "w.safetensors")


def test_missing_checkpoint_path_names_the_file(tmp_path):
    with pytest.raises(MissingWeightsError, match="absent.safetensors"):
        TimmEncoder(NAME, 4, pretrained=True, checkpoint_path=tmp_path / "absent.safetensors")


def test_pretrained_without_local_weights_names_the_file_and_the_hub_repo(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(MissingWeightsError, match="model.safetensors.*timm/test_resnet.r160_in1k"):
        TimmEncoder(NAME, 4, pretrained=True)


@pytest.fixture
def classifier_weights(tmp_path):
    """A full timm test_resnet state dict (1000-class head included) saved as safetensors."""
    torch.manual_seed(1)
    state = timm.create_model(NAME).state_dict()
    path = tmp_path / "test_resnet.safetensors"
    save_file(state, str(path))
    return state, path


def test_checkpoint_weights_load_into_the_backbone_without_the_classifier(classifier_weights):
    state, path = classifier_weights
    loaded = TimmEncoder(NAME, 4, pretrained=True, checkpoint_path=path).backbone.state_dict()
    assert set(state) - set(loaded) == {"fc.weight", "fc.bias"}
    assert all(torch.equal(loaded[key], value) for key, value in state.items() if key in loaded)


def test_checkpoint_stem_is_summed_over_rgb_for_one_channel_images(classifier_weights):
    state, path = classifier_weights
    loaded = TimmEncoder(NAME, 4, pretrained=True, checkpoint_path=path, in_chans=1).backbone.state_dict()
    torch.testing.assert_close(loaded["conv1.0.weight"], state["conv1.0.weight"].sum(dim=1, keepdim=True))


def test_weights_in_the_hugging_face_cache_are_used_offline(classifier_weights, tmp_path, monkeypatch):
    state, path = classifier_weights
    repo = tmp_path / "cache" / "models--timm--test_resnet.r160_in1k"  # the hub cache layout
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    (repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
    (repo / "snapshots" / ("0" * 40) / "model.safetensors").write_bytes(path.read_bytes())
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    loaded = TimmEncoder(NAME, 4, pretrained=True).backbone.state_dict()
    assert torch.equal(loaded["conv1.0.weight"], state["conv1.0.weight"])


def test_spec_options_after_a_question_mark_set_channels_and_size():
    ae = load_model("timm:test_resnet?in_chans=3&img_size=8&z_dim=6")
    assert (ae.encoder.in_chans, ae.z_dim) == (3, 6)
    assert ae.decode(torch.zeros(1, 6)).shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="key=value"):
        load_model("timm:test_resnet?in_chans")
