r"""Entropy, cross-entropy and divergences between categorical distributions.

All functions work on numpy arrays, Python sequences and torch tensors alike. They reduce along one
axis (the last by default), use the natural logarithm (results in nats), follow the conventions
:math:`0 \log 0 = 0` and :math:`p_k \log(p_k / 0) = +\infty` for :math:`p_k > 0`, and are
differentiable when given torch tensors.

Numpy input gives numpy output (a ``numpy.float64`` for a single distribution) and imports neither
torch nor scipy; torch input gives a torch tensor. Bad input raises ``ValueError`` naming the
argument and the problem; a temperature of the wrong type raises ``TypeError``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from kdcourse._validation import (
    as_array_or_tensor,
    check_finite,
    check_probabilities,
    check_same_shape,
    check_scalar,
    is_tensor,
)

if TYPE_CHECKING:  # torch is imported here only by type checkers
    import torch

ArrayLike = Union[np.ndarray, "torch.Tensor", list, tuple]

__all__ = ["softmax", "log_softmax", "entropy", "cross_entropy", "kl_divergence", "js_divergence"]


def _torch():
    """The torch module; only called once a tensor has been seen, so torch is already imported."""
    return sys.modules["torch"]


def _move_axis(x, source: int, destination: int):
    if source == destination:
        return x
    if is_tensor(x):
        return _torch().movedim(x, source, destination)
    return np.moveaxis(x, source, destination)


def _xlogy(x, y):
    r""":math:`x \log y`, elementwise, with :math:`0 \log y = 0` for every :math:`y` (also 0)."""
    if is_tensor(x):
        return _torch().xlogy(x, y)
    with np.errstate(divide="ignore", invalid="ignore"):
        product = x * np.log(y)
    return np.where(x == 0, 0.0, product)


def _sum_last(x):
    return x.sum(dim=-1) if is_tensor(x) else x.sum(axis=-1)


def _clamp_non_negative(x):
    """Remove round-off below zero (a divergence is never negative)."""
    return _torch().clamp(x, min=0.0) if is_tensor(x) else np.maximum(x, 0.0)


def kl_unchecked(p, q):
    r""":math:`\sum_k p_k (\log p_k - \log q_k)` over the last axis, for inputs already validated.

    The formula behind :func:`kl_divergence`, without its checks: for inner loops (an optimiser's
    objective) whose inputs are probability vectors by construction. Same types in, same out.
    """
    return _clamp_non_negative(_sum_last(_xlogy(p, p) - _xlogy(p, q)))


def _probabilities(p: Any, name: str, axis: int):
    values = _move_axis(as_array_or_tensor(p, name), axis, -1)
    check_probabilities(values, name)
    return values


def _pair(p: Any, q: Any, axis: int):
    p_values = _probabilities(p, "p", axis)
    q_values = _probabilities(q, "q", axis)
    if is_tensor(p_values) != is_tensor(q_values):
        # Mixed input: compute in torch so gradients keep flowing.
        torch = _torch()
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

    Parameters
    ----------
    logits : array-like or torch.Tensor
        Raw scores :math:`z`, classes along ``axis``.
    temperature : float, default=1.0
        :math:`T > 0`; a one-element tensor is accepted.
    axis : int, default=-1
        The class axis.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        Log-probabilities (nats), same shape as ``logits``.

    Raises
    ------
    TypeError
        If ``temperature`` is not a real number.
    ValueError
        If ``logits`` hold NaN/inf or are empty, or ``temperature`` is not finite and > 0.
    """
    temperature = check_scalar(temperature, "temperature", float, min_val=0, include_boundaries="neither")
    values = _move_axis(as_array_or_tensor(logits, "logits"), axis, -1)
    check_finite(values, "logits")
    if is_tensor(values):
        result = _torch().log_softmax(values / temperature, dim=-1)
    else:
        scaled = values / temperature
        shifted = scaled - scaled.max(axis=-1, keepdims=True)
        result = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return _move_axis(result, -1, axis)


def softmax(logits: ArrayLike, temperature: float = 1.0, axis: int = -1):
    r"""Tempered softmax :math:`p_k = \exp(z_k/T) / \sum_j \exp(z_j/T)`.

    ``T > 1`` flattens the distribution, ``T < 1`` sharpens it, ``T = 1`` is the usual softmax.
    Stable for huge logits.

    Parameters
    ----------
    logits : array-like or torch.Tensor
        Raw scores :math:`z`, classes along ``axis``.
    temperature : float, default=1.0
        :math:`T > 0`.
    axis : int, default=-1
        The class axis.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        Probabilities, same shape as ``logits``, summing to 1 along ``axis``.

    Raises
    ------
    TypeError
        If ``temperature`` is not a real number.
    ValueError
        If ``logits`` hold NaN/inf or ``temperature`` is not finite and > 0.
    """
    log_p = log_softmax(logits, temperature=temperature, axis=axis)
    return _torch().exp(log_p) if is_tensor(log_p) else np.exp(log_p)


