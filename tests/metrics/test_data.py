"""Image loading: digits values, folder decoding and its errors, tensor validation, uint8 and PNG grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from sphere_plugins.data import load_images, save_image_grid, to_uint8


def _write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


def test_digits_are_sklearn_values_mapped_linearly_to_unit_range():
    data = load_images("digits")
    raw = load_digits()
    assert data.images.shape == (1797, 1, 8, 8)
    assert data.images.dtype == torch.float32
    expected = torch.from_numpy(raw.images).float() / 8 - 1
    assert torch.equal(data.images[:, 0], expected)
    assert torch.equal(data.labels, torch.from_numpy(raw.target).long())


def test_digits_resize_keeps_range_and_gives_requested_shape():
    data = load_images("digits", resolution=16, channels=3, limit=20)
    assert data.images.shape == (20, 3, 16, 16)
    assert data.images.min() >= -1 and data.images.max() <= 1
    assert torch.equal(data.images[:, 0], data.images[:, 2])
    assert len(data.labels) == 20


def test_folder_pixels_decode_to_exact_unit_range_values(tmp_path):
    values = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    _write_png(tmp_path / "a.png", values)
    data = load_images(f"folder:{tmp_path}")
    assert data.images.shape == (1, 1, 8, 8)
    assert torch.allclose(data.images[0, 0], torch.from_numpy(values).float() / 127.5 - 1)
    assert data.labels is None


def test_folder_files_are_sorted_and_subfolders_become_labels(tmp_path):
    _write_png(tmp_path / "zebra" / "1.png", np.full((4, 4), 10))
    _write_png(tmp_path / "apple" / "2.png", np.full((4, 4), 20))
    _write_png(tmp_path / "apple" / "1.png", np.full((4, 4), 30))
    data = load_images(f"folder:{tmp_path}")
    first_pixels = to_uint8(data.images)[:, 0, 0, 0].tolist()
    assert first_pixels == [30, 20, 10]
    assert data.labels.tolist() == [0, 0, 1]
    assert data.class_names == ("apple", "zebra")


def test_rgb_folder_keeps_three_channels(tmp_path):
    rgb = np.zeros((5, 5, 3), dtype=np.uint8)
    rgb[..., 1] = 255
    _write_png(tmp_path / "x.png", rgb)
    data = load_images(f"folder:{tmp_path}")
    assert data.images.shape == (1, 3, 5, 5)
    assert data.images[0, 1].eq(1).all() and data.images[0, 0].eq(-1).all()


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_images(f"folder:{tmp_path / 'nowhere'}")


def test_empty_folder_is_rejected(tmp_path):
    (tmp_path / "notes.txt").write_text("no images")
    with pytest.raises(ValueError, match="no image files"):
        load_images(f"folder:{tmp_path}")


def test_unreadable_image_is_named(tmp_path):
    _write_png(tmp_path / "good.png", np.zeros((4, 4)))
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match="broken.png"):
        load_images(f"folder:{tmp_path}")


def test_sixteen_bit_png_is_scaled_by_its_true_depth(tmp_path):
    raw = np.array([[0, 2000], [40000, 65535]], dtype=np.uint16)
    Image.fromarray(raw).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as check:  # the file really is 16-bit
        assert check.mode.startswith("I")
    data = load_images(f"folder:{tmp_path}")
    expected = torch.tensor([[0, 2000], [40000, 65535]], dtype=torch.float32) / 65535 * 2 - 1
    assert data.images.shape == (1, 1, 2, 2)
    torch.testing.assert_close(data.images[0, 0], expected, rtol=0, atol=1e-6)


def test_sixteen_bit_png_as_rgb_repeats_the_grey_value(tmp_path):
    Image.fromarray(np.full((2, 2), 32768, dtype=np.uint16)).save(tmp_path / "deep.png")
    data = load_images(f"folder:{tmp_path}", channels=3)
    torch.testing.assert_close(data.images, torch.full((1, 3, 2, 2), 32768 / 65535 * 2 - 1), rtol=0, atol=1e-6)


@pytest.mark.parametrize("side", [40, 64])  # over the warning limit, and over twice it (Pillow's error)
def test_decompression_bomb_gives_a_one_line_error_naming_the_file(tmp_path, monkeypatch, side):
    _write_png(tmp_path / "bomb.png", np.zeros((side, side)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ValueError, match=r"bomb\.png.*too large to decode safely") as caught:
        load_images(f"folder:{tmp_path}")
    assert "\n" not in str(caught.value)


def test_a_folder_with_more_images_than_the_limit_is_refused_unless_raised_or_limited(tmp_path, monkeypatch):
    for i in range(3):
        _write_png(tmp_path / f"{i}.png", np.full((4, 4), i))
    monkeypatch.setenv("SPHERE_PLUGINS_MAX_FOLDER_IMAGES", "2")
    with pytest.raises(ValueError, match="holds 3 image files, more than the 2 .*SPHERE_PLUGINS_MAX_FOLDER_IMAGES"):
        load_images(f"folder:{tmp_path}")
    assert len(load_images(f"folder:{tmp_path}", limit=2)) == 2
    monkeypatch.setenv("SPHERE_PLUGINS_MAX_FOLDER_IMAGES", "3")
    assert len(load_images(f"folder:{tmp_path}")) == 3


def test_a_folder_decoding_to_more_bytes_than_the_limit_names_the_file_that_passed_it(tmp_path, monkeypatch):
    for name in ("a", "b", "c"):
        _write_png(tmp_path / f"{name}.png", np.zeros((8, 8)))  # 64 bytes of grey pixels each
    monkeypatch.setenv("SPHERE_PLUGINS_MAX_FOLDER_BYTES", "100")
    with pytest.raises(ValueError, match=r"more than 100 bytes \(passed at .*b\.png.*SPHERE_PLUGINS_MAX_FOLDER_BYTES"):
        load_images(f"folder:{tmp_path}")
    monkeypatch.setenv("SPHERE_PLUGINS_MAX_FOLDER_BYTES", "lots")
    with pytest.raises(ValueError, match="SPHERE_PLUGINS_MAX_FOLDER_BYTES must be a positive int, got 'lots'"):
        load_images(f"folder:{tmp_path}")


def test_mixed_sizes_name_two_files_and_suggest_resolution(tmp_path):
    _write_png(tmp_path / "small.png", np.zeros((4, 4)))
    _write_png(tmp_path / "wide.png", np.zeros((4, 6)))
    with pytest.raises(ValueError) as info:
        load_images(f"folder:{tmp_path}")
    message = str(info.value)
    assert "small.png" in message and "4x4" in message
    assert "wide.png" in message and "6x4" in message
    assert "resolution" in message


def test_mixed_sizes_load_when_resolution_is_given(tmp_path):
    _write_png(tmp_path / "small.png", np.zeros((4, 4)))
    _write_png(tmp_path / "wide.png", np.full((4, 6), 255))
    data = load_images(f"folder:{tmp_path}", resolution=8)
    assert data.images.shape == (2, 1, 8, 8)
    assert data.images[0].eq(-1).all() and data.images[1].eq(1).all()


def test_tensor_spec_is_accepted_when_in_range():
    images = torch.rand(3, 1, 6, 6) * 2 - 1
    assert torch.equal(load_images(images).images, images)


@pytest.mark.parametrize(
    "bad, fragment",
    [
        (torch.rand(2, 1, 4, 4) * 255, "values in \\[-1, 1\\]"),
        (torch.rand(4, 4), "shape"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), "float"),
    ],
)
def test_tensor_spec_out_of_range_or_misshapen_is_rejected(bad, fragment):
    with pytest.raises(ValueError, match=fragment):
        load_images(bad)


def test_unknown_spec_lists_accepted_forms():
    with pytest.raises(ValueError) as info:
        load_images("cifar10")
    assert "'digits'" in str(info.value) and "folder:PATH" in str(info.value)


def test_to_uint8_maps_endpoints_and_midpoint_by_hand():
    images = torch.tensor([-1.0, 0.0, 1.0, 0.5]).view(1, 1, 2, 2)
    # (x + 1) * 127.5: 0, 127.5 -> 128 (round half to even), 255, 191.25 -> 191
    assert to_uint8(images).flatten().tolist() == [0, 128, 255, 191]


def test_image_grid_png_has_tiles_at_expected_places(tmp_path):
    images = torch.stack([torch.full((1, 3, 3), v) for v in (-1.0, 1.0, 1.0)])
    path = save_image_grid(images, tmp_path / "out" / "grid.png", nrow=2, padding=1)
    grid = np.asarray(Image.open(path))
    assert grid.shape == (2 * 4 + 1, 2 * 4 + 1)
    assert grid[1, 1] == 0 and grid[1, 5] == 255 and grid[5, 1] == 255
    assert [p.name for p in path.parent.iterdir()] == ["grid.png"]


def test_image_grid_clamps_out_of_range_values_with_one_warning(tmp_path):
    import warnings

    import sphere_plugins.data as data

    data._clamp_warned = False
    images = torch.tensor([-7.0, 10.0, 0.0, 1.0]).view(4, 1, 1, 1).expand(4, 1, 2, 2).contiguous()
    with pytest.warns(UserWarning, match=r"values in \[-7, 10\]; clamped"):
        save_image_grid(images, tmp_path / "a.png", nrow=4, padding=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_image_grid(images, tmp_path / "b.png", nrow=4, padding=0)
    pixels = np.asarray(Image.open(tmp_path / "a.png"))
    assert pixels[0, ::2].tolist() == [0, 255, 128, 255]  # -7 -> -1, 10 -> 1, 0 -> 127.5 rounded, 1
