"""The same-prior study's pieces: parameter counts, the memorization distance, midpoints, verdicts over seeds,
the gathering of seeds into the report's headline, shards and the time budget."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from benchmarks.same_prior import (Verdict, compare, equal_parameter_components, headline, memorization,
                                   midpoints, mixture_parameters, nearest_distances)


def test_mixture_parameter_counts_by_hand():
    # K = 10 on D = 511: full 10 (511 + 511 * 512 / 2) + 9; diagonal 10 * 2 * 511 + 9; vMF 10 * (510 + 1) + 9
    assert mixture_parameters("gmm", 10, 511, "full") == 1_313_279
    assert mixture_parameters("gmm", 10, 511, "diag") == 10_229
    assert mixture_parameters("vmf", 10, 511) == 5_119
    with pytest.raises(ValueError, match="covariance"):
        mixture_parameters("gmm", 10, 8, "spherical")


@pytest.mark.parametrize("dim, expected", [(511, 20), (255, 20), (7, 19)])
def test_equal_parameter_components_match_the_diagonal_mixture(dim, expected):
    # diag K = 10 on D = 7: 149 parameters; vMF 8K - 1: K = 19 gives 151 (K = 18: 143)
    k = equal_parameter_components(10, dim)
    assert k == expected
    assert abs(mixture_parameters("vmf", k, dim) - mixture_parameters("gmm", 10, dim, "diag")) <= dim


def test_nearest_distances_by_hand():
    query = np.array([[0.0, 0.0], [3.0, 4.0]])
    reference = np.array([[0.0, 1.0], [3.0, 0.0], [10.0, 10.0]])
    assert nearest_distances(query, reference, chunk=1).tolist() == pytest.approx([1.0, 4.0])
    with pytest.raises(ValueError, match="share D"):
        nearest_distances(query, np.zeros((3, 3)))


def test_memorization_flags_copies_of_training_images():
    rng = np.random.default_rng(0)
    train = rng.standard_normal((2000, 8))
    held_out = rng.standard_normal((300, 8))  # the same law, never seen
    test_median = float(np.median(nearest_distances(held_out, train)))
    fresh = memorization(rng.standard_normal((300, 8)), train, test_median)
    copies = memorization(train[:300] + 1e-3 * rng.standard_normal((300, 8)), train, test_median)
    assert 0.85 < fresh["ratio"] < 1.15
    assert copies["ratio"] < 0.01 and copies["sample_nn_median"] < 0.01


def test_midpoints_on_the_great_circle_and_on_the_line():
    r = math.sqrt(2.0)
    a, b = torch.tensor([[r, 0.0]]), torch.tensor([[0.0, r]])
    assert midpoints(a, b, spherical=True).tolist()[0] == pytest.approx([1.0, 1.0])  # norm r, halfway in angle
    assert midpoints(a, b, spherical=False).tolist()[0] == pytest.approx([r / 2, r / 2])
    with pytest.raises(ValueError, match="share a shape"):
        midpoints(a, torch.zeros(1, 3), spherical=False)


def test_a_win_needs_every_seed():
    values = {("sae", "gmm-full", 8): [10.0, 11.0, 12.0], ("ae", "gmm-full", 8): [11.0, 12.0, 13.0],
              ("sae", "gmm-full", 64): [10.0, 13.0, 12.0], ("ae", "gmm-full", 64): [11.0, 12.0, 13.0],
              ("sae", "gmm-full", 512): [20.0, 21.0, 22.0], ("ae", "gmm-full", 512): [11.0, 12.0, 13.0]}
    found = compare(values, ("sae", "gmm-full"), ("ae", "gmm-full"))
    assert [(v.d, v.wins, v.outcome) for v in found] == [(8, 3, "beats"), (64, 2, "tie"), (512, 0, "loses")]
    assert found[0].change == pytest.approx(-1 / 12)
    first, second = headline(found, "spherical autoencoder", "plain autoencoder", {})
    assert "d_z 8" in first and "3/3" in first and "d_z 64" not in first
    assert "d_z 64" in second and "d_z 512" in second and "1 tie" in second


def test_verdicts_refuse_unequal_seed_counts():
    with pytest.raises(ValueError, match="one per seed"):
        compare({("a", "p", 8): [1.0, 2.0], ("b", "p", 8): [1.0]}, ("a", "p"), ("b", "p"))


def _study_run(folder, seed, sae_fd, ae_fd):
    """A dimension results.json holding the study's FD records (full GMM, d_z 8) and a memorization ratio."""
    def record(model, prior, metric, value):
        return {"metric": metric, "value": value, "model": f"{model} d_z 8", "prior": prior,
                "extra": {"measured_on": "same-prior study", "study_model": model, "z_dim": 8}}

    records = [record("sae", "gmm-full", "FD-fmnist-cnn", sae_fd), record("ae", "gmm-full", "FD-fmnist-cnn", ae_fd),
               record("sae", "gmm-full", "memorization ratio", 1.02)]
    (folder / "dimension").mkdir(parents=True)
    (folder / "dimension" / "results.json").write_text(json.dumps({
        "suite": "dimension", "description": "d", "command": "c", "seconds": 1.0, "targets": [], "notes": [],
        "tables": [], "figures": [], "records": records, "headline": ["one seed only"],
        "options": {"seed": seed, "scale": "standard", "data": "fashion-mnist"}}))
    return folder


