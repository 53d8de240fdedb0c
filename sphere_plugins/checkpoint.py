"""Training checkpoints: safetensors for weights, optimizer state and RNG states, JSON for the rest.

A checkpoint is a folder `step-00000100/` holding model.safetensors, optimizer.safetensors (every tensor
of the optimizer's state dict), optimizer.json (its non-tensor parts), extra.safetensors (RNG states and
other tensors) and state.json (step, config, data order, and the size and SHA-256 of every other file).
It is written into a hidden temporary folder, each file fsynced, then renamed into place with
os.replace, so a killed writer leaves either the previous checkpoints or a complete new one.
safetensors (the `train` extra) is imported on first use.

state.json is the checkpoint's manifest, a record of sphere_plugins.records tagged
"sphere-plugins-checkpoint": it lists every file with its size and SHA-256, and carries the SHA-256 of its
own fields, so an edited step or data order is caught.
Pruning (`keep`) deletes only folders whose manifest verifies and that hold nothing but the files it
lists; any other folder in the checkpoint folder is left alone with a warning.

Reading checks every file against state.json. `latest_checkpoint` skips a corrupt newest checkpoint
with a warning naming the file and falls back to the previous valid one; loading a named checkpoint
that is corrupt raises CheckpointError naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from sphere_plugins.errors import SpherePluginsError
from sphere_plugins.files import honour_umask
from sphere_plugins.records import jsonable, read_record, record_text

FORMAT = "sphere-plugins-checkpoint"
FORMAT_VERSION = 1
PREFIX = "step-"
STATE_FILE = "state.json"
LOCK_FILE = ".lock"
_FILES = ("model.safetensors", "optimizer.safetensors", "optimizer.json", "extra.safetensors")
_NAME = re.compile(r"step-([0-9]{1,18})")
_TMP_NAME = re.compile(r"\.(tmp|old)-step-[0-9]{1,18}-([0-9]+)(-[0-9a-f]{8})?")
MAX_STATE_BYTES = 16 << 20


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
        """Copy the saved weights into `model` (strict: every key and shape must match)."""
        from safetensors.torch import load_model

        differences = shape_differences(self.path / "model.safetensors", model)
        if differences:
            raise CheckpointError(f"{self.path / 'model.safetensors'} holds another architecture than this model: "
                                  f"{differences}")
        missing, unexpected = load_model(model, str(self.path / "model.safetensors"), strict=False)
        if missing or unexpected:
            raise CheckpointError(
                f"{self.path / 'model.safetensors'} does not fit this model: missing keys {sorted(missing)[:5]}, "
                f"unexpected keys {sorted(unexpected)[:5]}"
            )


def shape_differences(file: Path, model: nn.Module, shown: int = 3) -> str:
    """The tensors whose shapes differ between a safetensors file and `model`'s state dict, in words ('' if none);
    names only in one of them are left to the key check."""
    from safetensors import safe_open

    ours = {name: list(t.shape) for name, t in model.state_dict().items()}
    with safe_open(str(file), framework="pt") as handle:
        theirs = {name: handle.get_slice(name).get_shape() for name in handle.keys() if name in ours}
    differ = [f"{name!r} is {theirs[name]} there but {ours[name]} here" for name in sorted(theirs)
              if theirs[name] != ours[name]]
    more = f" (and {len(differ) - shown} more tensors differ)" if len(differ) > shown else ""
    return "; ".join(differ[:shown]) + more


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
        json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as error:
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


def _step_of(path: Path) -> int | None:
    match = _NAME.fullmatch(path.name)
    return int(match.group(1)) if match else None


def list_checkpoints(root: str | os.PathLike) -> list[Path]:
    """Checkpoint folders under `root` (named step-<ASCII digits>), oldest step first (no validation)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _step_of(p) is not None]
    return sorted(found, key=_step_of)


