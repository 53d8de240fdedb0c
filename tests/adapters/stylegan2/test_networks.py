"""Network structure and behaviour: names and shapes as in NVlabs' pickles, architectures, truncation,
noise, conditioning, fp16 fallback, z normalization."""

import math

import pytest
import torch

from sphere_stylegan2 import Discriminator, Generator
from sphere_stylegan2.layers import FullyConnectedLayer, normalize_2nd_moment
from sphere_stylegan2.discriminator import MinibatchStdLayer

# state_dict listings of the skip32 config, copied from the format notes (read from NVlabs-written pickles):
# z_dim = w_dim = 64, 32x32 RGB, mapping num_layers=2, channel_base=2048, channel_max=64.
SKIP32_G_EMA = """
synthesis.b4.const (64, 4, 4)
synthesis.b4.resample_filter (4, 4)
synthesis.b4.conv1.weight (64, 64, 3, 3)
synthesis.b4.conv1.noise_strength ()
synthesis.b4.conv1.bias (64,)
synthesis.b4.conv1.resample_filter (4, 4)
synthesis.b4.conv1.noise_const (4, 4)
synthesis.b4.conv1.affine.weight (64, 64)
synthesis.b4.conv1.affine.bias (64,)
synthesis.b4.torgb.weight (3, 64, 1, 1)
synthesis.b4.torgb.bias (3,)
synthesis.b4.torgb.affine.weight (64, 64)
synthesis.b4.torgb.affine.bias (64,)
synthesis.b8.resample_filter (4, 4)
synthesis.b8.conv0.weight (64, 64, 3, 3)
synthesis.b8.conv0.noise_strength ()
synthesis.b8.conv0.bias (64,)
synthesis.b8.conv0.resample_filter (4, 4)
synthesis.b8.conv0.noise_const (8, 8)
synthesis.b8.conv0.affine.weight (64, 64)
synthesis.b8.conv0.affine.bias (64,)
synthesis.b8.conv1.weight (64, 64, 3, 3)
synthesis.b8.conv1.noise_strength ()
synthesis.b8.conv1.bias (64,)
synthesis.b8.conv1.resample_filter (4, 4)
synthesis.b8.conv1.noise_const (8, 8)
synthesis.b8.conv1.affine.weight (64, 64)
synthesis.b8.conv1.affine.bias (64,)
synthesis.b8.torgb.weight (3, 64, 1, 1)
synthesis.b8.torgb.bias (3,)
synthesis.b8.torgb.affine.weight (64, 64)
synthesis.b8.torgb.affine.bias (64,)
synthesis.b16.resample_filter (4, 4)
synthesis.b16.conv0.weight (64, 64, 3, 3)
synthesis.b16.conv0.noise_strength ()
synthesis.b16.conv0.bias (64,)
synthesis.b16.conv0.resample_filter (4, 4)
synthesis.b16.conv0.noise_const (16, 16)
synthesis.b16.conv0.affine.weight (64, 64)
synthesis.b16.conv0.affine.bias (64,)
synthesis.b16.conv1.weight (64, 64, 3, 3)
synthesis.b16.conv1.noise_strength ()
synthesis.b16.conv1.bias (64,)
synthesis.b16.conv1.resample_filter (4, 4)
synthesis.b16.conv1.noise_const (16, 16)
synthesis.b16.conv1.affine.weight (64, 64)
synthesis.b16.conv1.affine.bias (64,)
synthesis.b16.torgb.weight (3, 64, 1, 1)
synthesis.b16.torgb.bias (3,)
synthesis.b16.torgb.affine.weight (64, 64)
synthesis.b16.torgb.affine.bias (64,)
synthesis.b32.resample_filter (4, 4)
synthesis.b32.conv0.weight (64, 64, 3, 3)
synthesis.b32.conv0.noise_strength ()
synthesis.b32.conv0.bias (64,)
synthesis.b32.conv0.resample_filter (4, 4)
synthesis.b32.conv0.noise_const (32, 32)
synthesis.b32.conv0.affine.weight (64, 64)
synthesis.b32.conv0.affine.bias (64,)
synthesis.b32.conv1.weight (64, 64, 3, 3)
synthesis.b32.conv1.noise_strength ()
synthesis.b32.conv1.bias (64,)
synthesis.b32.conv1.resample_filter (4, 4)
synthesis.b32.conv1.noise_const (32, 32)
synthesis.b32.conv1.affine.weight (64, 64)
synthesis.b32.conv1.affine.bias (64,)
synthesis.b32.torgb.weight (3, 64, 1, 1)
synthesis.b32.torgb.bias (3,)
synthesis.b32.torgb.affine.weight (64, 64)
synthesis.b32.torgb.affine.bias (64,)
mapping.w_avg (64,)
mapping.fc0.weight (64, 64)
mapping.fc0.bias (64,)
mapping.fc1.weight (64, 64)
mapping.fc1.bias (64,)
"""

