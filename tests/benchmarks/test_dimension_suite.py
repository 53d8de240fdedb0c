"""The dimension suite at a tiny scale (its numbers mean nothing at this size), and the code-geometry
measurements against Lemma 1 on synthetic codes."""

from __future__ import annotations

import json
import math

import pytest
import torch


def test_dimension_suite_writes_records_tables_and_figures(tiny_presets, cheap_features, run_cli, tmp_path):
    from benchmarks.suites import SUITE_NAMES, dimension

    assert "dimension" in SUITE_NAMES
    assert run_cli(["dimension", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "dimension" / "results.json").read_text())
    records = results["records"]
    mse = {(r["extra"]["method"], r["extra"]["z_dim"]) for r in records
           if r["metric"] == "MSE" and "option" not in r["extra"]}
    assert mse == {(k, d) for k in ("sae", "vae") for d in (4, 8, 16, 32)} | {("svae", 4), ("svae", 8)}
    fd = [r for r in records if r["metric"] == "FD-pixel-projection" and r["prior"] and "option" not in r["extra"]
          and r["extra"]["measured_on"] == "decoder samples from the prior"]
    assert len(fd) == 10 * 4 and {r["prior"] for r in fd} == {"normal", "uniform", "poisson", "chi2"}
    assert all(r["feature_network"] == cheap_features.description and r["n_samples"] == 20 for r in fd)
    recall = [r for r in records if r["metric"] == "recall (k=3)"]
    assert recall and all(0 <= r["value"] <= 1 for r in recall)
    options = {(r["extra"]["option"], r["extra"]["z_dim"]) for r in records if "option" in r["extra"]}
    assert options == {(o, d) for o in dimension.OPTIONS for d in (4, 32)}
    geometry = [r for r in records if r["metric"] == "code pair mean"]
    assert len(geometry) == 10 and all(r["extra"]["lemma1"]["mean"] > 0 for r in geometry)
    sae4 = next(r for r in geometry if r["extra"]["method"] == "sae" and r["extra"]["z_dim"] == 4)
    assert sae4["extra"]["lemma1"]["dimension"] == 3  # centred codes fill a sphere one dimension down
    study = {(r["extra"]["study_model"], r["extra"]["z_dim"], r["prior"]) for r in records
             if r["metric"] == "FD-pixel-projection" and r["extra"]["measured_on"] == "same-prior study"}
    common = {"plain", "gmm-full", "gmm-diag", "midpoints"}
    expected = {(m, d, p) for m in ("sae", "ae", "vae", "vae-beta0.1", "rae") for d in (4, 32) for p in common}
    expected |= {("svae", 4, p) for p in common | {"vmf"}} | {("sae", d, "vmf") for d in (4, 32)}
    expected |= {("sae", 32, "vmf-equal-params")}  # the tiny preset's equal_params_from is 32
    assert study == expected
    memo = [r for r in records if r["metric"] == "memorization ratio"]
    assert len(memo) == len([c for c in expected if c[2] not in ("plain", "midpoints")])
    assert all(r["value"] > 0 and r["extra"]["test_nn_median"] > 0 for r in memo)
    assert results["headline"][0].startswith("Where the spherical autoencoder beats the plain autoencoder")
    table = (tmp_path / "dimension" / "table.md").read_text()
    assert "Code geometry" in table and "Options of the spherical autoencoder" in table
    for title in ("Same prior:", "Memorization check", "Equal parameter counts", "Interpolation"):
        assert title in table
    assert {f["file"] for f in results["figures"]} == {"sample_fd.png", "code_distances.png"}
    assert all((tmp_path / "dimension" / f["file"]).read_bytes()[:4] == b"\x89PNG" for f in results["figures"])
    caption = next(f["caption"] for f in results["figures"] if f["file"] == "sample_fd.png")
    assert "FD-pixel-projection" in caption  # the figure names the features its distances come from
    assert run_cli(["dimension", "--out", str(tmp_path)]) == 0  # every training and metric comes from the cache
    again = json.loads((tmp_path / "dimension" / "results.json").read_text())
    assert {v["status"] for v in again["parts"].values()} == {"cached"}
    assert [r["value"] for r in again["records"]] == [r["value"] for r in records]


def test_unknown_scales_use_the_largest_preset():
    from types import SimpleNamespace

    from benchmarks.suites import dimension

    def preset(scale):
        options = SimpleNamespace(scale=scale, steps=None, n_samples=None)
        return dimension.settings(SimpleNamespace(options=options))

    assert preset("paper").dims == [8, 16, 32, 64, 128, 256, 512]
    assert preset("standard").dims == [8, 16, 32, 64, 128, 256, 512]
    assert preset("quick").dims == [8, 64, 512]


def _uniform(n, d, seed):
    z = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return z / z.norm(dim=1, keepdim=True) * math.sqrt(d)


@pytest.mark.parametrize("d", [3, 16, 128])
def test_uniform_codes_match_lemma1(d):
    from benchmarks.suites.dimension import code_geometry

    g = code_geometry(_uniform(600, d, 0), _uniform(600, d, 1))
    # Lemma 1 by hand: d = 3 has density xi / 2 on [0, 2] (r = 1): mean 4/3, E[xi^2] = 2, std sqrt(2 - 16/9).
    # For large d: mean sqrt(2)(1 - 1/(8d)), std 1/sqrt(2d).
    mean = 4 / 3 if d == 3 else math.sqrt(2) * (1 - 1 / (8 * d))
    std = math.sqrt(2 - 16 / 9) if d == 3 else 1 / math.sqrt(2 * d)
    assert g["radius"] == pytest.approx(math.sqrt(d))
    assert g["pair_mean"] == pytest.approx(mean, rel=0.02)
    assert g["pair_std"] == pytest.approx(std, rel=0.1)
    assert 0.8 < g["nn_ratio"] < 1.25  # draws from the same law: as near to the codes as codes to each other


def test_clustered_codes_do_not_match_lemma1():
    from benchmarks.suites.dimension import code_geometry

    d = 64
    centres = _uniform(5, d, 2)
    noise = 0.05 * torch.randn(600, d, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    codes = centres[torch.arange(600) % 5] + noise
    codes = codes / codes.norm(dim=1, keepdim=True) * math.sqrt(d)
    g = code_geometry(codes, _uniform(600, d, 4))
    assert abs(g["pair_mean"] - math.sqrt(2)) > 0.15 or g["pair_std"] > 3 / math.sqrt(2 * d)
    assert g["pair_std"] > 3 / math.sqrt(2 * d)  # five clusters: distances near 0 and near sqrt(2)
    assert g["nn_ratio"] > 5  # uniform draws lie far from every code; codes lie close to their cluster


def test_code_geometry_rejects_mismatched_shapes():
    from benchmarks.suites.dimension import code_geometry

    with pytest.raises(ValueError, match="share D"):
        code_geometry(torch.zeros(5, 3), torch.zeros(5, 4))
