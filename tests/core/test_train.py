"""The training loop and the objectives: losses fall on digits, codes/samples follow each method, bad input."""

import json
import math
import types

import pytest
import torch
from torch import nn

from sphere_plugins.data import load_images
from sphere_plugins.latent import centerize
from sphere_plugins.nets import ConvAutoencoder, ConvDecoder, ConvEncoder
from sphere_plugins.priors import sample_prior
from sphere_plugins.training import (
    AEObjective,
    SAEObjective,
    ShardedBatches,
    SVAEObjective,
    TrainConfig,
    VAEObjective,
    as_images,
    conv_objective,
    finetune_autoencoder_to_sae,
    train,
)
from sphere_plugins.wrap import wrap_autoencoder

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    return load_images("digits", resolution=16).images


def _config(**overrides):
    return TrainConfig(**{"steps": 5, "batch_size": 16, "lr": 2e-3, "log_every": 1, "progress": False, "cpu": True,
                          **overrides})


@pytest.mark.parametrize("kind", ["sae", "vae", "svae", "ae", "rae"])
def test_reconstruction_error_falls_on_digits(digits, kind):
    torch.manual_seed(0)
    result = train(conv_objective(kind, z_dim=10, width=8), digits,
                   _config(steps=100, batch_size=32, lr=3e-3, log_every=10))
    first, last = result.history[0]["mse"], result.history[-1]["mse"]
    assert result.step == 100 and len(result.history) == 10
    assert last < 0.5 * first, f"{kind}: mse {first:.4f} -> {last:.4f}"


def test_the_unchecked_training_step_equals_the_wrappers_forward(digits):
    torch.manual_seed(0)
    objective = conv_objective("sae", width=8)
    x = digits[:8]
    fast, _ = objective(x)
    objective.check_batches = True
    checked, _ = objective(x)
    assert torch.equal(fast, checked)
    assert torch.equal(fast, objective.wrapper.loss(x))


def test_spherical_codes_are_centered_on_the_sphere_of_radius_sqrt_d(digits):
    codes = conv_objective("sae", z_dim=12, width=8).codes(digits[:6])
    torch.testing.assert_close(codes.mean(dim=1), torch.zeros(6), atol=1e-6, rtol=0)
    torch.testing.assert_close(codes.norm(dim=1), torch.full((6,), math.sqrt(12)))


def test_svae_codes_are_unit_mean_directions(digits):
    encoder = ConvEncoder(z_dim=5, width=8, extra=1)
    objective = SVAEObjective(encoder, ConvDecoder(z_dim=5, width=8))
    raw = encoder(digits[:4])[:, :5]
    torch.testing.assert_close(objective.codes(digits[:4]), raw / raw.norm(dim=1, keepdim=True))


def test_vae_codes_are_the_posterior_means(digits):
    encoder = ConvEncoder(z_dim=4, width=8, heads=2)
    objective = VAEObjective(encoder, ConvDecoder(z_dim=4, width=8))
    torch.testing.assert_close(objective.codes(digits[:3]), encoder(digits[:3])[:, :4])


class _Recorder(nn.Module):
    """A decoder that remembers its input."""

    def __init__(self, z_dim):
        super().__init__()
        self.decoder = ConvDecoder(z_dim=z_dim, width=8)
        self.z_dim = z_dim
        self.seen = None

    def forward(self, z):
        self.seen = z
        return self.decoder(z)


@pytest.mark.parametrize("kind", ["vae", "ae"])
def test_baselines_decode_the_raw_prior_draw(kind):
    decoder = _Recorder(6)
    heads = 2 if kind == "vae" else 1
    objective = (VAEObjective if kind == "vae" else AEObjective)(ConvEncoder(z_dim=6, width=8, heads=heads), decoder)
    images = objective.sample(5, "poisson", generator=torch.Generator().manual_seed(1), rate=2.0)
    expected = sample_prior("poisson", (5, 6), generator=torch.Generator().manual_seed(1), rate=2.0)
    assert images.shape == (5, 1, 16, 16)
    assert torch.equal(decoder.seen, expected)


def test_rae_loss_adds_the_code_penalty_and_the_decoders_weight_decay():
    torch.manual_seed(0)
    objective = conv_objective("rae", z_dim=6, width=8, code_penalty=0.5, decoder_decay=0.01)
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    loss, logs = objective(x)
    z = objective.encoder(x)
    mse = (x - objective.decoder(z)).square().mean()
    code = 0.5 * z.square().mean()  # |z|^2 / 2 per code entry
    weights = [w for name, w in objective.decoder.named_parameters() if name.endswith("weight")]
    decay = sum(w.square().sum() for w in weights)
    assert len(weights) == 4  # fc and three convolutions; biases are not decayed
    torch.testing.assert_close(loss, mse + 0.5 * code + 0.01 * decay)
    torch.testing.assert_close(logs["code"], code.detach())
    with pytest.raises(ValueError, match="code_penalty"):
        conv_objective("rae", code_penalty=-1.0)