SKIP32_D = """
b32.resample_filter (4, 4)
b32.fromrgb.weight (64, 3, 1, 1)
b32.fromrgb.bias (64,)
b32.fromrgb.resample_filter (4, 4)
b32.conv0.weight (64, 64, 3, 3)
b32.conv0.bias (64,)
b32.conv0.resample_filter (4, 4)
b32.conv1.weight (64, 64, 3, 3)
b32.conv1.bias (64,)
b32.conv1.resample_filter (4, 4)
b32.skip.weight (64, 64, 1, 1)
b32.skip.resample_filter (4, 4)
b16.resample_filter (4, 4)
b16.conv0.weight (64, 64, 3, 3)
b16.conv0.bias (64,)
b16.conv0.resample_filter (4, 4)
b16.conv1.weight (64, 64, 3, 3)
b16.conv1.bias (64,)
b16.conv1.resample_filter (4, 4)
b16.skip.weight (64, 64, 1, 1)
b16.skip.resample_filter (4, 4)
b8.resample_filter (4, 4)
b8.conv0.weight (64, 64, 3, 3)
b8.conv0.bias (64,)
b8.conv0.resample_filter (4, 4)
b8.conv1.weight (64, 64, 3, 3)
b8.conv1.bias (64,)
b8.conv1.resample_filter (4, 4)
b8.skip.weight (64, 64, 1, 1)
b8.skip.resample_filter (4, 4)
b4.conv.weight (64, 65, 3, 3)
b4.conv.bias (64,)
b4.conv.resample_filter (4, 4)
b4.fc.weight (64, 1024)
b4.fc.bias (64,)
b4.out.weight (1, 64)
b4.out.bias (1,)
"""

SKIP32 = dict(z_dim=64, c_dim=0, w_dim=64, img_resolution=32, img_channels=3, mapping_kwargs=dict(num_layers=2),
              synthesis_kwargs=dict(channel_base=2048, channel_max=64))


def _listing(module):
    return [f"{name} {tuple(t.shape)}" for name, t in module.state_dict().items()]


def _doc(text):
    return [line.strip() for line in text.strip().splitlines()]


def tiny(**overrides):
    kwargs = dict(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3,
                  mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=128, channel_max=8))
    for key, value in overrides.items():
        if key in ("mapping_kwargs", "synthesis_kwargs"):
            kwargs[key] = {**kwargs[key], **value}
        else:
            kwargs[key] = value
    torch.manual_seed(0)
    return Generator(**kwargs).eval()


def _noisy(G, strength=0.5):
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(strength)
    return G


def test_generator_state_dict_names_and_shapes_match_nvlabs_skip32():
    assert _listing(Generator(**SKIP32)) == _doc(SKIP32_G_EMA)


def test_discriminator_state_dict_names_and_shapes_match_nvlabs_skip32():
    D = Discriminator(c_dim=0, img_resolution=32, img_channels=3, channel_base=2048, channel_max=64)
    assert _listing(D) == _doc(SKIP32_D)


@pytest.mark.parametrize("resolution", [4, 8, 32])
def test_num_ws_is_twice_log2_resolution_minus_two(resolution):
    G = tiny(img_resolution=resolution)
    assert G.num_ws == G.mapping.num_ws == 2 * int(math.log2(resolution)) - 2
    assert G.mapping(torch.randn(2, 16), None).shape == (2, G.num_ws, 16)


def test_w_avg_is_a_zero_buffer_tracked_with_beta_0995():
    G = tiny()
    assert G.mapping.w_avg_beta == 0.995 and "mapping.w_avg" in dict(G.named_buffers())
    assert torch.equal(G.mapping.w_avg, torch.zeros(16))


@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
def test_every_architecture_generates_images_of_the_configured_shape(architecture):
    G = tiny(synthesis_kwargs=dict(architecture=architecture))
    images = G(torch.randn(2, 16))
    assert images.shape == (2, 3, 16, 16) and torch.isfinite(images).all()
    names = set(G.state_dict())
    assert ("synthesis.b8.torgb.weight" in names) == (architecture == "skip")
    assert "synthesis.b16.torgb.weight" in names
    assert ("synthesis.b8.skip.weight" in names) == (architecture == "resnet")