def test_seeds_out_puts_the_answer_over_seeds_at_the_top_of_the_report(tmp_path):
    from benchmarks.seeds import main

    runs = [_study_run(tmp_path / f"s{seed}", seed, sae, 20.0) for seed, sae in ((0, 18.0), (1, 19.0), (2, 17.0))]
    assert main(["dimension", *map(str, runs), "--out", str(runs[0])]) == 0
    gathered = json.loads((runs[0] / "seeds" / "dimension.json").read_text())
    assert gathered["seeds"] == [0, 1, 2]
    assert "d_z 8 full-covariance Gaussian mixture (FD 18 +- 1 vs 20 +- 0" in gathered["headline"][0]
    assert "3/3" in gathered["headline"][0]
    report = (runs[0] / "report.md").read_text()
    brief = report.index("## In brief")
    assert brief < report.index("| suite |") and "over 3 training seeds (0, 1, 2)" in report
    assert "one seed only" not in report.split("| suite |")[0]  # the gathered answer replaces the run's own
    memo = next(t for t in gathered["targets"] if t["name"].startswith("memorization"))
    assert memo["met"] and "1.020" in memo["measured"]


def test_shards_split_the_plan_without_overlap():
    from benchmarks.suites import dimension

    steps = dimension.plan(dimension.PRESETS["standard"])
    shares = [dimension.shard_of(steps, (i, 3)) for i in range(3)]
    assert sorted(map(repr, sum(shares, []))) == sorted(map(repr, steps))
    assert all(shares)
    assert dimension.shard_of(steps, None) == steps
    # the S-VAE's trainings are spread over the shards, not left to one
    assert all(any(kind == "svae" for kind, _, _ in share) for share in shares)


def test_shard_and_time_budget_options_are_checked():
    from benchmarks.common import BenchmarkError
    from benchmarks.cli import parse_options

    assert parse_options(["dimension", "--shard", "1/3", "--time-budget", "0"]).shard == (1, 3)
    for bad in (["--shard", "3/3"], ["--shard", "a/2"], ["--time-budget", "-1"]):
        with pytest.raises(BenchmarkError, match="shard|time-budget"):
            parse_options(["dimension", *bad])


SMALL = {"dims": [4, 8], "svae_max_dim": 4, "option_dims": [4], "options": ["fitted-gmm", "noise-0.1"],
         "study_dims": [4], "study_models": ("sae", "ae")}


def test_shards_then_a_report_run_give_the_numbers_of_one_process(tiny_presets, cheap_features, run_cli, tmp_path,
                                                                   monkeypatch):
    from dataclasses import replace

    from benchmarks.suites import dimension

    monkeypatch.setitem(dimension.PRESETS, "quick", replace(dimension.PRESETS["quick"], **SMALL))
    assert run_cli(["dimension", "--out", str(tmp_path / "one")]) == 0
    for shard in ("0/2", "1/2"):
        assert run_cli(["dimension", "--out", str(tmp_path / "two"), "--shard", shard]) == 0
    assert run_cli(["dimension", "--out", str(tmp_path / "two"), "--time-budget", "0"]) == 0
    one, two = (json.loads((tmp_path / name / "dimension" / "results.json").read_text()) for name in ("one", "two"))
    assert {v["status"] for v in two["parts"].values()} == {"cached"}
    assert [(r["metric"], r["model"], r["prior"], r["value"]) for r in two["records"]] == \
        [(r["metric"], r["model"], r["prior"], r["value"]) for r in one["records"]]


def test_a_spent_time_budget_starts_nothing_and_says_what_was_left_out(tiny_presets, cheap_features, run_cli,
                                                                       tmp_path, monkeypatch):
    from dataclasses import replace

    from benchmarks.suites import dimension

    monkeypatch.setitem(dimension.PRESETS, "quick", replace(dimension.PRESETS["quick"], **SMALL))
    assert run_cli(["dimension", "--out", str(tmp_path), "--time-budget", "0"]) == 0
    results = json.loads((tmp_path / "dimension" / "results.json").read_text())
    assert results["records"] == [] and results["parts"] == {}
    assert any("left out: sae d_z 4: training" in note for note in results["notes"])