def _manifest_digest(record: dict[str, Any]) -> str:
    """SHA-256 of the record's fields (not its format tags, which reading checks on their own)."""
    body = {k: v for k, v in record.items() if k not in ("manifest_sha256", "format", "format_version")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def save_checkpoint(root: str | os.PathLike, step: int, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                    state: dict[str, Any], tensors: dict[str, Tensor] | None = None, keep: int | None = None) -> Path:
    """Write checkpoint `step` under `root` atomically and keep only the newest `keep` (None: all)."""
    from safetensors.torch import save_file, save_model

    if type(step) is not int or step < 0:
        raise ValueError(f"step must be a non-negative int, got {step!r}")
    if keep is not None and (type(keep) is not int or keep < 1):
        raise ValueError(f"keep must be a positive int or None, got {keep!r}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    tmp = root / f".tmp-{final.name}-{_writer_id()}"
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))
    optimizer_tensors, optimizer_meta = flatten_optimizer_state(optimizer.state_dict() if optimizer else
                                                                {"state": {}, "param_groups": []})
    save_file(optimizer_tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "optimizer.json").write_text(json.dumps(optimizer_meta, allow_nan=False))
    save_file({k: v.detach().cpu().contiguous() for k, v in (tensors or {}).items()}, str(tmp / "extra.safetensors"))
    files = {}
    for name in _FILES:
        honour_umask(tmp / name)  # safetensors creates its files 0600
        _fsync(tmp / name)
        files[name] = {"bytes": (tmp / name).stat().st_size, "sha256": _digest(tmp / name)}
    try:  # the digest is over the record as JSON reads it back (int keys become strings, tuples lists)
        record = jsonable({**state, "step": step, "files": files}, "the checkpoint state")
        record["manifest_sha256"] = _manifest_digest(record)
        text = record_text(record, FORMAT, FORMAT_VERSION)
    except ValueError as error:
        shutil.rmtree(tmp)
        raise CheckpointError(f"the checkpoint state must be JSON-serializable: {error}") from None
    (tmp / STATE_FILE).write_text(text)  # no temporary file: the whole folder is renamed into place
    _fsync(tmp / STATE_FILE)
    _fsync(tmp)
    if final.exists():
        if not _is_ours(final):
            kept = root / f"{final.name}.replaced-{os.getpid()}-{time.time_ns()}"
            os.replace(final, kept)
            warnings.warn(f"{final} was not a checkpoint this code wrote (or it was edited); moved it to {kept.name} "
                          "instead of deleting it", stacklevel=2)
            os.replace(tmp, final)
            _fsync(root)
            _prune(root, keep, final)
            return final
        old = root / f".old-{final.name}-{_writer_id()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    _fsync(root)
    _prune(root, keep, final)
    return final


def _is_ours(path: Path, partial: bool = False) -> bool:
    """Written by save_checkpoint: nothing inside but its own files, and (unless `partial`, for an
    interrupted write) a state.json manifest that verifies. File contents are not hashed here."""
    try:
        entries = {entry.name for entry in path.iterdir()}
        if not entries <= {*_FILES, STATE_FILE} or any((path / n).is_symlink() or not (path / n).is_file()
                                                       for n in entries):
            return False
        if partial:
            return True
        state = read_record(path / STATE_FILE, FORMAT, FORMAT_VERSION, max_bytes=MAX_STATE_BYTES)
        return _state_problem(state) is None and _step_of(path) == state["step"]
    except (OSError, ValueError):
        return False


def _writer_id() -> str:
    """This process's id and a random tag: temporary names no other writer, even one reusing the pid, shares."""
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def _writer_alive(name: str) -> bool:
    """Whether the process that named a temporary folder still runs (it may be writing it now)."""
    pid = int(_TMP_NAME.fullmatch(name).group(2))
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _prune(root: Path, keep: int | None, newest: Path) -> None:
    foreign = []
    for stale in root.iterdir():
        if stale.name.startswith((".tmp-", ".old-")) and stale.is_dir() and not stale.is_symlink():
            if not _TMP_NAME.fullmatch(stale.name) or not _is_ours(stale, partial=True):
                foreign.append(stale.name)
            elif not _writer_alive(stale.name):
                shutil.rmtree(stale, ignore_errors=True)
    if keep is not None:
        ours = []
        for path in list_checkpoints(root):
            if path == newest:
                continue
            if _is_ours(path) and not path.is_symlink():
                ours.append(path)
            else:
                foreign.append(path.name)
        for path in ours[: max(0, len(ours) - (keep - 1))]:
            shutil.rmtree(path, ignore_errors=True)
    if foreign:
        warnings.warn(f"left alone in {root}: {', '.join(sorted(foreign)[:10])} (not checkpoints this code wrote, "
                      "or edited since); they are neither pruned nor counted", stacklevel=3)


