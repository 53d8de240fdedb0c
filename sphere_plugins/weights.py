"""One rule for weights read from a file: NaN and Inf are refused unless the caller opts in (they only make NaN
outputs), and a finite value that overflows the dtype it is loaded into counts as Inf."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from sphere_plugins.errors import NonFiniteWeightsError, describe

OPT_IN = "pass allow_nonfinite=True (--allow-nonfinite on the command line) to accept them"


def _all_finite(tensor: torch.Tensor) -> bool:
    # A NaN or Inf anywhere makes the sum NaN or Inf, so a finite sum settles it in one pass without allocating;
    # only a sum that overflowed on finite values needs the element-wise check.
    return bool(torch.isfinite(tensor.detach().sum())) or bool(torch.isfinite(tensor).all())


def allow_flag(allow_nonfinite: Any) -> bool:
    """allow_nonfinite, checked to be True or False (a string such as 'no' would otherwise count as true)."""
    if type(allow_nonfinite) is not bool:
        raise ValueError(f"allow_nonfinite must be True or False, got {describe(allow_nonfinite)}")
    return allow_nonfinite


def check_finite(tensors: Mapping[str, torch.Tensor], where: str, allow_nonfinite: bool = False,
                 dtypes: Mapping[str, torch.dtype] | None = None) -> None:
    """Raise NonFiniteWeightsError naming the first tensor that holds NaN or Inf, or that overflows when narrowed
    to its entry in `dtypes` (the dtype it will be copied into); does nothing when allow_nonfinite is True."""
    if allow_flag(allow_nonfinite):
        return
    for name, tensor in tensors.items():
        if not (tensor.dtype.is_floating_point or tensor.dtype.is_complex):
            continue
        if not _all_finite(tensor):
            raise NonFiniteWeightsError(f"{where}: tensor {name} holds NaN or Inf values; {OPT_IN}")
        target = (dtypes or {}).get(name, tensor.dtype)
        if target.is_floating_point and tensor.dtype.is_floating_point and \
                torch.finfo(target).max < torch.finfo(tensor.dtype).max and \
                not _all_finite(tensor.to(target)):
            peak = float(tensor.detach().abs().max())
            raise NonFiniteWeightsError(
                f"{where}: tensor {name} holds values up to {peak:.3g}, which overflow to Inf when narrowed from "
                f"{tensor.dtype} to {target} (largest finite {torch.finfo(target).max:.3g}); {OPT_IN}")
