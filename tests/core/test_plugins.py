import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pluggy
import pytest
import torch

import sphere_plugins
from sphere_plugins import hookimpl, hookspecs
from sphere_plugins.plugins import BUILTIN_PLUGINS, LOAD_ENV, TRACE_ENV

PLUGIN_SOURCE = textwrap.dedent('''
    """A third-party plugin, installed only as a distribution with an entry point."""
    import torch
    from sphere_plugins import GeneratorAdapter, hookimpl

    class BlobModel(torch.nn.Module):
        """A model no built-in adapter knows: it has no z_dim and takes a dict."""
        def forward(self, inputs):
            return inputs["noise"].sum(dim=1, keepdim=True).view(-1, 1, 1, 1).tanh()

    @hookimpl
    def sphere_adapt_generator(model, options):
        if not isinstance(model, BlobModel):
            return None
        return GeneratorAdapter(z_shape=(6,), generate=lambda z: model({"noise": z}), module=model,
                                name="blob", radius=2.0)

    @hookimpl
    def sphere_register_priors(register):
        register("twos", lambda shape, generator, device, dtype: torch.full(shape, 2.0, dtype=dtype))
''')

PROBE = textwrap.dedent('''
    import json, torch
    import sphere_plugins as sp
    from sphere_plugins.cli.common import versions
    out = {"plugins": sp.plugin_names(), "priors": sp.list_priors(), "versions": versions()}
    try:
        from blob_plugin import BlobModel
        g = sp.wrap_generator(BlobModel())
        z = g.latents(3)
        out["radius"] = z.norm(dim=1).tolist()
        out["adapter"] = g.adapter.name
    except Exception as error:
        out["error"] = repr(error)
    print(json.dumps(out))
''')


def _install_throwaway_distribution(site: Path) -> None:
    """Lay out a plugin the way pip installs one: a module plus its .dist-info with entry points."""
    site.mkdir()
    (site / "blob_plugin.py").write_text(PLUGIN_SOURCE)
    info = site / "blob_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: blob-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[sphere_plugins]\nblob = blob_plugin\n")
    (info / "RECORD").write_text("")


def _probe(site: Path, **env: str) -> dict:
    environment = {k: v for k, v in os.environ.items() if k not in (LOAD_ENV, TRACE_ENV)}
    environment["PYTHONPATH"] = os.pathsep.join([str(site), environment.get("PYTHONPATH", "")])
    environment.update(env)
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=environment,
                            timeout=120, check=True)
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "stderr": result.stderr}


def test_a_plugin_installed_only_through_an_entry_point_is_found_and_used(tmp_path):
    site = tmp_path / "site"
    _install_throwaway_distribution(site)
    out = _probe(site)
    assert "blob" in out["plugins"]
    assert "twos" in out["priors"]
    assert out["adapter"] == "blob"
    assert out["radius"] == pytest.approx([2.0] * 3)
    assert out["versions"]["blob-plugin"] == "0.1"  # run records name the distributions of the loaded plugins


def test_the_load_variable_chooses_which_installed_plugins_load(tmp_path):
    site = tmp_path / "site"
    _install_throwaway_distribution(site)
    out = _probe(site, **{LOAD_ENV: ""})
    assert "blob" not in out["plugins"]
    assert "twos" not in out["priors"]
    assert "UnknownAdapterError" in out["error"]
    assert set(BUILTIN_PLUGINS) <= set(out["plugins"])
    assert "sphere-plugins" in out["versions"] and "torch" in out["versions"]
    assert not {"blob-plugin", "sphere-stylegan2", "sphere-timm"} & set(out["versions"])


def test_a_broken_plugin_warns_and_the_rest_still_load(tmp_path):
    site = tmp_path / "site"
    _install_throwaway_distribution(site)
    (site / "blob_plugin.py").write_text("raise RuntimeError('broken on purpose')\n")
    out = _probe(site)
    assert "blob" not in out["plugins"]
    assert "normal" in out["priors"]
    assert "plugin 'blob' (blob_plugin) failed to load" in out["stderr"]
    assert "broken on purpose" in out["stderr"]


