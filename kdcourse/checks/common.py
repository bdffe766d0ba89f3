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

import types as _types
import warnings as _warnings

_BANNED_PACKAGES = ("scipy", "kdcourse", "sklearn")
_IMPORTERS = ("__import__", "import_module")


def _code_objects(code):
    yield code
    for const in code.co_consts:
        if isinstance(const, _types.CodeType):
            yield from _code_objects(const)


def _origin(obj) -> str:
    """Where ``obj`` comes from: a module's name, or ``module.name`` of a function or class."""
    try:
        if isinstance(obj, _types.ModuleType):
            return obj.__name__
        module = getattr(obj, "__module__", None)
        if not isinstance(module, str):
            module = getattr(type(obj), "__module__", None) or ""
        name = getattr(obj, "__name__", None)
        return f"{module}.{name}" if module and isinstance(name, str) else module
    except Exception:  # noqa: BLE001 - an object that refuses introspection is not a library function
        return ""


def _name_of(obj):
    try:
        name = getattr(obj, "__name__", None)
    except Exception:  # noqa: BLE001
        return None
    return name if isinstance(name, str) else None


def _is_banned(dotted: str, banned_packages) -> bool:
    """True when the dotted path ``dotted`` lies in (or is) one of ``banned_packages``.

    An entry may be a package (``"scipy"``) or any dotted prefix (``"torch.nn.functional.kl_div"``).
    """
    return any(dotted == banned or dotted.startswith(banned + ".") for banned in banned_packages)


def _is_notebook_function(obj, home) -> bool:
    """A plain Python function defined in the notebook (module ``__main__``) or beside ``fn``."""
    return isinstance(obj, _types.FunctionType) and getattr(obj, "__module__", None) in ("__main__", home)


def find_delegation(fn, banned_names=(), banned_packages=_BANNED_PACKAGES, allowed=()):
    """Return a description of the first library call in ``fn`` that does the exercise for it.

    Looks at the names ``fn``'s code (and the code of functions defined inside it) refers to and
    flags:

    * a name bound (in ``fn``'s globals, closure or default arguments) to a module, function or class
      from ``banned_packages``; entries are dotted prefixes, so ``"scipy"`` bans ``scipy.special.rel_entr``;
    * an import inside the function (``import scipy.stats``, ``from scipy.special import rel_entr``,
      ``__import__("scipy")``) of a banned package;
    * an attribute or name called one of ``banned_names`` (e.g. ``"kl_div"`` in ``F.kl_div``).

    The notebook's own functions (module ``__main__``) that ``fn`` calls are inspected the same way,
    recursively, so wrapping a library call in a helper does not hide it. Functions named in
    ``allowed`` (that the exercise lets the answer reuse) are not inspected. Returns ``None`` when
    nothing is found.
    """
    home = getattr(fn, "__module__", None)
    return _find_delegation(fn, tuple(banned_names), tuple(banned_packages), set(allowed), home, set())


def _find_delegation(fn, banned_names, banned_packages, allowed, home, visited):
    if id(fn) in visited:
        return None
    visited.add(id(fn))
    origin = _origin(fn)
    if _is_banned(origin, banned_packages):
        return origin
    code = getattr(fn, "__code__", None)
    if not isinstance(code, _types.CodeType):
        return None
    namespace = dict(getattr(fn, "__globals__", None) or {})
    bound = {}  # names whose values the function carries itself: closure cells and default arguments
    for var, cell in zip(code.co_freevars, getattr(fn, "__closure__", None) or ()):
        try:
            bound[var] = cell.cell_contents
        except ValueError:  # empty cell
            continue
    defaults = list(getattr(fn, "__defaults__", None) or ()) + list((getattr(fn, "__kwdefaults__", None) or {}).values())
    bound.update({f"<default {i}>": value for i, value in enumerate(defaults)})
    helpers = []

    def judge(name, obj):
        if _is_notebook_function(obj, home):
            if name not in allowed and _name_of(obj) not in allowed:
                helpers.append(obj)
            return None
        where = _origin(obj)
        if _is_banned(where, banned_packages):
            return f"{name} (from {where})"
        obj_name = _name_of(obj)
        if obj_name is not None and obj_name in banned_names:
            return f"{name} ({obj_name})" if name != obj_name else name
        return None

    for var, obj in bound.items():
        found = judge(var, obj)
        if found is not None:
            return found
    for inner in _code_objects(code):
        names = inner.co_names
        for name in names:
            if name in banned_names:
                return name
            if name in namespace:
                found = judge(name, namespace[name])
                if found is not None:
                    return found
            if _is_banned(name, banned_packages):  # `import scipy.stats` inside the function
                return f"{name} (imported inside the function)"
        if any(name in _IMPORTERS for name in names):  # __import__("scipy"), importlib.import_module(...)
            for const in inner.co_consts:
                if isinstance(const, str) and _is_banned(const, banned_packages):
                    return f"{const} (imported inside the function)"
    for helper in helpers:  # the notebook's own functions that fn calls
        found = _find_delegation(helper, banned_names, banned_packages, allowed, home, visited)
        if found is not None:
            return f"{helper.__name__} → {found}"
    return None


def forbid_delegation(fn, name, banned_names=(), banned_packages=_BANNED_PACKAGES, allowed=()):
    """Raise :class:`WrongAnswer` when ``fn`` hands the exercise to a library (see :func:`find_delegation`)."""
    found = find_delegation(fn, banned_names=banned_names, banned_packages=banned_packages, allowed=allowed)
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
