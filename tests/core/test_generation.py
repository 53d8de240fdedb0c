"""Seeds to images: which seeds exist."""

import numpy as np
import pytest
import torch

from sphere_plugins.generation import seed_generator


def test_a_seed_is_an_int_from_0_to_2_to_the_32_minus_1():
    assert torch.equal(seed_generator(np.int64(4294967295)).get_state(),
                       torch.Generator().manual_seed(4294967295).get_state())
    for bad in (4294967296, -1, True, 3.0):
        with pytest.raises(ValueError, match=f"seed must be an int in 0..4294967295, got {bad!r}"):
            seed_generator(bad)
