"""uniformity: Wang and Isola's (2020) uniformity loss on the codes, an SAEObjective term that is off by default."""

import math

import pytest
import torch

from sphere_plugins.loss import uniformity_loss
from sphere_plugins.nets import ConvAutoencoder
from sphere_plugins.training import SAEObjective, conv_objective
from sphere_plugins.wrap import wrap_autoencoder


def test_uniformity_of_three_points_matches_a_hand_computation():
    # e1, e2, -e1: squared distances 2, 4, 2.
    z = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [-1.0, 0, 0]])
    expected = math.log((2 * math.exp(-2 * 2) + math.exp(-2 * 4)) / 3)
    assert abs(float(uniformity_loss(z)) - expected) < 1e-6
    assert abs(float(uniformity_loss(z, t=0.5)) - math.log((2 * math.exp(-1) + math.exp(-2)) / 3)) < 1e-6


def test_uniformity_ignores_the_radius_and_prefers_spread_codes():
    g = torch.Generator().manual_seed(0)
    spread = torch.randn(64, 32, generator=g)
    clustered = torch.randn(1, 32, generator=g) + 0.2 * torch.randn(64, 32, generator=g)
    torch.testing.assert_close(uniformity_loss(7.0 * spread), uniformity_loss(spread))
    assert float(uniformity_loss(spread)) < float(uniformity_loss(clustered)) - 1.0


def test_a_single_code_has_no_pairs_and_a_bad_t_is_rejected():
    assert float(uniformity_loss(torch.randn(1, 4))) == 0.0
    with pytest.raises(ValueError, match="t must be a positive finite number"):
        uniformity_loss(torch.randn(3, 4), t=0)


def _sae():
    torch.manual_seed(0)
    return wrap_autoencoder(ConvAutoencoder(channels=1, resolution=8, z_dim=6, width=8))


def test_the_objective_adds_the_weighted_uniformity_of_the_clean_codes():
    sae = _sae()
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    plain, plain_logs = SAEObjective(sae)(x)
    assert "uniformity" not in plain_logs
    loss, logs = SAEObjective(sae, uniformity=0.1)(x)
    spread = uniformity_loss(sae.encode(x))
    torch.testing.assert_close(loss, plain + 0.1 * spread)
    torch.testing.assert_close(logs["uniformity"], spread)


def test_uniformity_gradients_push_the_codes_apart():
    torch.manual_seed(0)
    objective = conv_objective("sae", resolution=8, z_dim=6, width=8, uniformity=1.0)
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        before = float(uniformity_loss(objective.codes(x)))
    optimizer = torch.optim.SGD(objective.wrapper.adapter.module.encoder.parameters(), lr=0.05)
    for _ in range(20):
        optimizer.zero_grad()
        uniformity_loss(objective.wrapper(x).latent).backward()
        optimizer.step()
    with torch.no_grad():
        assert float(uniformity_loss(objective.codes(x))) < before - 0.05


@pytest.mark.parametrize("bad", [-1.0, float("nan"), "1"])
def test_a_bad_uniformity_weight_is_rejected(bad):
    with pytest.raises(ValueError, match="uniformity must be a finite number >= 0"):
        SAEObjective(_sae(), uniformity=bad)
    with pytest.raises(ValueError, match="t must be a positive"):
        SAEObjective(_sae(), uniformity=0.1, uniformity_t=-2)


def test_uniformity_on_a_baseline_objective_is_rejected():
    with pytest.raises(ValueError, match="uniformity applies to the spherical autoencoder"):
        conv_objective("ae", resolution=8, z_dim=6, width=8, uniformity=0.1)
