"""FIR resampling, convolution with resampling and modulated convolution, checked against slow loop
implementations written from the definitions (zero insertion, padding once, valid filtering, subsampling)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sphere_stylegan2.layers import ACTIVATIONS, bias_act, demodulation_coefficients, modulated_conv2d
from sphere_stylegan2.resample import conv2d_resample, downsample2d, setup_filter, upfirdn2d, upsample2d


def zero_insert(x: np.ndarray, up: int) -> np.ndarray:
    """[..., H, W] -> [..., H*up, W*up] with x at positions (i*up, j*up) and zeros elsewhere."""
    out = np.zeros(x.shape[:-2] + (x.shape[-2] * up, x.shape[-1] * up), dtype=np.float64)
    for i in range(x.shape[-2]):
        for j in range(x.shape[-1]):
            out[..., i * up, j * up] = x[..., i, j]
    return out


def pad_or_crop(x: np.ndarray, x0: int, x1: int, y0: int, y1: int) -> np.ndarray:
    """Zero-pad (positive) or crop (negative) the last two axes."""
    h, w = x.shape[-2:]
    out = np.zeros(x.shape[:-2] + (h + y0 + y1, w + x0 + x1))
    for i in range(out.shape[-2]):
        for j in range(out.shape[-1]):
            si, sj = i - y0, j - x0
            if 0 <= si < h and 0 <= sj < w:
                out[..., i, j] = x[..., si, sj]
    return out


def valid_convolve(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """True 2-D convolution of each [H, W] plane with kernel k, keeping only full overlaps."""
    kh, kw = k.shape
    h, w = x.shape[-2:]
    out = np.zeros(x.shape[:-2] + (h - kh + 1, w - kw + 1))
    for i in range(out.shape[-2]):
        for j in range(out.shape[-1]):
            for a in range(kh):
                for b in range(kw):
                    out[..., i, j] += x[..., i + a, j + b] * k[kh - 1 - a, kw - 1 - b]
    return out


def slow_upfirdn2d(x, f, up=1, down=1, pad=(0, 0, 0, 0), gain=1.0):
    """Upsample by zero insertion, pad once, convolve with f (valid), keep every down-th pixel."""
    x = np.asarray(x, dtype=np.float64)
    f = np.asarray(f, dtype=np.float64) * gain
    y = valid_convolve(pad_or_crop(zero_insert(x, up), *pad), f)
    return y[..., ::down, ::down]


def slow_conv2d(x, w, flip: bool, stride: int = 1):
    """[N, I, H, W] with weights [O, I, k, k], no padding: correlation, or true convolution when flip."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    if flip:
        w = w[:, :, ::-1, ::-1]
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    out = np.zeros((n, o, h - kh + 1, wd - kw + 1))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            patch = x[:, :, i:i + kh, j:j + kw]
            out[:, :, i, j] = np.einsum("nihw,oihw->no", patch, w)
    return out[:, :, ::stride, ::stride]


def fir_1331() -> np.ndarray:
    """The [1, 3, 3, 1] low-pass filter as a 2-D kernel summing to 1, built by hand."""
    taps = np.array([1.0, 3.0, 3.0, 1.0])
    return np.outer(taps, taps) / 64.0


def as_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def test_setup_filter_is_the_normalized_outer_product_of_1331():
    np.testing.assert_allclose(setup_filter([1, 3, 3, 1]).numpy(), fir_1331(), rtol=1e-7)


@settings(max_examples=25)
@given(up=st.integers(1, 3), down=st.integers(1, 3), taps=st.integers(1, 4),
       pads=st.tuples(*[st.integers(-1, 3)] * 4), seed=st.integers(0, 2 ** 16))
def test_upfirdn2d_matches_the_definition(up, down, taps, pads, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 5, 6, generator=g, dtype=torch.float64)
    f = torch.rand(taps, taps + 1, generator=g, dtype=torch.float64)
    height = 5 * up + pads[2] + pads[3] - taps + 1
    width = 6 * up + pads[0] + pads[1] - (taps + 1) + 1
    assume(height >= 1 and width >= 1)
    ours = upfirdn2d(x, f, up=up, down=down, padding=list(pads), gain=1.5)
    expected = slow_upfirdn2d(x.numpy(), f.numpy(), up, down, pads, gain=1.5)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_upsample2d_with_1331_interpolates_three_quarters_one_quarter():
    x = torch.randn(1, 1, 4, 5, dtype=torch.float64)
    ours = upsample2d(x, setup_filter([1, 3, 3, 1]).double())
    # per axis: y[2i] = 3/4 x[i] + 1/4 x[i-1], y[2i+1] = 3/4 x[i] + 1/4 x[i+1], zero outside the image
    padded = np.pad(x.numpy()[0, 0], 1)
    def axis(a, n):
        out = np.zeros((2 * n,) + a.shape[1:])
        for i in range(n):
            out[2 * i] = 0.75 * a[i + 1] + 0.25 * a[i]
            out[2 * i + 1] = 0.75 * a[i + 1] + 0.25 * a[i + 2]
        return out
    rows = axis(padded, 4)[:, 1:-1]
    expected = axis(np.pad(rows, ((0, 0), (1, 1))).T, 5).T
    np.testing.assert_allclose(ours[0, 0].numpy(), expected, rtol=1e-12)


