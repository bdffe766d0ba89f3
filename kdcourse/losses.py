r"""Distillation losses on logits (torch).

Notation: student logits :math:`z`, teacher logits :math:`v`, temperature :math:`T`,
:math:`p_s^T = \mathrm{softmax}(z/T)`, :math:`p_t^T = \mathrm{softmax}(v/T)`.
Everything is computed from log-probabilities, so a teacher probability that underflows
to 0 contributes exactly 0 instead of ``0 · (-inf) = NaN``.

The :math:`T^2\,\mathrm{KL}` loss is written once, in :func:`per_example_distillation_loss`;
:func:`distillation_loss`, :func:`combined_loss` and :func:`kdcourse.training.distill` all call it.
torch is imported when a loss is first computed, so that :data:`DIRECTIONS` costs nothing to import
for the numpy-only modules (:mod:`kdcourse.fits`, :mod:`kdcourse.explorers`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kdcourse._validation import check_choice, check_scalar

if TYPE_CHECKING:
    import torch

__all__ = [
    "DIRECTIONS",
    "REDUCTIONS",
    "kl_from_log_probs",
    "per_example_distillation_loss",
    "combined_loss_from_log_probs",
    "distillation_loss",
    "combined_loss",
]

#: The two directions of the KL: ``"forward"`` is KL(teacher ‖ student), ``"reverse"`` KL(student ‖ teacher).
DIRECTIONS = ("forward", "reverse")
REDUCTIONS = ("batchmean", "sum", "none")


def _check_logits(student_logits, teacher_logits) -> None:
    import torch

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
    import torch

    for name, value in (("student_logits", student_logits), ("teacher_logits", teacher_logits)):
        if value.numel() == 0:
            continue
        # min and max carry any NaN or ±inf; far cheaper than an elementwise isfinite on big inputs.
        extremes = torch.stack(torch.aminmax(value.detach()))
        if not bool(torch.isfinite(extremes).all()):
            raise ValueError(f"{name} contains NaN or infinite values")


def _check_targets(targets, student_logits: torch.Tensor) -> None:
    import torch

    if not isinstance(targets, torch.Tensor) or targets.dtype not in (torch.int64, torch.int32):
        raise ValueError("targets must be a torch tensor of integer class indices")
    if targets.shape != student_logits.shape[:1]:
        raise ValueError(f"targets must have shape ({student_logits.shape[0]},) (got {tuple(targets.shape)})")
    if targets.numel() == 0:
        return
    num_classes = student_logits.shape[1]
    smallest, largest = (int(value) for value in torch.aminmax(targets))  # one reduction, one sync
    if smallest < 0 or largest >= num_classes:
        raise ValueError(
            f"targets must be class indices in [0, {num_classes - 1}] (got values in [{smallest}, {largest}])"
        )


def kl_from_log_probs(
    log_p_student: torch.Tensor, log_p_teacher: torch.Tensor, direction: str = "forward"
) -> torch.Tensor:
    r"""Per-example KL from log-probabilities, summed over the last axis (no :math:`T^2`).

    .. math::
        \text{forward:}\quad \sum_k p_{t,k} (\log p_{t,k} - \log p_{s,k}), \qquad
        \text{reverse:}\quad \sum_k p_{s,k} (\log p_{s,k} - \log p_{t,k})

    Parameters
    ----------
    log_p_student, log_p_teacher : torch.Tensor
        Log-probabilities of the same shape ``(..., classes)``. Not checked: this is the inner step of
        the losses.
    direction : {"forward", "reverse"}, default="forward"
        Which KL.

    Returns
    -------
    torch.Tensor
        Shape ``(...)``, in nats.

    Raises
    ------
    ValueError
        If ``direction`` is not ``"forward"`` or ``"reverse"``.
    """
    check_choice(direction, DIRECTIONS, "direction")
    if direction == "forward":
        return (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=-1)
    return (log_p_student.exp() * (log_p_student - log_p_teacher)).sum(dim=-1)


def per_example_distillation_loss(
    student_logits: torch.Tensor, log_p_teacher: torch.Tensor, temperature: float, direction: str = "forward"
) -> torch.Tensor:
    r"""The distillation loss of each example, :math:`T^2\,\mathrm{KL}`, from precomputed teacher log-probabilities.

    .. math:: \ell_b = T^2 \, \mathrm{KL}\big(p_{t,b}^T \,\|\, p_{s,b}^T\big), \qquad
              \log p_s^T = \mathrm{log\_softmax}(z / T)

    (the arguments swapped for ``direction="reverse"``). This is the one place the loss is written;
    training loops call it with the frozen teacher's :math:`\log p_t^T` computed once per run.

    Parameters
    ----------
    student_logits : torch.Tensor
        ``(batch, classes)`` raw scores :math:`z`.
    log_p_teacher : torch.Tensor
        ``(batch, classes)`` tempered teacher log-probabilities :math:`\log \mathrm{softmax}(v / T)`,
        computed with the same ``temperature`` and without gradient.
    temperature : float
        :math:`T`, already validated (no checks here).
    direction : {"forward", "reverse"}, default="forward"

    Returns
    -------
    torch.Tensor
        Shape ``(batch,)``, in nats.

    Raises
    ------
    ValueError
        If ``direction`` is not ``"forward"`` or ``"reverse"``.
    """
    import torch.nn.functional as F

    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    return kl_from_log_probs(log_p_student, log_p_teacher, direction) * (temperature**2)


def combined_loss_from_log_probs(
    student_logits: torch.Tensor,
    targets: torch.Tensor,
    log_p_teacher: torch.Tensor,
    alpha: float,
    temperature: float,
    direction: str = "forward",
) -> torch.Tensor:
    r"""Batch mean of :math:`\alpha\,\mathrm{CE}(y, p_s) + (1-\alpha)\,T^2\,\mathrm{KL}`, no checks.

    The inner step of :func:`combined_loss` and :func:`kdcourse.training.distill`. A term whose weight
    is 0 is not computed (so ``alpha=0`` never reads ``targets``).

    Parameters
    ----------
    student_logits : torch.Tensor
        ``(batch, classes)`` raw scores.
    targets : torch.Tensor
        ``(batch,)`` integer class indices (unused when ``alpha == 0``).
    log_p_teacher : torch.Tensor
        ``(batch, classes)`` tempered teacher log-probabilities, see :func:`per_example_distillation_loss`.
    alpha : float
        Weight of the hard-label cross-entropy, in [0, 1].
    temperature : float
        :math:`T > 0`.
    direction : {"forward", "reverse"}, default="forward"

    Returns
    -------
    torch.Tensor
        A scalar, in nats.
    """
    import torch.nn.functional as F

    if alpha == 1:
        return F.cross_entropy(student_logits, targets.long())
    soft = per_example_distillation_loss(student_logits, log_p_teacher, temperature, direction).mean()
    if alpha == 0:
        return soft
    return alpha * F.cross_entropy(student_logits, targets.long()) + (1.0 - alpha) * soft


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

    Parameters
    ----------
    student_logits : torch.Tensor
        ``(batch, classes)`` raw scores of the student.
    teacher_logits : torch.Tensor
        ``(batch, classes)`` raw scores of the teacher.
    temperature : float, default=1.0
        :math:`T > 0`; a one-element tensor is accepted.
    direction : {"forward", "reverse"}, default="forward"
        ``"forward"`` (teacher first, the usual distillation loss) or ``"reverse"``.
    reduction : {"batchmean", "sum", "none"}, default="batchmean"
        ``"batchmean"`` sums over classes and averages over the batch (the true KL per example),
        ``"sum"`` sums over both, ``"none"`` returns one value per example.
    check_finite : bool, default=True
        Raise on NaN/inf logits (costs a host sync; training loops turn it off).

    Returns
    -------
    torch.Tensor
        A scalar in nats, or shape ``(batch,)`` for ``reduction="none"``.

    Raises
    ------
    TypeError
        If ``temperature`` is not a real number.
    ValueError
        Wrong shapes or dtype, ``temperature`` not finite and > 0, unknown ``direction`` or
        ``reduction``, or (with ``check_finite``) NaN/inf logits.
    """
    import torch.nn.functional as F

    _check_logits(student_logits, teacher_logits)
    temperature = check_scalar(temperature, "temperature", float, min_val=0, include_boundaries="neither")
    check_choice(direction, DIRECTIONS, "direction")
    check_choice(reduction, REDUCTIONS, "reduction")
    if check_finite:
        _check_finite_logits(student_logits, teacher_logits)

    log_p_teacher = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)
    per_example = per_example_distillation_loss(student_logits, log_p_teacher, temperature, direction)
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

    Parameters
    ----------
    student_logits, teacher_logits : torch.Tensor
        ``(batch, classes)`` raw scores.
    targets : torch.Tensor
        ``(batch,)`` integer class indices in ``[0, classes)``; always range-checked (one min/max).
    alpha : float
        Weight of the hard-label cross-entropy, in [0, 1].
    temperature : float
        :math:`T > 0` of the soft term.
    check_finite : bool, default=True
        Raise on NaN/inf logits (costs a host sync).

    Returns
    -------
    torch.Tensor
        A scalar, in nats.

    Raises
    ------
    TypeError
        If ``alpha`` or ``temperature`` is not a real number.
    ValueError
        ``alpha`` outside [0, 1], ``targets`` not integer class indices of shape ``(batch,)`` within
        range, plus everything :func:`distillation_loss` rejects.
    """
    import torch.nn.functional as F

    alpha = check_scalar(alpha, "alpha", float, min_val=0, max_val=1)
    _check_logits(student_logits, teacher_logits)
    temperature = check_scalar(temperature, "temperature", float, min_val=0, include_boundaries="neither")
    _check_targets(targets, student_logits)
    if check_finite:
        _check_finite_logits(student_logits, teacher_logits)
    log_p_teacher = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)
    return combined_loss_from_log_probs(student_logits, targets, log_p_teacher, alpha, temperature)
