r"""What to report beside a mean dissimilarity score: per-example KL and its quantiles, and calibration.

* :func:`per_example_kl`: :math:`\mathrm{KL}(p_t(\cdot|x_i)\,\|\,p_s(\cdot|x_i))` for every example (nats, T = 1);
* :func:`kl_quantiles`: quantiles of those values — a mean can hide a few inputs with a very large KL;
* :func:`expected_calibration_error`: :math:`\mathrm{ECE} = \sum_b \frac{n_b}{n}\,|\mathrm{acc}_b - \mathrm{conf}_b|`
  over equal-width bins of the model's top-class probability (the confidence): how far the confidence of a
  model's predictions is from how often they are right.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from kdcourse._validation import check_scalar
from kdcourse.losses import distillation_loss

__all__ = ["per_example_kl", "kl_quantiles", "expected_calibration_error"]


def per_example_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> np.ndarray:
    """``(n,)`` values of KL(p_t ‖ p_s) at T = 1, in nats, one per example (the teacher first)."""
    with torch.no_grad():
        values = distillation_loss(student_logits.detach(), teacher_logits.detach(), 1.0, reduction="none")
    return values.double().cpu().numpy()


def kl_quantiles(values: np.ndarray, quantiles: Sequence[float] = (0.5, 0.9, 0.99)) -> dict[float, float]:
    """``{q: the q-quantile of values}`` (linear interpolation), for each ``q`` in [0, 1]."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"values must be a non-empty 1-D array (got shape {values.shape})")
    qs = [check_scalar(q, "quantile", float, min_val=0, max_val=1) for q in quantiles]
    return {q: float(np.quantile(values, q)) for q in qs}


def expected_calibration_error(logits: torch.Tensor, labels: torch.Tensor, bins: int = 10) -> float:
    r"""ECE of the top-class probability over ``bins`` equal-width bins of [0, 1].

    .. math:: \mathrm{ECE} = \sum_{b=1}^{B} \frac{n_b}{n}\,\big|\mathrm{acc}_b - \mathrm{conf}_b\big|

    where bin :math:`b` holds the examples whose confidence :math:`\max_k p_k` falls in it (the last bin
    includes 1), :math:`\mathrm{acc}_b` is their accuracy and :math:`\mathrm{conf}_b` their mean confidence.

    Raises
    ------
    ValueError
        ``logits`` not ``(n, classes)``, ``labels`` not ``(n,)``, or ``bins`` < 1.
    """
    bins = check_scalar(bins, "bins", int, min_val=1)
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"logits must be (n, classes) and labels (n,) (got {tuple(logits.shape)} and "
                         f"{tuple(labels.shape)})")
    with torch.no_grad():
        probabilities = torch.softmax(logits.detach().double(), dim=-1)
    confidence, predicted = probabilities.max(dim=-1)
    correct = (predicted == labels.to(predicted.device)).double()
    index = torch.clamp((confidence * bins).long(), max=bins - 1)
    total = 0.0
    for b in range(bins):
        in_bin = index == b
        if in_bin.any():
            gap = (correct[in_bin].mean() - confidence[in_bin].mean()).abs()
            total += float(in_bin.double().mean() * gap)
    return total