def _upsample_1331(img):
    """Closed form of 2x upsampling with the [1,3,3,1] filter: 3/4 and 1/4 of the two nearest pixels."""
    def axis(a):
        p = torch.nn.functional.pad(a, (1, 1))
        even = 0.75 * p[..., 1:-1] + 0.25 * p[..., :-2]
        odd = 0.75 * p[..., 1:-1] + 0.25 * p[..., 2:]
        return torch.stack([even, odd], dim=-1).flatten(-2)
    return axis(axis(img).transpose(-1, -2)).transpose(-1, -2)


def test_skip_architecture_sums_fir_upsampled_rgb_of_every_block():
    G = tiny()
    with torch.no_grad():
        for res in (8, 16):
            block = getattr(G.synthesis, f"b{res}")
            block.torgb.weight.zero_()
            block.torgb.bias.zero_()
    seen = {}
    G.synthesis.b4.register_forward_hook(lambda m, i, out: seen.update(img4=out[1]))
    images = G(torch.randn(2, 16))
    expected = _upsample_1331(_upsample_1331(seen["img4"]))
    torch.testing.assert_close(images, expected, rtol=1e-5, atol=1e-6)


def test_resnet_synthesis_block_averages_skip_and_convs_with_sqrt_half():
    G = tiny(synthesis_kwargs=dict(architecture="resnet"))
    block = G.synthesis.b8
    seen = {}
    block.register_forward_hook(lambda m, i, out: seen.update(x_in=i[0], ws=i[2], x_out=out[0]))
    G(torch.randn(2, 16))
    w0, w1 = seen["ws"][:, 0], seen["ws"][:, 1]
    main = block.conv1(block.conv0(seen["x_in"], w0), w1)
    torch.testing.assert_close(seen["x_out"], math.sqrt(0.5) * (block.skip(seen["x_in"]) + main))


def test_w_avg_moves_only_when_asked_in_either_convention():
    G = tiny()
    z = torch.randn(8, 16)
    zero = torch.zeros(16)
    G.mapping.train()(z, None)
    assert torch.equal(G.mapping.w_avg, zero)  # stylegan3 convention: no update_emas, no update
    G.mapping(z, None, skip_w_avg_update=True)
    assert torch.equal(G.mapping.w_avg, zero)
    G.mapping.eval()(z, None, skip_w_avg_update=False)
    assert torch.equal(G.mapping.w_avg, zero)  # ada convention updates in training mode only
    G.mapping.train()(z, None, skip_w_avg_update=False)
    with torch.no_grad():
        expected = G.mapping(z, None, truncation_psi=1).mean(dim=(0, 1)) * (1 - 0.995)
    torch.testing.assert_close(G.mapping.w_avg, expected)


def test_truncation_moves_ws_toward_w_avg_by_psi():
    G = tiny()
    G.mapping.w_avg.normal_()
    z = torch.randn(3, 16)
    ws = G.mapping(z, None)
    torch.testing.assert_close(G.mapping(z, None, truncation_psi=0.7),
                               G.mapping.w_avg + 0.7 * (ws - G.mapping.w_avg))


def test_truncation_cutoff_truncates_only_the_first_ws():
    G = tiny()
    G.mapping.w_avg.normal_()
    z = torch.randn(3, 16)
    ws = G.mapping(z, None)
    cut = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2)
    torch.testing.assert_close(cut[:, :2], G.mapping.w_avg + 0.5 * (ws[:, :2] - G.mapping.w_avg))
    assert torch.equal(cut[:, 2:], ws[:, 2:])


def test_truncation_psi_zero_gives_the_same_image_for_every_z():
    G = tiny()
    images = G(torch.randn(3, 16), truncation_psi=0)
    torch.testing.assert_close(images, images[:1].expand_as(images))


def test_update_emas_moves_w_avg_toward_the_batch_mean_w():
    G = tiny()
    G.mapping.w_avg.fill_(1.0)
    z = torch.randn(5, 16)
    batch_mean = G.mapping(z, None)[:, 0].mean(dim=0)
    G.mapping(z, None, update_emas=True)
    torch.testing.assert_close(G.mapping.w_avg, 0.995 * torch.ones(16) + 0.005 * batch_mean)


def test_noise_mode_const_is_repeatable_and_differs_from_none():
    G = _noisy(tiny())
    z = torch.randn(2, 16)
    const = G(z, noise_mode="const")
    assert torch.equal(const, G(z, noise_mode="const"))
    assert not torch.allclose(const, G(z, noise_mode="none"))


