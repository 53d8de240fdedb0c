"""Training checkpoints: safetensors for weights, optimizer state and RNG states, JSON for the rest.

A checkpoint is a folder `step-00000100/` holding model.safetensors, optimizer.safetensors (every tensor
of the optimizer's state dict), optimizer.json (its non-tensor parts), extra.safetensors (RNG states and
other tensors) and state.json (step, config, data order, and the size and SHA-256 of every other file).
It is written into a hidden temporary folder, each file fsynced, then renamed into place with
os.replace, so a killed writer leaves either the previous checkpoints or a complete new one.
safetensors (the `train` extra) is imported on first use.

Reading checks every file against state.json. `latest_checkpoint` skips a corrupt newest checkpoint
with a warning naming the file and falls back to the previous valid one; loading a named checkpoint
that is corrupt raises CheckpointError naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from sphere_plugins.errors import SpherePluginsError

FORMAT = 1
PREFIX = "step-"
STATE_FILE = "state.json"
_FILES = ("model.safetensors", "optimizer.safetensors", "optimizer.json", "extra.safetensors")


class CheckpointError(SpherePluginsError, ValueError):
    """A checkpoint is missing, incomplete or corrupt; the message names the file."""


@dataclass
class Checkpoint:
    """A validated checkpoint on disk: its step, JSON state, optimizer state and extra tensors."""

    path: Path
    step: int
    state: dict[str, Any]
    optimizer_state: dict[str, Any]
    tensors: dict[str, Tensor] = field(default_factory=dict)

    def load_model(self, model: nn.Module) -> None:
        """Copy the saved weights into `model` (strict: every key must match)."""
        from safetensors.torch import load_model

        missing, unexpected = load_model(model, str(self.path / "model.safetensors"), strict=False)
        if missing or unexpected:
            raise CheckpointError(
                f"{self.path / 'model.safetensors'} does not fit this model: missing keys {sorted(missing)[:5]}, "
                f"unexpected keys {sorted(unexpected)[:5]}"
            )


def flatten_optimizer_state(state_dict: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split an optimizer state dict into named tensors and a JSON-serializable remainder."""
    tensors: dict[str, Tensor] = {}
    per_param: dict[str, dict[str, Any]] = {}
    for param_id, entries in state_dict["state"].items():
        per_param[str(param_id)] = {}
        for key, value in entries.items():
            if isinstance(value, Tensor):
                tensors[f"state/{param_id}/{key}"] = value.detach().contiguous()
            else:
                per_param[str(param_id)][key] = value
    groups = []
    for index, group in enumerate(state_dict["param_groups"]):
        plain = {}
        for key, value in group.items():
            if isinstance(value, Tensor):
                tensors[f"group/{index}/{key}"] = value.detach().contiguous()
            else:
                plain[key] = value
        groups.append(plain)
    meta = {"state": per_param, "param_groups": groups}
    try:
        json.dumps(meta)
    except TypeError as error:
        raise CheckpointError(f"the optimizer state holds a value that is neither a tensor nor JSON: {error}") from None
    return tensors, meta


