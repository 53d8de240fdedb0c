"""GAN training: losses and penalties against closed forms, learning on digits, exact resume."""

import math
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from sphere_plugins.checkpoint import latest_checkpoint
from sphere_stylegan2.configs import tiny_discriminator, tiny_generator
from sphere_stylegan2.loader import load_network, save_nvlabs_pickle
from sphere_plugins.data import load_images
from sphere_stylegan2.train import _SingleProcess, ema_beta, r1_penalty, train_gan, update_ema

DIGITS = dict(resolution=8, channels=1, z_dim=32, w_dim=32, channel_max=32)
SMALL = dict(resolution=8, channels=1, z_dim=8, w_dim=8, channel_max=8)


@pytest.fixture(scope="module")
def digits():
    digits = load_images("digits", resolution=8)
    return digits.images, digits.labels


def _sliced_wasserstein(a, b, directions=64):
    """Mean 1-D Wasserstein distance of pixel vectors along fixed random directions."""
    d = torch.randn(a[0].numel(), directions, generator=torch.Generator().manual_seed(0))
    d = d / d.norm(dim=0)
    pa, pb = (a.flatten(1) @ d).sort(dim=0).values, (b.flatten(1) @ d).sort(dim=0).values
    return (pa - pb).abs().mean().item()


class _LinearD(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.a = nn.Parameter(a)

    def forward(self, img, c=None):
        return (img * self.a).sum(dim=[1, 2, 3]).unsqueeze(1)


def test_r1_penalty_of_a_linear_discriminator_is_its_squared_weight_norm():
    a = torch.randn(1, 2, 3, 3)
    r1 = r1_penalty(_LinearD(a), torch.randn(4, 2, 3, 3), None)
    torch.testing.assert_close(r1, a.square().sum().expand(4))


def test_ema_beta_has_a_half_life_of_ema_kimg_thousand_images():
    assert ema_beta(32, 10 ** 9, ema_kimg=10.0, ema_rampup=None) ** (10_000 / 32) == pytest.approx(0.5)
    assert ema_beta(32, 3200, ema_kimg=10.0, ema_rampup=0.05) == pytest.approx(0.5 ** (32 / 160))


def test_update_ema_blends_parameters_and_copies_buffers():
    G, G_ema = tiny_generator(**SMALL, seed=0), tiny_generator(**SMALL, seed=1)
    G.mapping.w_avg.fill_(2.0)
    expected = 0.9 * G_ema.mapping.fc0.weight.detach() + 0.1 * G.mapping.fc0.weight.detach()
    update_ema(G_ema, G, 0.9)
    torch.testing.assert_close(G_ema.mapping.fc0.weight, expected)
    assert torch.equal(G_ema.mapping.w_avg, G.mapping.w_avg)


def test_training_on_digits_brings_samples_closer_to_the_data(digits):
    images, _ = digits
    G, D = tiny_generator(**DIGITS, seed=0), tiny_discriminator(**DIGITS, seed=1)
    real = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(1))[:512]]
    z = torch.randn(512, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        before = _sliced_wasserstein(G.eval()(z), real)
    result = train_gan(G, D, images, steps=200, batch_size=32, device="cpu", ema_kimg=1.0, seed=0)
    with torch.no_grad():
        after = _sliced_wasserstein(result.G_ema(z), real)
    assert after < 0.5 * before
    d_loss = [r["loss_D_fake"] + r["loss_D_real"] for r in result.history]
    assert sum(d_loss[25:75]) / 50 < sum(d_loss[:10]) / 10  # the discriminator learns to tell them apart
    assert len(result.history) == 200 and sum("r1" in r for r in result.history) == 13


def test_resumed_training_ends_with_the_same_weights_as_an_uninterrupted_run(digits, tmp_path):
    images, _ = digits
    settings = dict(steps=12, batch_size=8, device="cpu", checkpoint_every=4, r1_interval=4, seed=3)
    straight = train_gan(tiny_generator(**SMALL, seed=0), tiny_discriminator(**SMALL, seed=1), images,
                         checkpoint_dir=tmp_path / "a", **settings)

    def crash(step, record):
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_gan(tiny_generator(**SMALL, seed=0), tiny_discriminator(**SMALL, seed=1), images,
                  checkpoint_dir=tmp_path / "b", callback=crash, **settings)
    assert latest_checkpoint(tmp_path / "b").name == "step-00000004"
    resumed = train_gan(tiny_generator(**SMALL, seed=5), tiny_discriminator(**SMALL, seed=6), images,
                        checkpoint_dir=tmp_path / "b", **settings)
    assert resumed.resumed_from == 4
    for role in ("G", "D", "G_ema"):
        a, b = getattr(straight, role).state_dict(), getattr(resumed, role).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), role
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["step-00000008", "step-00000012"]


