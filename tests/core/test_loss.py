import pytest
import torch
from torch.distributions import Normal, kl_divergence

from sphere_plugins import SAELoss, SVAELoss, VAELoss
from sphere_plugins.loss import gaussian_kl, reconstruction_error, reparameterize


def test_sae_loss_with_p2_is_the_mean_squared_error():
    x, y = torch.randn(4, 3, 5, 5), torch.randn(4, 3, 5, 5)
    torch.testing.assert_close(SAELoss()(x, y), torch.nn.functional.mse_loss(x, y))


def test_sae_loss_with_p1_is_the_mean_absolute_error():
    x, y = torch.randn(4, 10), torch.randn(4, 10)
    torch.testing.assert_close(SAELoss(p=1)(x, y), torch.nn.functional.l1_loss(x, y))


def test_reductions():
    x, y = torch.randn(3, 8), torch.randn(3, 8)
    per_sample = ((x - y) ** 2).mean(dim=1)
    torch.testing.assert_close(SAELoss(reduction="none")(x, y), per_sample)
    torch.testing.assert_close(SAELoss(reduction="sum")(x, y), per_sample.sum())


def test_a_perceptual_term_is_added_with_its_weight():
    class Constant(torch.nn.Module):
        def forward(self, x, y):
            return torch.full((x.shape[0], 1, 1, 1), 0.5)

    x, y = torch.randn(2, 4), torch.randn(2, 4)
    torch.testing.assert_close(SAELoss(perceptual=Constant(), perceptual_weight=2.0)(x, y),
                               torch.nn.functional.mse_loss(x, y) + 1.0)


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match="share a shape"):
        SAELoss()(torch.zeros(2, 3), torch.zeros(2, 4))


@pytest.mark.parametrize("loss", [SAELoss, VAELoss, SVAELoss])
def test_bad_reduction_is_rejected(loss):
    with pytest.raises(ValueError, match="reduction.*'avg'"):
        loss(reduction="avg")


def test_gaussian_kl_matches_torch_distributions():
    mu, logvar = torch.randn(5, 7), torch.randn(5, 7)
    reference = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(dim=1)
    torch.testing.assert_close(gaussian_kl(mu, logvar), reference)


def test_vae_loss_adds_beta_times_kl_per_entry():
    x, y = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    mu, logvar = torch.randn(3, 2), torch.randn(3, 2)
    expected = (reconstruction_error(x, y) + 0.5 * gaussian_kl(mu, logvar) / 16).mean()
    torch.testing.assert_close(VAELoss(beta=0.5)(x, y, mu, logvar), expected)


def test_reparameterized_draws_have_the_posterior_moments_and_gradients():
    mu = torch.full((200_000, 1), 1.5, requires_grad=True)
    logvar = torch.full((200_000, 1), 2 * torch.log(torch.tensor(0.5)).item(), requires_grad=True)
    z = reparameterize(mu, logvar, generator=torch.Generator().manual_seed(0))
    assert abs(z.mean().item() - 1.5) < 0.01
    assert abs(z.std().item() - 0.5) < 0.01
    z.sum().backward()
    torch.testing.assert_close(mu.grad, torch.ones_like(mu))
