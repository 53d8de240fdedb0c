"""Error messages about untrusted input: short atoms shown, everything else by type and size, never walked."""

import time

import pytest

from sphere_plugins.errors import describe


@pytest.mark.parametrize(("value", "expected"), [
    (None, "None"), (True, "True"), (1.5, "1.5"), (-7, "-7"), (2**64 - 1, str(2**64 - 1)),
    (2**100, "<int of 101 bits>"), ("Generator", "'Generator'"), (b"\x00a", "b'\\x00a'"),
    ((2, -1), "(2, -1)"), ((5,), "(5,)"), (["a", None], "['a', None]"), ((), "()"),
    (tuple(range(9)), "<tuple of 9 items>"), (([1],), "<tuple of 1 item>"), ({"k": 1}, "<dict of 1 item>"),
    ({1, 2}, "<set of 2 items>"), (object(), "<object>"),
])
def test_atoms_are_shown_and_containers_summarized(value, expected):
    assert describe(value) == expected


def test_long_strings_are_cut_and_measured():
    assert describe("x" * 1000, limit=5) == "'xxxxx'... (1000 characters)"
    assert describe(b"y" * 100, limit=3) == "b'yyy'... (100 bytes)"


def test_a_shared_nesting_is_described_in_constant_time():
    node = ()
    for _ in range(60):  # printing it would visit 2**60 tuples
        node = (node, node)
    start = time.perf_counter()
    assert describe(node) == "<tuple of 2 items>" and describe([node]) == "<list of 1 item>"
    assert time.perf_counter() - start < 0.01
