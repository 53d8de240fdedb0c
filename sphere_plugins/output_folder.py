"""The one rule for every folder this project writes into: write only into a folder that is new, empty or holds
our manifest, and replace or remove only the files that manifest lists. Everything else is the user's; a write
that would touch it is refused with one line naming the folder, before anything in it changes.

The manifest, `sphere_outputs.json`, lists every path written there, relative to the folder; a path ending in
"/" is a sub-folder another writer manages whole (training checkpoints, which keep their own manifests).
Writers either reserve their file names before they start and then write those files atomically, or build
their files in a staging folder and commit it: each file moves into place with os.replace, so a reader sees an
old file or a whole new one, and the manifest lists a file before it arrives. A sub-folder a commit writes
(a saved wrapper's model/) replaces ours of that name whole.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from sphere_plugins.errors import OutputFolderError
from sphere_plugins.files import honour_umask
from sphere_plugins.records import read_record, write_record

MANIFEST = "sphere_outputs.json"
FORMAT = "sphere-plugins-outputs"
FORMAT_VERSION = 1
MAX_MANIFEST_BYTES = 64 << 20
# A staging folder or a folder being replaced holds at most this many entries (a bound on the walk).
MAX_ENTRIES = 100_000
_STAGING = ".staging-"


def _relative(name: str) -> str:
    """`name` as a clean relative POSIX path (a trailing "/" kept), or ValueError."""
    whole = name.endswith("/")
    parts = PurePosixPath(name).parts
    if not parts or name.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in name:
        raise ValueError(f"output names must be relative paths inside the folder, got {name!r}")
    return "/".join(parts) + ("/" if whole else "")


def _files_under(root: Path, what: str) -> list[str]:
    """Relative paths of the files under `root`; a link or anything but files and folders is refused."""
    found: list[str] = []
    for entry in _walk(root, what):
        found.append(entry.relative_to(root).as_posix())
    return sorted(found)


def _walk(root: Path, what: str) -> Iterator[Path]:
    pending, seen = [root], 0
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                seen += 1
                if seen > MAX_ENTRIES:
                    raise OutputFolderError(f"{what} holds more than {MAX_ENTRIES} entries")
                path = Path(entry.path)
                if entry.is_symlink():
                    raise OutputFolderError(f"{what} holds the link {str(path)!r}; links are neither followed nor "
                                            "replaced")
                if entry.is_dir():
                    pending.append(path)
                elif entry.is_file():
                    yield path
                else:
                    raise OutputFolderError(f"{what} holds {str(path)!r}, which is neither a file nor a folder")


class OutputFolder:
    """A folder to write results into; constructing it refuses a folder holding files we did not write."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()
        self._listed = self._read_claim()

    def _refuse(self, why: str) -> OutputFolderError:
        return OutputFolderError(f"refusing to write into {str(self.path)!r}: {why}")

    def _read_claim(self) -> set[str]:
        if not self.path.exists():
            if self.path.is_symlink():
                raise self._refuse("it is a link to nothing")
            return set()
        if not self.path.is_dir():
            raise self._refuse("it is a file, not a folder")
        manifest = self.path / MANIFEST
        if manifest.is_symlink() or manifest.exists():
            return self._read_manifest(manifest)
        with os.scandir(self.path) as entries:
            names = sorted(entry.name for _, entry in zip(range(4), entries))
        if names:
            raise self._refuse(f"it holds files sphere-plugins did not write ({', '.join(map(repr, names[:3]))}"
                               f"{', ...' if len(names) > 3 else ''}) and no {MANIFEST}; choose a new or empty folder")
        return set()

    def _read_manifest(self, manifest: Path) -> set[str]:
        def bad(problem: str) -> OutputFolderError:
            return self._refuse(f"its {MANIFEST} is not a manifest sphere-plugins wrote ({problem}); choose a new or "
                                "empty folder")

        if manifest.is_symlink():
            raise bad("it is a link")
        try:
            record = read_record(manifest, FORMAT, FORMAT_VERSION, max_bytes=MAX_MANIFEST_BYTES)
            if not isinstance(record.get("files"), list):
                raise ValueError("field 'files' is not a list")
            return {_relative(name) for name in record["files"] if isinstance(name, str)}
        except ValueError as problem:
            raise bad(str(problem)) from None

    def owns(self, name: str) -> bool:
        """Whether the manifest lists `name` (a file, or a folder managed whole) or a folder above it."""
        name = _relative(name)
        parts = name.rstrip("/").split("/")
        return name in self._listed or any("/".join(parts[:i]) + "/" in self._listed for i in range(1, len(parts)))

    def check(self, names: Iterable[str]) -> None:
        """OutputFolderError unless each of `names` is absent or ours (a name ending in "/": a folder whose
        files are all ours); changes nothing."""
        for raw in names:
            name = _relative(raw)
            parts = name.rstrip("/").split("/")
            for depth in range(1, len(parts) + 1):
                here = self.path.joinpath(*parts[:depth])
                last = depth == len(parts)
                if not (here.exists() or here.is_symlink()):
                    break
                if here.is_symlink():
                    raise self._refuse(f"{str(here)!r} is a link; sphere-plugins does not write through links")
                if not last or name.endswith("/"):
                    folder = "/".join(parts[:depth]) + "/"
                    if not here.is_dir():
                        raise self._refuse(f"{str(here)!r} is a file where a folder {folder!r} would go")
                    if last and not self.owns(folder):
                        foreign = [f for f in _files_under(here, str(here)) if not self.owns(folder + f)]
                        if foreign:
                            raise self._refuse(f"{str(here / foreign[0])!r} is not a file sphere-plugins wrote "
                                               "(it is not in its manifest); move it away or choose another folder")
                elif here.is_dir() or not self.owns(name):
                    raise self._refuse(f"{str(here)!r} is not a file sphere-plugins wrote (it is not in its manifest); "
                                       "move it away or choose another folder")

    def reserve(self, names: Iterable[str]) -> None:
        """Check `names` and list them in the manifest, so the caller may then write (and later rewrite) them."""
        names = [_relative(name) for name in names]
        self.check(names)
        self._record(set(names))

    def _record(self, added: set[str], removed: set[str] = frozenset()) -> None:
        manifest = self.path / MANIFEST
        on_disk = self._read_manifest(manifest) if manifest.exists() or manifest.is_symlink() else set()
        listed = (on_disk | self._listed | added) - set(removed)
        self.path.mkdir(parents=True, exist_ok=True)
        write_record(self.path / MANIFEST, {"files": sorted(listed)}, FORMAT, FORMAT_VERSION)
        self._listed = listed

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh empty folder inside this one to build files in before commit(); removed afterwards. A folder
        this call created is removed again when nothing was committed."""
        created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        stage = self.path / f"{_STAGING}{secrets.token_hex(6)}"
        stage.mkdir()
        try:
            yield stage
        finally:
            shutil.rmtree(stage, ignore_errors=True)
            if created and not any(self.path.iterdir()):
                self.path.rmdir()

    def commit(self, stage: Path) -> list[str]:
        """Move every file built in `stage` into place and return their names. A sub-folder the stage holds
        replaces ours of that name whole: our files there that the stage lacks are removed. Any conflict with a
        file that is not ours is refused before anything moves."""
        new = _files_under(stage, f"the staging folder {str(stage)!r}")
        if MANIFEST in new:
            raise OutputFolderError(f"a writer put a file named {MANIFEST} into {str(self.path)!r}; that name is "
                                    "the folder's manifest")
        replaced = sorted({name.split("/")[0] + "/" for name in new if "/" in name})
        self.check(new + replaced)
        stale = [folder + name for folder in replaced if (self.path / folder).is_dir()
                 for name in _files_under(self.path / folder, str(self.path / folder)) if folder + name not in new]
        self._record(set(new))  # listed before they arrive: a killed commit leaves nothing unlisted
        for name in new:
            source, target = stage / name, self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            honour_umask(source)
            os.replace(source, target)
        for name in stale:
            (self.path / name).unlink(missing_ok=True)
        for folder in replaced:
            _remove_empty_folders(self.path / folder)
        if stale:
            self._record(set(), set(stale))
        return new

def _remove_empty_folders(root: Path) -> None:
    for folder in sorted((p for p in root.rglob("*") if p.is_dir() and not p.is_symlink()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
