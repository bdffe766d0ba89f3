"""Input checks shared by the whole package.

Every check raises an error whose message names the argument and the problem, for example
``ValueError: p must sum to 1 along the last axis within 1e-06 (got sums in [0.93, 1.00])`` or
``TypeError: epochs must be an int, not float (2.5)``.

The array checks accept numpy arrays, Python sequences and torch tensors. This module never imports
torch: a value is a tensor only if torch has already been imported by someone (``sys.modules``), so
the numpy path stays free of it.
"""

from __future__ import annotations

import math
import numbers
import sys
from typing import Any

import numpy as np

__all__ = [
    "MAX_SEED",
    "SUM_TOLERANCE_FLOAT32",
    "SUM_TOLERANCE_FLOAT64",
    "as_array_or_tensor",
    "check_choice",
    "check_finite",
    "check_probabilities",
    "check_same_shape",
    "check_scalar",
    "is_tensor",
    "sum_tolerance",
]

#: Largest allowed distance of a probability vector's sum from 1, by precision.
SUM_TOLERANCE_FLOAT64 = 1e-6
SUM_TOLERANCE_FLOAT32 = 1e-4

#: Largest seed every generator we seed accepts (numpy's legacy ``np.random.seed``).
MAX_SEED = 2**32 - 1

_BOUNDARIES = ("left", "right", "both", "neither")


def is_tensor(x: Any) -> bool:
    """Whether ``x`` is a torch tensor, without importing torch.

    Parameters
    ----------
    x : object
        Any value.

    Returns
    -------
    bool
        True when torch has been imported and ``x`` is a ``torch.Tensor``.
    """
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _short_repr(x: Any, limit: int = 60) -> str:
    text = repr(x)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _format_bound(bound: float) -> str:
    if isinstance(bound, float) and bound.is_integer():
        return str(int(bound))
    return str(bound)


def _describe_range(min_val, max_val, include_boundaries: str) -> str:
    """``"> 0"``, ``"<= 1"`` or ``"in [0, 1)"`` for the allowed values."""
    closed_left = include_boundaries in ("left", "both")
    closed_right = include_boundaries in ("right", "both")
    if max_val is None:
        return f"{'>=' if closed_left else '>'} {_format_bound(min_val)}"
    if min_val is None:
        return f"{'<=' if closed_right else '<'} {_format_bound(max_val)}"
    return (f"in {'[' if closed_left else '('}{_format_bound(min_val)}, "
            f"{_format_bound(max_val)}{']' if closed_right else ')'}")


def check_scalar(
    x: Any,
    name: str,
    target_type: type,
    *,
    min_val: float | None = None,
    max_val: float | None = None,
    include_boundaries: str = "both",
):
    """Validate a scalar argument's type and range, in the manner of scikit-learn's ``check_scalar``.

    Parameters
    ----------
    x : object
        The value to validate.
    name : str
        The argument's name, used in the error messages.
    target_type : {int, float}
        ``int`` accepts Python and numpy integers. ``float`` accepts any real number (Python or numpy
        integers and floats) and a one-element torch tensor, and rejects NaN and infinity. ``bool`` is
        neither an int nor a float here.
    min_val, max_val : float, optional
        Bounds of the allowed interval; ``None`` means unbounded on that side.
    include_boundaries : {"left", "right", "both", "neither"}, default="both"
        Which bounds belong to the interval: ``"left"`` is ``[min_val, max_val)``, ``"right"`` is
        ``(min_val, max_val]``, ``"both"`` is ``[min_val, max_val]`` and ``"neither"`` is
        ``(min_val, max_val)``.

    Returns
    -------
    int or float
        ``x`` converted to ``target_type`` (a plain Python number).

    Raises
    ------
    TypeError
        If ``x`` is not of ``target_type``, e.g. ``temperature must be a float (a real number), not
        str ('2')``.
    ValueError
        If ``x`` is out of range or not finite, e.g. ``temperature must be > 0 (got -1.0)``; also if
        ``target_type`` or ``include_boundaries`` is not one of the allowed values, or
        ``include_boundaries`` names a bound that is ``None``.

    Examples
    --------
    >>> check_scalar(10, "epochs", int, min_val=0)
    10
    >>> check_scalar(0.3, "alpha", float, min_val=0, max_val=1)
    0.3
    """
    if target_type not in (int, float):
        raise ValueError(f"target_type must be int or float (got {target_type!r})")
    if include_boundaries not in _BOUNDARIES:
        raise ValueError(f"include_boundaries must be one of {', '.join(map(repr, _BOUNDARIES))} "
                         f"(got {include_boundaries!r})")
    if include_boundaries == "left" and min_val is None:
        raise ValueError("include_boundaries='left' without min_val is inconsistent")
    if include_boundaries == "right" and max_val is None:
        raise ValueError("include_boundaries='right' without max_val is inconsistent")

    value = x
    if target_type is float and is_tensor(value):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a single number (got a tensor of shape {tuple(value.shape)})")
        value = value.item()
    what = "an int" if target_type is int else "a float (a real number)"
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be {what}, not bool ({value!r})")
    if target_type is int:
        if not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be {what}, not {type(x).__name__} ({_short_repr(x)})")
        value = int(value)
    else:
        if not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be {what}, not {type(x).__name__} ({_short_repr(x)})")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite (got {value!r})")

    closed_left = include_boundaries in ("left", "both")
    closed_right = include_boundaries in ("right", "both")
    too_low = min_val is not None and (value < min_val if closed_left else value <= min_val)
    too_high = max_val is not None and (value > max_val if closed_right else value >= max_val)
    if too_low or too_high:
        raise ValueError(f"{name} must be {_describe_range(min_val, max_val, include_boundaries)} "
                         f"(got {value!r})")
    return value


