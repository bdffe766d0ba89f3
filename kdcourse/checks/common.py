"""Building blocks for the assignments' test cells.

The module captures the numpy and torch functions it relies on when it is first imported
(in the locked setup cell, before any student code runs), so a submission that replaces,
say, ``numpy.allclose`` or ``torch.testing.assert_close`` does not change what the checks see.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

_asarray = np.asarray
_isfinite = np.isfinite
_abs = np.abs
_float64 = np.float64
_ndarray = np.ndarray
_isclose_scalar = math.isclose

try:
    import torch as _torch

    _Tensor = _torch.Tensor
    _detach_to_numpy = lambda t: _torch.Tensor.numpy(_torch.Tensor.to(_torch.Tensor.detach(t), "cpu", _torch.float64))  # noqa: E731
except ImportError:  # pragma: no cover
    _torch = None
    _Tensor = ()
    _detach_to_numpy = None


class WrongAnswer(AssertionError):
    """Raised by a test cell when an answer is wrong; the message says what is wrong."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`WrongAnswer` with ``message`` unless ``condition`` is exactly ``True``."""
    if condition is not True and not (type(condition) is np.bool_ and bool(condition)):
        raise WrongAnswer(message)


def as_float64_array(value: Any, name: str) -> np.ndarray:
    """Convert an answer to a float64 numpy array, or raise :class:`WrongAnswer` saying why not.

    Only real numbers, numpy arrays, torch tensors and (nested) lists of numbers are accepted,
    so an object that pretends to equal everything is rejected.
    """
    if _torch is not None and isinstance(value, _Tensor):
        return _detach_to_numpy(value)
    if type(value) in (int, float, _float64, np.float32, bool) or isinstance(value, (_ndarray, list, tuple)):
        try:
            array = _asarray(value, dtype=_float64)
        except (TypeError, ValueError):
            raise WrongAnswer(f"{name} should be numbers, got {type(value).__name__}") from None
        if type(array) is not _ndarray:
            raise WrongAnswer(f"{name} should be a plain numpy array of numbers")
        return array
    raise WrongAnswer(f"{name} should be a number or an array of numbers, got {type(value).__name__}")


def close(actual: Any, expected: Any, rtol: float = 1e-6, atol: float = 1e-9) -> bool:
    """True when ``actual`` matches ``expected`` elementwise (same shape, same inf/NaN pattern)."""
    a = as_float64_array(actual, "the answer")
    e = _asarray(expected, dtype=_float64)
    if a.shape != e.shape:
        return False
    a_flat, e_flat = a.ravel().tolist(), e.ravel().tolist()
    for x, y in zip(a_flat, e_flat):
        if math.isnan(y):
            if not math.isnan(x):
                return False
        elif math.isinf(y) or math.isinf(x) or math.isnan(x):
            if x != y:
                return False
        elif not _isclose_scalar(x, y, rel_tol=rtol, abs_tol=atol):
            return False
    return True


def check_choice(answer: Any, options: Sequence[str], name: str) -> None:
    """Format check for a multiple-choice answer variable: exactly one of ``options`` (a str)."""
    if type(answer) is not str:
        raise WrongAnswer(
            f"{name} should be one of the letters {', '.join(repr(o) for o in options)} as a string, "
            f"got {type(answer).__name__}"
        )
    if answer not in options:
        raise WrongAnswer(f"{name} should be one of {', '.join(repr(o) for o in options)}, got {answer!r}")