def test_downsample2d_with_1331_averages_four_taps_per_axis():
    x = torch.randn(1, 1, 6, 6, dtype=torch.float64)
    ours = downsample2d(x, setup_filter([1, 3, 3, 1]).double())
    p = np.pad(x.numpy()[0, 0], 1)
    taps = np.array([1, 3, 3, 1]) / 8.0
    expected = np.array([[sum(taps[a] * taps[b] * p[2 * i + a, 2 * j + b] for a in range(4) for b in range(4))
                          for j in range(3)] for i in range(3)])
    np.testing.assert_allclose(ours[0, 0].numpy(), expected, rtol=1e-12)


# (kernel, up, down, padding, flip_weight, pads once applied [x0, x1, y0, y1], FIR gain): the layers of the
# networks. Padding is derived by hand: an up-2 4-tap filter adds (4+1)//2 before and (4-2)//2 after,
# a down-2 one adds (4-1)//2 before and (4-2)//2 after.
CONV_CASES = {
    "synthesis conv0 (3x3, up 2)": (3, 2, 1, 1, False, (3, 2, 3, 2), 4.0),
    "synthesis resnet skip (1x1, up 2)": (1, 2, 1, 0, False, (2, 1, 2, 1), 4.0),
    "discriminator conv1 (3x3, down 2)": (3, 1, 2, 1, True, (2, 2, 2, 2), 1.0),
    "discriminator skip (1x1, down 2)": (1, 1, 2, 0, True, (1, 1, 1, 1), 1.0),
    "plain 3x3": (3, 1, 1, 1, True, (1, 1, 1, 1), 1.0),
}


