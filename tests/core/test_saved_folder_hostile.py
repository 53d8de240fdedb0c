"""Hostile and broken saved folders: each loads exactly what its files say or raises one error of ours naming the
file and the field, without building anything larger than its weight files and without reading outside it."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file

from sphere_plugins import SpherePluginsError, load_model, wrap_autoencoder
from sphere_plugins.errors import SavedFolderError
from sphere_plugins.nets import ConvAutoencoder
from sphere_plugins.saving import load_pretrained


def _saved(folder, fit="vmf"):
    torch.manual_seed(0)
    sae = wrap_autoencoder(ConvAutoencoder(z_dim=6, width=8), prior="chi2", latent_noise=0.1)
    if fit:
        sae.fit_prior(torch.randn(32, 6, generator=torch.Generator().manual_seed(0)), kind=fit, components=2)
    sae.save_pretrained(folder)
    return folder


def _edit_json(path, edit):
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))


# --- sizes are checked against the weight files before anything is built ---------------------------

SIZE_CASE = textwrap.dedent('''
    import json, resource, sys, time
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from safetensors.torch import load_file, save_file
    from sphere_plugins import load_model, wrap_autoencoder
    from sphere_plugins.errors import SavedFolderError
    from sphere_plugins.nets import ConvAutoencoder

    case, folder = sys.argv[1], Path(sys.argv[2])
    if case.startswith("timm"):
        wrapper = wrap_autoencoder(load_model("timm:test_resnet?z_dim=6"))
    else:
        wrapper = wrap_autoencoder(ConvAutoencoder(z_dim=6, width=8))
        wrapper.fit_prior(torch.randn(32, 6), kind="gmm", components=2)
    wrapper.save_pretrained(folder)
    def edit(path, change):
        record = json.loads(path.read_text()); change(record); path.write_text(json.dumps(record))
    if case == "builtin_width":
        edit(folder / "model" / "config.json", lambda c: c["config"].update(width=4000))
    elif case == "timm_decoder_width":
        edit(folder / "model" / "config.json", lambda c: c["decoder"].update(width=4000))
    elif case == "extra_config_z_shape":
        edit(folder / "sphere_model.json",
             lambda r: r["extra_modules"]["fitted_prior"]["config"].update(z_shape=[16000]))
    elif case == "state_z_shape":
        state = load_file(str(folder / "wrapper_state.safetensors"))
        state["fitted_prior.z_shape"] = torch.tensor([12000])
        save_file(state, str(folder / "wrapper_state.safetensors"))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    try:
        load_model(folder)
        outcome = "loaded"
    except SavedFolderError as error:
        outcome = "SavedFolderError: " + str(error)
    except BaseException as error:
        outcome = type(error).__name__ + ": " + str(error)[:300]
    print(json.dumps({"outcome": outcome, "seconds": time.perf_counter() - start,
                      "rss_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024}))
''')


@pytest.mark.parametrize("case, field", [
    ("builtin_width", "model/config.json"),                  # width 4000: 2.7 GB before any check
    ("timm_decoder_width", "model/config.json"),
    ("extra_config_z_shape", "extra_modules.fitted_prior.config"),  # 16000: +1.8 GB
    ("state_z_shape", "wrapper_state.safetensors"),           # fitted_prior.z_shape 12000: +2.3 GB
])
def test_a_size_the_weight_files_do_not_hold_is_refused_before_anything_is_allocated(case, field, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", SIZE_CASE, case, str(tmp_path / "saved")], capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["outcome"].startswith("SavedFolderError") and field in report["outcome"], report
    assert report["rss_growth_mb"] < 100, report
    assert report["seconds"] < 5, report


# --- paths stay inside the folder -------------------------------------------------------------------

@pytest.mark.parametrize("path", ["../elsewhere/model", "model/../../elsewhere/model", "ABSOLUTE"])
def test_a_model_path_leading_outside_the_folder_is_refused(tmp_path, path):
    elsewhere = _saved(tmp_path / "elsewhere")
    folder = _saved(tmp_path / "saved")
    target = str(elsewhere / "model") if path == "ABSOLUTE" else path
    _edit_json(folder / "sphere_model.json", lambda r: r["model"].update(path=target))
    with pytest.raises(SavedFolderError, match="field 'model.path' must be a folder inside the saved folder"):
        load_model(folder)


def test_links_leading_outside_the_folder_are_refused(tmp_path):
    elsewhere = _saved(tmp_path / "elsewhere")
    folder = _saved(tmp_path / "saved")
    (folder / "model" / "model.safetensors").unlink()
    (folder / "model" / "model.safetensors").symlink_to(elsewhere / "model" / "model.safetensors")
    with pytest.raises(SavedFolderError, match="leads outside the folder"):
        load_model(folder)
    folder = _saved(tmp_path / "saved2")
    os.rename(folder / "model", tmp_path / "moved-model")
    (folder / "model").symlink_to(tmp_path / "moved-model")
    with pytest.raises(SavedFolderError, match="leads outside the folder"):
        load_model(folder)


def test_a_saved_timm_config_cannot_name_a_checkpoint_file(tmp_path):
    outside = tmp_path / "outside.pth"
    torch.save({}, outside)
    folder = tmp_path / "saved"
    wrap_autoencoder(load_model("timm:test_resnet?z_dim=6")).save_pretrained(folder)
    for change in ({"pretrained": True, "checkpoint_path": str(outside)},
                   {"timm_kwargs": {"checkpoint_path": str(outside)}},
                   {"timm_kwargs": {"pretrained_cfg_overlay": {"file": str(outside)}}}):
        _edit_json(folder / "model" / "config.json", lambda c: c["encoder"].update(change))
        with pytest.raises(SavedFolderError, match=r"model/config.json.*field 'encoder"):
            load_model(folder)
        wrap_autoencoder(load_model("timm:test_resnet?z_dim=6")).save_pretrained(folder)


# --- extra modules ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["model", "latent", "adapter", "encode", "_modules"])
def test_an_extra_module_cannot_replace_a_part_of_the_wrapper(tmp_path, name):
    folder = _saved(tmp_path / "saved")
    _edit_json(folder / "sphere_model.json",
               lambda r: r["extra_modules"].update({name: r["extra_modules"]["fitted_prior"]}))
    with pytest.raises(SavedFolderError, match=f"field 'extra_modules.{name}': '{name}' is not a name"):
        load_model(folder)


# --- hand-edited folders: one error of ours naming the file and the field ---------------------------

def _set(field, value):
    return lambda r: r.__setitem__(field, value)


EDITS = [  # (file, edit, what the message names)
    ("sphere_model.json", _set("center", "yes"), "field 'center'"),
    ("sphere_model.json", _set("radius", -1), "field 'radius'"),
    ("sphere_model.json", _set("dims", "all"), "field 'dims'"),
    ("sphere_model.json", _set("z_shape", [0]), "field 'z_shape'"),
    ("sphere_model.json", _set("prior_params", []), "field 'prior_params'"),
    ("sphere_model.json", _set("options", None), "field 'options'"),
    ("sphere_model.json", _set("extra_modules", {"fitted_prior": {"class": "FittedSpherePrior"}}),
     "field 'extra_modules'"),
    ("sphere_model.json", _set("extra_modules", {"fitted_prior": {"class": "FittedSpherePrior",
                                                                  "config": {"kind": "vmf"}}}),
     "field 'extra_modules.fitted_prior.config'"),
    ("sphere_model.json", lambda r: r.pop("model"), "missing field(s) ['model']"),
    ("sphere_model.json", _set("model", {"scheme": "builtin"}), "field 'model'"),
    ("sphere_model.json", _set("model", {"scheme": 3, "path": "model"}), "field 'model'"),
    ("sphere_model.json", _set("role", "decoder"), "field 'role'"),
    ("sphere_model.json", _set("prior", "gauss"), "unknown prior 'gauss'"),
    ("sphere_model.json", _set("prior_params", {"rate": 2.0}), "the recorded settings do not fit the model"),
    ("sphere_model.json", _set("latent_noise", "0.1"), "field 'latent_noise'"),
    ("sphere_model.json", _set("surprise", 1), "unknown field(s) ['surprise']"),
    ("model/config.json", lambda c: c.pop("config"), "field 'config' must be a dict"),
    ("model/config.json", lambda c: c["config"].update(width="8"), "width must be an int"),
    ("model/config.json", lambda c: c["config"].update(depth=3), "unknown argument 'depth'"),
    ("model/config.json", lambda c: c["config"].update(resolution=32), "does not fit the module"),
    ("model/config.json", _set("format", "other"), "has format 'other', expected 'sphere-plugins-builtin'"),
    ("model/config.json", lambda c: c.pop("format_version"), "has format_version None, expected 1"),
    ("sphere_model.json", _set("format_version", 2), "has format_version 2, expected 1"),
]


@pytest.mark.parametrize("file, edit, message", EDITS, ids=[f"{f}-{m}" for f, _, m in EDITS])
def test_a_hand_edited_folder_ends_in_one_error_naming_the_file_and_field(tmp_path, file, edit, message):
    folder = _saved(tmp_path / "saved")
    _edit_json(folder / file, edit)
    with pytest.raises(SavedFolderError) as caught:
        load_model(folder)
    assert file in str(caught.value) and message in str(caught.value)


def test_broken_weight_files_end_in_one_error_naming_the_file(tmp_path):
    folder = _saved(tmp_path / "saved")
    for name in ("wrapper_state.safetensors", "model/model.safetensors"):
        path = folder / name
        genuine = path.read_bytes()
        for broken in (genuine[:-7], genuine[:5], b"\xff" * 64):
            path.write_bytes(broken)
            with pytest.raises(SavedFolderError, match=f"{name}' is not a readable safetensors file"):
                load_model(folder)
        path.write_bytes(genuine)
    state = load_file(str(folder / "wrapper_state.safetensors"))
    state["fitted_prior.means"] = state["fitted_prior.means"][:1]
    save_file(state, str(folder / "wrapper_state.safetensors"))
    with pytest.raises(SavedFolderError, match="wrapper_state.safetensors"):
        load_model(folder)


def test_a_folder_without_its_settings_or_state_says_which_file_is_missing(tmp_path):
    folder = _saved(tmp_path / "saved")
    (folder / "wrapper_state.safetensors").unlink()
    with pytest.raises(SpherePluginsError, match="wrapper_state.safetensors"):
        load_model(folder)
    (folder / "sphere_model.json").unlink()
    with pytest.raises(SavedFolderError, match="no sphere_model.json in"):
        load_pretrained(folder)


# --- the fuzz test ----------------------------------------------------------------------------------

FUZZ = textwrap.dedent('''
    import json, os, random, resource, shutil, sys, tempfile, time
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from safetensors.torch import load_file, save_file
    from sphere_plugins import SpherePluginsError, wrap_autoencoder
    from sphere_plugins.nets import ConvAutoencoder
    from sphere_plugins.saving import load_pretrained

    root = Path(tempfile.mkdtemp())
    torch.manual_seed(0)
    sae = wrap_autoencoder(ConvAutoencoder(z_dim=6, width=8), prior="chi2", latent_noise=0.1)
    sae.fit_prior(torch.randn(32, 6), kind="vmf", components=2)
    genuine = sae.save_pretrained(root / "genuine")
    (root / "outside").write_bytes(b"outside the folder")
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    expected = sae.eval().encode(x)
    load_pretrained(genuine)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    rng = random.Random(int(sys.argv[1]))
    HOSTILE = [None, True, False, 0, -1, 1, 7, 2**31, 2**63, 1e308, -1e308, 0.5, "", "x", "model", "../outside",
               "/tmp", "FittedSpherePrior", "os:system", [], [0], [2**40], [1, 2], [6], {}, {"a": 1}, [[[]]]]

    def nodes(value, path=()):
        yield path
        if isinstance(value, dict):
            for key, child in value.items():
                yield from nodes(child, path + (key,))
        elif isinstance(value, list):
            for index, child in enumerate(value):
                yield from nodes(child, path + (index,))

    def mutate_json(path):
        record = json.loads(path.read_text())
        where = rng.choice([p for p in nodes(record) if p])
        parent = record
        for key in where[:-1]:
            parent = parent[key]
        kind = rng.randrange(3)
        if kind == 0 or isinstance(parent, list):
            parent[where[-1]] = rng.choice(HOSTILE)
        elif kind == 1:
            del parent[where[-1]]
        else:
            key = rng.choice(["extra", "model", "class", "config", "width", str(where[-1]) + "_"])
            parent[key] = rng.choice(HOSTILE)
        path.write_text(json.dumps(record))

    def mutate_bytes(path):
        b = bytearray(path.read_bytes())
        at = rng.randrange(len(b))
        kind = rng.randrange(4)
        if kind == 0:
            b[at] ^= 1 << rng.randrange(8)
        elif kind == 1:
            del b[at:]
        elif kind == 2:
            width = rng.choice([1, 2, 4, 8])
            b[at:at + width] = (rng.choice([0, 2**31 - 1, 2**63 - 1, 2**64 - 1]) % 256**width).to_bytes(width, "little")
        else:
            for _ in range(8):
                b[rng.randrange(len(b))] = rng.randrange(256)
        path.write_bytes(bytes(b))

    def mutate_tensors(path):
        state = load_file(str(path))
        name = rng.choice(sorted(state))
        kind = rng.randrange(5)
        if kind == 0:
            state[name] = torch.cat([state[name].reshape(-1), state[name].reshape(-1)[:1]])
        elif kind == 1:
            state[name] = state[name].to(rng.choice([torch.float64, torch.float16, torch.int64, torch.bool]))
        elif kind == 2:
            state[name + "_renamed"] = state.pop(name)
        elif kind == 3:
            state.pop(name)
        else:
            state[name] = torch.full_like(state[name], rng.choice([0, 2**20, -1]))
        save_file(state, str(path))

    def mutate_files(folder):
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        path = rng.choice(files)
        kind = rng.randrange(3)
        if kind == 0:
            path.unlink()
        elif kind == 1:
            path.unlink()
            path.symlink_to(rng.choice([root / "outside", genuine / path.relative_to(folder)]))
        else:
            path.unlink()
            path.mkdir()

    def mutate(folder):
        if any(p.is_symlink() for p in folder.rglob("*")):
            return  # never write through a link made by an earlier mutation (it may lead to the genuine folder)
        kind = rng.randrange(6)
        if kind == 0:
            mutate_json(folder / "sphere_model.json")
        elif kind == 1:
            mutate_json(folder / "model" / "config.json")
        elif kind == 2:
            mutate_bytes(rng.choice([folder / "wrapper_state.safetensors", folder / "model" / "model.safetensors",
                                     folder / "sphere_model.json", folder / "model" / "config.json"]))
        elif kind == 3:
            mutate_tensors(rng.choice([folder / "wrapper_state.safetensors", folder / "model" / "model.safetensors"]))
        else:
            mutate_files(folder)

    def same(a, b):
        return a.shape == b.shape and torch.equal(a.nan_to_num(7.0), b.to(a.dtype).nan_to_num(7.0))

    def exact(loaded, folder):
        """What loaded is what the files say: settings, model tensors, the wrapper's own tensors."""
        record = json.loads((folder / "sphere_model.json").read_text())
        latent = loaded.latent
        fits = (loaded.prior == record["prior"] and loaded.prior_params == record["prior_params"]
                and latent.center == record["center"] and latent.spherize == record["spherize"]
                and (record["radius"] is None or latent.radius == record["radius"])
                and (record["z_shape"] is None or list(loaded.z_shape) == record["z_shape"])
                and loaded.latent_noise == record["latent_noise"])
        model = load_file(str(folder / record["model"]["path"] / "model.safetensors"))
        own = load_file(str(folder / "wrapper_state.safetensors"))
        state = loaded.state_dict()
        return (fits and all(same(state["model." + k], v) for k, v in model.items())
                and all(same(state[k], v) for k, v in own.items()))

    counts = {"loaded": 0, "refused": 0}
    raw, inexact, slowest = [], [], 0.0
    for index in range(int(sys.argv[2])):
        folder = root / f"m{index}"
        shutil.copytree(genuine, folder)
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            try:
                mutate(folder)
            except Exception:  # the part to mutate is already gone or unreadable: keep what there is
                pass
        start = time.perf_counter()
        try:
            loaded = load_pretrained(folder)
        except SpherePluginsError:
            counts["refused"] += 1
        except BaseException as error:
            raw.append(f"{index}: {type(error).__name__}: {str(error)[:160]}")
        else:
            counts["loaded"] += 1
            try:
                if not exact(loaded, folder):
                    inexact.append(index)
            except Exception as error:
                inexact.append(f"{index}: {type(error).__name__}: {str(error)[:160]}")
        slowest = max(slowest, time.perf_counter() - start)
        shutil.rmtree(folder)
    after = load_pretrained(genuine).eval()
    print(json.dumps({"counts": counts, "raw": raw, "inexact": inexact, "slowest": slowest,
                      "rss_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024,
                      "genuine_unaffected": bool(torch.equal(after.encode(x), expected))}))
''')


def test_fuzzed_saved_folders_load_exactly_or_raise_our_error():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", FUZZ, "20261221", "300"], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["raw"] == [], report["raw"]
    assert report["inexact"] == []
    assert report["counts"]["loaded"] > 10 and report["counts"]["refused"] > 150, report["counts"]
    assert report["slowest"] < 3, report
    assert report["rss_growth_mb"] < 200, report
    assert report["genuine_unaffected"]


def test_nan_weights_in_a_saved_folder_are_refused_unless_allowed(tmp_path):
    from sphere_plugins.errors import NonFiniteWeightsError

    for name, key in (("model/model.safetensors", "decoder.fc.0.bias"), ("wrapper_state.safetensors",
                                                                         "fitted_prior.means")):
        folder = _saved(tmp_path / name.replace("/", "-"))
        state = load_file(str(folder / name))
        state[key][0] = float("nan")
        save_file(state, str(folder / name))
        with pytest.raises(NonFiniteWeightsError, match=f"{name}'.*tensor {key} holds NaN"):
            load_model(folder)
        loaded = load_model(folder, allow_nonfinite=True)
        assert torch.isnan(loaded.state_dict()[key if name.startswith("wrapper") else "model." + key]).any()
