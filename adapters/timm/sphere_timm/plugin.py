"""The sphere_timm plugin: hook implementations only; timm is imported when a model is built."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sphere_plugins.adapter import AutoencoderAdapter, ModelScheme, check_adapter_options, hookimpl
from torch import nn

from sphere_timm.autoencoder import DEFAULTS, TimmAutoencoder, build_timm_autoencoder, parse_spec
from sphere_timm.saving import is_saved_timm, load_saved, save_timm_autoencoder
from sphere_timm.encoder import TimmEncoder

OPTIONS = ("z_shape",)


def _as_autoencoder(model: Any) -> TimmAutoencoder | None:
    if isinstance(model, TimmAutoencoder):
        return model
    if (isinstance(model, (tuple, list)) and len(model) == 2 and isinstance(model[0], TimmEncoder)
            and isinstance(model[1], nn.Module)):
        return TimmAutoencoder(*model)
    return None


@hookimpl
def sphere_adapt_autoencoder(model: Any, options: dict[str, Any]) -> AutoencoderAdapter | None:
    autoencoder = _as_autoencoder(model)
    if autoencoder is None:
        return None
    check_adapter_options(options, OPTIONS, "a timm autoencoder")
    z_shape = tuple(options.get("z_shape") or (autoencoder.z_dim,))
    if z_shape != (autoencoder.z_dim,):
        raise ValueError(f"z_shape must be ({autoencoder.z_dim},) for this TimmEncoder (z_dim), got {z_shape!r}")
    return AutoencoderAdapter(z_shape=z_shape, encode=autoencoder.encode, decode=autoencoder.decode,
                              module=autoencoder, name=f"TimmAutoencoder({autoencoder.encoder.name})",
                              input_range=(-1.0, 1.0))


@hookimpl
def sphere_load_model(spec: str, options: dict[str, Any]) -> TimmAutoencoder | None:
    scheme, _, name = spec.partition(":")
    if scheme != "timm":
        return None
    if Path(name).expanduser().is_dir():
        return load_saved(Path(name).expanduser(), options)
    name, query = parse_spec(name)
    return build_timm_autoencoder(name, **{**query, **options})


@hookimpl
def sphere_save_model(model: Any, folder: Path) -> str | None:
    if not isinstance(model, TimmAutoencoder):
        return None
    save_timm_autoencoder(model, folder)
    return "timm"


@hookimpl
def sphere_model_schemes() -> list[ModelScheme]:
    return [ModelScheme(
        "timm", ("autoencoder",), "timm:MODEL_NAME[?k=v&...] (an encoder such as timm:resnet18, with a decoder)",
        example="timm:resnet18?channels=3&resolution=64&z_dim=16",
        description="a timm backbone encoder + the core's conv decoder; options after '?' as k=v&k=v (in_chans and "
                    "img_size are aliases of channels and resolution), or a folder save_pretrained wrote",
        defaults=dict(DEFAULTS), recognizes=is_saved_timm)]


@hookimpl
def sphere_example_models() -> list[str]:
    return ["timm:test_resnet"]