def test_noise_mode_random_draws_new_noise_each_call():
    G = _noisy(tiny())
    z = torch.randn(2, 16)
    assert not torch.allclose(G(z, noise_mode="random"), G(z, noise_mode="random"))


def test_noise_modes_agree_when_noise_strength_is_zero():
    G = tiny()
    z = torch.randn(2, 16)
    assert torch.equal(G(z, noise_mode="none"), G(z, noise_mode="const"))
    torch.testing.assert_close(G(z, noise_mode="random"), G(z, noise_mode="none"))


def test_unknown_noise_mode_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="noise_mode must be one of"):
        tiny()(torch.randn(1, 16), noise_mode="loud")


def test_conditional_generator_embeds_c_into_fc0_input():
    G = tiny(c_dim=4)
    assert G.mapping.embed.weight.shape == (16, 4)
    assert G.mapping.fc0.weight.shape == (16, 16 + 16)


def test_conditional_generator_without_c_says_c_is_needed():
    with pytest.raises(ValueError, match="c must be given"):
        tiny(c_dim=4)(torch.randn(2, 16))


def test_class_indices_act_as_one_hot_labels():
    G = tiny(c_dim=4)
    z = torch.randn(2, 16)
    one_hot = torch.tensor([[0.0, 0, 1, 0], [1, 0, 0, 0]])
    assert torch.equal(G(z, torch.tensor([2, 0])), G(z, one_hot))
    assert not torch.allclose(G(z, torch.tensor([1, 1])), G(z, one_hot))


def test_unconditional_generator_ignores_empty_labels_and_refuses_real_ones():
    G = tiny()
    z = torch.randn(3, 16)
    assert torch.equal(G(z, torch.zeros(1, 0)), G(z))
    with pytest.raises(ValueError, match="c must be None or empty for this unconditional network"):
        G(z, torch.ones(3, 2))


def test_fp16_blocks_compute_in_float32_on_the_cpu():
    G32 = tiny()
    G16 = tiny(synthesis_kwargs=dict(num_fp16_res=2, conv_clamp=256))
    G16.load_state_dict(G32.state_dict())
    assert G16.synthesis.b16.use_fp16 and G16.synthesis.b8.use_fp16 and not G16.synthesis.b4.use_fp16
    z = torch.randn(2, 16)
    images = G16(z)
    assert images.dtype == torch.float32
    torch.testing.assert_close(images, G32(z), rtol=0, atol=1e-6)
    assert torch.equal(images, G16(z, force_fp32=True))


def test_conv_clamp_bounds_every_synthesis_layer_output():
    G = tiny(synthesis_kwargs=dict(conv_clamp=0.05))
    outputs = []
    for name, module in G.named_modules():
        if name.endswith(("conv0", "conv1")):
            module.register_forward_hook(lambda m, i, out: outputs.append(out.abs().max().item()))
    G(torch.randn(4, 16) * 10)
    assert outputs and max(outputs) <= 0.05 + 1e-7


def test_mapping_normalizes_z_to_unit_rms_so_scale_does_not_matter():
    G = tiny()
    z = torch.randn(3, 16)
    torch.testing.assert_close(G.mapping(z * 7.0, None), G.mapping(z, None))
    torch.testing.assert_close(normalize_2nd_moment(z * 7.0).square().mean(dim=1), torch.ones(3))


def test_normalize_z_false_feeds_z_unscaled():
    G = tiny(mapping_kwargs=dict(normalize_z=False))
    assert G.mapping.normalize_z is False
    z = torch.randn(3, 16)
    assert not torch.allclose(G.mapping(z * 7.0, None), G.mapping(z, None))
    torch.testing.assert_close(G.mapping(normalize_2nd_moment(z), None), tiny().mapping(z, None))


def test_wrong_z_width_is_refused_naming_the_expected_shape():
    with pytest.raises(ValueError, match=r"z must be a tensor of shape \[N, 16\]"):
        tiny()(torch.randn(2, 15))


def test_a_generator_without_z_or_c_is_refused_naming_both_fields():
    with pytest.raises(ValueError, match=r"z_dim is 0 and c_dim is 0: the mapping network would have no input"):
        Generator(z_dim=0, c_dim=0, w_dim=8, img_resolution=8, img_channels=3)


