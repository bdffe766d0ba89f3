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


# ---------------------------------------------------------------------------------------------
# Helpers shared by the assignment checks (a01.py, a02.py, ...).
# ---------------------------------------------------------------------------------------------

import builtins as _builtins
import types as _types
import warnings as _warnings

_BANNED_PACKAGES = ("scipy", "kdcourse", "sklearn")


def _code_objects(code):
    yield code
    for const in code.co_consts:
        if isinstance(const, _types.CodeType):
            yield from _code_objects(const)


def _origin(obj) -> str:
    if isinstance(obj, _types.ModuleType):
        return obj.__name__
    return getattr(obj, "__module__", None) or ""


def find_delegation(fn, banned_names=(), banned_packages=_BANNED_PACKAGES):
    """Return a description of the first library call in ``fn`` that does the exercise for it.

    Looks at the names ``fn``'s code (and the code of functions defined inside it) refers to:
    a name bound in ``fn``'s globals to a module or function from ``banned_packages``, or an
    attribute called one of ``banned_names`` (e.g. ``"kl_div"`` in ``F.kl_div``). Returns ``None``
    when nothing is found. The student's own helper functions (defined in the notebook) are fine.
    """
    if getattr(fn, "__module__", "") and str(fn.__module__).split(".")[0] in banned_packages:
        return f"{fn.__module__}.{getattr(fn, '__name__', '?')}"
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    namespace = dict(getattr(fn, "__globals__", {}))
    for var, cell in zip(code.co_freevars, getattr(fn, "__closure__", None) or ()):
        try:
            namespace[var] = cell.cell_contents
        except ValueError:  # empty cell
            continue
        obj = namespace[var]
        origin = _origin(obj)
        if origin.split(".")[0] in banned_packages:
            return f"{var} (from {origin})"
        if var in banned_names or getattr(obj, "__name__", None) in banned_names:
            return var
    for inner in _code_objects(code):
        for name in inner.co_names:
            if name in namespace:
                obj = namespace[name]
            elif hasattr(_builtins, name):
                continue
            else:
                obj = None
            if obj is not None:
                origin = _origin(obj)
                if origin.split(".")[0] in banned_packages:
                    return f"{name} (from {origin})"
                if getattr(obj, "__name__", None) in banned_names and getattr(obj, "__module__", "") != "__main__":
                    return f"{name} ({obj.__name__})"
            if name in banned_names:
                return name
    return None


def forbid_delegation(fn, name, banned_names=(), banned_packages=_BANNED_PACKAGES):
    """Raise :class:`WrongAnswer` when ``fn`` hands the exercise to a library (see :func:`find_delegation`)."""
    found = find_delegation(fn, banned_names=banned_names, banned_packages=banned_packages)
    if found is not None:
        raise WrongAnswer(
            f"{name} calls {found}: this exercise asks you to write the formula yourself "
            "(you may use it afterwards to check your answer, but not inside the function)."
        )


def call_student(fn, name, *args, **kwargs):
    """Call a student's function with warnings silenced (nothing may reach stderr in a test cell).

    ``NotImplementedError`` (an unanswered exercise) passes through unchanged; any other
    exception becomes a :class:`WrongAnswer` that names the function and the error.
    """
    if not callable(fn):
        raise WrongAnswer(f"{name} must be a function (got {type(fn).__name__})")
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            try:
                return fn(*args, **kwargs)
            except NotImplementedError:
                raise
            except WrongAnswer:
                raise
            except Exception as error:  # noqa: BLE001 - any failure of student code is reported
                raise WrongAnswer(
                    f"{name} raised {type(error).__name__}: {error}"
                ) from None


def require_answered(value, name, hint):
    """Raise ``NotImplementedError`` while an answer variable still holds its placeholder ``None``."""
    if value is None:
        raise NotImplementedError(f"{name} is still None: {hint}")


def check_answer(answer, expected, name, why_wrong=None):
    """Hidden value check of a multiple-choice answer; the message explains the chosen wrong option."""
    require_answered(answer, name, "set it to one of the options")
    if answer != expected:
        reason = (why_wrong or {}).get(answer, "")
        raise WrongAnswer(f"{name} = {answer!r} is not the best answer. {reason}".strip())


def diagnose(actual, variants, rtol=1e-6, atol=1e-9):
    """Return the message of the first variant whose value matches ``actual``, else ``None``.

    ``variants`` is a sequence of ``(value, message)`` pairs: the values a known misconception
    would produce on the same input.
    """
    for value, message in variants:
        try:
            value = np.asarray(value, dtype=np.float64)
            if value.shape == np.shape(actual) and close(actual, value, rtol=rtol, atol=atol):
                return message
        except (TypeError, ValueError):
            continue
    return None
