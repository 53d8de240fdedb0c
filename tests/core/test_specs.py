"""A model spec or a plain path: the one rule load_model and the command line's checks share."""

import pytest

from sphere_plugins import load_model
from sphere_plugins.cli.common import UsageError, check_spec
from sphere_plugins.nets import ConvAutoencoder
from sphere_plugins.schemes import names_a_path


def test_a_spec_with_a_loaded_scheme_stays_a_spec_where_a_file_has_its_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "builtin:tiny-ae").write_text("not a model")
    assert not names_a_path("builtin:tiny-ae")
    assert type(load_model("builtin:tiny-ae")) is ConvAutoencoder
    check_spec("builtin:tiny-ae")


def test_an_existing_path_without_a_loaded_scheme_is_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes:v1.txt").write_text("not a model")
    assert names_a_path("notes:v1.txt") and names_a_path(str(tmp_path))
    assert not names_a_path("missing:v1.txt")
    with pytest.raises(UsageError, match="cannot tell which model"):
        check_spec("notes:v1.txt")
    with pytest.raises(ValueError, match="cannot tell which model"):
        load_model("notes:v1.txt")
