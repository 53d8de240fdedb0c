"""JSON as the project writes it: strict, so every JSON reader accepts it."""

import json

from sphere_plugins.jsontext import dumps


def _strict(text):
    def refuse(constant):
        raise ValueError(f"bare {constant} in JSON")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_are_written_as_null_at_any_depth():
    record = {"loss": float("nan"), "values": [1.5, float("inf"), (float("-inf"), 2)], "name": "run"}
    assert _strict(dumps(record)) == {"loss": None, "values": [1.5, None, [None, 2]], "name": "run"}


def test_finite_values_are_written_as_json_dumps_writes_them():
    record = {"b": [1, 2.25, True, None], "a": {"x": "y"}}
    assert dumps(record, indent=1, sort_keys=True) == json.dumps(record, indent=1, sort_keys=True)