def test_spherical_latents_fine_tune_a_loaded_generator(digits, tmp_path):
    images, _ = digits
    G = tiny_generator(**SMALL, seed=0).requires_grad_(False)
    path = save_nvlabs_pickle(tmp_path / "s.pkl", G_ema=G, D=tiny_discriminator(**SMALL, seed=1))
    nets = load_network(path)
    start = nets["G_ema"].mapping.fc0.weight.clone()
    result = train_gan(nets["G_ema"], nets["D"], images, steps=3, batch_size=4, device="cpu", latent="spherical",
                       prior="chi2")
    assert not torch.equal(result.G.mapping.fc0.weight, start)
    assert all(math.isfinite(r["loss_G"]) for r in result.history)


def test_training_runs_through_any_object_with_the_accelerator_interface(digits):
    images, _ = digits
    result = train_gan(tiny_generator(**SMALL, seed=0), tiny_discriminator(**SMALL, seed=1), images, steps=2,
                       batch_size=4, accelerator=_SingleProcess("cpu"))
    assert len(result.history) == 2 and result.G.mapping.fc0.weight.device.type == "cpu"


def test_conditional_training_uses_the_labels(digits):
    images, labels = digits
    options = {**SMALL, "c_dim": 10}
    result = train_gan(tiny_generator(**options, seed=0), tiny_discriminator(**options, seed=1), images, steps=2,
                       batch_size=4, labels=labels, device="cpu")
    assert result.G_ema(torch.randn(2, 8), torch.tensor([3, 7])).shape == (2, 1, 8, 8)


def test_conditional_training_without_labels_is_refused(digits):
    images, _ = digits
    options = {**SMALL, "c_dim": 10}
    with pytest.raises(ValueError, match="labels must be given"):
        train_gan(tiny_generator(**options), tiny_discriminator(**options), images, steps=1, device="cpu")


def test_images_of_the_wrong_shape_are_refused(digits):
    with pytest.raises(ValueError, match=r"images must be a tensor \[N, 3, 8, 8\]"):
        train_gan(tiny_generator(**{**SMALL, "channels": 3}), tiny_discriminator(**SMALL), digits[0], steps=1,
                  device="cpu")


def test_unknown_latent_kind_is_refused(digits):
    with pytest.raises(ValueError, match="latent must be one of"):
        train_gan(tiny_generator(**SMALL), tiny_discriminator(**SMALL), digits[0], steps=1, latent="uniform")


def test_digits_are_scaled_to_minus_one_one():
    digits = load_images("digits", resolution=16)
    images, labels = digits.images, digits.labels
    assert images.shape == (1797, 1, 16, 16) and labels.shape == (1797,)
    assert images.min() == -1.0 and images.max() <= 1.0


WORKER = '''
import sys
import torch
from sphere_stylegan2.configs import tiny_discriminator, tiny_generator
from sphere_plugins.data import load_images
from sphere_stylegan2.train import gan_accelerator, train_gan
torch.set_num_threads(1)
accelerator = gan_accelerator("cpu")
options = dict(resolution=8, channels=1, z_dim=8, w_dim=8, channel_max=8)
rank = accelerator.process_index  # different initial weights per rank: training must start from rank 0's
result = train_gan(tiny_generator(**options, seed=rank), tiny_discriminator(**options, seed=10 + rank),
                   load_images("digits", resolution=8).images, steps=2, batch_size=4, r1_interval=2, accelerator=accelerator)
weights = torch.cat([p.detach().flatten() for p in (*result.G.parameters(), *result.D.parameters())])
torch.save(weights, f"{sys.argv[1]}/rank{accelerator.process_index}-of-{accelerator.num_processes}.pt")
accelerator.end_training()  # leave the process group: exiting inside it can abort in gloo's teardown
'''


def test_two_processes_through_accelerate_start_from_rank_0_and_stay_identical(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # --standalone: the rendezvous takes a free port from the OS, so parallel runs on one host cannot collide
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(script), str(tmp_path)], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"two-process run failed:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"
    first, second = torch.load(tmp_path / "rank0-of-2.pt"), torch.load(tmp_path / "rank1-of-2.pt")
    assert torch.equal(first, second)
