"""Input checks shared by the divergences and the losses.

Every check raises ``ValueError`` whose message names the argument and the problem,
for example ``p must sum to 1 along the last axis (got sums in [0.93, 1.00])``.
The functions accept numpy arrays, Python sequences and torch tensors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:  # torch is a dependency, but keep the numpy path importable on its own.
    import torch
except ImportError:  # pragma: no cover - torch is installed with the package
    torch = None  # type: ignore[assignment]

#: Largest allowed distance of a probability vector's sum from 1, by precision.
SUM_TOLERANCE_FLOAT64 = 1e-6
SUM_TOLERANCE_FLOAT32 = 1e-4


def is_tensor(x: Any) -> bool:
    """True when ``x`` is a torch tensor."""
    return torch is not None and isinstance(x, torch.Tensor)


def as_array_or_tensor(x: Any, name: str):
    """Return a torch tensor unchanged (floating) or a float64 numpy array.

    Raises ``ValueError`` for empty input, a zero-dimensional value, or non-numeric data.
    """
    if is_tensor(x):
        if not torch.is_floating_point(x):
            x = x.to(torch.get_default_dtype())
        result = x
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
        return x.detach().to("cpu", torch.float64).numpy()
    return x


def check_finite(x, name: str) -> None:
    """Raise if ``x`` holds NaN or infinity."""
    values = _detached_numpy(x)
    if np.isnan(values).any():
        raise ValueError(f"{name} contains NaN")
    if np.isinf(values).any():
        raise ValueError(f"{name} contains infinite values")


def sum_tolerance(x) -> float:
    """Tolerance used when checking that probabilities sum to 1."""
    if is_tensor(x) and x.dtype != torch.float64:
        return SUM_TOLERANCE_FLOAT32
    return SUM_TOLERANCE_FLOAT64


def check_probabilities(p, name: str) -> None:
    """Check that ``p`` is a (batch of) probability vector(s) along the last axis.

    Raises ``ValueError`` for NaN/inf, negative entries, or sums further than
    :func:`sum_tolerance` from 1.
    """
    check_finite(p, name)
    values = _detached_numpy(p)
    if (values < 0).any():
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
    """Raise if two inputs differ in shape."""
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape (got {tuple(a.shape)} and {tuple(b.shape)})"
        )


def check_temperature(temperature: Any) -> float:
    """Return ``temperature`` as a float, raising unless it is a finite number > 0."""
    if is_tensor(temperature):
        if temperature.numel() != 1:
            raise ValueError(f"temperature must be a single number (got shape {tuple(temperature.shape)})")
        temperature = temperature.item()
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.integer, np.floating)):
        raise ValueError(f"temperature must be a number (got {type(temperature).__name__})")
    temperature = float(temperature)
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a finite number > 0 (got {temperature})")
    return temperature


def check_alpha(alpha: Any) -> float:
    """Return the loss weight ``alpha`` as a float, raising unless it is a number in [0, 1]."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)) \
            or not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1] (got {alpha!r})")
    return float(alpha)


def check_choice(value: Any, allowed: tuple[str, ...], name: str) -> str:
    """Raise unless ``value`` is one of the ``allowed`` strings."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(repr(a) for a in allowed)} (got {value!r})")
    return value