def test_the_trace_variable_prints_hook_calls(tmp_path):
    site = tmp_path / "site"
    _install_throwaway_distribution(site)
    out = _probe(site, **{TRACE_ENV: "1"})
    assert "sphere_adapt_generator" in out["stderr"]


def test_a_misspelled_hook_implementation_is_rejected():
    class Misspelled:
        @hookimpl
        def sphere_adapt_genrator(self, model, options):
            return None

    with pytest.raises(pluggy.PluginValidationError, match="sphere_adapt_genrator"):
        sphere_plugins.register(Misspelled())
    assert "Misspelled" not in " ".join(sphere_plugins.plugin_names())


def test_a_registered_adapter_takes_precedence_over_the_built_in_one():
    class Tiny(torch.nn.Module):
        z_dim = 4

        def forward(self, z):
            return z

    class Doubling:
        @hookimpl
        def sphere_adapt_generator(self, model, options):
            if isinstance(model, Tiny):
                return sphere_plugins.GeneratorAdapter(z_shape=(4,), generate=lambda z: 2 * z, radius=1.0)
            return None

    plugin = Doubling()
    sphere_plugins.register(plugin, name="doubling")
    try:
        out = sphere_plugins.wrap_generator(Tiny())(torch.randn(3, 4))
        torch.testing.assert_close(out.norm(dim=1), torch.full((3,), 2.0))
    finally:
        sphere_plugins.unregister(name="doubling")


def test_every_hook_has_a_documented_contract():
    hooks = [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("sphere_")]
    assert len(hooks) >= 4
    for hook in hooks:
        doc = inspect.getdoc(hook) or ""
        assert len(doc.split()) >= 15, f"{hook.__name__} needs a docstring contract"


def test_load_model_rejects_specs_without_a_scheme():
    with pytest.raises(ValueError, match="scheme:rest"):
        sphere_plugins.load_model("resnet18")


def test_load_model_with_an_unknown_scheme_lists_the_plugins():
    with pytest.raises(sphere_plugins.UnknownModelError, match="'nosuch:thing'.*Plugins loaded: .*priors"):
        sphere_plugins.load_model("nosuch:thing")


def test_builtin_tiny_autoencoder_loads_with_options():
    model = sphere_plugins.load_model("builtin:tiny-ae", z_dim=7, resolution=8)
    assert model.encode(torch.zeros(2, 1, 8, 8)).shape == (2, 7)


def test_training_and_data_names_live_in_their_subpackages_only():
    assert "train" not in sphere_plugins.__all__ and "TrainConfig" not in sphere_plugins.__all__
    for name in ("TrainConfig", "load_images", "MetricRecord"):
        with pytest.raises(AttributeError, match=name):
            getattr(sphere_plugins, name)
    assert sphere_plugins.training.TrainConfig.__module__ == "sphere_plugins.training.loop"


def test_every_top_level_name_is_exported_and_documented():
    for name in sphere_plugins.__all__:
        assert getattr(sphere_plugins, name).__doc__, name
class _Named:
    @sphere_plugins.hookimpl
    def sphere_example_models(self):
        return []


def test_register_names_a_plugin_by_its_class_path_and_refuses_it_twice():
    plugin = _Named()
    sphere_plugins.register(plugin)
    try:
        assert f"{__name__}._Named" in sphere_plugins.plugin_names()
        with pytest.raises(ValueError, match=f"already registered as '{__name__}._Named'"):
            sphere_plugins.register(plugin, name="again")
        with pytest.raises(ValueError, match="a plugin named .* is already registered; pass register"):
            sphere_plugins.register(_Named())
    finally:
        sphere_plugins.unregister(plugin)