@pytest.mark.parametrize("case", list(CONV_CASES))
@pytest.mark.parametrize("groups", [1, 2])
def test_conv2d_resample_matches_padding_once_then_filter_then_conv(case, groups):
    k, up, down, padding, flip_weight, pads, gain = CONV_CASES[case]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 6, 6, generator=g, dtype=torch.float64)
    w = torch.randn(6, 4 // groups, k, k, generator=g, dtype=torch.float64)
    f = torch.as_tensor(fir_1331())
    ours = conv2d_resample(x, w, f=f, up=up, down=down, padding=padding, groups=groups, flip_weight=flip_weight)
    filt = fir_1331() if (up > 1 or down > 1) else np.ones((1, 1))
    prepared = slow_upfirdn2d(x.numpy(), filt, up=up, pad=pads, gain=gain)
    per_group = []
    for gi in range(groups):
        xs = prepared[:, gi * (4 // groups):(gi + 1) * (4 // groups)]
        ws = w.numpy()[gi * (6 // groups):(gi + 1) * (6 // groups)]
        per_group.append(slow_conv2d(xs, ws, flip=not flip_weight, stride=down))
    expected = np.concatenate(per_group, axis=1)
    assert ours.shape[-1] == 6 * up // down
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-9, atol=1e-10)


def _per_sample_modconv(x, weight, styles, noise, up, padding, demodulate, flip_weight):
    """One explicit weight per sample, demodulated by its own norm, then an ordinary conv each."""
    f = setup_filter([1, 3, 3, 1]).double()
    outs = []
    for n in range(x.shape[0]):
        w = weight * styles[n].reshape(1, -1, 1, 1)
        if demodulate:
            w = w / torch.sqrt(w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8)
        outs.append(conv2d_resample(x[n:n + 1], w, f=f, up=up, padding=padding, flip_weight=flip_weight))
    out = torch.cat(outs)
    return out if noise is None else out + noise


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("up,demodulate", [(1, True), (2, True), (1, False)])
def test_modulated_conv2d_equals_an_explicit_per_sample_conv(fused, up, demodulate):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 5, 4, 4, generator=g, dtype=torch.float64)
    weight = torch.randn(7, 5, 3, 3, generator=g, dtype=torch.float64)
    styles = torch.rand(3, 5, generator=g, dtype=torch.float64) + 0.5
    noise = torch.randn(4 * up, 4 * up, generator=g, dtype=torch.float64)
    f = setup_filter([1, 3, 3, 1]).double()
    ours = modulated_conv2d(x, weight, styles, noise=noise, up=up, padding=1, resample_filter=f,
                            demodulate=demodulate, flip_weight=(up == 1), fused_modconv=fused)
    expected = _per_sample_modconv(x, weight, styles, noise, up, 1, demodulate, up == 1)
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-10)


def test_demodulated_weights_give_unit_variance_for_unit_inputs():
    torch.manual_seed(0)
    x = torch.randn(64, 32, 16, 16)
    weight = torch.randn(32, 32, 3, 3)
    styles = torch.rand(64, 32) * 3
    out = modulated_conv2d(x, weight, styles, padding=1)[:, :, 1:-1, 1:-1]
    assert math.isclose(out.var().item(), 1.0, rel_tol=0.05)


def test_half_precision_modulated_conv_stays_half_and_matches_float32():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 8, 6, 6, generator=g)
    weight = torch.randn(8, 8, 3, 3, generator=g) * 50  # large weights: the fp16 pre-normalization must cope
    styles = torch.rand(2, 8, generator=g) * 100 + 1
    noise = torch.randn(6, 6, generator=g)
    half = modulated_conv2d(x.half(), weight, styles, noise=noise, padding=1)
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float(), modulated_conv2d(x, weight, styles, noise=noise, padding=1),
                               rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("separable", [False, True])
@pytest.mark.parametrize("pad", [(1, 1, 1, 1), (2, 2, 0, 0), (0, 0, 3, 3), (2, 1, 1, 2)])
def test_upfirdn2d_zero_pads_inside_the_convolution_exactly_like_explicit_padding(separable, pad):
    # Symmetric padding is left to the convolution (no padded copy); it must equal padding once, then filtering.
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 5, 6, generator=g, dtype=torch.float64)
    taps = torch.rand(8, generator=g, dtype=torch.float64) + 0.1
    f = taps if separable else torch.outer(taps[:4], taps[4:])
    ours = upfirdn2d(x, f, up=2, padding=list(pad))
    expected = slow_upfirdn2d(x.numpy(), torch.outer(taps, taps).numpy() if separable else f.numpy(), 2, 1, pad)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_demodulation_coefficients_are_inverse_norms_of_each_samples_modulated_filters():
    g = torch.Generator().manual_seed(4)
    weight = torch.randn(7, 5, 3, 3, generator=g, dtype=torch.float64)
    styles = torch.randn(3, 5, generator=g, dtype=torch.float64)
    modulated = weight.unsqueeze(0) * styles.reshape(3, 1, 5, 1, 1)  # [N, O, I, k, k], built the slow way
    expected = 1 / (modulated.square().sum(dim=[2, 3, 4]) + 1e-8).sqrt()
    torch.testing.assert_close(demodulation_coefficients(weight, styles), expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_bias_act_in_place_gives_the_same_values_as_out_of_place(act):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 4, 3, 3, generator=g)
    b = torch.randn(4, generator=g)
    expected = bias_act(x, b, act=act, gain=1.7, clamp=0.9)
    with torch.no_grad():
        ours = bias_act(x.clone(), b, act=act, gain=1.7, clamp=0.9, inplace=True)
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)


def test_bias_act_in_place_leaves_tensors_autograd_tracks_alone():
    # Overwriting a tracked intermediate would corrupt its gradient; the in-place request must fall back.
    x = torch.randn(3, 4, requires_grad=True)
    y = x * 2
    before = y.detach().clone()
    out = bias_act(y, torch.ones(4), act="lrelu", clamp=1.0, inplace=True)
    assert torch.equal(y.detach(), before)
    out.sum().backward()
    expected = 2 * torch.where(before + 1 > 0, 1.0, 0.2) * math.sqrt(2) * ((before + 1).abs() * math.sqrt(2) < 1)
    torch.testing.assert_close(x.grad, expected)


@pytest.mark.parametrize("fused", [True, False])
def test_modulated_conv2d_never_writes_into_its_noise_or_inputs(fused):
    g = torch.Generator().manual_seed(6)
    x = torch.randn(2, 4, 5, 5, generator=g)
    weight = torch.randn(4, 4, 3, 3, generator=g)
    styles = torch.rand(2, 4, generator=g) + 0.5
    noise = torch.randn(5, 5, generator=g)
    copies = [t.clone() for t in (x, weight, styles, noise)]
    with torch.no_grad():
        modulated_conv2d(x, weight, styles, noise=noise, padding=1, fused_modconv=fused)
    for original, copy in zip((x, weight, styles, noise), copies):
        assert torch.equal(original, copy)
