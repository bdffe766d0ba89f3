r"""Entropy, cross-entropy and divergences between categorical distributions.

All functions work on numpy arrays, Python sequences and torch tensors alike. They reduce
along one axis (the last by default), use the natural logarithm (results in nats), follow the
conventions :math:`0 \log 0 = 0` and :math:`p_k \log(p_k / 0) = +\infty` for :math:`p_k > 0`,
and are differentiable when given torch tensors.

Numpy input gives numpy output (a ``numpy.float64`` for a single distribution); torch input
gives a torch tensor. Bad input raises ``ValueError`` naming the argument and the problem.
"""

from __future__ import annotations

from typing import Any, Union

import numpy as np
from scipy import special

from kdcourse._validation import (
    as_array_or_tensor,
    check_finite,
    check_probabilities,
    check_same_shape,
    check_temperature,
    is_tensor,
    torch,
)

ArrayLike = Union[np.ndarray, "torch.Tensor", list, tuple]

__all__ = ["softmax", "log_softmax", "entropy", "cross_entropy", "kl_divergence", "js_divergence"]


def _move_axis_last(x, axis: int):
    if axis == -1:
        return x
    if is_tensor(x):
        return torch.movedim(x, axis, -1)
    return np.moveaxis(x, axis, -1)


def _xlogy(x, y):
    """x·log(y) with 0·log(anything) = 0."""
    if is_tensor(x):
        return torch.xlogy(x, y)
    with np.errstate(divide="ignore", invalid="ignore"):
        return special.xlogy(x, y)


def _sum_last(x):
    return x.sum(dim=-1) if is_tensor(x) else x.sum(axis=-1)


def _clamp_non_negative(x):
    """Remove round-off below zero (a divergence is never negative)."""
    return torch.clamp(x, min=0.0) if is_tensor(x) else np.maximum(x, 0.0)


def _probabilities(p: Any, name: str, axis: int):
    values = _move_axis_last(as_array_or_tensor(p, name), axis)
    check_probabilities(values, name)
    return values


def _pair(p: Any, q: Any, axis: int):
    p_values = _probabilities(p, "p", axis)
    q_values = _probabilities(q, "q", axis)
    if is_tensor(p_values) != is_tensor(q_values):
        # Mixed input: compute in torch so gradients keep flowing.
        if is_tensor(p_values):
            q_values = torch.as_tensor(q_values, dtype=p_values.dtype, device=p_values.device)
        else:
            p_values = torch.as_tensor(p_values, dtype=q_values.dtype, device=q_values.device)
    check_same_shape(p_values, q_values, "p", "q")
    return p_values, q_values


def log_softmax(logits: ArrayLike, temperature: float = 1.0, axis: int = -1):
    r"""Log of the tempered softmax, computed stably.

    .. math:: \log p_k = z_k / T - \log \sum_j \exp(z_j / T)

    The maximum is subtracted before exponentiating, so logits of ±1e4 are fine.

    Raises ``ValueError`` when ``logits`` hold NaN/inf or ``temperature`` is not a number > 0.
    """
    temperature = check_temperature(temperature)
    values = _move_axis_last(as_array_or_tensor(logits, "logits"), axis)
    check_finite(values, "logits")
    if is_tensor(values):
        result = torch.log_softmax(values / temperature, dim=-1)
    else:
        scaled = values / temperature
        shifted = scaled - scaled.max(axis=-1, keepdims=True)
        result = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return result if axis == -1 else _restore_axis(result, axis)


def _restore_axis(x, axis: int):
    if is_tensor(x):
        return torch.movedim(x, -1, axis)
    return np.moveaxis(x, -1, axis)


def softmax(logits: ArrayLike, temperature: float = 1.0, axis: int = -1):
    r"""Tempered softmax :math:`p_k = \exp(z_k/T) / \sum_j \exp(z_j/T)`.

    ``T > 1`` flattens the distribution, ``T < 1`` sharpens it, ``T = 1`` is the usual softmax.
    Stable for huge logits. Raises ``ValueError`` for NaN/inf logits or ``temperature <= 0``.
    """
    log_p = log_softmax(logits, temperature=temperature, axis=axis)
    return torch.exp(log_p) if is_tensor(log_p) else np.exp(log_p)


def entropy(p: ArrayLike, axis: int = -1):
    r"""Shannon entropy in nats, :math:`H(p) = -\sum_k p_k \log p_k` (with :math:`0 \log 0 = 0`).

    Raises ``ValueError`` if ``p`` is not a probability vector along ``axis``.
    """
    values = _probabilities(p, "p", axis)
    return _clamp_non_negative(-_sum_last(_xlogy(values, values)))


def cross_entropy(p: ArrayLike, q: ArrayLike, axis: int = -1):
    r"""Cross-entropy in nats, :math:`H(p, q) = -\sum_k p_k \log q_k`.

    It equals :math:`H(p) + \mathrm{KL}(p \,\|\, q)` and is :math:`+\infty` when some
    :math:`q_k = 0 < p_k`. Raises ``ValueError`` for mismatched shapes or invalid probabilities.
    """
    p_values, q_values = _pair(p, q, axis)
    return -_sum_last(_xlogy(p_values, q_values))


def kl_divergence(p: ArrayLike, q: ArrayLike, axis: int = -1):
    r"""Kullback–Leibler divergence in nats.

    .. math:: \mathrm{KL}(p \,\|\, q) = \sum_k p_k \left(\log p_k - \log q_k\right) = H(p, q) - H(p)

    The first argument is the reference: for distillation, ``kl_divergence(p_teacher, p_student)``.
    It is ≥ 0, zero only when ``p == q``, not symmetric, and :math:`+\infty` when some
    :math:`q_k = 0 < p_k`. Raises ``ValueError`` for mismatched shapes, NaN/inf, negative entries,
    or vectors that do not sum to 1 (tolerance 1e-6 in float64, 1e-4 in lower precision).

    >>> round(float(kl_divergence([0.7, 0.2, 0.1], [0.65, 0.22, 0.13])), 6)
    0.006577
    """
    p_values, q_values = _pair(p, q, axis)
    terms = _xlogy(p_values, p_values) - _xlogy(p_values, q_values)
    return _clamp_non_negative(_sum_last(terms))


def js_divergence(p: ArrayLike, q: ArrayLike, axis: int = -1):
    r"""Jensen–Shannon divergence in nats, symmetric and bounded by :math:`\log 2`.

    .. math:: \mathrm{JS}(p, q) = \tfrac12 \mathrm{KL}(p \,\|\, m) + \tfrac12 \mathrm{KL}(q \,\|\, m),
              \quad m = \tfrac12 (p + q)
    """
    p_values, q_values = _pair(p, q, axis)
    mixture = 0.5 * (p_values + q_values)
    terms_p = _xlogy(p_values, p_values) - _xlogy(p_values, mixture)
    terms_q = _xlogy(q_values, q_values) - _xlogy(q_values, mixture)
    return _clamp_non_negative(0.5 * _sum_last(terms_p) + 0.5 * _sum_last(terms_q))
