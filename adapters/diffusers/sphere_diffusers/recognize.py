"""Which diffusers classes this adapter supports, found without importing diffusers for foreign models."""

from __future__ import annotations

import inspect
from typing import Any

SUPPORTED_AUTOENCODERS = ("AutoencoderKL", "AutoencoderTiny", "VQModel")
# Unconditional pipelines that draw their own noise (no `latents=`): their loop is rerun from given noise.
LOOP_PIPELINES = ("DDPMPipeline", "DDIMPipeline", "PNDMPipeline", "LDMPipeline")


def from_diffusers(model: Any) -> bool:
    """True when `model`'s class or one of its bases is defined in the diffusers package."""
    return any(cls.__module__.split(".")[0] == "diffusers" for cls in type(model).__mro__)


def autoencoder_class(model: Any) -> str | None:
    """The supported diffusers autoencoder class `model` is an instance of, or None."""
    if not from_diffusers(model):
        return None
    import diffusers

    for name in SUPPORTED_AUTOENCODERS:
        if isinstance(model, getattr(diffusers, name)):
            return name
    return None


def is_diffusers_autoencoder(model: Any) -> bool:
    """True for any diffusers model with encode and decode (supported or not)."""
    if not from_diffusers(model):
        return False
    import diffusers

    return (isinstance(model, diffusers.ModelMixin) and callable(getattr(model, "encode", None))
            and callable(getattr(model, "decode", None)))


def is_pipeline(model: Any) -> bool:
    """True when `model` is a diffusers DiffusionPipeline."""
    if not from_diffusers(model):
        return False
    import diffusers

    return isinstance(model, diffusers.DiffusionPipeline)


def accepts_latents(pipeline_class: type) -> bool:
    """True when the pipeline's __call__ takes the initial noise as `latents=`."""
    return "latents" in inspect.signature(pipeline_class.__call__).parameters


def loop_pipeline_class(pipeline_class: type) -> str | None:
    """The supported loop pipeline `pipeline_class` is (or derives from), or None."""
    names = {cls.__name__ for cls in pipeline_class.__mro__}
    return next((name for name in LOOP_PIPELINES if name in names), None)


def supported_pipeline(pipeline_class: type) -> bool:
    """True for pipelines this adapter can start from chosen noise."""
    return accepts_latents(pipeline_class) or loop_pipeline_class(pipeline_class) is not None


def unsupported_message(what: str) -> str:
    """The sentence listing what is supported, for errors about an unrecognized class."""
    return (f"{what} is not supported by sphere_diffusers; supported: autoencoders "
            f"{', '.join(SUPPORTED_AUTOENCODERS)}; pipelines {', '.join(LOOP_PIPELINES)} and any pipeline "
            "whose __call__ accepts latents=")
