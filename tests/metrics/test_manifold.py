"""Precision/recall and density/coverage against cases counted by hand and against the authors' `prdc`."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch
import pytest

from sphere_plugins.metrics import density_coverage, precision_recall
from sphere_plugins.metrics import manifold

# Points on a line. Real k=1 balls: 0:[-1,1] 1:[0,2] 2:[1,3] 3:[2,4] 10:[3,17].
# Fake k=1 balls: 0.5:[-4,5] 5:[0.5,9.5] 20:[11,29] 11:[5,17].
REAL = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
FAKE = np.array([[0.5], [5.0], [20.0], [11.0]])


def test_precision_recall_counted_by_hand():
    # fake inside a real ball: 0.5 (ball of 0), 5 and 11 (ball of 10); 20 is in none -> 3/4.
    # real inside a fake ball: 0, 1, 2, 3 (ball of 0.5), 10 (ball of 11) -> 5/5.
    assert precision_recall(REAL, FAKE, k=1) == (0.75, 1.0)


def test_density_coverage_counted_by_hand():
    # real balls holding each fake: 0.5 -> 2 (0, 1), 5 -> 1 (10), 20 -> 0, 11 -> 1 (10): density 4 / (1 * 4).
    # real balls holding some fake: 0 and 1 (0.5), 10 (5, 11); not 2 or 3: coverage 3 / 5.
    assert density_coverage(REAL, FAKE, k=1) == (1.0, 0.6)


def test_kth_neighbour_excludes_the_point_itself():
    # k=2 real radii: 0 -> 2, 1 -> 1, 2 -> 1, 3 -> 2, 10 -> 8; balls 0:[-2,2] 1:[0,2] 2:[1,3] 3:[1,5] 10:[2,18].
    # fake 0.5 in 2 balls, 5 in 2 (3 on the boundary, 10), 20 in 0, 11 in 1: density 5 / (2 * 4);
    # covered: 0, 1, 3, 10 -> 4 / 5.
    assert density_coverage(REAL, FAKE, k=2) == (0.625, 0.8)


def test_a_point_on_a_ball_boundary_is_inside():
    # real 0 and 2 have k=1 radius 2; fake 4 lies on the boundary of 2's ball, fake 5 outside every ball.
    real, fake = np.array([[0.0], [2.0]]), np.array([[4.0], [5.0]])
    assert precision_recall(real, fake, k=1) == (0.5, 0.0)


def test_distances_are_euclidean_in_several_dimensions():
    # real square of side 1: k=1 radius 1 everywhere. Fake (0.6, 0.8) is at distance exactly 1 from (0, 0).
    real = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    fake = np.array([[0.6, 0.8], [3.0, 4.0], [2.9, 4.0]])
    precision, _ = precision_recall(real, fake, k=1)
    assert precision == pytest.approx(1 / 3)


def test_matches_the_authors_prdc_on_random_features(monkeypatch):
    prdc = pytest.importorskip("prdc")
    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((300, 8)), rng.standard_normal((250, 8)) * 1.2 + 0.2
    monkeypatch.setattr(manifold, "_CHUNK_BYTES", 8 * 250 * 7)  # 7-row chunks: exercise the chunking
    with contextlib.redirect_stdout(io.StringIO()):
        three, five = prdc.compute_prdc(real, fake, 3), prdc.compute_prdc(real, fake, 5)
    assert precision_recall(real, fake) == pytest.approx((three["precision"], three["recall"]), abs=1e-12)
    assert density_coverage(real, fake) == pytest.approx((five["density"], five["coverage"]), abs=1e-12)


def test_identical_sets_are_fully_precise_and_covered():
    features = np.random.default_rng(1).standard_normal((50, 4))
    assert precision_recall(features, features) == (1.0, 1.0)
    assert density_coverage(features, features)[1] == 1.0


@pytest.mark.parametrize(
    "real, fake, k, match",
    [
        (np.zeros((5, 2)), np.zeros((5, 3)), 1, "same width"),
        (np.zeros((3, 2)), np.zeros((5, 2)), 3, r"real_features.*N > k = 3"),
        (np.zeros(5), np.zeros((5, 2)), 1, r"real_features must be an array \[N, D\]"),
        (np.zeros((5, 2)), np.full((5, 2), np.nan), 1, "fake_features contains NaN"),
        (np.zeros((5, 2)), np.zeros((5, 2)), 0, "k must be a positive int"),
    ],
)
def test_bad_input_is_named(real, fake, k, match):
    with pytest.raises(ValueError, match=match):
        precision_recall(real, fake, k=k)


class _Flatten:
    """A feature 'network' that returns the pixels: distances can then be reasoned about by hand."""

    name = "pixels"
    description = "the flattened pixels"

    def __call__(self, images):
        return images.flatten(1).double().numpy()


def test_evaluate_offers_precision_recall_density_coverage_on_one_feature_pass():
    from sphere_plugins.data import ImageSet
    from sphere_plugins.metrics.evaluate import evaluate

    images = torch.linspace(-1, -0.9, 40 * 4).view(40, 1, 2, 2)
    real = ImageSet(images, None, "grid", "40 images")
    same = evaluate(real, ImageSet(images.clone(), None, "grid", "copy"),
                    ["precision", "recall", "coverage"], features=_Flatten())
    assert [r.metric for r in same] == ["precision-pixels", "recall-pixels", "coverage-pixels"]
    assert [r.value for r in same] == [1.0, 1.0, 1.0]  # every point lies on a point of the other set
    far = evaluate(real, ImageSet(-images, None, "far", "mirrored"), ["precision", "recall", "density"],
                   features=_Flatten())
    assert [r.value for r in far] == [0.0, 0.0, 0.0]  # no point lies inside any ball of the other set


def test_one_real_manifold_serves_many_fake_sets_with_the_functions_results():
    rng = np.random.default_rng(2)
    real = rng.standard_normal((200, 6))
    reference = manifold.RealManifold(real, ks=(3, 5))
    for shift in (0.0, 0.5, 2.0):
        fake = rng.standard_normal((120, 6)) + shift
        expected = (*precision_recall(real, fake, k=3), *density_coverage(real, fake, k=5))
        assert reference.all(fake, pr_k=3, dc_k=5) == expected
        assert reference.precision_recall(fake, 3) == expected[:2]
        assert reference.density_coverage(fake, 5) == expected[2:]


def test_the_hand_counted_cases_hold_through_a_real_manifold():
    reference = manifold.RealManifold(REAL, ks=(1, 2))
    assert reference.all(FAKE, pr_k=1, dc_k=2) == (0.75, 1.0, 0.625, 0.8)


def test_a_real_manifold_refuses_a_k_it_did_not_prepare_and_a_fake_set_of_another_width():
    reference = manifold.RealManifold(np.zeros((10, 3)), ks=(3,))
    with pytest.raises(ValueError, match=r"k = 5 was not prepared; this RealManifold has ks \[3\]"):
        reference.density_coverage(np.zeros((10, 3)), k=5)
    with pytest.raises(ValueError, match="same width D, got 3 and 4"):
        reference.precision_recall(np.zeros((10, 4)), k=3)
    with pytest.raises(ValueError, match="k must be a positive int"):
        manifold.RealManifold(np.zeros((10, 3)), ks=(0,))
