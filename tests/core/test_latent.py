import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sphere_plugins import SphericalLatent, centerize, centerize_spherize, slerp, spherize

finite = st.floats(-1e3, 1e3, allow_nan=False, width=64)


def batches(min_d=2, max_d=16):
    shape = st.tuples(st.integers(1, 5), st.integers(min_d, max_d))
    return shape.flatmap(lambda s: arrays("float64", s, elements=finite)).map(torch.from_numpy)


@given(batches())
def test_centerize_gives_each_vector_zero_mean(z):
    out = centerize(z)
    scale = 1 + z.abs().max()
    assert torch.all(out.mean(dim=1).abs() <= 1e-12 * scale)


@given(batches())
def test_centerize_subtracts_exactly_the_vector_mean(z):
    expected = torch.stack([row - row.sum() / row.numel() for row in z])
    torch.testing.assert_close(centerize(z), expected)


@given(batches(), st.floats(0.1, 100))
def test_spherize_puts_nonzero_vectors_on_the_sphere(z, radius):
    z = z[z.norm(dim=1) > 1e-3]
    if len(z) == 0:
        return
    out = spherize(z, radius)
    torch.testing.assert_close(out.norm(dim=1), torch.full((len(z),), radius, dtype=z.dtype))


@given(batches())
def test_spherize_keeps_the_direction(z):
    z = z[z.norm(dim=1) > 1e-3]
    if len(z) == 0:
        return
    cos = torch.nn.functional.cosine_similarity(spherize(z), z, dim=1)
    torch.testing.assert_close(cos, torch.ones_like(cos))


@given(batches(), st.floats(0.1, 100))
def test_centerize_spherize_equals_the_two_steps_chained(z, radius):
    z = z[centerize(z).norm(dim=1) > 1e-3]
    if len(z) == 0:
        return
    torch.testing.assert_close(centerize_spherize(z, radius), spherize(centerize(z), radius))


def test_centerize_spherize_leaves_its_input_alone_and_passes_gradients():
    z = torch.randn(4, 9, requires_grad=True)
    before = z.detach().clone()
    out = centerize_spherize(z, 3.0)
    out[:, 0].sum().backward()
    assert torch.equal(z.detach(), before)
    reference = z.detach().clone().requires_grad_(True)
    spherize(centerize(reference), 3.0)[:, 0].sum().backward()
    torch.testing.assert_close(z.grad, reference.grad)
    with torch.no_grad():
        torch.testing.assert_close(centerize_spherize(z, 3.0), out.detach())


def test_centerize_spherize_rejects_constant_vectors():
    with pytest.raises(ValueError, match=r"samples \[0\].*zero"):
        centerize_spherize(torch.ones(1, 4))


def test_spherize_does_not_modify_its_input_and_keeps_dtype():
    z = torch.randn(3, 7, dtype=torch.float64)
    before = z.clone()
    out = spherize(centerize(z), 2.0)
    assert torch.equal(z, before)
    assert out.dtype == torch.float64


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_spherize_rejects_non_finite_vectors_naming_the_sample(bad):
    z = torch.randn(4, 5)
    z[2, 1] = bad
    with pytest.raises(ValueError, match=r"samples \[2\].*NaN or Inf"):
        spherize(z)


@pytest.mark.parametrize("constraint", [spherize, centerize_spherize])
def test_a_norm_that_overflows_is_reported_as_such_not_as_bad_entries(constraint):
    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    z[1, :2] = torch.tensor([3e38, -3e38])  # finite entries whose squares overflow float32
    with pytest.raises(ValueError, match=r"samples \[1\].*norm too large for torch.float32"):
        constraint(z)
    assert torch.isfinite(constraint(z.double())).all()


def test_spherize_rejects_vectors_that_centerize_to_zero():
    z = torch.randn(3, 6)
    z[1] = 4.0  # constant: zero after centerize
    with pytest.raises(ValueError, match=r"samples \[1\].*zero"):
        spherize(centerize(z))


def test_spherize_rejects_a_non_positive_radius():
    with pytest.raises(ValueError, match="radius"):
        spherize(torch.randn(2, 3), radius=0.0)


def test_latent_without_batch_dimension_is_rejected():
    with pytest.raises(ValueError, match="batch dimension"):
        centerize(torch.randn(5))


def test_per_channel_dims_normalize_each_channel_separately():
    z = torch.randn(2, 4, 3, 3)
    out = spherize(centerize(z, dims=(2, 3)), dims=(2, 3))
    torch.testing.assert_close(out.flatten(2).norm(dim=2), torch.ones(2, 4))
    torch.testing.assert_close(out.flatten(2).mean(dim=2), torch.zeros(2, 4), atol=1e-6, rtol=0)


def test_per_position_dims_normalize_across_channels():
    z = torch.randn(2, 4, 3, 3)
    out = spherize(centerize(z, dims=1), dims=1)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2, 3, 3))