def entropy(p: ArrayLike, axis: int = -1):
    r"""Shannon entropy in nats.

    .. math:: H(p) = -\sum_k p_k \log p_k \qquad (0 \log 0 = 0)

    Parameters
    ----------
    p : array-like or torch.Tensor
        Probabilities along ``axis``; leading axes are a batch.
    axis : int, default=-1
        The class axis.

    Returns
    -------
    numpy.float64, numpy.ndarray or torch.Tensor
        One entropy per distribution (``axis`` removed), in nats, between 0 and :math:`\log K`.

    Raises
    ------
    ValueError
        If ``p`` is not a probability vector along ``axis``.
    """
    values = _probabilities(p, "p", axis)
    return _clamp_non_negative(-_sum_last(_xlogy(values, values)))


def cross_entropy(p: ArrayLike, q: ArrayLike, axis: int = -1):
    r"""Cross-entropy in nats.

    .. math:: H(p, q) = -\sum_k p_k \log q_k = H(p) + \mathrm{KL}(p \,\|\, q)

    It is :math:`+\infty` when some :math:`q_k = 0 < p_k`.

    Parameters
    ----------
    p, q : array-like or torch.Tensor
        Probabilities of the same shape, classes along ``axis``.
    axis : int, default=-1
        The class axis.

    Returns
    -------
    numpy.float64, numpy.ndarray or torch.Tensor
        One value per distribution, in nats.

    Raises
    ------
    ValueError
        For mismatched shapes or invalid probabilities.
    """
    p_values, q_values = _pair(p, q, axis)
    return -_sum_last(_xlogy(p_values, q_values))


def kl_divergence(p: ArrayLike, q: ArrayLike, axis: int = -1):
    r"""Kullback–Leibler divergence in nats.

    .. math:: \mathrm{KL}(p \,\|\, q) = \sum_k p_k \left(\log p_k - \log q_k\right) = H(p, q) - H(p)

    The first argument is the reference: for distillation, ``kl_divergence(p_teacher, p_student)``.
    It is ≥ 0, zero only when ``p == q``, not symmetric, and :math:`+\infty` when some
    :math:`q_k = 0 < p_k`.

    Parameters
    ----------
    p : array-like or torch.Tensor
        The reference distribution(s), classes along ``axis``.
    q : array-like or torch.Tensor
        The approximating distribution(s), same shape as ``p``.
    axis : int, default=-1
        The class axis.

    Returns
    -------
    numpy.float64, numpy.ndarray or torch.Tensor
        One divergence per distribution (``axis`` removed), in nats.

    Raises
    ------
    ValueError
        For mismatched shapes, NaN/inf, negative entries, or vectors that do not sum to 1
        (tolerance 1e-6 in float64, 1e-4 in lower precision).

    Examples
    --------
    >>> round(float(kl_divergence([0.7, 0.2, 0.1], [0.65, 0.22, 0.13])), 6)
    0.006577
    """
    return kl_unchecked(*_pair(p, q, axis))


def js_divergence(p: ArrayLike, q: ArrayLike, axis: int = -1):
    r"""Jensen–Shannon divergence in nats, symmetric and bounded by :math:`\log 2`.

    .. math:: \mathrm{JS}(p, q) = \tfrac12 \mathrm{KL}(p \,\|\, m) + \tfrac12 \mathrm{KL}(q \,\|\, m),
              \quad m = \tfrac12 (p + q)

    Parameters
    ----------
    p, q : array-like or torch.Tensor
        The two distributions (same shape; the order does not matter), classes along ``axis``.
    axis : int, default=-1
        Which axis holds the classes.

    Returns
    -------
    numpy.float64, numpy.ndarray or torch.Tensor
        In nats, between 0 and :math:`\log 2`, one per distribution.

    Raises
    ------
    ValueError
        For mismatched shapes or invalid probabilities.
    """
    p_values, q_values = _pair(p, q, axis)
    mixture = 0.5 * (p_values + q_values)
    terms_p = _xlogy(p_values, p_values) - _xlogy(p_values, mixture)
    terms_q = _xlogy(q_values, q_values) - _xlogy(q_values, mixture)
    return _clamp_non_negative(0.5 * _sum_last(terms_p) + 0.5 * _sum_last(terms_q))
