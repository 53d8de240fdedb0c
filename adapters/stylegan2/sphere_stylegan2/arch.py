"""Architecture arguments read from a file, checked before anything is built.

A network file records the constructor arguments of each network (`_init_kwargs` in a pickle, `init_kwargs`
in our config.json). They decide how much memory construction takes, so each is checked here for type,
sign, range and (for resolutions) power of two; the network is then laid out on the meta device (no memory)
and its size compared with the tensors the file actually holds, before a real module is built.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from sphere_plugins.errors import describe
from sphere_stylegan2.errors import NetworkFormatError
from sphere_stylegan2.layers import ACTIVATIONS
from sphere_stylegan2.synthesis import ARCHITECTURES

MAX_RESOLUTION = 8192
MAX_WIDTH = 1 << 16


def _int(lo: int, hi: int, optional: bool = False, power_of_two: bool = False) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value is None and optional:
            return None
        if type(value) is not int or not lo <= value <= hi or (power_of_two and value & (value - 1)):
            kind = "a power of two" if power_of_two else "an int"
            return f"{kind} in [{lo}, {hi}]" + (" or None" if optional else "")
        return None
    return check


def _float(lo: float, hi: float, optional: bool = False, open_low: bool = False) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value is None and optional:
            return None
        ok = type(value) in (int, float) and math.isfinite(value) and lo <= value <= hi
        if not ok or (open_low and value == lo):
            return f"a finite number in {'(' if open_low else '['}{lo}, {hi}]" + (" or None" if optional else "")
        return None
    return check


def _bool(value: Any) -> str | None:
    return None if type(value) is bool else "True or False"


def _choice(choices: Any) -> Callable[[Any], str | None]:
    return lambda value: None if isinstance(value, str) and value in choices else f"one of {sorted(choices)}"


def _filter(value: Any) -> str | None:
    ok = isinstance(value, (list, tuple)) and 1 <= len(value) <= 16 and all(
        type(v) in (int, float) and math.isfinite(v) for v in value)
    return None if ok else "a list of 1 to 16 finite numbers"


_NESTED = ("mapping_kwargs", "synthesis_kwargs", "block_kwargs", "epilogue_kwargs", "layer_kwargs")
RULES: dict[str, Callable[[Any], str | None]] = {
    "z_dim": _int(0, MAX_WIDTH), "c_dim": _int(0, MAX_WIDTH), "w_dim": _int(1, MAX_WIDTH),
    "cmap_dim": _int(0, MAX_WIDTH, optional=True), "img_channels": _int(1, 64),
    "in_features": _int(1, 1 << 20), "out_features": _int(1, 1 << 20),
    "in_channels": _int(0, MAX_WIDTH), "out_channels": _int(1, MAX_WIDTH), "tmp_channels": _int(1, MAX_WIDTH),
    "embed_features": _int(1, MAX_WIDTH, optional=True), "layer_features": _int(1, MAX_WIDTH, optional=True),
    "channel_base": _int(1, 1 << 24), "channel_max": _int(1, MAX_WIDTH), "num_layers": _int(1, 64),
    "num_ws": _int(1, 64, optional=True), "img_resolution": _int(4, MAX_RESOLUTION, power_of_two=True),
    "resolution": _int(4, MAX_RESOLUTION, power_of_two=True), "kernel_size": _int(1, 9), "up": _int(1, 2),
    "down": _int(1, 2), "first_layer_idx": _int(0, 1024), "freeze_layers": _int(0, 1024),
    "num_fp16_res": _int(0, 16), "mbstd_group_size": _int(1, 1024, optional=True),
    "mbstd_num_channels": _int(0, 64), "group_size": _int(1, 1024, optional=True), "num_channels": _int(1, 64),
    "lr_multiplier": _float(0, 1e6, open_low=True), "w_avg_beta": _float(0, 1, optional=True),
    "conv_clamp": _float(0, 1e9, optional=True, open_low=True), "bias_init": _float(-1e9, 1e9),
    "bias": _bool, "use_noise": _bool, "is_last": _bool, "use_fp16": _bool, "fp16_channels_last": _bool,
    "channels_last": _bool, "trainable": _bool, "normalize_z": _bool,
    "activation": _choice(ACTIVATIONS), "architecture": _choice(ARCHITECTURES), "resample_filter": _filter,
}


def _check_kwargs(kwargs: Mapping[str, Any], where: str, path: str = "", seen: set[int] | None = None) -> None:
    """Check every argument against RULES; a nested dict shared by several entries is checked once, so a file's
    shared nesting cannot make the walk exponential."""
    seen = set() if seen is None else seen
    seen.add(id(kwargs))
    for name, value in kwargs.items():
        if name in _NESTED:
            if value is None or id(value) in seen:
                continue
            if not isinstance(value, Mapping):
                raise NetworkFormatError(f"{where}: argument {path + name!r} must be a dict, got "
                                         f"{type(value).__name__}")
            _check_kwargs(value, where, f"{path}{name}.", seen)
            continue
        rule = RULES.get(name) if isinstance(name, str) else None
        if rule is None:
            raise NetworkFormatError(f"{where}: unknown architecture argument {path}{name!s:.60} (not a StyleGAN2-ADA "
                                     "argument: is this StyleGAN3 or a modified fork?)")
        expected = rule(value)
        if expected is not None:
            raise NetworkFormatError(f"{where}: architecture argument {path + name!r} must be {expected}, got "
                                     f"{describe(value)} ({type(value).__name__})")


def checked_arguments(cls: type[nn.Module], args: Any, kwargs: Any, where: str) -> dict[str, Any]:
    """The recorded positional and keyword arguments of `cls`, bound by name and each checked against RULES."""
    if not isinstance(args, (tuple, list)) or not isinstance(kwargs, Mapping) or \
            not all(isinstance(k, str) for k in kwargs):
        raise NetworkFormatError(f"{where}: init arguments must be a tuple and a dict with string keys")
    try:
        bound = inspect.signature(cls).bind(*args, **kwargs)
    except TypeError as error:
        raise NetworkFormatError(
            f"{where}: cannot build {cls.__name__} from its recorded arguments "
            f"{[name[:40] for name in sorted(kwargs)[:20]]}: {str(error)[:200]}. "
            "Is it a StyleGAN2-ADA network (not StyleGAN3 or a modified fork)?") from None
    named = {}
    for name, value in bound.arguments.items():
        kind = inspect.signature(cls).parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            named.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                raise NetworkFormatError(f"{where}: {cls.__name__} takes no extra positional arguments")
        else:
            named[name] = value
    _check_kwargs(named, where)
    return named


def meta_layout(cls: type[nn.Module], kwargs: Mapping[str, Any], where: str) -> nn.Module:
    """`cls(**kwargs)` on the meta device: the network's structure and shapes without its memory."""
    try:
        with torch.device("meta"):
            return cls(**kwargs)
    except Exception as error:  # nothing is allocated on the meta device, so any failure is the file's
        raise NetworkFormatError(f"{where}: cannot build {cls.__name__} from its recorded arguments "
                                 f"{sorted(kwargs)}: {error}") from None


def check_budget(layout: nn.Module, held_items: int, where: str) -> None:
    """Refuse a layout that needs more items than the file's tensors hold (plus small unsaved buffers)."""
    needed = sum(t.numel() for t in layout.parameters()) + sum(t.numel() for t in layout.buffers())
    slack = 4096 + 256 * sum(1 for _ in layout.modules())
    if needed > held_items + slack:
        raise NetworkFormatError(f"{where}: its recorded arguments describe a network of {needed} values, but the "
                                 f"file holds only {held_items}; refusing to build it")
