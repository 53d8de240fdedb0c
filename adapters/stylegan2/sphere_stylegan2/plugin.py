"""Hooks of the stylegan2 plugin: adapt StyleGAN2 generators, load 'stylegan2:...' model specs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from sphere_plugins.hookspecs import hookimpl
from sphere_plugins.wrap import GeneratorAdapter
from sphere_stylegan2.configs import tiny_generator
from sphere_stylegan2.errors import NetworkFormatError
from sphere_stylegan2.generator import labels
from sphere_stylegan2.loader import load_network
from sphere_stylegan2.mapping import MappingNetwork

SCHEME = "stylegan2"


def is_stylegan_generator(model: Any) -> bool:
    """Ours or NVlabs' own G: a module with `mapping`, `synthesis` and an int `z_dim`."""
    return (isinstance(model, nn.Module) and isinstance(getattr(model, "z_dim", None), int)
            and isinstance(getattr(model, "mapping", None), nn.Module)
            and isinstance(getattr(model, "synthesis", None), nn.Module))


def make_generate(model: nn.Module, normalize_z: bool = True):
    """generate(z, c=None, truncation_psi=1, truncation_cutoff=None, noise_mode='const', force_fp32=False)."""
    c_dim = int(getattr(model, "c_dim", 0) or 0)
    mapping_kwargs = {} if normalize_z else {"normalize_z": False}

    def generate(z: Tensor, c: Tensor | None = None, truncation_psi: float = 1,
                 truncation_cutoff: int | None = None, noise_mode: str = "const", force_fp32: bool = False,
                 **synthesis_kwargs: Any) -> Tensor:
        ws = model.mapping(z, labels(c, c_dim, z.shape[0], z.device), truncation_psi=truncation_psi,
                           truncation_cutoff=truncation_cutoff, **mapping_kwargs)
        return model.synthesis(ws, noise_mode=noise_mode, force_fp32=force_fp32, **synthesis_kwargs)

    return generate


@hookimpl
def sphere_adapt_generator(model: Any, options: dict[str, Any]) -> GeneratorAdapter | None:
    """Describe a StyleGAN2 generator: z of width z_dim on the sphere of radius sqrt(z_dim)."""
    if not is_stylegan_generator(model):
        return None
    z_shape = (model.z_dim,)
    if "z_shape" in options and tuple(options["z_shape"]) != z_shape:
        raise ValueError(f"z_shape must be {z_shape} for this StyleGAN2 generator (its z_dim), "
                         f"got {tuple(options['z_shape'])}")
    normalize_z = options.get("normalize_z", True)
    if not isinstance(normalize_z, bool):
        raise ValueError(f"options['normalize_z'] must be True or False, got {normalize_z!r}")
    if not normalize_z and not isinstance(model.mapping, MappingNetwork):
        raise ValueError("options['normalize_z']=False needs a sphere_stylegan2 network (NVlabs' mapping always "
                         "normalizes z); load the pickle with sphere_stylegan2.load_network or "
                         "load_model('stylegan2:PATH.pkl')")
    entry = "z before the mapping network" + ("'s RMS normalization" if normalize_z else " (its normalization off)")
    return GeneratorAdapter(z_shape=z_shape, generate=make_generate(model, normalize_z),
                            radius=math.sqrt(model.z_dim), module=model, name=type(model).__name__,
                            latent_entry=entry)


@hookimpl
def sphere_load_model(spec: str, options: dict[str, Any]) -> nn.Module | None:
    """'stylegan2:tiny' (options: see configs.TINY_DEFAULTS), 'stylegan2:PATH.pkl' or 'stylegan2:FOLDER'."""
    scheme, _, rest = spec.partition(":")
    if scheme != SCHEME:
        return None
    if rest == "tiny":
        return tiny_generator(**options).eval()
    options = dict(options)
    role = options.pop("network", "G_ema")
    allow_nonfinite = options.pop("allow_nonfinite", False)
    if options:
        raise ValueError(f"unknown options {sorted(options)} for {spec!r}; expected only 'network' "
                         "(which network of the file: 'G_ema' by default, 'G' or 'D') and 'allow_nonfinite' "
                         "(load a saved folder's NaN/Inf weights)")
    if not rest:
        raise ValueError(f"spec {spec!r} names no model; expected 'stylegan2:tiny', 'stylegan2:PATH.pkl' "
                         "or 'stylegan2:FOLDER' (written by save_network)")
    networks = load_network(Path(rest).expanduser(), allow_nonfinite=allow_nonfinite)
    if not isinstance(networks.get(role), nn.Module):
        held = sorted(k for k, v in networks.items() if isinstance(v, nn.Module))
        raise NetworkFormatError(f"{rest} holds no network {str(role)[:40]!r}; it holds {held}")
    return networks[role]


@hookimpl
def sphere_example_models() -> list[str]:
    """The tiny random generator, buildable offline, for the contract tests."""
    return [f"{SCHEME}:tiny"]
