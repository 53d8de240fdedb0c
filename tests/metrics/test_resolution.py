"""Image sets of different sizes are compared at one size, said out loud; resolution= chooses it."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from sphere_plugins.data import ImageSet
from sphere_plugins.metrics import SeededImages, compute_fid, frechet_distance_from_features
from sphere_plugins.metrics.evaluate import evaluate


class Pooled4x4:
    """A feature network for images of any size: 4x4 average pooling of the first channel (16 features)."""

    name = "pooled4x4"

    def __call__(self, images):
        return F.adaptive_avg_pool2d(images[:, :1], 4).flatten(1).double().numpy()


def _bilinear(images, side):
    """The resize the metrics promise: bilinear, antialiased, clamped to [-1, 1]."""
    return F.interpolate(images, size=(side, side), mode="bilinear", align_corners=False, antialias=True).clamp(-1, 1)


def _images(n, side, seed):
    return torch.rand(n, 1, side, side, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_sets_of_different_sizes_are_compared_at_the_smaller_with_a_warning():
    real, fake = _images(64, 8, 0), _images(64, 16, 1)
    net = Pooled4x4()
    with pytest.warns(UserWarning, match="real images are 8x8 and fake ones 16x16: both are resized to 8x8"):
        record = compute_fid(real, fake, features=net)
    expected = frechet_distance_from_features(net(real), net(_bilinear(fake, 8)))
    assert record.value == pytest.approx(expected, rel=1e-12) and record.extra["compared_at"] == "8x8"


def test_resolution_resizes_both_sets_without_a_warning():
    real, fake = _images(64, 8, 0), _images(64, 16, 1)
    net = Pooled4x4()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (record,) = evaluate(real, fake, ["fd"], features=net, resolution=12)
    expected = frechet_distance_from_features(net(_bilinear(real, 12)), net(_bilinear(fake, 12)))
    assert record.value == pytest.approx(expected, rel=1e-12) and record.extra["compared_at"] == "12x12"


def test_sets_of_one_size_are_left_as_they_are():
    real, fake = _images(64, 8, 0), _images(64, 8, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        record = compute_fid(real, fake, features=Pooled4x4())
    assert "compared_at" not in record.extra


def test_a_generator_callable_is_measured_without_drawing_an_image_twice():
    real = _images(64, 8, 0)
    stream = torch.Generator().manual_seed(1)
    drawn = []

    def gen(batch):
        drawn.append(batch)
        return torch.rand(batch, 1, 16, 16, generator=stream) * 2 - 1

    with pytest.warns(UserWarning, match="resized to 8x8"):
        record = compute_fid(real, gen, features=Pooled4x4(), n_fake=100, batch_size=32)
    assert sum(drawn) == 100
    all_fake = torch.rand(100, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    expected = frechet_distance_from_features(Pooled4x4()(real), Pooled4x4()(_bilinear(all_fake, 8)))
    assert record.value == pytest.approx(expected, rel=1e-12)


def test_seeded_images_and_folders_are_resized_batch_by_batch(tmp_path):
    real = _images(40, 8, 0)
    pixels = ((_images(40, 16, 2)[:, 0] + 1) * 127.5).round().to(torch.uint8)
    for i, image in enumerate(pixels):
        Image.fromarray(image.numpy()).save(tmp_path / f"{i:02d}.png")
    folder_images = pixels[:, None].float() / 127.5 - 1

    def draw(seeds):
        return torch.stack([_images(1, 16, s)[0] for s in seeds])

    net = Pooled4x4()
    with pytest.warns(UserWarning, match="resized to 8x8"):
        from_folder = compute_fid(real, tmp_path, features=net, batch_size=7)
    with pytest.warns(UserWarning, match="resized to 8x8"):
        from_seeds = compute_fid(real, SeededImages(draw, range(40)), features=net, batch_size=7)
    assert from_folder.value == pytest.approx(
        frechet_distance_from_features(net(real), net(_bilinear(folder_images, 8))), rel=1e-12)
    assert from_seeds.value == pytest.approx(
        frechet_distance_from_features(net(real), net(_bilinear(draw(range(40)), 8))), rel=1e-12)


def test_a_labelled_real_set_trains_its_offline_network_at_the_compared_resolution(digits, cnn_cache):
    real16 = ImageSet(_bilinear(digits.images, 16), digits.labels, "digits16", "digits at 16x16")
    with pytest.warns(UserWarning) as caught:
        (record,) = evaluate(real16, digits.images[:300], ["fd"], cache_dir=cnn_cache, inception_dir=cnn_cache)
    assert any("real images are 16x16 and fake ones 8x8: both are resized to 8x8" in str(w.message) for w in caught)
    assert record.metric == "FD-digits16-cnn" and record.extra["compared_at"] == "8x8"
    assert "images, 8x8)" in record.feature_network  # trained on the real images at 8x8, not at 16x16


def test_resolution_must_be_a_positive_int():
    with pytest.raises(ValueError, match="resolution must be a positive int or None, got 0"):
        compute_fid(_images(8, 8, 0), _images(8, 8, 1), features=Pooled4x4(), resolution=0)
