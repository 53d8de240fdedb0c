"""Tiny presets for the benchmark suites, so each test runs a real suite in seconds."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TINY_THEORY = {"dims": [2, 16, 512], "pairs": 4000, "w2_points": 12, "w2_repeats": 2, "pdf_dims": [3, 512]}
TINY_OVERHEAD = {"repeats": 2, "batch": 2, "step_repeats": 1, "copy_shapes": [[4, 8], [16, 32]]}


@pytest.fixture
def tiny_presets(monkeypatch):
    """Replace the quick presets of the cheap suites by tiny ones for this test."""
    from benchmarks.suites import overhead, theory

    monkeypatch.setitem(theory.PRESETS, "quick", dict(TINY_THEORY))
    monkeypatch.setitem(overhead.PRESETS, "quick", dict(TINY_OVERHEAD))


@pytest.fixture
def run_cli():
    """Call the CLI in-process; returns its exit status."""
    from benchmarks.run import main

    return main