def test_svae_samples_decode_centered_unit_vectors():
    decoder = _Recorder(6)
    objective = SVAEObjective(ConvEncoder(z_dim=6, width=8, extra=1), decoder)
    objective.sample(5, "chi2", generator=torch.Generator().manual_seed(2))
    raw = sample_prior("chi2", (5, 6), generator=torch.Generator().manual_seed(2))
    expected = centerize(raw) / centerize(raw).norm(dim=1, keepdim=True)
    torch.testing.assert_close(decoder.seen, expected)


def test_svae_redraws_prior_draws_that_centerize_to_zero():
    # Poisson(0.3) in d = 6 gives a constant vector ~17% of the time; the standard-scale autoencoder suite
    # once stopped on one such draw from Poisson(1) in d = 10.
    raw = sample_prior("poisson", (64, 6), generator=torch.Generator().manual_seed(4), rate=0.3)
    assert (centerize(raw).norm(dim=1) == 0).sum() >= 3
    decoder = _Recorder(6)
    objective = SVAEObjective(ConvEncoder(z_dim=6, width=8, extra=1), decoder)
    objective.sample(64, "poisson", generator=torch.Generator().manual_seed(4), rate=0.3)
    assert torch.isfinite(decoder.seen).all()
    torch.testing.assert_close(decoder.seen.norm(dim=1), torch.ones(64))


def test_svae_sampling_names_the_prior_when_every_draw_is_degenerate():
    objective = SVAEObjective(ConvEncoder(z_dim=6, width=8, extra=1), _Recorder(6))
    with pytest.raises(ValueError, match="prior 'poisson'"):
        objective.sample(4, "poisson", generator=torch.Generator().manual_seed(4), rate=1e-12)


def test_spherical_autoencoder_samples_decode_codes_on_its_sphere():
    decoder = _Recorder(6)
    objective = SAEObjective(wrap_autoencoder((ConvEncoder(z_dim=6, width=8), decoder), z_shape=(6,)))
    objective.sample(4, "uniform", generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(decoder.seen.norm(dim=1), torch.full((4,), math.sqrt(6)))
    torch.testing.assert_close(decoder.seen.mean(dim=1), torch.zeros(4), atol=1e-6, rtol=0)


def test_gradient_accumulation_matches_one_larger_batch(digits):
    def run(batch_size, grad_accum):
        torch.manual_seed(0)
        objective = conv_objective("ae", width=8)
        train(objective, digits, _config(steps=3, batch_size=batch_size, grad_accum=grad_accum))
        return objective.state_dict()

    for a, b in zip(run(16, 1).values(), run(8, 2).values()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_gradient_clipping_limits_the_update(digits):
    def largest_change(max_grad_norm):
        torch.manual_seed(0)
        objective = conv_objective("ae", width=8)
        before = [p.detach().clone() for p in objective.parameters()]
        train(objective, digits, _config(steps=1, lr=1e-2, max_grad_norm=max_grad_norm))
        return max((p - b).abs().max().item() for p, b in zip(objective.parameters(), before))

    # Adam's first step moves each weight by about lr; a gradient clipped far below Adam's eps barely moves it.
    assert largest_change(None) > 5e-3
    assert largest_change(1e-12) < 1e-5


def test_process_shards_are_disjoint_and_cover_an_epoch():
    shards = [ShardedBatches(10, 2, seed=4, rank=r, world_size=3).shard(0) for r in range(3)]
    seen = torch.cat(shards)
    assert len(set(seen.tolist())) == 9  # 10 images on 3 processes: one dropped per epoch
    epoch = torch.randperm(10, generator=torch.Generator().manual_seed(4))
    assert torch.equal(seen.sort().values, epoch[:9].sort().values)


def test_batches_run_across_epochs_and_resume_from_their_state():
    stream = ShardedBatches(5, 3, seed=1)
    first = [stream.next_indices() for _ in range(2)]
    epoch0 = torch.randperm(5, generator=torch.Generator().manual_seed(1))
    epoch1 = torch.randperm(5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(torch.cat(first), torch.cat([epoch0, epoch1[:1]]))
    resumed = ShardedBatches(5, 3, seed=1)
    resumed.load_state(stream.state())
    assert torch.equal(resumed.next_indices(), stream.next_indices())


def test_metrics_are_written_as_json_lines(digits, tmp_path):
    log = tmp_path / "logs" / "train.jsonl"
    train(conv_objective("vae", width=8), digits, _config(steps=6, log_every=2, log_path=log))
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6]
    assert all({"loss", "mse", "kl"} <= set(r) and math.isfinite(r["loss"]) for r in records)


def test_data_can_be_an_image_set_like_object_or_a_spec(digits):
    assert torch.equal(as_images(types.SimpleNamespace(images=digits)), digits)
    assert as_images("digits").shape == (1797, 1, 8, 8)


def test_finetuning_an_autoencoder_gives_a_trained_spherical_autoencoder(digits):
    torch.manual_seed(0)
    model = ConvAutoencoder(z_dim=8, width=8)
    result = finetune_autoencoder_to_sae(model, digits, _config(steps=60, batch_size=32, log_every=10))
    assert result.history[-1]["mse"] < 0.7 * result.history[0]["mse"]
    codes = result.objective.wrapper.encode(digits[:4])
    torch.testing.assert_close(codes.norm(dim=1), torch.full((4,), math.sqrt(8)))
    assert result.objective.wrapper.model.encoder is model.encoder


def test_finetuning_a_diffusers_autoencoder_kl_trains_reconstruction_only(digits):
    from sphere_diffusers import build_tiny_vae

    vae = build_tiny_vae(channels=1, resolution=16, latent_channels=2, block_out_channels=(8, 16), seed=0,
                         norm_num_groups=4)
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    torch.manual_seed(0)
    result = finetune_autoencoder_to_sae(vae, digits, _config(steps=25, batch_size=16, lr=3e-3, log_every=5))
    history = result.history
    assert history[-1]["mse"] < history[0]["mse"]
    assert all(r["loss"] == pytest.approx(r["mse"]) for r in history)  # reconstruction only: no KL term
    assert any(not torch.equal(before[k], v) for k, v in vae.state_dict().items())
    codes = result.objective.wrapper.encode(digits[:2])
    torch.testing.assert_close(codes.flatten(1).norm(dim=1), torch.full((2,), math.sqrt(codes[0].numel())))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (torch.full((4, 1, 8, 8), 2.0), r"values in \[-1, 1\]"),
        (torch.zeros(4, 2, 8, 8), "C in"),
        ("nonsense", "unknown data spec"),
    ],
)
def test_bad_data_is_rejected_before_training(data, match):
    with pytest.raises(ValueError, match=match):
        train(conv_objective("ae", width=8), data, _config())


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"steps": 0}, "steps must be a positive int"),
        ({"mixed_precision": "fp8"}, "mixed_precision must be one of"),
        ({"lr": -1.0}, "lr must be"),
        ({"resume": True}, "resume=True needs checkpoint_dir"),
    ],
)
def test_bad_config_values_are_rejected(overrides, match):
    with pytest.raises(ValueError, match=match):
        _config(**overrides)


