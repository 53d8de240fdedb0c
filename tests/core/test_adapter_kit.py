"""A plugin author needs one import, `sphere_plugins.adapter` (or the same names from `sphere_plugins`)."""

from __future__ import annotations

import ast
import importlib
import textwrap
from pathlib import Path

import pytest
import torch

import sphere_plugins
import sphere_plugins.adapter
from sphere_plugins import load_model, wrap_generator

ADAPTERS = Path(__file__).resolve().parents[2] / "adapters"

# A complete plugin: an adapter, a scheme with a loader and saver, a prior; its only import from us is the kit.
PLUGIN = textwrap.dedent('''
    import torch
    from sphere_plugins.adapter import GeneratorAdapter, ModelScheme, check_adapter_options, hookimpl, spec_value

    class Glow(torch.nn.Module):
        def __init__(self, width=4):
            super().__init__()
            self.width = width
            self.scale = torch.nn.Parameter(torch.ones(1))

        def forward(self, z):
            return (self.scale * z).tanh().view(-1, 1, 1, self.width)

    @hookimpl
    def sphere_adapt_generator(model, options):
        if not isinstance(model, Glow):
            return None
        check_adapter_options(options, ("z_shape",), "a Glow")
        return GeneratorAdapter(z_shape=(model.width,), generate=model, module=model, name="glow")

    @hookimpl
    def sphere_load_model(spec, options):
        scheme, _, width = spec.partition(":")
        return Glow(spec_value(width), **options) if scheme == "glow" else None

    @hookimpl
    def sphere_model_schemes():
        return [ModelScheme("glow", ("generator",), "glow:WIDTH", example="glow:4")]
''')


@pytest.fixture
def kit_plugin(tmp_path, monkeypatch):
    (tmp_path / "glow_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("glow_plugin")
    sphere_plugins.register(module, name="glow")
    yield module
    sphere_plugins.unregister(name="glow")


def _core_imports(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sphere_plugins"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("sphere_plugins"))
    return found


def test_a_plugin_importing_only_the_kit_adapts_loads_and_lists_its_model(kit_plugin):
    assert _core_imports(PLUGIN) == {"sphere_plugins.adapter"}
    generator = wrap_generator(load_model("glow:6"))
    assert generator.adapter.name == "glow"
    assert generator.latents(3).norm(dim=1) == pytest.approx(torch.full((3,), 6 ** 0.5))
    assert generator.sample(2).shape == (2, 1, 1, 6)
    assert "glow" in {s.name for s in sphere_plugins.list_schemes()}
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['typo'\] for a Glow"):
        wrap_generator(kit_plugin.Glow(), options={"typo": 1})


def test_the_top_level_exports_the_whole_kit():
    missing = [name for name in sphere_plugins.adapter.__all__ if getattr(sphere_plugins, name, None) is not
               getattr(sphere_plugins.adapter, name)]
    assert missing == []
    assert {"GeneratorAdapter", "AutoencoderAdapter", "check_adapter_options", "hookimpl", "register",
            "ModelScheme", "MissingWeightsError"} <= set(sphere_plugins.adapter.__all__)


@pytest.mark.parametrize("plugin", sorted(ADAPTERS.glob("*/sphere_*/plugin.py")), ids=lambda p: p.parent.name)
def test_first_party_plugins_take_the_contract_from_the_kit_alone(plugin):
    assert _core_imports(plugin.read_text()) == {"sphere_plugins.adapter"}
