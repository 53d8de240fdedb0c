"""Built-in adapters for plain PyTorch models, registered through the same hooks as any plugin.

- generator: an nn.Module with an int `z_dim` attribute (or `z_shape=` given), called as model(z)
  (or model.decode(z) when it has a decode method: an autoencoder's decoder is its generator).
- autoencoder: a module with `encode`/`decode` methods, or an (encoder, decoder) pair.
- models: "builtin:tiny-ae" (a small conv autoencoder; options channels, resolution, z_dim, width), and
  "builtin:FOLDER" for one that save_pretrained wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from sphere_plugins.hookspecs import hookimpl
from sphere_plugins.nets import ConvAutoencoder, EncoderDecoder
from sphere_plugins.offers import ModelScheme
from sphere_plugins.adapter import AutoencoderAdapter, GeneratorAdapter
from sphere_plugins.module_folder import checked_ints, load_module_folder, save_module_folder
from sphere_plugins.records import record_format


def _declared_shape(model: Any, options: dict[str, Any]) -> tuple[int, ...] | None:
    if "z_shape" in options:
        return options["z_shape"]
    for attribute in ("z_shape", "z_dim"):
        value = getattr(model, attribute, None)
        if isinstance(value, int) and value > 0:
            return (value,)
        if isinstance(value, tuple) and value and all(isinstance(v, int) and v > 0 for v in value):
            return value
    return None


@hookimpl(trylast=True)
def sphere_adapt_generator(model: Any, options: dict[str, Any]) -> GeneratorAdapter | None:
    if not isinstance(model, nn.Module):
        return None
    z_shape = _declared_shape(model, options)
    if z_shape is None:
        return None
    # An autoencoder's generator is its decoder.
    generate = model.decode if callable(getattr(model, "decode", None)) else model
    return GeneratorAdapter(z_shape=z_shape, generate=generate, module=model, name=type(model).__name__)


@hookimpl(trylast=True)
def sphere_adapt_autoencoder(model: Any, options: dict[str, Any]) -> AutoencoderAdapter | None:
    if isinstance(model, (tuple, list)):
        if len(model) != 2 or not all(isinstance(m, nn.Module) for m in model):
            return None
        model = EncoderDecoder(*model)
    if not (callable(getattr(model, "encode", None)) and callable(getattr(model, "decode", None))):
        return None
    return AutoencoderAdapter(z_shape=_declared_shape(model, options), encode=model.encode, decode=model.decode,
                              module=model if isinstance(model, nn.Module) else None, name=type(model).__name__)


@hookimpl
def sphere_example_models() -> list[str]:
    return ["builtin:tiny-ae"]


@hookimpl(trylast=True)
def sphere_load_model(spec: str, options: dict[str, Any]) -> nn.Module | None:
    scheme, _, name = spec.partition(":")
    if scheme != "builtin":
        return None
    if name == "tiny-ae":
        return ConvAutoencoder(**options)
    if Path(name).expanduser().is_dir():
        return _load_saved(Path(name).expanduser(), options)
    raise ValueError(f"unknown built-in model {name!r} in spec {spec!r}; built-in models: tiny-ae, or a folder "
                     "written by save_pretrained")


SAVED_FORMAT = "sphere-plugins-builtin"
TINY_AE_DEFAULTS = {"channels": 1, "resolution": 16, "z_dim": 10, "width": 32}


# The arguments a saved ConvAutoencoder may record, with their bounds.
SAVED_ARGUMENTS = {"channels": (1, 64), "resolution": (4, 1 << 14), "z_dim": (1, 1 << 24), "width": (1, 1 << 16),
                   "heads": (1, 64)}


def _build_saved(config: dict[str, Any]) -> ConvAutoencoder:
    return ConvAutoencoder(**checked_ints(config.get("config"), SAVED_ARGUMENTS, "field 'config'"))


def _load_saved(folder: Path, options: dict[str, Any]) -> ConvAutoencoder:
    if set(options) - {"allow_nonfinite"}:
        raise ValueError(f"a saved built-in model takes only the option allow_nonfinite, got {sorted(options)}")
    return load_module_folder(folder, SAVED_FORMAT, _build_saved, **options)[1].eval()


@hookimpl(trylast=True)
def sphere_save_model(model: Any, folder: Path) -> str | None:
    if type(model) is not ConvAutoencoder:
        return None
    save_module_folder(model, folder, SAVED_FORMAT, {"class": "ConvAutoencoder", "config": model.config})
    return "builtin"


def _is_saved_builtin(path: Path) -> bool:
    return record_format(path / "config.json") == SAVED_FORMAT


@hookimpl
def sphere_model_schemes() -> list[ModelScheme]:
    return [ModelScheme(
        "builtin", ("autoencoder",), "builtin:tiny-ae or builtin:FOLDER", example="builtin:tiny-ae",
        description="a small conv autoencoder (encoder/decoder with z_dim) for tests and quick runs, or a folder "
                    "save_pretrained wrote", defaults=TINY_AE_DEFAULTS, recognizes=_is_saved_builtin)]
