"""sphere_model.json, the record save_pretrained writes: read with a size bound and every field checked, so a
hand-edited or hostile record ends in one SavedFolderError naming the file and the field."""

from __future__ import annotations

import math
from pathlib import Path, PurePosixPath
from typing import Any

from sphere_plugins.errors import SavedFolderError, describe
from sphere_plugins.layout import inside
from sphere_plugins.records import read_record

# A folder written by SphericalGenerator/SphericalAutoencoder.save_pretrained holds this file.
WRAPPER_CONFIG = "sphere_model.json"
FORMAT = "sphere-plugins-wrapper"
FORMAT_VERSION = 1
MAX_RECORD_BYTES = 16 << 20
ROLES = ("autoencoder", "generator")
FIELDS = ("format", "format_version", "role", "center", "spherize", "radius", "dims", "z_shape", "prior",
          "prior_params", "latent_noise", "options", "extra_modules", "model", "versions")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int(value: Any) -> bool:
    return type(value) is int


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, str)) or _number(value)


def _names(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) for k in value)


# Each field with what it must be: a test and the words for the message.
_CHECKS = {
    "role": (lambda v: v in ROLES, " or ".join(map(repr, ROLES))),
    "center": (lambda v: isinstance(v, bool), "true or false"),
    "spherize": (lambda v: isinstance(v, bool), "true or false"),
    "radius": (lambda v: v is None or (_number(v) and v > 0), "null or a positive number"),
    "dims": (lambda v: v is None or _int(v) or (isinstance(v, list) and 0 < len(v) <= 8 and all(map(_int, v))),
             "null, an int or a list of up to 8 ints"),
    "z_shape": (lambda v: v is None or (isinstance(v, list) and 0 < len(v) <= 8
                                        and all(_int(s) and 0 < s < 1 << 31 for s in v)),
                "null or a list of up to 8 positive ints"),
    "prior": (lambda v: isinstance(v, str) and 0 < len(v) <= 200, "a prior name"),
    "prior_params": (lambda v: _names(v) and all(_scalar(p) for p in v.values()),
                     "a dict of parameter names to numbers"),
    "latent_noise": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "options": (_names, "a dict of adapter options"),
    "extra_modules": (lambda v: _names(v) and all(isinstance(e, dict) and set(e) == {"class", "config"}
                                                  and isinstance(e["class"], str) and _names(e["config"])
                                                  for e in v.values()),
                      "a dict of name -> {'class': registered name, 'config': dict}"),
    "model": (lambda v: isinstance(v, dict) and set(v) == {"scheme", "path"} and isinstance(v["scheme"], str)
              and isinstance(v["path"], str), "{'scheme': str, 'path': str}"),
    "versions": (lambda v: True, "anything"),
}


def read_settings(folder: Path) -> dict[str, Any]:
    """The checked sphere_model.json of a save_pretrained folder."""
    path = folder / WRAPPER_CONFIG
    if not path.is_file():
        raise SavedFolderError(f"no {WRAPPER_CONFIG} in {str(folder)!r}: expected a folder written by save_pretrained")
    inside(folder, path, "the saved settings")
    record = read_record(path, FORMAT, FORMAT_VERSION, error=SavedFolderError, max_bytes=MAX_RECORD_BYTES)
    unknown = sorted(set(record) - set(FIELDS))
    missing = [name for name in FIELDS if name not in record]
    if unknown or missing:
        raise SavedFolderError(f"{str(path)!r}: unknown field(s) {[k[:40] for k in unknown[:5]]}, missing field(s) "
                               f"{missing}")
    for name, (valid, expected) in _CHECKS.items():
        if not valid(record[name]):
            raise SavedFolderError(f"{str(path)!r}: field {name!r} must be {expected}, got {describe(record[name])}")
    model_path = PurePosixPath(record["model"]["path"])
    if model_path.is_absolute() or not model_path.parts or ".." in model_path.parts or "\\" in str(model_path):
        raise SavedFolderError(f"{str(path)!r}: field 'model.path' must be a folder inside the saved folder, got "
                               f"{describe(record['model']['path'])}")
    return record
