"""JSON records that name their format: the one writer and reader of every settings or config file saved here
(a wrapper's sphere_model.json, a saved model's config.json, a checkpoint's state.json, plugins' own).

A record is one JSON object whose first fields are 'format' (which writer made it) and 'format_version'.
Reading checks the file's size, that it holds one JSON object, and both fields, before a caller looks at
anything else; every error names the file and, where one is wrong, the field.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from sphere_plugins.errors import describe
from sphere_plugins.files import atomic_write

# Far above any settings file written here (a few KiB), far below what a JSON parser should be handed.
MAX_RECORD_BYTES = 1 << 20
_TAGS = ("format", "format_version")


def jsonable(value: Any, where: str) -> Any:
    """`value` as strict JSON data (tuples become lists, keys strings); ValueError naming `where` for anything
    else, NaN and Infinity included (JSON has no such numbers), so a record that cannot be saved fails before a
    file is written."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, where) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} = {value!r} cannot be saved as JSON, which has no NaN or Infinity; expected a "
                         "finite number")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"{where} = {describe(value)} ({type(value).__name__}) cannot be saved as JSON; expected "
                     "plain numbers, strings, lists and dicts")


def installed_versions(*distributions: str) -> dict[str, str | None]:
    """The installed version of each distribution (None where it is not installed), for a record's provenance."""
    found: dict[str, str | None] = {}
    for name in distributions:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def record_text(record: Mapping[str, Any], format: str, format_version: int) -> str:
    """`record` as the JSON text of a record: the format tags first, then the fields, indented. Values that
    JSON cannot hold raise ValueError naming them."""
    clash = sorted(set(record) & set(_TAGS))
    if clash:
        raise ValueError(f"record fields {clash} are reserved for the format tags")
    return json.dumps({"format": format, "format_version": format_version, **jsonable(record, "record")},
                      indent=2, allow_nan=False) + "\n"


def write_record(path: str | os.PathLike, record: Mapping[str, Any], format: str, format_version: int) -> Path:
    """Write `record` tagged with its format to `path`, atomically (a reader sees the old file or the new one).
    Unsaveable values raise ValueError before anything is written."""
    text = record_text(record, format, format_version)
    return atomic_write(path, lambda handle: handle.write(text.encode()))


def read_record(path: str | os.PathLike, format: str, format_version: int, *, error: type[Exception] = ValueError,
                max_bytes: int = MAX_RECORD_BYTES) -> dict[str, Any]:
    """The JSON object in `path`, written by write_record with this `format` and `format_version`.

    Raises `error` naming the file (and the field) when it is missing, larger than `max_bytes`, not JSON,
    not an object, or tagged with another format or version.
    """
    path = Path(path)
    if not path.is_file():
        found = "is not a file" if path.exists() else "is missing"
        raise error(f"{str(path)!r} {found} (expected a {format} record)")
    size = path.stat().st_size
    if size > max_bytes:
        raise error(f"{str(path)!r} holds {size} bytes, more than the {max_bytes} a {format} record may have")
    try:
        record = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as problem:
        raise error(f"{str(path)!r} is not valid JSON ({str(problem)[:100]})") from None
    if not isinstance(record, dict):
        raise error(f"{str(path)!r} holds a JSON {type(record).__name__}, expected an object (a {format} record)")
    if record.get("format") != format:
        raise error(f"{str(path)!r} has format {describe(record.get('format'))}, expected {format!r}")
    found = record.get("format_version")
    if type(found) is not int or found != format_version:
        raise error(f"{str(path)!r} has format_version {describe(found)}, expected {format_version} (the version "
                    "this code reads and writes)")
    return record


def record_format(path: str | os.PathLike, max_bytes: int = MAX_RECORD_BYTES) -> str | None:
    """The 'format' tag of the record in `path`, or None when it is not a readable record (for recognizing
    folders: never raises)."""
    path = Path(path)
    try:
        if not path.is_file() or path.stat().st_size > max_bytes:
            return None
        record = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    tag = record.get("format") if isinstance(record, dict) else None
    return tag if isinstance(tag, str) else None