def test_fully_connected_layer_applies_equalized_lr_and_activation_gain():
    layer = FullyConnectedLayer(4, 2, activation="lrelu", lr_multiplier=0.01, bias_init=1)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    x = torch.tensor([[1.0, 2.0, -3.0, -4.0], [1.0, 1.0, 1.0, 1.0]])
    pre = x.sum(dim=1, keepdim=True) * 0.01 / 2 + 0.01  # weight * lr / sqrt(4), bias * lr
    expected = torch.where(pre > 0, pre, 0.2 * pre) * math.sqrt(2)
    torch.testing.assert_close(layer(x), expected.expand(2, 2))


def test_minibatch_std_appends_group_stddev_of_strided_groups():
    torch.manual_seed(0)
    x = torch.randn(6, 4, 3, 3, dtype=torch.float64)
    out = MinibatchStdLayer(group_size=2)(x)
    n_groups = 3  # reshape(G, -1): sample i belongs with the samples i + k * (N / G)
    for i in range(6):
        members = x[[j for j in range(6) if j % n_groups == i % n_groups]]
        std = (members.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        torch.testing.assert_close(out[i, 4], std.expand(3, 3))
    assert torch.equal(out[:, :4], x)


def test_minibatch_std_refuses_a_batch_not_divisible_by_the_group():
    with pytest.raises(ValueError, match="multiple of the minibatch-std group size"):
        MinibatchStdLayer(group_size=4)(torch.randn(6, 2, 2, 2))


@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
def test_discriminator_scores_each_image_for_every_architecture(architecture):
    torch.manual_seed(0)
    D = Discriminator(c_dim=0, img_resolution=16, img_channels=3, architecture=architecture, channel_base=128,
                      channel_max=8)
    scores = D(torch.randn(4, 3, 16, 16))
    assert scores.shape == (4, 1) and torch.isfinite(scores).all()
    assert ("b16.skip.weight" in D.state_dict()) == (architecture == "resnet")
    assert ("b8.fromrgb.weight" in D.state_dict()) == (architecture == "skip")


def test_conditional_discriminator_projects_onto_the_mapped_label():
    torch.manual_seed(0)
    D = Discriminator(c_dim=3, img_resolution=8, img_channels=1, channel_base=64, channel_max=8,
                      mapping_kwargs=dict(num_layers=1))
    assert D.b4.out.weight.shape == (8, 8) and D.mapping.embed.weight.shape == (8, 3)
    img = torch.randn(4, 1, 8, 8)
    a, b = D(img, torch.tensor([0, 1, 2, 0])), D(img, torch.tensor([1, 1, 1, 1]))
    assert a.shape == (4, 1) and not torch.allclose(a, b)


def test_freeze_layers_turns_the_first_discriminator_weights_into_buffers():
    D = Discriminator(c_dim=0, img_resolution=8, img_channels=1, channel_base=64, channel_max=8,
                      block_kwargs=dict(freeze_layers=1))
    assert "b8.fromrgb.weight" in dict(D.named_buffers())
    assert "b8.conv0.weight" in dict(D.named_parameters())


def test_generator_records_its_constructor_keywords():
    assert Generator(**SKIP32)._init_kwargs == SKIP32


@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
def test_inference_without_autograd_matches_the_tracked_forward_and_leaves_the_weights_alone(architecture):
    # Without autograd the layers overwrite their own intermediates in place; the values must not change,
    # and no parameter or buffer may ever be written to.
    torch.manual_seed(0)
    G = tiny(c_dim=3, synthesis_kwargs=dict(architecture=architecture, conv_clamp=0.5))
    D = Discriminator(c_dim=3, img_resolution=16, img_channels=3, architecture=architecture, channel_base=128,
                      channel_max=16, conv_clamp=0.5)
    with torch.no_grad():
        for p in G.parameters():
            if p.dim() == 0:  # noise strengths
                p.fill_(0.4)
    before = {name: t.clone() for name, t in [*G.state_dict().items(), *D.state_dict().items()]}
    z, c, real = torch.randn(2, 16), torch.tensor([0, 2]), torch.randn(2, 3, 16, 16)
    tracked_img, tracked_logits = G(z, c, truncation_psi=0.7), D(real, c)
    assert tracked_img.requires_grad and tracked_logits.requires_grad
    with torch.no_grad():
        img, logits = G(z, c, truncation_psi=0.7), D(real, c)
    torch.testing.assert_close(img, tracked_img.detach(), rtol=0, atol=0)
    torch.testing.assert_close(logits, tracked_logits.detach(), rtol=0, atol=0)
    after = {name: t for name, t in [*G.state_dict().items(), *D.state_dict().items()]}
    assert all(torch.equal(before[name], after[name]) for name in before)
