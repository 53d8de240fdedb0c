"""JSON text as this project writes it: strict JSON, which every reader accepts (no bare NaN or Infinity)."""

from __future__ import annotations

import json
import math
from typing import Any


def finite(value: Any) -> Any:
    """`value` with every non-finite float inside dicts, lists and tuples replaced by None (JSON's null)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """json.dumps with NaN and +-Infinity written as null (JSON has no such numbers); kwargs go to json.dumps."""
    return json.dumps(finite(value), allow_nan=False, **kwargs)
