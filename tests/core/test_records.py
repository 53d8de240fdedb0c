"""The one reader and writer of JSON records with a format tag: what it accepts, and the file and field its errors name."""

import json

import pytest

from sphere_plugins.checkpoint import CheckpointError
from sphere_plugins.records import read_record, record_format, write_record


def test_a_written_record_starts_with_its_tags_and_reads_back(tmp_path):
    path = write_record(tmp_path / "config.json", {"radius": 2.5, "dims": (1, 2), "nested": {3: None}}, "demo", 4)
    assert list(json.loads(path.read_text())) == ["format", "format_version", "radius", "dims", "nested"]
    assert read_record(path, "demo", 4) == {"format": "demo", "format_version": 4, "radius": 2.5, "dims": [1, 2],
                                            "nested": {"3": None}}
    assert record_format(path) == "demo"


def test_an_unsaveable_value_is_refused_before_the_file_is_written(tmp_path):
    with pytest.raises(ValueError, match=r"record\['prior'\]\['rate'\] = .*\(object\) cannot be saved as JSON"):
        write_record(tmp_path / "config.json", {"prior": {"rate": object()}}, "demo", 1)
    assert not any(tmp_path.iterdir())


def test_nan_and_infinity_are_refused_naming_the_field(tmp_path):
    with pytest.raises(ValueError, match=r"record\['radius'\] = nan cannot be saved as JSON, which has no NaN"):
        write_record(tmp_path / "config.json", {"radius": float("nan")}, "demo", 1)
    with pytest.raises(ValueError, match=r"record\['dims'\] = inf"):
        write_record(tmp_path / "config.json", {"dims": [1.0, float("inf")]}, "demo", 1)
    assert not any(tmp_path.iterdir())


def test_a_field_named_like_a_tag_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"\['format'\] are reserved"):
        write_record(tmp_path / "config.json", {"format": "other"}, "demo", 1)


@pytest.mark.parametrize(("text", "message"), [
    ('{"format": "other", "format_version": 1}', r"has format 'other', expected 'demo'"),
    ('{"format_version": 1}', r"has format None, expected 'demo'"),
    ('{"format": "demo", "format_version": 2}', r"has format_version 2, expected 1"),
    ('{"format": "demo", "format_version": "1"}', r"has format_version '1', expected 1"),
    ('{"format": "demo", "format_version": true}', r"has format_version True, expected 1"),
    ('["demo", 1]', r"holds a JSON list, expected an object"),
    ('{"format": "demo",', r"is not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, r"is not valid JSON"),
])
def test_a_bad_record_is_refused_naming_the_file_and_field(tmp_path, text, message):
    path = tmp_path / "sub" / "config.json"
    path.parent.mkdir()
    path.write_text(text)
    with pytest.raises(ValueError, match=r"sub/config\.json' " + message):
        read_record(path, "demo", 1)
    assert record_format(path) in (None, "other", "demo")


def test_a_record_larger_than_the_bound_is_refused_unread(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"format": "demo", "format_version": 1, "pad": "x" * 200}))
    with pytest.raises(ValueError, match=r"config\.json' holds 2\d\d bytes, more than the 100"):
        read_record(path, "demo", 1, max_bytes=100)
    assert record_format(path, max_bytes=100) is None


def test_the_caller_chooses_the_error_class(tmp_path):
    with pytest.raises(CheckpointError, match=r"state\.json' is missing \(expected a demo record\)"):
        read_record(tmp_path / "state.json", "demo", 1, error=CheckpointError)
    (tmp_path / "state.json").mkdir()
    with pytest.raises(CheckpointError, match=r"state\.json' is not a file \(expected a demo record\)"):
        read_record(tmp_path / "state.json", "demo", 1, error=CheckpointError)