def test_half_precision_on_the_cpu_is_rejected(digits):
    with pytest.raises(ValueError, match="needs a GPU"):
        train(conv_objective("ae", width=8), digits, _config(mixed_precision="bf16", cpu=True))


def test_checkpoint_every_without_a_folder_is_rejected(digits):
    with pytest.raises(ValueError, match="checkpoint_dir"):
        train(conv_objective("ae", width=8), digits, _config(checkpoint_every=2))


def test_an_objective_must_be_a_module(digits):
    with pytest.raises(ValueError, match="objective must be an nn.Module"):
        train(lambda x: x, digits, _config())


@pytest.mark.parametrize("size", ["z_dim", "width", "channels"])
def test_a_zero_size_of_the_built_in_networks_is_refused_naming_it(size):
    with pytest.raises(ValueError, match=f"{size} must be a positive int, got 0"):
        conv_objective("vae", **{size: 0})
    with pytest.raises(ValueError, match=f"{size} must be a positive int, got 0"):
        ConvAutoencoder(**{size: 0})


def test_unknown_objective_kind_is_rejected():
    with pytest.raises(ValueError, match="kind must be one of sae, vae, svae, ae"):
        conv_objective("gan")


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("kind", ["sae", "svae"])
def test_mixed_precision_training_runs_and_resumes_on_cuda(digits, tmp_path, precision, kind):
    config = _config(steps=4, cpu=False, mixed_precision=precision, checkpoint_every=2, checkpoint_dir=str(tmp_path))
    first = train(conv_objective(kind, width=8), digits, config)
    assert next(first.objective.parameters()).device.type == "cuda"
    assert all(math.isfinite(r["loss"]) for r in first.history)
    again = train(conv_objective(kind, width=8), digits,
                  _config(steps=6, cpu=False, mixed_precision=precision, checkpoint_dir=str(tmp_path), resume=True))
    assert again.resumed_from.name == "step-00000004" and again.step == 6


def test_accelerate_private_state_used_by_make_accelerator_still_exists_and_resets():
    # accelerate has no public reset; if a release renames these, this test names what broke.
    from accelerate.state import AcceleratorState, PartialState

    from sphere_plugins.training.loop import _forget_other_accelerate_settings, make_accelerator

    assert isinstance(PartialState._shared_state, dict), "accelerate.state.PartialState._shared_state changed"
    assert callable(getattr(AcceleratorState, "_reset_state", None)), "AcceleratorState._reset_state is gone"
    make_accelerator(cpu=True)
    assert PartialState._shared_state and AcceleratorState().mixed_precision == "no"
    _forget_other_accelerate_settings(cpu=True, mixed_precision="no")  # same settings: kept
    assert PartialState._shared_state
    _forget_other_accelerate_settings(cpu=True, mixed_precision="fp16")  # other precision: forgotten
    assert not PartialState._shared_state and not AcceleratorState._shared_state
    make_accelerator(cpu=True)
