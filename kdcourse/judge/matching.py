"""Comparing an answer with the right value and with the values known mistakes give.

Every judge compares the same way: :func:`close` (same shape, same NaN/inf pattern, elementwise
``math.isclose``), and on a mismatch :func:`diagnose` looks for the first known misconception whose value
the answer equals, so the message can name the mistake instead of printing two numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from .verdict import Wrong

__all__ = ["close", "diagnose", "expect_close", "expected_clause", "fmt", "carried_forward", "own_results", "carried_results"]

Variant = tuple[Any, str]


def _array(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def close(actual: Any, expected: Any, rtol: float = 1e-6, atol: float = 1e-9) -> bool:
    """True when ``actual`` matches ``expected``: same shape, NaN where NaN, equal infinities, else close."""
    try:
        a, e = _array(actual), _array(expected)
    except (TypeError, ValueError):
        return False
    if a.shape != e.shape:
        return False
    for x, y in zip(a.ravel().tolist(), e.ravel().tolist()):
        if math.isnan(y) or math.isnan(x):
            if not (math.isnan(x) and math.isnan(y)):
                return False
        elif math.isinf(y) or math.isinf(x):
            if x != y:
                return False
        elif not math.isclose(x, y, rel_tol=rtol, abs_tol=atol):
            return False
    return True


def diagnose(actual: Any, variants: Iterable[Variant], rtol: float = 1e-6, atol: float = 1e-9) -> str | None:
    """The message of the first ``(value, message)`` variant that ``actual`` equals, else ``None``.

    A variant whose value cannot be computed may be given as ``(None, message)``; it never matches.
    """
    for value, message in variants:
        if value is not None and close(actual, value, rtol=rtol, atol=atol):
            return message
    return None


def carried_forward(value: Any, expected: Any, own: Any, rtol: float = 1e-6, atol: float = 1e-9) -> bool:
    """``value`` is wrong only because an earlier answer (a function of the student's) is wrong.

    True when the student's own function gives ``own`` on the same inputs, ``own`` differs from the right
    ``expected`` value, and ``value`` equals ``own``: the mistake is the function's and is counted by the
    function's test, not a second time by every answer computed with it (errors carried forward).
    """
    if own is None or close(own, expected, rtol=rtol, atol=atol):
        return False
    return close(value, own, rtol=rtol, atol=atol)


def own_results(calls: Iterable[Any]) -> dict[tuple, Any]:
    """``arguments -> result`` of the calls of a student's function that returned numbers.

    The arguments are the judge's own (as plain tuples); calls that raised or returned anything other than
    finite numbers are left out.
    """
    results = {}
    for call in calls:
        returned = call.returned
        if call.raised or returned is None or returned.kind not in ("float", "int", "ndarray"):
            continue
        number = np.asarray(returned.data, dtype=np.float64)
        if np.isfinite(number).all():
            results[_key(call.args)] = number.reshape(()) if number.size == 1 else number
    return results


def carried_results(results: Any, context: Any, function: str, test: str) -> dict[tuple, Any]:
    """:func:`own_results` of the student's ``function``, only where its mistakes may be carried forward.

    That is when the function's own test ``test`` was judged earlier in the same notebook and failed: the
    mistake has been charged once. A function that passed its test earns no excuse, so one that is right on
    the test's inputs and returns made-up numbers on a later question's cannot excuse those numbers.
    """
    if context.earlier.get(test) is not False:
        return {}
    return own_results(results.calls.get(function, []))


def _key(args: Any) -> Any:
    return tuple(_key(a) for a in args) if isinstance(args, (list, tuple)) else args


def fmt(x: Any, digits: int = 6) -> str:
    """A number or array for a message: 6 decimals for a scalar, numpy's layout for arrays."""
    a = _array(x)
    if a.ndim == 0:
        return f"{float(a):.{digits}f}"
    return np.array2string(a, precision=digits, separator=", ")


def expected_clause(expected: Any, hidden: bool) -> str:
    """How a message gives the right value: ``", expected 0.456435"`` after a visible input's result;
    for a hidden input the grader keeps it (the input itself may be shown, its answer is not)."""
    if hidden:
        return " on a hidden test input (its expected value is not shown)"
    return f", expected {fmt(expected)}"


def expect_close(call_text: str, actual: Any, expected: Any, variants: Iterable[Variant] = (),
                 rtol: float = 1e-6, atol: float = 1e-9, mismatch: str | None = None, hidden: bool = False) -> None:
    """Raise :class:`Wrong` unless ``actual`` is close to ``expected``.

    The message names the first matching misconception (``"<call_text>: <message>"``), else is
    ``mismatch`` or ``"<call_text> returned X, expected Y."`` (without ``Y`` when ``hidden``: the input is a
    hidden test's).
    """
    if close(actual, expected, rtol=rtol, atol=atol):
        return
    message = diagnose(actual, variants, rtol=rtol, atol=atol)
    if message is not None:
        raise Wrong(f"{call_text}: {message}")
    a, e = _array(actual), _array(expected)
    if a.shape != e.shape:
        raise Wrong(mismatch or f"{call_text} returned shape {a.shape}, expected shape {e.shape}.")
    raise Wrong(mismatch or f"{call_text} returned {fmt(a)}{expected_clause(e, hidden)}.")
