r"""Distillation losses on logits (torch).

Notation: student logits :math:`z`, teacher logits :math:`v`, temperature :math:`T`,
:math:`p_s^T = \mathrm{softmax}(z/T)`, :math:`p_t^T = \mathrm{softmax}(v/T)`.
Everything is computed from log-probabilities, so a teacher probability that underflows
to 0 contributes exactly 0 instead of ``0 · (-inf) = NaN``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdcourse._validation import check_alpha, check_choice, check_temperature

__all__ = ["distillation_loss", "combined_loss"]

DIRECTIONS = ("forward", "reverse")
REDUCTIONS = ("batchmean", "sum", "none")


def _check_logits(student_logits, teacher_logits) -> None:
    for name, value in (("student_logits", student_logits), ("teacher_logits", teacher_logits)):
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{name} must be a torch tensor (got {type(value).__name__})")
        if value.ndim != 2:
            raise ValueError(f"{name} must have shape (batch, classes) (got shape {tuple(value.shape)})")
        if not torch.is_floating_point(value):
            raise ValueError(f"{name} must be floating point (got dtype {value.dtype})")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            "student_logits and teacher_logits must have the same shape "
            f"(got {tuple(student_logits.shape)} and {tuple(teacher_logits.shape)})"
        )


def _check_finite_logits(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> None:
    for name, value in (("student_logits", student_logits), ("teacher_logits", teacher_logits)):
        if value.numel() == 0:
            continue
        # min and max carry any NaN or ±inf; far cheaper than an elementwise isfinite on big inputs.
        extremes = torch.stack(torch.aminmax(value.detach()))
        if not bool(torch.isfinite(extremes).all()):
            raise ValueError(f"{name} contains NaN or infinite values")


def kl_from_log_probs(
    log_p_student: torch.Tensor, log_p_teacher: torch.Tensor, direction: str = "forward"
) -> torch.Tensor:
    r"""Per-example KL from log-probabilities, summed over the last axis (no checks, no :math:`T^2`).

    ``"forward"``: :math:`\sum_k p_{t,k} (\log p_{t,k} - \log p_{s,k})`;
    ``"reverse"``: :math:`\sum_k p_{s,k} (\log p_{s,k} - \log p_{t,k})`.
    Training loops call this with teacher log-probabilities computed once per run.
    """
    if direction == "forward":
        return (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=-1)
    return (log_p_student.exp() * (log_p_student - log_p_teacher)).sum(dim=-1)


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 1.0,
    direction: str = "forward",
    reduction: str = "batchmean",
    check_finite: bool = True,
) -> torch.Tensor:
    r"""Knowledge-distillation loss between tempered softmax outputs, scaled by :math:`T^2`.

    .. math::
        \text{forward:}\quad T^2 \, \mathrm{KL}(p_t^T \,\|\, p_s^T)
            = T^2 \sum_k p_{t,k}^T \left(\log p_{t,k}^T - \log p_{s,k}^T\right)

        \text{reverse:}\quad T^2 \, \mathrm{KL}(p_s^T \,\|\, p_t^T)

    The :math:`T^2` factor (Hinton et al. 2015) keeps the gradient's size roughly independent
    of ``T``: for "forward", :math:`\partial L / \partial z = T (p_s^T - p_t^T)` per example.
    The teacher logits are detached: no gradient reaches the teacher.

    Args:
        student_logits: ``(batch, classes)`` raw scores of the student.
        teacher_logits: ``(batch, classes)`` raw scores of the teacher.
        temperature: ``T > 0``.
        direction: ``"forward"`` (teacher first, the usual distillation loss) or ``"reverse"``.
        reduction: ``"batchmean"`` (sum over classes, mean over the batch: the true KL per example),
            ``"sum"`` or ``"none"`` (one value per example, shape ``(batch,)``).
        check_finite: raise on NaN/inf logits (costs a host sync; training loops turn it off).

    Returns:
        A scalar tensor in nats (or ``(batch,)`` for ``reduction="none"``).

    Raises:
        ValueError: wrong shapes or dtype, ``temperature <= 0``, unknown ``direction`` or
            ``reduction``, or (with ``check_finite``) NaN/inf logits.
    """
    _check_logits(student_logits, teacher_logits)
    temperature = check_temperature(temperature)
    check_choice(direction, DIRECTIONS, "direction")
    check_choice(reduction, REDUCTIONS, "reduction")
    if check_finite:
        _check_finite_logits(student_logits, teacher_logits)

    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)
    per_example = kl_from_log_probs(log_p_student, log_p_teacher, direction) * (temperature**2)

    if reduction == "none":
        return per_example
    if reduction == "sum":
        return per_example.sum()
    return per_example.sum() / student_logits.shape[0]


def combined_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: float,
    temperature: float,
    check_finite: bool = True,
) -> torch.Tensor:
    r"""Hinton et al. (2015) objective: hard-label cross-entropy plus the soft distillation term.

    .. math::
        L = \alpha \, \mathrm{CE}\big(y, \mathrm{softmax}(z)\big)
            + (1 - \alpha) \, T^2 \, \mathrm{KL}\big(p_t^T \,\|\, p_s^T\big)

    Convention: ``alpha`` weights the **hard-label** term. ``alpha = 1`` is ordinary supervised
    training; ``alpha = 0`` is pure imitation of the teacher (its mistakes included). Both terms are
    batch means.

    Raises:
        ValueError: ``alpha`` outside [0, 1], ``targets`` not integer class indices of shape
            ``(batch,)`` within range, plus everything :func:`distillation_loss` rejects.
    """
    alpha = check_alpha(alpha)
    _check_logits(student_logits, teacher_logits)
    if not isinstance(targets, torch.Tensor) or targets.dtype not in (torch.int64, torch.int32):
        raise ValueError("targets must be a torch tensor of integer class indices")
    if targets.shape != student_logits.shape[:1]:
        raise ValueError(
            f"targets must have shape ({student_logits.shape[0]},) (got {tuple(targets.shape)})"
        )
    if check_finite:
        num_classes = student_logits.shape[1]
        if bool((targets < 0).any()) or bool((targets >= num_classes).any()):
            raise ValueError(f"targets must be class indices in [0, {num_classes - 1}]")
    hard = F.cross_entropy(student_logits, targets.long())
    soft = distillation_loss(
        student_logits, teacher_logits, temperature=temperature, check_finite=check_finite
    )
    return alpha * hard + (1.0 - alpha) * soft
