"""The one scalar validator (scikit-learn's contract) and the string-option check."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcourse._validation import MAX_SEED, check_choice, check_scalar, is_tensor


@pytest.mark.parametrize(
    "value, target_type, expected",
    [
        (3, int, 3),
        (np.int64(3), int, 3),
        (np.uint8(3), int, 3),
        (2.5, float, 2.5),
        (2, float, 2.0),
        (np.float32(0.5), float, 0.5),
        (np.int32(4), float, 4.0),
        (torch.tensor(2.0), float, 2.0),
        (torch.tensor([3.0]), float, 3.0),
    ],
)
def test_accepted_values_come_back_as_plain_python_numbers(value, target_type, expected):
    result = check_scalar(value, "x", target_type)
    assert result == expected and type(result) is target_type


@pytest.mark.parametrize(
    "value, target_type, pattern",
    [
        ("2", float, r"temperature must be a float \(a real number\), not str \('2'\)"),
        (None, float, r"temperature must be a float \(a real number\), not NoneType"),
        (True, float, r"temperature must be a float \(a real number\), not bool"),
        (np.True_, float, r"temperature must be a float \(a real number\), not bool"),
        ([1.0], float, r"temperature must be a float \(a real number\), not list"),
        (2.0, int, r"temperature must be an int, not float \(2.0\)"),
        (np.float64(2.0), int, r"temperature must be an int, not float64"),
        (False, int, r"temperature must be an int, not bool"),
        (torch.tensor(2), int, r"temperature must be an int, not Tensor"),
    ],
)
def test_wrong_types_raise_type_error_naming_argument_and_type(value, target_type, pattern):
    with pytest.raises(TypeError, match=pattern):
        check_scalar(value, "temperature", target_type)


@pytest.mark.parametrize(
    "kwargs, value, pattern",
    [
        (dict(min_val=0, include_boundaries="neither"), -1.0, r"^temperature must be > 0 \(got -1.0\)$"),
        (dict(min_val=0, include_boundaries="neither"), 0.0, r"^temperature must be > 0 \(got 0.0\)$"),
        (dict(min_val=0), -0.5, r"^temperature must be >= 0 \(got -0.5\)$"),
        (dict(max_val=1, include_boundaries="neither"), 1.0, r"^temperature must be < 1 \(got 1.0\)$"),
        (dict(max_val=1.5), 2.0, r"^temperature must be <= 1.5 \(got 2.0\)$"),
        (dict(min_val=0, max_val=1), 1.5, r"^temperature must be in \[0, 1\] \(got 1.5\)$"),
        (dict(min_val=0, max_val=1, include_boundaries="left"), 1.0, r"^temperature must be in \[0, 1\) \(got 1.0\)$"),
        (dict(min_val=0, max_val=1, include_boundaries="right"), 0.0, r"^temperature must be in \(0, 1\] \(got 0.0\)$"),
        (dict(), math.nan, r"^temperature must be finite \(got nan\)$"),
        (dict(min_val=0), math.inf, r"^temperature must be finite \(got inf\)$"),
        (dict(), torch.tensor([1.0, 2.0]), r"temperature must be a single number \(got a tensor of shape \(2,\)\)"),
    ],
)
def test_out_of_range_raises_value_error_naming_argument_bound_and_value(kwargs, value, pattern):
    with pytest.raises(ValueError, match=pattern):
        check_scalar(value, "temperature", float, **kwargs)


def test_integer_bounds_and_seed_range():
    assert check_scalar(0, "epochs", int, min_val=0) == 0
    with pytest.raises(ValueError, match=r"^batch_size must be >= 1 \(got 0\)$"):
        check_scalar(0, "batch_size", int, min_val=1)
    assert check_scalar(MAX_SEED, "seed", int, min_val=0, max_val=MAX_SEED) == MAX_SEED
    with pytest.raises(ValueError, match=r"seed must be in \[0, 4294967295\] \(got 4294967296\)"):
        check_scalar(MAX_SEED + 1, "seed", int, min_val=0, max_val=MAX_SEED)


def test_boundaries_are_included_as_asked():
    assert check_scalar(0.0, "a", float, min_val=0, max_val=1) == 0.0
    assert check_scalar(1.0, "a", float, min_val=0, max_val=1, include_boundaries="right") == 1.0
    with pytest.raises(ValueError):
        check_scalar(0.0, "a", float, min_val=0, max_val=1, include_boundaries="right")
    with pytest.raises(ValueError):
        check_scalar(1.0, "a", float, min_val=0, max_val=1, include_boundaries="neither")


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(include_boundaries="middle"), "include_boundaries must be one of"),
        (dict(include_boundaries="left"), "include_boundaries='left' without min_val is inconsistent"),
        (dict(include_boundaries="right", min_val=0), "include_boundaries='right' without max_val"),
    ],
)
def test_inconsistent_calls_are_rejected(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        check_scalar(0.5, "x", float, **kwargs)
    with pytest.raises(ValueError, match="target_type must be int or float"):
        check_scalar(0.5, "x", complex)


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, width=64),
       st.floats(-1e6, 1e6), st.floats(0.0, 1e6),
       st.sampled_from(["left", "right", "both", "neither"]))
def test_a_float_is_accepted_exactly_when_it_lies_in_the_interval(value, low, span, boundaries):
    high = low + span
    inside_low = value >= low if boundaries in ("left", "both") else value > low
    inside_high = value <= high if boundaries in ("right", "both") else value < high
    if inside_low and inside_high:
        assert check_scalar(value, "x", float, min_val=low, max_val=high, include_boundaries=boundaries) == value
    else:
        with pytest.raises(ValueError, match=r"^x must be in "):
            check_scalar(value, "x", float, min_val=low, max_val=high, include_boundaries=boundaries)


@settings(max_examples=100, deadline=None)
@given(st.integers(-(2**40), 2**40))
def test_an_int_is_accepted_exactly_when_non_negative(value):
    if value >= 0:
        assert check_scalar(value, "n", int, min_val=0) == value
        assert check_scalar(np.int64(value), "n", int, min_val=0) == value
    else:
        with pytest.raises(ValueError, match=rf"^n must be >= 0 \(got {value}\)$"):
            check_scalar(value, "n", int, min_val=0)


def test_check_choice():
    assert check_choice("forward", ("forward", "reverse"), "direction") == "forward"
    with pytest.raises(ValueError, match=r"^direction must be one of 'forward', 'reverse' \(got 'sideways'\)$"):
        check_choice("sideways", ("forward", "reverse"), "direction")
    with pytest.raises(ValueError, match=r"direction must be one of .* \(got \['forward'\]\)"):
        check_choice(["forward"], ("forward", "reverse"), "direction")


def test_is_tensor():
    assert is_tensor(torch.zeros(1)) and not is_tensor(np.zeros(1)) and not is_tensor([0.0])