def unflatten_optimizer_state(tensors: dict[str, Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of flatten_optimizer_state."""
    state: dict[int, dict[str, Any]] = {int(k): dict(v) for k, v in meta["state"].items()}
    groups = [dict(g) for g in meta["param_groups"]]
    for name, value in tensors.items():
        kind, index, key = name.split("/", 2)
        if kind == "state":
            state.setdefault(int(index), {})[key] = value
        else:
            groups[int(index)][key] = value
    return {"state": state, "param_groups": groups}


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def checkpoint_name(step: int) -> str:
    return f"{PREFIX}{step:08d}"


def list_checkpoints(root: str | os.PathLike) -> list[Path]:
    """Checkpoint folders under `root`, oldest step first (no validation)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and p.name[len(PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def save_checkpoint(root: str | os.PathLike, step: int, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                    state: dict[str, Any], tensors: dict[str, Tensor] | None = None, keep: int | None = None) -> Path:
    """Write checkpoint `step` under `root` atomically and keep only the newest `keep` (None: all)."""
    from safetensors.torch import save_file, save_model

    if not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be a non-negative int, got {step!r}")
    if keep is not None and (not isinstance(keep, int) or keep < 1):
        raise ValueError(f"keep must be a positive int or None, got {keep!r}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))
    optimizer_tensors, optimizer_meta = flatten_optimizer_state(optimizer.state_dict() if optimizer else
                                                                {"state": {}, "param_groups": []})
    save_file(optimizer_tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "optimizer.json").write_text(json.dumps(optimizer_meta))
    save_file({k: v.detach().cpu().contiguous() for k, v in (tensors or {}).items()}, str(tmp / "extra.safetensors"))
    files = {}
    for name in _FILES:
        _fsync(tmp / name)
        files[name] = {"bytes": (tmp / name).stat().st_size, "sha256": _digest(tmp / name)}
    record = {"format": FORMAT, "step": step, **state, "files": files}
    (tmp / STATE_FILE).write_text(json.dumps(record, indent=1))
    _fsync(tmp / STATE_FILE)
    _fsync(tmp)
    if final.exists():
        old = root / f".old-{final.name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    _fsync(root)
    _prune(root, keep, final)
    return final


def _prune(root: Path, keep: int | None, newest: Path) -> None:
    for stale in root.glob(".tmp-*"):
        if stale.is_dir() and not stale.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(stale, ignore_errors=True)
    if keep is None:
        return
    older = [p for p in list_checkpoints(root) if p != newest]
    for path in older[: max(0, len(older) - (keep - 1))]:
        shutil.rmtree(path, ignore_errors=True)


def _read_state(path: Path) -> dict[str, Any]:
    state_file = path / STATE_FILE
    if not state_file.is_file():
        raise CheckpointError(f"checkpoint file {state_file} is missing (an incomplete or foreign folder)")
    try:
        state = json.loads(state_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"checkpoint file {state_file} is not valid JSON ({error})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or not isinstance(state.get("step"), int):
        raise CheckpointError(f"checkpoint file {state_file} is not a format-{FORMAT} checkpoint state")
    for name in _FILES:
        expected = state.get("files", {}).get(name)
        file = path / name
        if expected is None or not file.is_file():
            raise CheckpointError(f"checkpoint file {file} is missing")
        size = file.stat().st_size
        if size != expected["bytes"]:
            raise CheckpointError(f"checkpoint file {file} has {size} bytes, expected {expected['bytes']} (truncated?)")
        if _digest(file) != expected["sha256"]:
            raise CheckpointError(f"checkpoint file {file} is corrupt (SHA-256 differs from {state_file.name})")
    return state


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> Checkpoint:
    """Read and validate one checkpoint folder; CheckpointError names the first bad file."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint folder {path} does not exist")
    state = _read_state(path)
    try:
        meta = json.loads((path / "optimizer.json").read_text())
        optimizer_tensors = load_file(str(path / "optimizer.safetensors"), device=str(device))
        tensors = load_file(str(path / "extra.safetensors"))
    except (json.JSONDecodeError, OSError, RuntimeError) as error:
        raise CheckpointError(f"checkpoint {path} cannot be read: {error}") from None
    return Checkpoint(path, state["step"], state, unflatten_optimizer_state(optimizer_tensors, meta), tensors)


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """The newest valid checkpoint under `root` (None if there is none at all).

    A corrupt newer checkpoint is skipped with a warning naming the bad file; if checkpoints exist but
    none is valid, CheckpointError lists why.
    """
    problems = []
    for path in reversed(list_checkpoints(root)):
        try:
            _read_state(path)
        except CheckpointError as error:
            warnings.warn(f"skipping corrupt checkpoint: {error}", stacklevel=2)
            problems.append(str(error))
            continue
        return path
    if problems:
        raise CheckpointError(f"no valid checkpoint under {root}: " + "; ".join(problems))
    return None