def _state_problem(state: Any) -> str | None:
    """What is wrong with the fields of a state.json read_record accepted, or None."""
    if type(state.get("step")) is not int or state["step"] < 0:
        return "has no non-negative int 'step'"
    files = state.get("files")
    if not isinstance(files, dict):
        return "has no 'files' table"
    for name in _FILES:
        entry = files.get(name)
        if not isinstance(entry, dict) or type(entry.get("bytes")) is not int or entry["bytes"] < 0 \
                or not isinstance(entry.get("sha256"), str) or not re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]):
            return f"has no valid 'bytes' and 'sha256' for {name}"
    if state.get("manifest_sha256") != _manifest_digest(state):
        return "was edited after it was written (its manifest_sha256 does not match its contents)"
    return None


def _read_state(path: Path, verify_contents: bool = True) -> dict[str, Any]:
    state_file = path / STATE_FILE
    if not state_file.is_file():
        raise CheckpointError(f"checkpoint file {state_file} is missing (an incomplete or foreign folder)")
    state = read_record(state_file, FORMAT, FORMAT_VERSION, error=CheckpointError, max_bytes=MAX_STATE_BYTES)
    problem = _state_problem(state)
    if problem is None and _step_of(path) is not None and _step_of(path) != state["step"]:
        problem = f"records step {state['step']}, but its folder is {path.name}"
    if problem is not None:
        raise CheckpointError(f"checkpoint file {state_file} {problem}")
    for name in _FILES:
        expected = state["files"][name]
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"checkpoint file {file} is missing")
        size = file.stat().st_size
        if size != expected["bytes"]:
            raise CheckpointError(f"checkpoint file {file} has {size} bytes, expected {expected['bytes']} (truncated?)")
        if verify_contents and _digest(file) != expected["sha256"]:
            raise CheckpointError(f"checkpoint file {file} is corrupt (SHA-256 differs from {state_file.name})")
    return state


def _apply_check(check: Callable[[dict[str, Any]], None] | None, path: Path, state: dict[str, Any]) -> None:
    if check is not None:
        try:
            check(state)
        except CheckpointError as error:
            raise CheckpointError(f"checkpoint file {path / STATE_FILE}: {error}") from None


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu",
                    check: Callable[[dict[str, Any]], None] | None = None) -> Checkpoint:
    """Read and validate one checkpoint folder; CheckpointError names the first bad file.

    check: called with the parsed state.json; raises CheckpointError for fields the caller needs.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint folder {path} does not exist")
    state = _read_state(path)
    _apply_check(check, path, state)
    try:
        meta = json.loads((path / "optimizer.json").read_text())
        optimizer_tensors = load_file(str(path / "optimizer.safetensors"), device=str(device))
        tensors = load_file(str(path / "extra.safetensors"))
    except (json.JSONDecodeError, OSError, RuntimeError) as error:
        raise CheckpointError(f"checkpoint {path} cannot be read: {error}") from None
    return Checkpoint(path, state["step"], state, unflatten_optimizer_state(optimizer_tensors, meta), tensors)


def latest_checkpoint(root: str | os.PathLike,
                      check: Callable[[dict[str, Any]], None] | None = None) -> Path | None:
    """The newest valid checkpoint under `root` (None if there is none at all).

    A corrupt newer checkpoint (or one whose state `check` rejects with CheckpointError) is skipped with
    a warning naming the bad file; if checkpoints exist but none is valid, CheckpointError lists why.
    """
    problems = []
    for path in reversed(list_checkpoints(root)):
        try:
            _apply_check(check, path, _read_state(path))
        except CheckpointError as error:
            warnings.warn(f"skipping corrupt checkpoint: {error}", stacklevel=2)
            problems.append(str(error))
            continue
        return path
    if problems:
        raise CheckpointError(f"no valid checkpoint under {root}: " + "; ".join(problems))
    return None


@contextmanager
def checkpoint_lock(root: str | os.PathLike) -> Iterator[Path]:
    """Hold checkpoint folder `root` for one run: an exclusive flock on root/.lock, so a second run on the same
    folder raises CheckpointError instead of racing the first. The kernel drops the lock when its process ends
    (a SIGKILL included), so a killed run leaves nothing to clean up."""
    import fcntl

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise CheckpointError(f"checkpoint folder {root} is in use by another run (process {holder}); wait "
                                  "for it to finish, or train into another folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield root
    finally:
        os.close(fd)
