"""The `sphere-plugins` command line, driven in a subprocess as a user runs it."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from sphere_plugins import load_model, wrap_autoencoder
from sphere_plugins.cli import main
from sphere_plugins.cli.common import UsageError, seeds, write_record
from sphere_plugins.errors import NonFiniteWeightsError
from sphere_plugins.nets import ConvAutoencoder


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "sphere_plugins", *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=cwd)


@pytest.fixture(scope="module")
def saved_sae(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("saved") / "sae"
    wrap_autoencoder(ConvAutoencoder(z_dim=6, width=8), prior="chi2").save_pretrained(folder)
    return folder


def test_list_shows_plugins_schemes_with_examples_and_priors_with_defaults():
    result = cli("list", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    schemes = {s["scheme"]: s for s in data["schemes"]}
    assert {"builtin", "stylegan2", "diffusers", "timm"} <= set(schemes)
    assert schemes["timm"]["defaults"]["channels"] == 1 and "in_chans" in schemes["timm"]["description"]
    assert data["priors"]["poisson"]["defaults"] == {"rate": 1.0}
    assert "stylegan2" in data["plugins"]


def _pixels(path):
    return np.asarray(Image.open(path)).astype(int)


def test_sample_writes_one_png_per_seed_the_same_whatever_the_batch(saved_sae, tmp_path):
    one = cli("sample", saved_sae, "--seeds", "0-3", "--batch", "1", "--out", tmp_path / "one")
    assert one.returncode == 0, one.stderr
    three = cli("sample", saved_sae, "--seeds", "2,3,7", "--batch", "3", "--out", tmp_path / "three")
    assert three.returncode == 0, three.stderr
    for seed in (2, 3):
        difference = np.abs(_pixels(tmp_path / "one" / f"seed{seed:04d}.png")
                            - _pixels(tmp_path / "three" / f"seed{seed:04d}.png"))
        assert difference.max() <= 1  # batched convolutions may round one level differently
    assert not np.array_equal(_pixels(tmp_path / "one" / "seed0002.png"), _pixels(tmp_path / "one" / "seed0003.png"))
    record = json.loads((tmp_path / "three" / "sample.json").read_text())
    assert record["prior"] == "chi2" and record["options"]["seeds"] == "2,3,7"
    assert (tmp_path / "three" / "grid.png").is_file()


@pytest.mark.parametrize("args, message", [
    (["sample", "builtin:tiny-ae", "--prior", "gauss"], "unknown --prior 'gauss'; registered priors: bernoulli"),
    (["sample", "builtin:tiny-ae", "--prior", "poisson", "--prior-param", "lam=2"],
     "--prior-param: prior 'poisson' got unknown parameter(s) ['lam']; accepted: rate"),
    (["sample", "nowhere:model"], "SPEC 'nowhere:model' is neither"),
    (["interpolate", "stylegan2:tiny", "--seeds", "4", "--steps", "3"], "--seeds needs at least 2 seed(s)"),
    (["sample", "builtin:tiny-ae", "--radius", "-1"], "--radius must be positive, got -1.0"),
    (["interpolate", "builtin:tiny-ae", "--seeds", "0,1", "--radius", "0"], "--radius must be positive, got 0.0"),
    (["sample", "builtin:tiny-ae", "--seeds", "0-99999999"], "names 100000000 seeds; at most 1000000 per run"),
    (["sample", "builtin:tiny-ae", "--seeds", "3,4294967296"], "seed 4294967296 is too large; seeds are ints in 0.."),
    (["finetune", "builtin:tiny-ae", "--data", "digits", "--steps", "1", "--resolution", "0"],
     "--resolution must be a positive int"),
    (["finetune", "builtin:tiny-ae", "--data", "digits", "--steps", "1", "--seed", str(2**64)],
     "--seed must be an int in 0..4294967295, got 18446744073709551616"),
])
def test_bad_arguments_exit_2_with_one_line_before_any_work(args, message, tmp_path):
    result = cli(*args, "--out", tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert not (tmp_path / "out").exists()


def test_seed_ranges_are_counted_and_bounded_before_any_list_is_built():
    assert seeds("0-3,7") == [0, 1, 2, 3, 7] and seeds("4294967295") == [4294967295]
    with pytest.raises(UsageError, match="names 1000001 seeds; at most 1000000"):
        seeds("0-1000000")
    with pytest.raises(UsageError, match="seed 4294967296 is too large"):
        seeds("0-4294967296")


def test_interpolate_writes_a_grid_and_a_gif_with_every_step(tmp_path):
    result = cli("interpolate", "stylegan2:tiny", "--option", "seed=0", "--seeds", "1,2,3", "--steps", "4",
                 "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    gif = Image.open(tmp_path / "interpolation.gif")
    assert gif.n_frames == 4 + 3  # the second segment starts where the first ends
    assert Image.open(tmp_path / "grid.png").size == (4 * 17 + 1, 2 * 17 + 1)


def test_evaluate_two_folders_offline_names_the_feature_network(tmp_path):
    from sphere_plugins.data import load_images

    digits = load_images("digits")
    for name, images in (("real", digits.images[:100]), ("fake", digits.images[100:200])):
        (tmp_path / name).mkdir()
        for i, image in enumerate(((images[:, 0] + 1) * 127.5).round().to(torch.uint8)):
            Image.fromarray(image.numpy()).save(tmp_path / name / f"{i}.png")
    result = cli("evaluate", tmp_path / "real", tmp_path / "fake", "--metric", "fd", "--inception-dir", tmp_path,
                 "--cache-dir", tmp_path / "cache", "--json-out", tmp_path / "fd.json")
    assert result.returncode == 0, result.stderr
    assert "instead of FID" in result.stdout and "FD-digits-cnn:" in result.stdout
    (record,) = json.loads((tmp_path / "fd.json").read_text())
    assert record["metric"] == "FD-digits-cnn" and record["extra"]["n_real"] == 100


def test_finetune_saves_a_loadable_spherical_autoencoder_and_resumes(tmp_path):
    out = tmp_path / "sae"
    first = cli("finetune", "builtin:tiny-ae", "--data", "digits", "--steps", "2", "--batch", "8", "--out", out)
    assert first.returncode == 0, first.stderr
    again = cli("finetune", "builtin:tiny-ae", "--data", "digits", "--steps", "3", "--batch", "8", "--out", out)
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "finetune.json").read_text())["final_step"] == 3
    sae = load_model(out)
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    assert sae.encode(x).norm(dim=1).allclose(torch.full((2,), 10**0.5), rtol=1e-4)


def test_finetune_with_a_seed_gives_the_same_weights_bit_for_bit(tmp_path):
    for name in ("a", "b"):  # in one process: the second run starts from whatever RNG state the first left
        assert main(["finetune", "builtin:tiny-ae", "--data", "digits", "--steps", "1", "--batch", "8",
                     "--seed", "5", "--out", str(tmp_path / name)]) == 0
    first, second = (load_model(tmp_path / name).state_dict() for name in ("a", "b"))
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_a_diverging_finetune_exits_1_naming_the_step_and_saves_no_model(tmp_path):
    out = tmp_path / "sae"
    result = cli("finetune", "builtin:tiny-ae", "--data", "digits", "--steps", "4", "--batch", "8", "--lr", "1e30",
                 "--out", out)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("sphere-plugins finetune: error: training diverged: the loss "
                                                      "was not finite at step ")
    assert not (out / "finetune.json").exists() and not (out / "sphere_model.json").exists()


def test_the_json_record_of_a_run_writes_non_finite_numbers_as_null(tmp_path):
    write_record(tmp_path, "run.json", argparse.Namespace(lr=1e-3), last_log={"loss": float("nan")})
    record = json.loads((tmp_path / "run.json").read_text(), parse_constant=lambda c: pytest.fail(f"bare {c}"))
    assert record["last_log"] == {"loss": None} and record["options"] == {"lr": 1e-3}


def test_finetune_reads_an_idx_data_set_and_compiles_on_request(tmp_path, idx_folder):
    idx_folder(tmp_path / "fmnist", counts=(24, 8))
    out = tmp_path / "sae"
    result = cli("finetune", "builtin:tiny-ae", "--data", f"fashion-mnist:{tmp_path / 'fmnist'}", "--steps", "1",
                 "--batch", "8", "--compile", "--out", out)
    assert result.returncode == 0, result.stderr
    record = json.loads((out / "finetune.json").read_text())
    assert record["final_step"] == 1 and record["options"]["compile"] is True
    assert record["options"]["data"] == f"fashion-mnist:{tmp_path / 'fmnist'}"
    assert load_model(out).encode(torch.rand(2, 1, 16, 16) * 2 - 1).norm(dim=1).allclose(
        torch.full((2,), 10**0.5), rtol=1e-4)


@pytest.mark.parametrize("command", ["finetune", "evaluate"])
def test_a_missing_or_truncated_idx_file_stops_before_any_work(command, tmp_path, idx_folder):
    idx_folder(tmp_path / "fmnist")
    images = tmp_path / "fmnist" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-50])
    for spec, message in ((f"fashion-mnist:{tmp_path / 'fmnist'}", "truncated"),
                          (f"mnist:{tmp_path / 'absent'}", "copy MNIST's four idx files there")):
        args = (["finetune", "builtin:tiny-ae", "--data", spec, "--steps", "1"] if command == "finetune"
                else ["evaluate", spec, "builtin:tiny-ae", "--n", "4"])
        result = cli(*args, "--out" if command == "finetune" else "--json-out", tmp_path / "out")
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and message in result.stderr and spec in result.stderr
        assert not (tmp_path / "out").exists()


def test_convert_writes_a_folder_that_loads_to_the_same_network(tmp_path):
    from sphere_stylegan2.loader import save_nvlabs_pickle

    G = load_model("stylegan2:tiny", seed=0)
    save_nvlabs_pickle(tmp_path / "g.pkl", G_ema=G)
    result = cli("convert", tmp_path / "g.pkl", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    z = torch.randn(2, G.z_dim)
    assert torch.equal(load_model(tmp_path / "out")(z, None), G(z, None))
    assert not list((tmp_path / "out").glob("*.pkl"))


def test_convert_refuses_nan_weights_unless_allowed_and_the_folder_keeps_the_rule(tmp_path):
    from sphere_stylegan2.loader import save_nvlabs_pickle

    G = load_model("stylegan2:tiny", seed=0)
    with torch.no_grad():
        G.mapping.w_avg[0] = float("nan")
    save_nvlabs_pickle(tmp_path / "g.pkl", G_ema=G)
    refused = cli("convert", tmp_path / "g.pkl", tmp_path / "out")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert "mapping.w_avg holds NaN or Inf" in refused.stderr and "--allow-nonfinite" in refused.stderr
    assert not (tmp_path / "out").exists()
    allowed = cli("convert", tmp_path / "g.pkl", tmp_path / "out", "--allow-nonfinite")
    assert allowed.returncode == 0, allowed.stderr
    with pytest.raises(NonFiniteWeightsError, match="mapping.w_avg"):
        load_model(tmp_path / "out")
    assert torch.isnan(load_model(tmp_path / "out", allow_nonfinite=True).mapping.w_avg[0])


def test_every_subcommand_help_has_examples():
    for command in ("list", "sample", "interpolate", "evaluate", "finetune", "convert"):
        result = cli(command, "--help")
        assert result.returncode == 0 and "examples:" in result.stdout, command


def test_generator_flags_come_from_the_schemes_the_plugins_declare(tmp_path):
    import sphere_plugins
    from sphere_plugins import ModelKwarg, ModelScheme, hookimpl
    from sphere_plugins.cli import build_parser

    class Warm:
        @hookimpl
        def sphere_model_schemes(self):
            return [ModelScheme("warm", ("generator",), "warm:NAME", example="warm:x",
                                model_kwargs=(ModelKwarg("--temperature", "temperature", float, "how warm"),))]

    argv = ["sample", "stylegan2:tiny", "--truncation-psi", "0.7", "--class", "2", "--out", str(tmp_path)]
    plugin = Warm()
    sphere_plugins.register(plugin, name="warm")
    try:
        args = build_parser().parse_args([*argv, "--temperature", "0.5"])
    finally:
        sphere_plugins.unregister(plugin)
    assert args.model_kwargs == {"truncation_psi": 0.7, "c": 2, "temperature": 0.5}
    assert build_parser().parse_args(argv).model_kwargs == {"truncation_psi": 0.7, "c": 2}
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--temperature", "0.5"])

