"""Build a module from a file's config only once its layout fits the file's weights.

A saved config can ask for any size (a width of 4000 is gigabytes), while the weight file next to it holds
what it holds. So the module is first laid out on the meta device, which allocates nothing, and the layout
stops as soon as it asks for more values than the weight file declares; then its state_dict shapes are compared
with the shapes in the safetensors header (read without the data). Only a module that fits is built for real.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from sphere_plugins.errors import SavedFolderError, SpherePluginsError

Shapes = Mapping[str, tuple[int, ...]]
# A layout may create this many values and tensors beyond the file's (initialisers, non-persistent buffers).
SLACK_VALUES = 1 << 20
SLACK_TENSORS = 1024


def tensor_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the tensors in a safetensors file, from its header alone (the data stays on disk)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as handle:
            return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    except Exception as error:  # safetensors raises its own SafetensorError and OS errors
        raise SavedFolderError(f"{str(path)!r} is not a readable safetensors file: {type(error).__name__}: "
                               f"{str(error)[:200]}") from None


def load_tensors(path: str | os.PathLike) -> dict[str, Tensor]:
    """Every tensor of a safetensors file, or SavedFolderError naming it."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as error:
        raise SavedFolderError(f"{str(path)!r} is not a readable safetensors file: {type(error).__name__}: "
                               f"{str(error)[:200]}") from None


class _Budget(TorchFunctionMode):
    """Counts the values and tensors torch functions create; raises once either runs out."""

    def __init__(self, values: int, tensors: int, where: str):
        super().__init__()
        self.values, self.tensors, self.where = values, tensors, where

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if isinstance(result, Tensor) and result._base is None and not any(result is a for a in args):
            self.values -= result.numel()
            self.tensors -= 1
            if self.values < 0 or self.tensors < 0:
                raise SavedFolderError(f"{self.where}: the module it describes needs more values than the weight "
                                       "file holds; refusing to build it")
        return result


def _describe(found: Shapes, expected: Shapes) -> str:
    missing = sorted(set(expected) - set(found))[:5]
    unexpected = sorted(set(found) - set(expected))[:5]
    wrong = [f"{name} {list(found[name])} (expected {list(expected[name])})"
             for name in sorted(set(found) & set(expected)) if tuple(found[name]) != tuple(expected[name])][:5]
    return f"missing {missing}, unexpected {unexpected}, wrong shapes {wrong}"


def build_to_fit(build: Callable[[], nn.Module], shapes: Shapes, where: str, weights: str) -> nn.Module:
    """build() for real once its layout on the meta device has exactly the state_dict shapes `shapes` (those of
    the file `weights`). `where` names the file and field the config came from; any error of build() ends in
    SavedFolderError naming it."""
    budget = _Budget(4 * sum(math.prod(s) for s in shapes.values()) + SLACK_VALUES,
                     4 * len(shapes) + SLACK_TENSORS, where)
    layout = _built(build, where, budget)
    expected = {name: tuple(t.shape) for name, t in layout.state_dict().items()}
    if expected != {name: tuple(shape) for name, shape in shapes.items()}:
        raise SavedFolderError(f"{weights} does not fit the module {where} describes: {_describe(shapes, expected)}")
    return _built(build, where)


def _built(build: Callable[[], nn.Module], where: str, budget: _Budget | None = None) -> nn.Module:
    try:
        if budget is None:
            module = build()
        else:
            with torch.device("meta"), budget:
                module = build()
    except SpherePluginsError:
        raise
    except Exception as error:
        raise SavedFolderError(f"{where}: cannot build the module it describes: {type(error).__name__}: "
                               f"{str(error)[:200]}") from None
    if not isinstance(module, nn.Module):
        raise SavedFolderError(f"{where}: building it gave a {type(module).__name__}, not a module")
    return module


def inside(folder: Path, path: Path, where: str) -> Path:
    """`path` resolved, or SavedFolderError when it (or a link on the way) leads outside `folder`."""
    root, target = folder.resolve(), path.resolve()
    if target != root and root not in target.parents:
        raise SavedFolderError(f"{where}: {str(path)!r} leads outside the folder {str(folder)!r}; a saved folder "
                               "only reads files inside itself")
    return target
