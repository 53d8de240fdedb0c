"""Frechet and kernel distances against clean-fid and closed forms; the Inception path and its offline error."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from cleanfid import fid as cleanfid_fid
from PIL import Image
from torch import nn

from sphere_plugins.data import ImageSet, load_images
from sphere_plugins.errors import MissingWeightsError
from sphere_plugins.metrics import (
    INCEPTION_FILE,
    INCEPTION_URL,
    InceptionFeatures,
    compute_fid,
    compute_kid,
    frechet_distance,
    frechet_distance_from_features,
    kernel_distance,
)


class PooledPixels(nn.Module):
    """A stand-in feature network: 4x4 average pooling of its input, 48 features per image."""

    def forward(self, x):
        assert x.shape[-2:] == (299, 299), "clean-fid's pipeline must hand over 299x299 images"
        return nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)


def _random_gaussian_stats(rng, d):
    a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    return rng.normal(size=d), a @ a.T / d + 0.1 * np.eye(d), rng.normal(size=d), b @ b.T / d + 0.1 * np.eye(d)


def test_frechet_distance_matches_clean_fid_on_fixed_statistics():
    mu1, s1, mu2, s2 = _random_gaussian_stats(np.random.default_rng(0), 16)
    expected = cleanfid_fid.frechet_distance(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_from_features_matches_clean_fid():
    rng = np.random.default_rng(1)
    f1, f2 = rng.normal(size=(200, 8)), rng.normal(0.3, 1.5, size=(150, 8))
    assert frechet_distance_from_features(f1, f2) == pytest.approx(cleanfid_fid.fid_from_feats(f1, f2), rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frechet_distance_matches_closed_form_for_diagonal_gaussians(seed):
    rng = np.random.default_rng(seed)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    s1, s2 = rng.uniform(0.1, 3, size=5), rng.uniform(0.1, 3, size=5)
    closed_form = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(closed_form, rel=1e-9)


def test_frechet_distance_survives_singular_covariances():
    sigma = np.diag([1.0, 0.0, 0.0])
    value = frechet_distance(np.zeros(3), sigma, np.ones(3), sigma)
    assert value == pytest.approx(3.0, abs=1e-4)


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


def test_frechet_distance_needs_more_samples_than_feature_dimensions():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"n=10 .*n >= 17"):
        frechet_distance_from_features(rng.normal(size=(10, 16)), rng.normal(size=(100, 16)))


def test_kernel_distance_matches_clean_fid_when_subsets_are_whole_sets():
    rng = np.random.default_rng(2)
    f1, f2 = rng.normal(size=(40, 6)), rng.normal(0.5, 1.0, size=(40, 6))
    # A subset of the whole set is a permutation, and MMD is permutation-invariant: clean-fid's random draws agree.
    expected = cleanfid_fid.kernel_distance(f1, f2, num_subsets=3, max_subset_size=40)
    assert kernel_distance(f1, f2, num_subsets=3, max_subset_size=40) == pytest.approx(expected, rel=1e-9)


def test_kernel_distance_matches_loop_over_pairs():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(7, 3)), rng.normal(1.0, 1.0, size=(7, 3))

    def k(a, b):
        return (float(a @ b) / 3 + 1) ** 3

    m = 7
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    assert kernel_distance(x, y, num_subsets=1, max_subset_size=7) == pytest.approx(xx + yy - 2 * xy, rel=1e-9)


def test_kernel_distance_needs_two_samples_per_subset():
    with pytest.raises(ValueError, match="n=1"):
        kernel_distance(np.zeros((1, 3)), np.zeros((5, 3)))


def test_missing_inception_file_raises_one_line_naming_file_folder_and_url(tmp_path):
    with pytest.raises(MissingWeightsError) as info:
        InceptionFeatures(folder=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert INCEPTION_FILE in message and str(tmp_path) in message and INCEPTION_URL in message


def test_inception_request_never_falls_back_to_another_network(tmp_path, digits):
    with pytest.raises(MissingWeightsError):
        compute_fid(digits, digits.images, features="inception", inception_dir=tmp_path)


def test_auto_without_inception_or_labels_falls_back_to_a_named_network(tmp_path, cnn_cache):
    images = torch.rand(80, 1, 8, 8) * 2 - 1
    with pytest.warns(UserWarning, match="reporting FD-digits-cnn .* instead of FID"):
        record = compute_fid(images, images, features="auto", inception_dir=tmp_path, cache_dir=cnn_cache)
    assert record.metric == "FD-digits-cnn"


def test_an_unlabelled_folder_spec_falls_back_offline_and_kid_says_kid(tmp_path, cnn_cache):
    images = torch.rand(12, 1, 8, 8) * 2 - 1
    _write_folder(tmp_path / "real", [np.asarray(x) for x in ((images[:, 0] + 1) * 127.5).round().to(torch.uint8)])
    with pytest.warns(UserWarning, match="instead of KID"):
        record = compute_kid(f"folder:{tmp_path / 'real'}", images, features="auto", inception_dir=tmp_path,
                             cache_dir=cnn_cache, num_subsets=2, max_subset_size=10)
    assert record.metric == "KD-digits-cnn"


def test_kid_missing_inception_names_kid(tmp_path, digits):
    with pytest.raises(MissingWeightsError, match="^KID"):
        compute_kid(digits, digits.images, features="inception", inception_dir=tmp_path)


def test_auto_without_inception_reports_labelled_fd_with_a_warning(tmp_path, digits, digits_cnn, cnn_cache):
    with pytest.warns(UserWarning, match=INCEPTION_FILE):
        record = compute_fid(digits, digits.images[:300], features="auto", inception_dir=tmp_path, cache_dir=cnn_cache)
    assert record.metric == "FD-digits-cnn"
    assert "FID" not in record.metric
    assert record.n_samples == 300 and record.extra["n_real"] == 1797


def _write_folder(folder, images):
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:03d}.png")


@pytest.fixture(scope="module")
def two_folders(tmp_path_factory):
    rng = np.random.default_rng(4)
    root = tmp_path_factory.mktemp("folders")
    real = rng.integers(0, 256, size=(60, 6, 6, 3), dtype=np.uint8)
    fake = np.clip(real.astype(int) + rng.integers(-60, 60, size=real.shape), 0, 255).astype(np.uint8)
    _write_folder(root / "real", real)
    _write_folder(root / "fake", fake)
    return root / "real", root / "fake"


def test_inception_pipeline_feeds_the_network_what_clean_fid_feeds_it(two_folders):
    real, _ = two_folders
    model = PooledPixels()
    expected = cleanfid_fid.get_folder_features(
        str(real), model, num_workers=0, batch_size=16, device=torch.device("cpu"), mode="clean", verbose=False
    )
    ours = InceptionFeatures(model=model)(load_images(f"folder:{real}").images)
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-4)


def test_compute_fid_on_folders_matches_clean_fid_with_the_same_feature_network(two_folders):
    real, fake = two_folders
    model = PooledPixels()
    expected = cleanfid_fid.compute_fid(
        str(real), str(fake), mode="clean", num_workers=0, batch_size=16, device=torch.device("cpu"),
        custom_feat_extractor=model, verbose=False,
    )
    record = compute_fid(f"folder:{real}", str(fake), features=InceptionFeatures(model=model), batch_size=16)
    assert record.value == pytest.approx(expected, rel=1e-5)


def test_injected_network_is_never_labelled_fid(two_folders):
    real, fake = two_folders
    record = compute_fid(str(real), str(fake), features=InceptionFeatures(model=PooledPixels(), name="pooled"))
    assert record.metric == "FD-pooled"


def test_generator_callable_gives_the_same_distance_as_its_images(digits, digits_cnn):
    fake = digits.images[200:500]
    cursor = iter(range(0, 300, 64))

    def gen(batch):
        start = next(cursor)
        return fake[start : start + batch]

    from_tensor = compute_fid(digits, fake, features=digits_cnn).value
    from_callable = compute_fid(digits, gen, n_fake=300, features=digits_cnn, batch_size=64).value
    assert from_callable == pytest.approx(from_tensor, rel=1e-9)


def test_generator_callable_without_n_is_rejected(digits, digits_cnn):
    with pytest.raises(ValueError, match="number of images"):
        compute_fid(digits, lambda batch: digits.images[:batch], features=digits_cnn)


def test_fd_of_a_set_with_itself_is_zero_and_grows_with_noise(digits, digits_cnn):
    same = compute_fid(digits, digits.images, features=digits_cnn).value
    generator = torch.Generator().manual_seed(0)
    noisy_sets = [
        (digits.images + s * torch.randn(digits.images.shape, generator=generator)).clamp(-1, 1) for s in (0.2, 0.6)
    ]
    noisy = [compute_fid(digits, images, features=digits_cnn).value for images in noisy_sets]
    assert abs(same) < 1e-6
    assert 0 < noisy[0] < noisy[1]


def test_kid_record_is_labelled_with_the_feature_network(digits, digits_cnn):
    record = compute_kid(digits, digits.images[:100], features=digits_cnn, num_subsets=5, max_subset_size=50)
    assert record.metric == "KD-digits-cnn"
    assert record.extra["max_subset_size"] == 50


def test_unknown_features_choice_is_rejected(digits):
    with pytest.raises(ValueError, match="features must be"):
        compute_fid(digits, digits.images, features="resnet")


def test_labelled_data_is_required_for_the_classifier(digits):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="needs class labels.*features='auto' or 'digits-cnn'"):
            compute_fid(ImageSet(digits.images, None, "x"), digits.images, features="classifier")
