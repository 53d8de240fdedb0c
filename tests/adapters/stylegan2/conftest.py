"""These tests run tiny networks, where one intra-op thread is faster than two and immune to a busy machine."""

import pytest


@pytest.fixture(autouse=True)
def _tiny_networks_on_one_thread(one_thread):
    """Every test here runs with the shared one_thread fixture."""
