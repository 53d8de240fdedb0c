"""The sphere_diffusers plugin: hook implementations only; diffusers is imported only for its own models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sphere_plugins.adapter import ModelScheme, hookimpl

from sphere_diffusers import autoencoders, pipelines
from sphere_diffusers.loading import TINY_DEFAULTS, load_diffusers
from sphere_diffusers.recognize import autoencoder_class, is_diffusers_autoencoder, is_pipeline, unsupported_message


def _reject_unsupported(model: Any) -> None:
    if is_diffusers_autoencoder(model):
        raise ValueError(unsupported_message(f"the diffusers model {type(model).__name__}"))


@hookimpl
def sphere_adapt_autoencoder(model: Any, options: dict[str, Any]) -> Any:
    kind = autoencoder_class(model)
    if kind is not None:
        return autoencoders.autoencoder_adapter(model, kind, options)
    _reject_unsupported(model)
    return None


@hookimpl
def sphere_adapt_generator(model: Any, options: dict[str, Any]) -> Any:
    kind = autoencoder_class(model)
    if kind is not None:
        return autoencoders.decoder_adapter(model, kind, options)
    if is_pipeline(model):
        return pipelines.pipeline_adapter(model, options)
    _reject_unsupported(model)
    return None


@hookimpl
def sphere_load_model(spec: str, options: dict[str, Any]) -> Any:
    scheme, _, name = spec.partition(":")
    if scheme != "diffusers":
        return None
    if not name:
        raise ValueError(f"spec {spec!r} names no model; expected 'diffusers:PATH', 'diffusers:owner/repo', "
                         "'diffusers:tiny-vae' or 'diffusers:tiny-ddpm'")
    return load_diffusers(name, options)


@hookimpl
def sphere_example_models() -> list[str]:
    return ["diffusers:tiny-vae", "diffusers:tiny-ddpm"]


@hookimpl
def sphere_save_model(model: Any, folder: Path) -> str | None:
    """A supported diffusers model or pipeline through its own save_pretrained (safetensors)."""
    if autoencoder_class(model) is None and not is_pipeline(model):
        return None
    model.save_pretrained(folder, safe_serialization=True)
    return "diffusers"


def _recognizes(path: Path) -> bool:
    """A folder diffusers' save_pretrained wrote: model_index.json, or config.json naming a class."""
    if not path.is_dir():
        return False
    if (path / "model_index.json").is_file():
        return True
    try:
        return "_class_name" in json.loads((path / "config.json").read_text())
    except (OSError, ValueError, TypeError):
        return False


@hookimpl
def sphere_model_schemes() -> list[ModelScheme]:
    return [ModelScheme(
        "diffusers", ("generator", "autoencoder"),
        "diffusers:PATH, diffusers:owner/repo (from the local cache), diffusers:tiny-vae or diffusers:tiny-ddpm",
        example="diffusers:path/to/folder",
        description="a save_pretrained folder (pipeline or AutoencoderKL/VQModel/AutoencoderTiny), 'owner/repo' "
                    "from the Hugging Face cache, or 'diffusers:tiny-vae' / 'diffusers:tiny-ddpm' (random, small)",
        defaults=TINY_DEFAULTS, recognizes=_recognizes, hub_ids=True)]