def test_dims_naming_the_batch_dimension_is_rejected():
    with pytest.raises(ValueError, match="non-batch"):
        centerize(torch.randn(2, 3), dims=(0, 1))


def test_spherical_latent_radius_none_means_sqrt_d():
    z = torch.rand(5, 64) * 3  # a non-symmetric prior
    out = SphericalLatent(radius=None)(z)
    torch.testing.assert_close(out.norm(dim=1), torch.full((5,), 8.0))


def test_spherical_latent_with_both_steps_off_returns_its_input():
    z = torch.randn(3, 8)
    assert SphericalLatent(center=False, spherize=False)(z) is z


def test_spherical_latent_only_spherize_keeps_the_mean_direction():
    z = torch.rand(4, 10) + 1
    out = SphericalLatent(center=False, radius=1.0)(z)
    assert torch.all(out.mean(dim=1) > 0)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(4))


# slerp


@given(batches(min_d=2, max_d=8), st.floats(0, 1))
def test_slerp_stays_on_the_sphere(z, t):
    z = z[z.norm(dim=1) > 1e-3]
    if len(z) < 2:
        return
    a, b = spherize(z[:-1]), spherize(z[1:])
    torch.testing.assert_close(slerp(a, b, t).norm(dim=1), torch.ones(len(a), dtype=z.dtype))


def test_slerp_is_exact_at_both_ends():
    a, b = torch.randn(4, 6), torch.randn(4, 6)
    assert torch.equal(slerp(a, b, 0.0), a)
    assert torch.equal(slerp(a, b, 1.0), b)


def test_slerp_moves_at_constant_angular_speed():
    a = spherize(torch.randn(1, 5, dtype=torch.float64))
    b = spherize(torch.randn(1, 5, dtype=torch.float64))
    total = torch.acos((a * b).sum())
    for t in (0.25, 0.5, 0.75):
        angle = torch.acos((a * slerp(a, b, t)).sum().clamp(-1, 1))
        torch.testing.assert_close(angle, t * total)


def test_slerp_of_antipodal_points_has_no_nan_and_stays_on_sphere():
    a = spherize(torch.randn(3, 4))
    path = torch.stack([slerp(a, -a, t) for t in torch.linspace(0, 1, 7).tolist()])
    assert torch.isfinite(path).all()
    torch.testing.assert_close(path.norm(dim=2), torch.ones(7, 3))
    torch.testing.assert_close(path[3], slerp(a, -a, 0.5))
    assert torch.allclose((path[3] * a).sum(dim=1), torch.zeros(3), atol=1e-5)


def test_slerp_of_parallel_points_stays_put():
    a = spherize(torch.randn(2, 4))
    out = slerp(a, a, 0.3)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, a)


def test_slerp_interpolates_norms_linearly():
    a = spherize(torch.randn(1, 3)) * 2
    b = spherize(torch.randn(1, 3)) * 4
    torch.testing.assert_close(slerp(a, b, 0.5).norm(), torch.tensor(3.0))


def test_slerp_accepts_one_t_per_sample():
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    out = slerp(a, b, torch.tensor([0.0, 0.5, 1.0]))
    torch.testing.assert_close(out[0], a[0])
    torch.testing.assert_close(out[1], slerp(a[1:2], b[1:2], 0.5)[0])
    torch.testing.assert_close(out[2], b[2])


def test_slerp_rejects_mismatched_endpoints():
    with pytest.raises(ValueError, match="share a shape"):
        slerp(torch.randn(2, 3), torch.randn(2, 4), 0.5)


def test_slerp_angle_between_random_high_dimensional_points_is_near_a_right_angle():
    a, b = spherize(torch.randn(64, 512, dtype=torch.float64)), spherize(torch.randn(64, 512, dtype=torch.float64))
    angles = torch.acos((a * b).sum(dim=1))
    assert abs(angles.mean().item() - math.pi / 2) < 0.02


def test_a_per_call_check_overrides_the_module_setting():
    layer = SphericalLatent()
    z = torch.zeros(2, 4)
    with pytest.raises(ValueError, match=r"samples \[0, 1\]"):
        layer(z)
    assert torch.isnan(layer(z, check=False)).all()
    assert torch.isnan(SphericalLatent(check=False)(z)).all()
    with pytest.raises(ValueError, match="zero vectors"):
        SphericalLatent(check=False)(z, check=True)


def test_group_size_counts_the_entries_of_one_vector_and_rejects_bad_shapes():
    from sphere_plugins.latent import group_size

    assert group_size((4, 3, 2)) == 6
    assert group_size([4, 3, 2], dims=1) == 3
    assert group_size((4, 3, 2), dims=(-1,)) == 2
    for bad in [(4, -1), (4, 1.5), (4, True)]:
        with pytest.raises(ValueError, match="shape must hold non-negative ints"):
            group_size(bad)
    with pytest.raises(ValueError, match="dims must name distinct non-batch dimensions"):
        group_size((4, 3), dims=0)
