"""The sampling, autoencoder and finetune suites at a tiny scale, with a cheap feature network: their
tables, records, figures and cached trainings (the numbers mean nothing at this size)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from sphere_plugins import GeneratorAdapter, TrainableGenerator, hookimpl, register, unregister

PRIORS = ("normal", "uniform", "poisson", "chi2")


def results_of(out, suite: str) -> dict:
    return json.loads((out / suite / "results.json").read_text())


def pngs_exist(out, suite: str, results: dict) -> bool:
    return all((out / suite / f["file"]).read_bytes()[:4] == b"\x89PNG" for f in results["figures"])


def test_sampling_suite_fills_the_four_by_four_table(tiny_presets, cheap_features, run_cli, tmp_path):
    from benchmarks.suites.sampling import COLUMNS

    assert run_cli(["sampling", "--out", str(tmp_path)]) == 0
    results = results_of(tmp_path, "sampling")
    fd = [r for r in results["records"] if r["metric"] == "FD-pixel-projection"]
    cells = {(r["prior"], r["extra"]["center"], r["extra"]["spherize"]) for r in fd}
    assert cells == {(p, c, s) for p in PRIORS for _, c, s in COLUMNS}
    assert all(r["n_samples"] == 20 and r["model"].startswith("StyleGAN2") and r["value"] >= 0 for r in fd)
    table = results["tables"][0]["markdown"].splitlines()
    assert len(table) == 2 + 4 and all(label in table[0] for label, _, _ in COLUMNS)
    assert [t["name"].split(":")[0] for t in results["targets"]] == [
        "centerized + spherized", "vanilla, no spherization", "vanilla, no spherization"]
    assert pngs_exist(tmp_path, "sampling", results)


def test_sampling_columns_differ_only_in_what_they_do_to_z():
    from sphere_plugins import load_model

    from benchmarks.suites.sampling import COLUMNS, wrapped

    G = load_model("stylegan2:tiny", resolution=8, channels=1, z_dim=8, w_dim=8, seed=0).eval()
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    on_sphere = (z - z.mean(1, keepdim=True)) * (math.sqrt(8) / (z - z.mean(1, keepdim=True)).norm(dim=1, keepdim=True))
    with torch.no_grad():
        same = [wrapped(G, c, s)(on_sphere) for _, c, s in COLUMNS]
        scaled = {label: wrapped(G, c, s)(3 * on_sphere) for label, c, s in COLUMNS}
    for images in same[1:]:  # a centred z of norm sqrt(d) is left alone by every column
        torch.testing.assert_close(images, same[0])
    torch.testing.assert_close(scaled["centerized, spherization"], same[0])
    torch.testing.assert_close(scaled["vanilla, spherization"], same[0])
    assert (scaled["vanilla, no spherization"] - same[0]).abs().max() > 1e-3  # the norm reaches the network


def test_autoencoder_suite_compares_four_methods_and_resumes(tiny_presets, cheap_features, run_cli, tmp_path):
    assert run_cli(["autoencoder", "--out", str(tmp_path)]) == 0
    results = results_of(tmp_path, "autoencoder")
    assert {k: v["status"] for k, v in results["parts"].items() if k.startswith("train_")} == {
        f"train_{k}": "computed" for k in ("sae", "vae", "svae", "ae")}
    models = {r["model"].split(" (conv")[0] for r in results["records"]}
    assert models == {"spherical autoencoder", "VAE", "S-VAE (von Mises-Fisher)", "plain autoencoder"}
    mse = [r for r in results["records"] if r["metric"] == "MSE"]
    assert len(mse) == 4 and all(0 <= r["value"] <= 1 and r["n_samples"] == 30 for r in mse)
    sampled = [r for r in results["records"] if r["metric"] == "FD-pixel-projection" and r["prior"]]
    assert sorted(r["prior"] for r in sampled) == sorted(PRIORS * 4)
    assert {f["file"] for f in results["figures"]} == {"reconstructions.png", "samples.png", "tsne.png",
                                                      "density_coverage.png"}
    assert pngs_exist(tmp_path, "autoencoder", results)
    assert run_cli(["autoencoder", "--out", str(tmp_path)]) == 0
    again = results_of(tmp_path, "autoencoder")
    assert {v["status"] for v in again["parts"].values()} == {"cached"}


def test_finetune_suite_reports_before_and_after(tiny_presets, cheap_features, run_cli, tmp_path):
    assert run_cli(["finetune", "--out", str(tmp_path)]) == 0
    results = results_of(tmp_path, "finetune")
    assert [results["parts"][k]["status"] for k in ("pretrain_vae", "finetune_sae")] == ["computed", "computed"]
    mse = {r["model"].split(":")[0]: r["value"] for r in results["records"] if r["metric"] == "MSE"}
    assert set(mse) == {"VAE (before)", "VAE, latents on the sphere (no fine-tuning)",
                        "fine-tuned spherical autoencoder (after)"}
    assert mse["VAE (before)"] != mse["fine-tuned spherical autoencoder (after)"]
    assert len(results["tables"][0]["markdown"].splitlines()) == 2 + 3
    fitted = [r for r in results["records"] if r["prior"] == "fitted" and r["extra"]["latents_on_sphere"]]
    original = [r for r in results["records"] if r["prior"] == "fitted" and not r["extra"]["latents_on_sphere"]]
    assert [r["metric"] for r in original][1:3] == ["precision", "recall"]
    assert all(r["model"].startswith("original VAE (no fine-tuning), the same prior fitted") for r in original)
    assert original[0]["value"] != fitted[0]["value"]  # its own codes, its own decoder
    assert [r["metric"] for r in fitted][1:3] == ["precision", "recall"]
    assert all(r["model"].startswith("fine-tuned spherical autoencoder, prior fitted") for r in fitted)
    assert fitted[0]["extra"]["components"] == 2 and fitted[0]["n_samples"] == 20
    plain_fd = next(r["value"] for r in results["records"] if r["prior"] == "normal" and r["metric"] == fitted[0]["metric"]
                    and r["model"].startswith("fine-tuned spherical autoencoder (after)"))
    assert fitted[0]["value"] != plain_fd  # drawn from the mixture, not from the normal prior
    assert "prior fitted to its codes" in results["tables"][1]["markdown"]
    assert "original VAE (no fine-tuning)" in results["tables"][1]["markdown"]
    assert pngs_exist(tmp_path, "finetune", results)


def test_too_few_samples_stops_the_suite_before_training(tiny_presets, cheap_features, run_cli, tmp_path, capsys):
    assert run_cli(["sampling", "--n-samples", "5", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "too few samples" in err[0] and "at least 7" in err[0]
    assert not (tmp_path / "cache" / "sampling").exists()


def test_unlabelled_folder_without_inception_names_the_missing_file(tiny_presets, run_cli, tmp_path, capsys,
                                                                    monkeypatch):
    import numpy as np
    from PIL import Image

    monkeypatch.setenv("SPHERE_PLUGINS_INCEPTION_DIR", str(tmp_path / "no-weights"))
    folder = tmp_path / "flat"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(folder / f"{i}.png")
    assert run_cli(["sampling", "--data", f"folder:{folder}", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "inception-2015-12-05.pt" in err[0] and "labelled data" in err[0]
    assert not (tmp_path / "r" / "cache" / "sampling").exists()


class _ToyGenerator(torch.nn.Module):
    """A third-party generator: a linear map from z to images, known to the test's own adapter."""

    def __init__(self, z_dim: int, channels: int, size: int):
        super().__init__()
        self.shape = (channels, size, size)
        self.linear = torch.nn.Linear(z_dim, channels * size * size)

    def forward(self, z):
        return torch.tanh(self.linear(z)).view(-1, *self.shape)


