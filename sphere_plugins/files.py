"""Atomic file writes: a reader sees the old file or the whole new one, never a half-written file.

Temporary files are created with mode 0o666 so the process's umask decides the final permissions, as for any
file the user's tools write (tempfile.mkstemp would make every result 0600).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def _new_file_beside(path: Path) -> Path:
    """A new empty file with a unique hidden name in `path`'s folder, created under the umask."""
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` (its folder is created); rename it onto `path` only if the block
    finishes. For writers that want a file name (PIL, json dumps to a path)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_file_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call write(binary_file) on a temporary file beside `path`, flush it to disk, then move it into place."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
    return path


def current_umask() -> int:
    """The process's umask, read from /proc where it can be (os.umask can only read it by setting it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def honour_umask(path: str | os.PathLike) -> None:
    """Give a file some library created private (safetensors writes 0600) the permissions the umask allows."""
    os.chmod(path, 0o666 & ~current_umask())
