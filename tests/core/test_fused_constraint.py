"""The fused kernels behind centerize_spherize: accuracy against float64, exact gradients, the reused weight."""

import pytest
import torch

from sphere_plugins import centerize_spherize, fused


def reference(z: torch.Tensor, radius: float = 1.0) -> torch.Tensor:
    """centerize + spherize in float64, written out row by row."""
    rows = z.double().flatten(1)
    out = torch.stack([(r - r.sum() / r.numel()) * radius / (r - r.sum() / r.numel()).square().sum().sqrt()
                       for r in rows])
    return out.view(z.shape)


def offset_inputs() -> dict[str, torch.Tensor]:
    """Large offsets with unit spread, where sum(z^2) - d * mean^2 in float32 keeps no correct digit."""
    g = torch.Generator().manual_seed(0)
    offset = 1e4 + torch.randn(6, 512, generator=g)
    outlier_first = torch.randn(6, 512, generator=g)
    outlier_first[:, 0] += 1e4  # one entry far from the mean of the rest
    mixed = torch.randn(6, 4, 8, 8, generator=g) * torch.logspace(-3, 3, 6).view(6, 1, 1, 1) + 3e3
    return {"offset 1e4": offset, "outlier first entry": outlier_first, "mixed scales, offset 3e3": mixed}


def assert_within_rounding_of_the_mean(out: torch.Tensor, z: torch.Tensor, radius: float) -> None:
    """Per vector, |error| <= 2 eps (|mean| / spread + 1) max|out|: the floor any float32 method meets once
    the mean itself is rounded to float32 (the subtraction z - mean inherits that rounding)."""
    expected = reference(z, radius).flatten(1)
    rows = z.double().flatten(1)
    condition = rows.mean(dim=1).abs() / rows.std(dim=1, unbiased=False) + 1
    bound = 2 * torch.finfo(torch.float32).eps * condition * expected.abs().amax(dim=1)
    error = (out.double().flatten(1) - expected).abs().amax(dim=1)
    assert torch.all(error <= bound), (error / bound).max()


@pytest.mark.parametrize("name", list(offset_inputs()))
def test_float32_constraint_matches_float64_under_large_offsets(name):
    z = offset_inputs()[name]
    assert_within_rounding_of_the_mean(centerize_spherize(z, 2.0), z, 2.0)


def test_the_textbook_one_pass_formula_fails_on_these_inputs():
    # Guards the test above: the inputs must be hard enough to break sum(z^2) - d * mean^2.
    z = offset_inputs()["offset 1e4"]
    mean = z.mean(dim=1, keepdim=True)
    squared = z.square().sum(dim=1, keepdim=True) - z.shape[1] * mean.square()
    naive = (z - mean) * 2.0 / squared.clamp_min(1e-30).sqrt()
    assert (naive.double() - reference(z, 2.0)).abs().max() > 1e-2  # 100x the bound used above


@pytest.mark.parametrize("dims", [None, -1, (1,)])
def test_gradients_are_exact_in_float64(dims):
    z = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: centerize_spherize(x, 1.5, dims=dims), (z,))
    assert torch.autograd.gradgradcheck(lambda x: centerize_spherize(x, 1.5, dims=dims), (z,))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtype_is_kept_and_vectors_land_on_the_sphere(dtype):
    z = torch.randn(8, 64).to(dtype)
    out = centerize_spherize(z, 3.0)
    assert out.dtype == dtype
    tolerance = {torch.float16: 1e-2, torch.bfloat16: 5e-2, torch.float64: 1e-12}[dtype]
    torch.testing.assert_close(out.double(), reference(z, 3.0), atol=tolerance, rtol=0)


def test_non_contiguous_input_gives_the_same_values():
    z = torch.randn(16, 10).t()  # [10, 16], strided
    torch.testing.assert_close(centerize_spherize(z, 2.0), reference(z, 2.0).float())


def test_many_good_half_precision_vectors_pass_the_check():
    # Thousands of log-scales summed in float16 would overflow; the check must not call them bad.
    z = torch.randn(20000, 8).half()
    assert torch.isfinite(centerize_spherize(z)).all()


def test_reused_layer_norm_weights_give_each_radius_and_shape_its_own_values():
    # The kernel keeps its constant weight between calls: a cached weight must never leak into a call
    # with another radius, shape, dtype or device.
    g = torch.Generator().manual_seed(3)
    for radius, shape, dtype in [(1.0, (4, 8), torch.float32), (2.0, (4, 8), torch.float32),
                                 (1.0, (4, 2, 4), torch.float32), (1.0, (4, 8), torch.float64),
                                 (2.0, (4, 8), torch.float32)]:
        z = torch.randn(shape, generator=g, dtype=dtype)
        out = centerize_spherize(z, radius)
        assert torch.allclose(out.double(), reference(z, radius), atol=1e-5), (radius, shape, dtype)


def test_weight_cache_stays_bounded():
    z = torch.randn(2, 8)
    for radius in range(1, 3 * fused._MAX_WEIGHTS):
        centerize_spherize(z, float(radius))
    assert 0 < len(fused._WEIGHTS) <= fused._MAX_WEIGHTS


def test_a_weight_made_in_inference_mode_does_not_break_a_later_backward():
    # An inference tensor cannot be saved for backward; the cache keeps the two modes apart.
    z = torch.randn(3, 16)
    with torch.inference_mode():
        centerize_spherize(z, 1.25)
    leaf = z.clone().requires_grad_()
    centerize_spherize(leaf, 1.25).square().sum().backward()
    assert leaf.grad is not None and torch.isfinite(leaf.grad).all()


def test_weights_made_while_compiling_are_not_kept():
    before = dict(fused._WEIGHTS)
    compiled = torch.compile(lambda x: centerize_spherize(x, 0.75), backend="eager", fullgraph=False)
    z = torch.randn(2, 6)
    assert torch.allclose(compiled(z).double(), reference(z, 0.75), atol=1e-6)
    added = [key for key in fused._WEIGHTS if key not in before]
    assert all(type(fused._WEIGHTS[key]) is torch.Tensor for key in added)
    assert not any(key[0] == (6,) and key[1] == 0.75 / 6 ** 0.5 for key in added)


def test_the_spherical_autoencoder_objective_traces_as_one_graph():
    # torch.compile (TrainConfig(compile=True)) keeps the whole training forward in one graph only when no
    # step of the constraint's set-up (radius sqrt(d), the vector's dimensions) falls back to Python.
    from sphere_plugins.training import conv_objective

    torch._dynamo.reset()
    objective = conv_objective("sae", resolution=8, z_dim=6, width=4)
    explained = torch._dynamo.explain(objective)(torch.rand(4, 1, 8, 8) * 2 - 1)
    assert explained.graph_break_count == 0, [b.reason.splitlines()[0] for b in explained.break_reasons]
