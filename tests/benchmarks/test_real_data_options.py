"""Fashion-MNIST as the benchmarks' data: the --data specs, bad idx files stopping the CLI before any training,
the split each suite trains and measures on, the standard scale's presets, and FD with precision/recall and
density/coverage from one set of features."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmarks.cli import EXIT_BAD_INPUT, parse_options
from benchmarks.common import Options

def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_the_default_data_is_fashion_mnist_and_the_standard_scale_parses():
    assert parse_options([]).data == "fashion-mnist"
    assert parse_options(["--scale", "standard"]).scale == "standard"


def test_a_folder_without_the_idx_files_exits_2_naming_the_file_and_the_package(run_cli, capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli(["sampling", "--data", f"fashion-mnist:{empty}", "--out", str(tmp_path / "r")]) == EXIT_BAD_INPUT
    line = error_line(capsys)
    assert "train-images-idx3-ubyte" in line and "dataset-fashion-mnist" in line
    assert not (tmp_path / "r").exists()


def test_a_missing_folder_exits_2(run_cli, capsys, tmp_path):
    assert run_cli(["theory", "--data", f"mnist:{tmp_path / 'absent'}", "--out", str(tmp_path)]) == EXIT_BAD_INPUT
    assert "does not exist" in error_line(capsys)


def test_a_truncated_idx_file_exits_2_before_any_training(tiny_presets, cheap_features, run_cli, capsys, tmp_path,
                                                         idx_folder):
    folder = tmp_path / "fmnist"
    idx_folder(folder)
    test_images = folder / "t10k-images-idx3-ubyte"
    test_images.write_bytes(test_images.read_bytes()[:-100])
    assert run_cli(["sampling", "--data", f"fashion-mnist:{folder}", "--out", str(tmp_path / "r")]) == EXIT_BAD_INPUT
    line = error_line(capsys)
    assert "t10k-images-idx3-ubyte" in line and "truncated" in line
    assert not (tmp_path / "r" / "cache").exists()


def test_idx_data_trains_on_the_train_split_and_measures_against_the_test_split(tmp_path, idx_folder):
    from benchmarks.inputs import check_inputs, load_splits

    pixels = idx_folder(tmp_path / "mnist")
    options = Options(suites=["autoencoder"], data=f"mnist:{tmp_path / 'mnist'}")
    check_inputs(options)
    splits = load_splits(options, resolution=32, n_test=5)
    assert (len(splits.train), len(splits.test), len(splits.real)) == (12, 5, 8)
    expected = torch.full((8, 1, 32, 32), -1.0)  # padded by 2 background pixels on every side
    expected[:, 0, 2:30, 2:30] = torch.from_numpy(pixels["test"].astype(np.float32)) / 127.5 - 1
    torch.testing.assert_close(splits.real.images, expected)
    torch.testing.assert_close(splits.test.images, expected[:5])
    train = torch.from_numpy(pixels["train"].astype(np.float32)) / 127.5 - 1
    torch.testing.assert_close(splits.train.images[:, 0, 2:30, 2:30], train)


def test_the_digits_smoke_overrides_apply_to_the_quick_scale_on_digits_only():
    from benchmarks.suites import sampling

    def preset(**options):
        return sampling.settings(SimpleNamespace(options=Options(**options)))

    assert preset(data="digits").resolution == 16 and preset(data="digits").steps == sampling.SMOKE["steps"]
    assert preset(data="digits", steps=7).steps == 7  # the command line still wins
    assert preset().resolution == 32 and preset().steps == sampling.PRESETS["quick"].steps
    assert preset(data="digits", scale="standard") == sampling.PRESETS["standard"]


def test_standard_presets_are_the_papers_latent_sizes():
    from benchmarks.suites import SUITE_NAMES, get_suite

    for name in SUITE_NAMES:
        suite = get_suite(name)
        assert suite.settings(SimpleNamespace(options=Options(scale="standard"))) is not None
    from benchmarks.suites import autoencoder, finetune, sampling

    s = sampling.PRESETS["standard"]
    assert (s.resolution, s.z_dim, s.depth) == (32, 512, 8) and s.seeds >= 3 and s.n_samples > 64
    a = autoencoder.PRESETS["standard"]
    assert (a.resolution, a.z_dim) == (32, 10) and a.n_samples > 64
    assert finetune.PRESETS["standard"].resolution == 32


def test_sample_quality_derives_every_metric_from_the_same_features(cheap_features, tmp_path):
    from sphere_plugins.metrics import density_coverage, frechet_distance_from_features, precision_recall

    from benchmarks.context import Context
    from benchmarks.evaluation import by_metric, sample_quality

    ctx = Context(Options(out=tmp_path), "sampling", "test")
    gen = torch.Generator().manual_seed(0)
    real = torch.rand(40, 1, 8, 8, generator=gen) * 2 - 1
    fake = torch.rand(30, 1, 8, 8, generator=gen) * 2 - 1
    records = by_metric(sample_quality(ctx, real, fake, cheap_features, 30, prior="uniform", extra={"tag": 1}))
    f_real, f_fake = cheap_features(real), cheap_features(fake)  # computed here, independently of the helper
    precision, recall = precision_recall(f_real, f_fake, k=3)
    density, coverage = density_coverage(f_real, f_fake, k=5)
    assert records["FD"]["metric"] == "FD-pixel-projection"
    assert records["FD"]["value"] == pytest.approx(frechet_distance_from_features(f_real, f_fake))
    assert [records[m]["value"] for m in ("precision", "recall", "density", "coverage")] == pytest.approx(
        [precision, recall, density, coverage])
    assert [records[m]["extra"]["k"] for m in ("precision", "density")] == [3, 5]
    assert all(r["prior"] == "uniform" and r["extra"]["tag"] == 1 and r["n_samples"] == 30 for r in records.values())


def test_sample_tables_show_fd_with_precision_and_recall(tiny_presets, cheap_features, run_cli, tmp_path):
    import json

    cell = re.compile(r"^\d[\d.e+-]* (\+- [\d.e+-]+ )?\(\d\.\d{3} / \d\.\d{3}\)$")
    assert run_cli(["sampling", "autoencoder", "--out", str(tmp_path)]) == 0
    sampling = json.loads((tmp_path / "sampling" / "results.json").read_text())
    table = sampling["tables"][0]
    assert "precision / recall" in table["title"]
    rows = [line.strip("|").split("|") for line in table["markdown"].splitlines()[2:]]
    assert len(rows) == 4 and all(cell.match(value.strip()) for row in rows for value in row[1:])
    metrics = {r["metric"] for r in sampling["records"]}
    assert {"precision", "recall", "density", "coverage"} <= metrics
    assert "precision_recall.png" in {f["file"] for f in sampling["figures"]}
    autoencoder = json.loads((tmp_path / "autoencoder" / "results.json").read_text())
    samples = next(t for t in autoencoder["tables"] if t["title"].startswith("Decoders sampled"))
    rows = [line.strip("|").split("|") for line in samples["markdown"].splitlines()[2:]]
    assert len(rows) == 4 and all(cell.match(value.strip()) for row in rows for value in row[1:5])


def test_the_real_sets_neighbour_radii_are_computed_once_per_real_feature_set(monkeypatch):
    from sphere_plugins.metrics import manifold

    from benchmarks import evaluation

    built = []
    original = manifold.RealManifold.__init__
    monkeypatch.setattr(manifold.RealManifold, "__init__",
                        lambda self, *args, **kwargs: (built.append(1), original(self, *args, **kwargs))[1])
    monkeypatch.setattr(evaluation, "_MANIFOLDS", evaluation.OrderedDict())
    rng = np.random.default_rng(0)
    real, other = rng.standard_normal((50, 4)), rng.standard_normal((50, 4))
    first = evaluation.real_manifold(real)
    assert evaluation.real_manifold(real.copy()) is first and len(built) == 1  # equal values, another array
    assert evaluation.real_manifold(other) is not first and len(built) == 2
    fake = rng.standard_normal((40, 4))
    assert first.all(fake) == evaluation.real_manifold(real).all(fake)