def check_choice(value: Any, allowed: tuple[str, ...], name: str) -> str:
    """Validate a string option.

    Parameters
    ----------
    value : object
        The value to validate.
    allowed : tuple of str
        The allowed options.
    name : str
        The argument's name, used in the error message.

    Returns
    -------
    str
        ``value``, unchanged.

    Raises
    ------
    ValueError
        If ``value`` is not one of ``allowed``, e.g. ``direction must be one of 'forward', 'reverse'
        (got 'sideways')``.
    """
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(repr(a) for a in allowed)} (got {value!r})")
    return value


def as_array_or_tensor(x: Any, name: str):
    """Return a floating torch tensor or a float64 numpy array with at least one axis.

    Parameters
    ----------
    x : array-like or torch.Tensor
        The input. A tensor is returned unchanged if it is floating point, else converted to torch's
        default dtype; anything else becomes a float64 numpy array.
    name : str
        The argument's name, used in the error messages.

    Returns
    -------
    numpy.ndarray or torch.Tensor

    Raises
    ------
    ValueError
        If ``x`` is not numeric, is a scalar (zero axes), or is empty along its last axis.
    """
    if is_tensor(x):
        torch = sys.modules["torch"]
        result = x if torch.is_floating_point(x) else x.to(torch.get_default_dtype())
    else:
        try:
            result = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name} must be numeric (could not convert: {error})") from None
    if result.ndim == 0:
        raise ValueError(f"{name} must have at least one axis (got a scalar)")
    if result.shape[-1] == 0:
        raise ValueError(f"{name} must not be empty along the last axis (got shape {tuple(result.shape)})")
    return result


def _detached_numpy(x) -> np.ndarray:
    if is_tensor(x):
        return x.detach().to("cpu", sys.modules["torch"].float64).numpy()
    return x


def _check_finite_values(values: np.ndarray, name: str) -> None:
    if not np.isfinite(values).all():
        if np.isnan(values).any():
            raise ValueError(f"{name} contains NaN")
        raise ValueError(f"{name} contains infinite values")


def check_finite(x, name: str) -> None:
    """Raise if an array or tensor holds NaN or infinity.

    Raises
    ------
    ValueError
        ``{name} contains NaN`` or ``{name} contains infinite values``.
    """
    _check_finite_values(_detached_numpy(x), name)


def sum_tolerance(x) -> float:
    """Tolerance on the sum of a probability vector: 1e-6 in float64, 1e-4 in lower precision."""
    if is_tensor(x) and x.dtype != sys.modules["torch"].float64:
        return SUM_TOLERANCE_FLOAT32
    return SUM_TOLERANCE_FLOAT64


def check_probabilities(p, name: str) -> None:
    """Check that ``p`` is a (batch of) probability vector(s) along the last axis.

    Raises
    ------
    ValueError
        For NaN/inf, negative entries, or sums further than :func:`sum_tolerance` from 1.
    """
    values = _detached_numpy(p)
    _check_finite_values(values, name)
    if values.min() < 0:
        raise ValueError(
            f"{name} has negative probabilities (smallest entry {values.min():.3g}); "
            "pass probabilities, not logits or log-probabilities"
        )
    sums = values.sum(axis=-1)
    tolerance = sum_tolerance(p)
    if np.abs(sums - 1.0).max() > tolerance:
        raise ValueError(
            f"{name} must sum to 1 along the last axis within {tolerance:g} "
            f"(got sums in [{sums.min():.4g}, {sums.max():.4g}]); "
            "did you pass logits or unnormalised scores?"
        )


def check_same_shape(a, b, name_a: str, name_b: str) -> None:
    """Raise ``ValueError`` if two arrays or tensors differ in shape."""
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape (got {tuple(a.shape)} and {tuple(b.shape)})"
        )