class _ToyPlugin:
    """Offers a trainable generator and adapts it, through hooks only (nothing in benchmarks/ knows it)."""

    trained: list = []

    @hookimpl
    def sphere_adapt_generator(self, model, options):
        if not isinstance(model, _ToyGenerator):
            return None
        return GeneratorAdapter(z_shape=(model.linear.in_features,), generate=model, module=model, name="toy")

    @hookimpl
    def sphere_trainable_generators(self):
        def train(images, *, z_dim, width, depth, steps, batch, lr, seed, device, checkpoint_dir, checkpoint_every,
                  callback=None):
            torch.manual_seed(seed)
            self.trained.append(steps)
            for step in range(steps):
                callback(step)
            return _ToyGenerator(z_dim, int(images.shape[1]), int(images.shape[-1]))

        return [TrainableGenerator(name="toy", describe=lambda r, z, w, d: f"toy linear generator ({r}x{r}, z_dim {z})",
                                   train=train, completed_steps=lambda folder: 0)]


def test_a_third_party_trainable_generator_fills_the_sampling_table(tiny_presets, cheap_features, run_cli, tmp_path,
                                                                     monkeypatch):
    from benchmarks.suites import sampling

    monkeypatch.setitem(sampling.PRESETS, "quick", dataclasses.replace(sampling.PRESETS["quick"], generator="toy"))
    plugin = _ToyPlugin()
    register(plugin, name="toy-third-party")
    try:
        assert run_cli(["sampling", "--out", str(tmp_path)]) == 0
    finally:
        unregister(plugin)
    results = results_of(tmp_path, "sampling")
    assert plugin.trained == [2]
    assert results["parts"]["train_toy"]["status"] == "computed"
    assert len([r for r in results["records"] if r["metric"] == "FD-pixel-projection"]) == 16
    assert all(r["model"].startswith("toy linear generator (8x8, z_dim 8)") for r in results["records"])


def test_the_sampling_suite_names_the_trainable_generators_on_offer(tiny_presets, cheap_features, run_cli, tmp_path,
                                                                    monkeypatch, capsys):
    from benchmarks.suites import sampling

    monkeypatch.setitem(sampling.PRESETS, "quick", dataclasses.replace(sampling.PRESETS["quick"], generator="nope"))
    assert run_cli(["theory", "sampling", "--out", str(tmp_path)]) == 2  # bad input: stopped before any suite ran
    assert "'nope', which no loaded plugin offers (offered: stylegan2)" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
def test_finetune_on_too_small_a_folder_exits_2_before_any_work(run_cli, tmp_path, capsys, monkeypatch):
    import numpy as np
    from PIL import Image

    monkeypatch.setenv("SPHERE_PLUGINS_INCEPTION_DIR", str(tmp_path / "no-weights"))
    folder = tmp_path / "small"
    folder.mkdir()
    for i in range(100):
        Image.fromarray(np.full((8, 8), i, np.uint8)).save(folder / f"{i}.png")
    assert run_cli(["finetune", "--data", f"folder:{folder}", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds 100 images" in err[0] and "at least 130" in err[0]
    assert not (tmp_path / "r").exists()


def test_finetune_holds_out_enough_images_of_a_small_folder_with_a_warning(monkeypatch, tmp_path):
    from benchmarks.suites.finetune import held_out_share

    monkeypatch.setenv("SPHERE_PLUGINS_INCEPTION_DIR", str(tmp_path / "no-weights"))
    with pytest.warns(UserWarning, match="give 40 held out at 20%; holding out 65"):
        share = held_out_share(200, 0.2)
    assert round(200 * share) == 65
    assert held_out_share(1000, 0.2) == 0.2
