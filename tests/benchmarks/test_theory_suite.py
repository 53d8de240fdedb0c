"""The theory suite at a tiny scale: its files, and its numbers against independent computations."""

from __future__ import annotations

import json
import math

import pytest

TINY_DIMS = [2, 16, 512]


@pytest.fixture
def theory_results(tiny_presets, run_cli, tmp_path):
    assert run_cli(["theory", "--out", str(tmp_path), "--seed", "3"]) == 0
    return tmp_path, json.loads((tmp_path / "theory" / "results.json").read_text())


def values(results: dict, metric: str, **match) -> dict[int, float]:
    return {r["extra"]["d"]: r["value"] for r in results["records"]
            if r["metric"] == metric and all(r["extra"].get(k) == v or r.get(k) == v for k, v in match.items())}


def paper_mean(d: int) -> float:
    """The paper's closed form 2^(d-1) Gamma(d/2)^2 / (sqrt(pi) Gamma(d - 1/2)), in plain log-gamma."""
    return math.exp((d - 1) * math.log(2) + 2 * math.lgamma(d / 2) - 0.5 * math.log(math.pi) - math.lgamma(d - 0.5))


def test_suite_writes_results_table_and_figures(theory_results):
    out, results = theory_results
    folder = out / "theory"
    assert (folder / "table.md").read_text().count("| d |") == 3
    for figure in results["figures"]:
        assert (folder / figure["file"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {f["file"] for f in results["figures"]} >= {"lemma1_mean_std.png", "theorem2_w2.png"}


def test_every_record_carries_its_provenance(theory_results):
    _, results = theory_results
    for record in results["records"]:
        assert {"metric", "value", "feature_network", "n_samples", "seed", "prior", "model", "data",
                "versions"} <= set(record)
        assert record["seed"] == 3 and record["versions"]["torch"]


def test_lemma1_closed_form_matches_the_papers_formula_in_log_gamma(theory_results):
    _, results = theory_results
    means = values(results, "lemma1_mean_closed_form")
    stds = values(results, "lemma1_std_closed_form")
    for d in TINY_DIMS:
        assert means[d] == pytest.approx(paper_mean(d), rel=1e-9)
        assert stds[d] == pytest.approx(math.sqrt(2) * math.sqrt(1 - paper_mean(d) ** 2 / 2), rel=1e-7)
    assert (round(means[512], 4), round(stds[512], 4)) == (1.4139, 0.0313)


def test_lemma1_monte_carlo_lies_within_four_standard_errors(theory_results):
    _, results = theory_results
    mc = values(results, "lemma1_mean_monte_carlo")
    for d in TINY_DIMS:
        std = math.sqrt(2 - paper_mean(d) ** 2)
        assert abs(mc[d] - paper_mean(d)) < 4 * std / math.sqrt(4000)


def test_theorem1_shell_width_is_one_minus_the_dth_root_of_one_percent(theory_results):
    _, results = theory_results
    widths = values(results, "theorem1_shell_width_holding_99pct")
    for d in TINY_DIMS:
        assert widths[d] == pytest.approx(1 - 0.01 ** (1 / d), rel=1e-9)
    assert widths[512] < 0.009
    assert [t["met"] for t in results["targets"]] == [True, True, True]


def test_theorem2_ratios_are_w2_over_sqrt_2n_r(theory_results):
    _, results = theory_results
    w2 = {(r["prior"], r["extra"]["d"], r["extra"]["latents"]): r["value"] for r in results["records"]
          if r["metric"] == "theorem2_w2"}
    ratio = {(r["prior"], r["extra"]["d"], r["extra"]["latents"]): r["value"] for r in results["records"]
             if r["metric"] == "theorem2_w2_over_sqrt2n_r"}
    assert len(w2) == 3 * 4 * 2
    for (prior, d, latents), value in w2.items():
        radius = 1.0 if latents == "centerized+spherized" else math.sqrt(d)
        assert ratio[(prior, d, latents)] == pytest.approx(value / (math.sqrt(2 * 12) * radius), rel=1e-9)


def test_theorem2_priors_agree_after_centerize_and_spherize_but_not_raw(theory_results):
    _, results = theory_results
    at_512 = {(r["prior"], r["extra"]["latents"]): r["value"] for r in results["records"]
              if r["metric"] == "theorem2_w2_over_sqrt2n_r" and r["extra"]["d"] == 512}
    projected = [at_512[(p, "centerized+spherized")] for p in ("normal", "uniform", "poisson", "chi2")]
    raw = [at_512[(p, "raw")] for p in ("normal", "uniform", "poisson", "chi2")]
    # chi2(1) vs N(0, I) raw: E||x - y||^2 = d (2 + 1 + 1) vs 2d for normal pairs, a ratio of about sqrt(2)
    assert max(projected) / min(projected) < 1.05
    assert at_512[("chi2", "raw")] / at_512[("normal", "raw")] == pytest.approx(math.sqrt(2), rel=0.1)
    assert max(raw) / min(raw) > 1.5
