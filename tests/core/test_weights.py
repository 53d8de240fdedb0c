"""The one rule for weights read from files: NaN/Inf refused unless allowed, overflow on narrowing counts as Inf."""

import pytest
import torch

from sphere_plugins.errors import NonFiniteWeightsError
from sphere_plugins.weights import check_finite


def test_finite_weights_of_any_dtype_pass_even_when_their_sum_overflows():
    check_finite({"w": torch.randn(3, 3), "h": torch.ones(2, dtype=torch.float16), "i": torch.arange(3),
                  "big": torch.full((4,), 3e38), "big16": torch.full((4,), 60000.0, dtype=torch.float16)}, "file")


def test_infinities_of_both_signs_are_refused():
    with pytest.raises(NonFiniteWeightsError, match="tensor w holds NaN or Inf"):
        check_finite({"w": torch.tensor([float("inf"), float("-inf")])}, "file")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nan_or_inf_is_refused_naming_the_tensor_and_the_opt_in(bad):
    tensors = {"ok": torch.zeros(2), "layer.weight": torch.tensor([1.0, bad])}
    with pytest.raises(NonFiniteWeightsError, match=r"^net\.pkl: tensor layer\.weight holds NaN or Inf values; "
                                                    r"pass allow_nonfinite=True \(--allow-nonfinite"):
        check_finite(tensors, "net.pkl")
    check_finite(tensors, "net.pkl", allow_nonfinite=True)


def test_a_value_that_overflows_the_dtype_it_loads_into_counts_as_inf():
    tensors = {"w": torch.tensor([1.0, -1e300], dtype=torch.float64)}
    with pytest.raises(NonFiniteWeightsError, match=r"tensor w holds values up to 1e\+300, which overflow to Inf when "
                                                    r"narrowed from torch\.float64 to torch\.float32 \(largest finite "
                                                    r"3\.4e\+38\)"):
        check_finite(tensors, "f", dtypes={"w": torch.float32})
    check_finite(tensors, "f")  # kept as float64 it is finite
    check_finite({"w": torch.tensor([70000.0])}, "f", dtypes={"w": torch.float32})
    with pytest.raises(NonFiniteWeightsError, match="to torch.float16"):
        check_finite({"w": torch.tensor([70000.0])}, "f", dtypes={"w": torch.float16})


def test_values_that_round_to_the_largest_finite_value_are_not_overflow():
    largest = torch.finfo(torch.float32).max
    check_finite({"w": torch.tensor([largest * (1 + 2**-26)], dtype=torch.float64)}, "f", dtypes={"w": torch.float32})


@pytest.mark.parametrize("flag", ["yes", 1, None])
def test_allow_nonfinite_must_be_a_bool(flag):
    with pytest.raises(ValueError, match="allow_nonfinite must be True or False"):
        check_finite({"w": torch.zeros(1)}, "f", allow_nonfinite=flag)
