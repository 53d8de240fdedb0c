"""Hooks of the stylegan2 plugin: adapt StyleGAN2 generators, load 'stylegan2:...' model specs."""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from sphere_plugins.adapter import (
    GeneratorAdapter,
    ModelKwarg,
    ModelScheme,
    TrainableGenerator,
    check_adapter_options,
    hookimpl,
)
from sphere_stylegan2.configs import TINY_DEFAULTS, tiny_generator
from sphere_stylegan2.errors import NetworkFormatError
from sphere_stylegan2.generator import Generator, labels
from sphere_stylegan2.loader import is_saved_folder, load_network, write_network
from sphere_stylegan2.mapping import MappingNetwork
from sphere_stylegan2.synthesis import NOISE_MODES
from sphere_stylegan2.trainable import TRAINABLE

def noise_mode(text: str) -> str:
    """--noise-mode's value: one of NOISE_MODES."""
    if text not in NOISE_MODES:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(NOISE_MODES)}, got {text!r}")
    return text


SCHEME = "stylegan2"
OPTIONS = ("z_shape", "normalize_z")
# generate() keywords the command line sets.
MODEL_KWARGS = (
    ModelKwarg("--truncation-psi", "truncation_psi", float, "StyleGAN2 truncation (default 1: none)"),
    ModelKwarg("--class", "c", int, "class index for a conditional StyleGAN2 (applies to every image)", metavar="C"),
    ModelKwarg("--noise-mode", "noise_mode", noise_mode, "StyleGAN2's per-pixel noise: const (the default here and "
               "in NVIDIA's generate.py; NVIDIA's G(z, c) itself, as in their training and metrics, defaults to "
               "random), random (drawn from the seed) or none", metavar="{const,random,none}"),
)


def is_stylegan_generator(model: Any) -> bool:
    """Ours or NVlabs' own G: a module with `mapping`, `synthesis` and an int `z_dim`."""
    return (isinstance(model, nn.Module) and isinstance(getattr(model, "z_dim", None), int)
            and isinstance(getattr(model, "mapping", None), nn.Module)
            and isinstance(getattr(model, "synthesis", None), nn.Module))


@contextmanager
def _seeded_noise(generator: torch.Generator | None, device: torch.device) -> Iterator[None]:
    """Run the synthesis' own noise draws (noise_mode='random') from a seed taken from `generator`,
    leaving the global RNG as it was."""
    if generator is None:
        yield
        return
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def make_generate(model: nn.Module, normalize_z: bool = True):
    """generate(z, c=None, truncation_psi=1, truncation_cutoff=None, noise_mode='const', force_fp32=False,
    generator=None); one class label c (an int or a 1-element tensor) applies to the whole batch, and
    `generator` seeds noise_mode='random'."""
    c_dim = int(getattr(model, "c_dim", 0) or 0)
    mapping_kwargs = {} if normalize_z else {"normalize_z": False}

    def generate(z: Tensor, c: Tensor | int | None = None, truncation_psi: float = 1,
                 truncation_cutoff: int | None = None, noise_mode: str = "const", force_fp32: bool = False,
                 generator: torch.Generator | None = None, **synthesis_kwargs: Any) -> Tensor:
        ws = model.mapping(z, labels(c, c_dim, z.shape[0], z.device), truncation_psi=truncation_psi,
                           truncation_cutoff=truncation_cutoff, **mapping_kwargs)
        with _seeded_noise(generator if noise_mode == "random" else None, z.device):
            return model.synthesis(ws, noise_mode=noise_mode, force_fp32=force_fp32, **synthesis_kwargs)

    return generate


@hookimpl
def sphere_adapt_generator(model: Any, options: dict[str, Any]) -> GeneratorAdapter | None:
    """Describe a StyleGAN2 generator: z of width z_dim on the sphere of radius sqrt(z_dim)."""
    if not is_stylegan_generator(model):
        return None
    check_adapter_options(options, OPTIONS, "a StyleGAN2 generator")
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
                            latent_entry=entry, normalizes_z=True, accepts_generator=True, stochastic=_random_noise)


def _random_noise(model_kwargs: dict[str, Any]) -> bool:
    """Only noise_mode='random' draws noise (from generator=); 'const' and 'none' are deterministic."""
    return model_kwargs.get("noise_mode", "const") == "random"


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
                         "(accept NaN/Inf weights)")
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


@hookimpl
def sphere_save_model(model: Any, folder: Path) -> str | None:
    """Our Generator as the safetensors folder format (save_network), which 'stylegan2:FOLDER' reads."""
    if not isinstance(model, Generator):
        return None
    write_network(model, folder)
    return SCHEME


def _recognizes(path: Path) -> bool:
    if path.is_file():
        return path.suffix == ".pkl"
    return is_saved_folder(path)


@hookimpl
def sphere_model_schemes() -> list[ModelScheme]:
    return [ModelScheme(
        SCHEME, ("generator",), "stylegan2:PATH.pkl, stylegan2:FOLDER or stylegan2:tiny", example="stylegan2:ffhq.pkl",
        description="StyleGAN2-ADA: an NVlabs network pickle (read without running its code), a folder "
                    "save_network wrote, or 'stylegan2:tiny' (random, small); option network='G_ema'|'G'|'D'",
        defaults={"network": "G_ema", "tiny": dict(TINY_DEFAULTS)}, recognizes=_recognizes,
        model_kwargs=MODEL_KWARGS)]


@hookimpl
def sphere_trainable_generators() -> list[TrainableGenerator]:
    """The tiny StyleGAN2 trained from scratch (the benchmarks' sampling table uses it)."""
    return [TRAINABLE]
