"""LPIPS: the offline error names the backbone file and folder; a random backbone exercises the plumbing only."""

from __future__ import annotations

import pytest
import torch

from sphere_plugins.errors import MissingWeightsError
from sphere_plugins.metrics import LPIPS, compute_lpips, lpips_backbone_path
from sphere_plugins.metrics.perceptual import RANDOM_BACKBONE_NAME


@pytest.fixture
def empty_hub(tmp_path):
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    yield tmp_path
    torch.hub.set_dir(previous)


@pytest.fixture(scope="module")
def random_lpips():
    return LPIPS("alex", allow_random_backbone=True)


@pytest.mark.parametrize(
    "net, filename",
    [("alex", "alexnet-owt-7be5be79.pth"), ("vgg", "vgg16-397923af.pth"), ("squeeze", "squeezenet1_1-b8a52dc0.pth")],
)
def test_backbone_file_is_looked_up_in_the_hub_checkpoints_folder(empty_hub, net, filename):
    assert lpips_backbone_path(net) == empty_hub / "checkpoints" / filename


def test_missing_backbone_raises_one_line_naming_file_and_folder(empty_hub):
    with pytest.raises(MissingWeightsError) as info:
        LPIPS("alex")
    message = str(info.value)
    assert "\n" not in message
    assert "alexnet-owt-7be5be79.pth" in message and str(empty_hub / "checkpoints") in message


def test_random_backbone_is_labelled_as_a_plumbing_test(random_lpips):
    record = compute_lpips(torch.zeros(2, 3, 32, 32), torch.ones(2, 3, 32, 32) * 0.5, random_lpips)
    assert record.metric == RANDOM_BACKBONE_NAME
    assert not record.metric.startswith("LPIPS-alex")


def test_distance_of_an_image_to_itself_is_zero_and_positive_otherwise(random_lpips):
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 32, 32, generator=generator) * 2 - 1
    y = torch.rand(3, 3, 32, 32, generator=generator) * 2 - 1
    assert torch.allclose(random_lpips(x, x), torch.zeros(3), atol=1e-7)
    assert (random_lpips(x, y) > 0).all()


def test_grey_images_equal_their_rgb_repetition(random_lpips):
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(2, 1, 32, 32, generator=generator) * 2 - 1
    y = torch.rand(2, 1, 32, 32, generator=generator) * 2 - 1
    assert torch.allclose(random_lpips(x, y), random_lpips(x.repeat(1, 3, 1, 1), y.repeat(1, 3, 1, 1)))


def test_images_too_small_for_the_backbone_are_rejected(random_lpips):
    with pytest.raises(ValueError, match="at least 31x31"):
        random_lpips(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))
