"""Atomic writes: the old file survives a writer that fails; a finished writer replaces it whole."""

from __future__ import annotations

import os

import pytest

from sphere_plugins.files import atomic_path, atomic_write


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "a.bin"
    target.parent.mkdir()
    target.write_bytes(b"old")
    atomic_write(target, lambda handle: handle.write(b"new"))
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["a.bin"]


def test_a_failing_writer_keeps_the_old_file(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")

    def half_then_fail(handle):
        handle.write(b"ne")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_atomic_path_creates_the_folder(tmp_path):
    with atomic_path(tmp_path / "new" / "t.txt") as tmp:
        tmp.write_text("x")
    assert (tmp_path / "new" / "t.txt").read_text() == "x"


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_written_files_get_the_permissions_the_umask_allows(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "a.bin", lambda handle: handle.write(b"x"))
        with atomic_path(tmp_path / "b.png") as tmp:
            tmp.write_bytes(b"png")
    finally:
        os.umask(old)
    assert [oct(p.stat().st_mode & 0o777) for p in (tmp_path / "a.bin", tmp_path / "b.png")] == [oct(mode)] * 2
