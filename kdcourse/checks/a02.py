r"""Checks for assignment a02 (temperature, the distillation loss in torch, its gradient).

Notation: student logits :math:`z`, teacher logits :math:`v`, temperature :math:`T`,
:math:`p_s^T = \mathrm{softmax}(z/T)`, :math:`p_t^T = \mathrm{softmax}(v/T)`, batch size :math:`B`.
The distillation loss is :math:`L = \frac{T^2}{B}\sum_b \mathrm{KL}(p_t^T \| p_s^T)` and its gradient
with respect to the student logits is :math:`T (p_s^T - p_t^T) / B`.

Each check raises :class:`~kdcourse.checks.common.WrongAnswer` naming the misconception it recognised
(arguments swapped, :math:`T^2` missing or applied twice, temperature on one side only,
``reduction="mean"``, probabilities passed as log-probabilities, softmax over the wrong dimension,
NaN from :math:`0 \log 0`, a gradient cut by ``.item()``/``.detach()``/numpy, ...).
Hidden checks receive their hard-coded float64 expectations from the notebook.
"""

from __future__ import annotations

import numpy as np
import torch

from .common import (
    WrongAnswer,
    as_float64_array,
    call_student,
    check_answer,
    check_choice,
    close,
    find_delegation,
    forbid_delegation,
    require_answered,
)

__all__ = [
    "check_softmax_with_temperature",
    "check_softmax_values",
    "check_distillation_loss",
    "check_distillation_loss_values",
    "check_distillation_gradient",
    "check_gradient_values",
    "check_kd_loss_fixed",
    "check_kd_loss_fixed_values",
    "check_combined_loss",
    "check_combined_loss_values",
    "check_format",
    "check_answer",
]

# Trusted references, captured before any student code runs.
_log_softmax = torch.log_softmax
_softmax = torch.softmax
_tensor = torch.tensor
_Tensor = torch.Tensor
_float64 = torch.float64
_isfinite = torch.isfinite
_xlogy = torch.xlogy

RTOL, ATOL = 1e-5, 1e-8
BANNED_LOSS_NAMES = ("kl_div", "KLDivLoss", "distillation_loss", "rel_entr")
BANNED_GRADIENT_NAMES = BANNED_LOSS_NAMES + ("backward", "grad", "autograd")


# --- trusted maths (float64) ----------------------------------------------------------------


def _t(x) -> torch.Tensor:
    return _tensor(x, dtype=_float64) if not isinstance(x, _Tensor) else x.detach().to(_float64)


def _kl_rows(log_p, log_q):
    """Σ_k p_k (log p_k − log q_k) per row, from log-probabilities (0·log 0 = 0)."""
    p = log_p.exp()
    return (p * (log_p - log_q)).sum(-1)


def _loss_variants(z, v, T):
    """Values that known misconceptions give for the batch-mean KD loss T²·KL(p_t^T‖p_s^T)."""
    B, C = z.shape
    ls, lt = _log_softmax(z / T, -1), _log_softmax(v / T, -1)
    rows = _kl_rows(lt, ls)
    correct = T * T * rows.mean()
    variants = [
        (T * T * _kl_rows(ls, lt).mean(),
         "this is KL(p_s‖p_t) with the student first: the arguments are swapped. The distillation loss is "
         "KL(p_t‖p_s): the teacher comes first and weights the log-ratio."),
        (rows.mean(), "the T² factor is missing: multiply the KL by T² so that the gradient keeps its size "
                      "as T changes (Hinton et al. 2015)."),
        (T ** 4 * rows.mean(), "T² is applied twice (your value is T⁴·KL): multiply by T² once."),
        (T * rows.mean(), "you multiplied by T instead of T²."),
        (T * T * _kl_rows(lt, _log_softmax(z, -1)).mean(),
         "temperature on one side only: you softened the teacher (v/T) but not the student (z). "
         "Divide BOTH logits by T."),
        (T * T * _kl_rows(_log_softmax(v, -1), ls).mean(),
         "temperature on one side only: you softened the student (z/T) but not the teacher (v). "
         "Divide BOTH logits by T."),
        (correct / C, "this is reduction=\"mean\": you averaged over batch × classes, which gives 1/C of the "
                      "KL. Sum over classes, then average over the batch (\"batchmean\")."),
        (T * T * rows.sum(), "you summed over the batch (reduction=\"sum\"); take the mean over the batch "
                             "(\"batchmean\") so the loss does not grow with the batch size."),
        (T * T * (lt.exp() * (lt - ls.exp())).sum(-1).mean(),
         "you used the student's probabilities where log-probabilities belong: the KL needs log p_s "
         "(log_softmax), not p_s."),
        (T * T * (lt.exp() * (lt - ls.exp())).sum(-1).mean() / C,
         "probabilities passed where log-probabilities belong AND reduction=\"mean\"."),
        (-T * T * rows.mean(), "the sign is flipped: KL(p_t‖p_s) = Σ p_t (log p_t − log p_s) ≥ 0."),
        (T * T * rows, "you returned one value per example; average them over the batch (a scalar loss)."),
    ]
    if B > 1:
        ls0, lt0 = _log_softmax(z / T, 0), _log_softmax(v / T, 0)
        variants.append(
            (T * T * (lt0.exp() * (lt0 - ls0)).sum(-1).mean(),
             "softmax over the wrong dimension: you normalised over the batch (dim=0); "
             "probabilities must sum to 1 over the classes (dim=-1)."))
        variants.append(
            (T * T * (lt0.exp() * (lt0 - ls0)).sum(0).mean(),
             "softmax over the wrong dimension: you normalised over the batch (dim=0); "
             "probabilities must sum to 1 over the classes (dim=-1)."))
    return correct, variants


def _gradient_variants(z, v, T):
    B = z.shape[0]
    diff = _softmax(z / T, -1) - _softmax(v / T, -1)
    correct = T * diff / B
    return correct, [
        (-correct, "the sign is flipped: the gradient is T·(p_s − p_t)/B (student minus teacher)."),
        (diff / B, "the factor T is missing: with the T² scaling the gradient is T²·(p_s − p_t)/(T·B) = T·(p_s − p_t)/B."),
        (diff / (T * B), "this is the gradient of the KL without the T² factor, (p_s − p_t)/(T·B); the loss "
                         "you differentiate is T²·KL, so the gradient is T·(p_s − p_t)/B."),
        (T * T * diff / B, "one T too many: the chain rule through z/T contributes 1/T, so T²·(1/T) = T."),
        (T * diff, "the 1/B from the batch mean is missing."),
        (_softmax(z, -1) - _softmax(v, -1), "you dropped both T and 1/B, and the temperature in the softmax."),
    ]


def _combined_variants(z, v, y, alpha, T):
    ce = -_log_softmax(z, -1).gather(-1, y.view(-1, 1)).squeeze(-1).mean()
    ce_T = -_log_softmax(z / T, -1).gather(-1, y.view(-1, 1)).squeeze(-1).mean()
    kl = _kl_rows(_log_softmax(v / T, -1), _log_softmax(z / T, -1)).mean()
    correct = alpha * ce + (1 - alpha) * T * T * kl
    return correct, [
        ((1 - alpha) * ce + alpha * T * T * kl,
         "alpha weights the wrong term: in this course alpha multiplies the hard-label cross-entropy and "
         "(1 − alpha) the distillation term."),
        (alpha * ce + (1 - alpha) * kl, "the T² factor on the distillation term is missing."),
        (alpha * ce_T + (1 - alpha) * T * T * kl,
         "the cross-entropy with the labels uses the softened student (z/T); it must use T = 1."),
        (alpha * ce + (1 - alpha) * _kl_rows(_log_softmax(v, -1), _log_softmax(z, -1)).mean(),
         "the distillation term ignores the temperature: use softmax(v/T) and softmax(z/T)."),
        (alpha * ce + (1 - alpha) * T * T * _kl_rows(_log_softmax(z / T, -1), _log_softmax(v / T, -1)).mean(),
         "the distillation term is KL(p_s‖p_t) with the student first: the arguments are swapped; "
         "it must be KL(p_t‖p_s)."),
    ]


# --- conversion and comparison --------------------------------------------------------------


def _fmt(x) -> str:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0:
        return f"{float(a):.6g}"
    return np.array2string(a, precision=5, separator=", ")


def _tensor_result(value, name: str, ndim: int | None = None) -> torch.Tensor:
    if value is None:
        raise WrongAnswer(f"{name} returned None: did you forget the `return` statement?")
    if isinstance(value, (float, int, np.floating)):
        raise WrongAnswer(
            f"{name} returned a Python/numpy number, not a torch tensor: .item() (or float()) breaks the "
            "computation graph, so no gradient can reach the student. Return the tensor."
        )
    if isinstance(value, np.ndarray):
        raise WrongAnswer(
            f"{name} returned a numpy array: a round trip through numpy breaks the computation graph. "
            "Stay in torch."
        )
    if type(value) is not _Tensor and not isinstance(value, _Tensor):
        raise WrongAnswer(f"{name} must return a torch tensor (got {type(value).__name__})")
    if ndim is not None and value.ndim != ndim:
        if ndim == 0:
            raise WrongAnswer(
                f"{name} must return a scalar tensor (shape ()), got shape {tuple(value.shape)}: "
                "sum over classes and average over the batch."
            )
        raise WrongAnswer(f"{name} returned shape {tuple(value.shape)}, expected {ndim} dimensions")
    return value


def _compare(call_text, actual, expected, variants, nan_hint=""):
    actual_np = as_float64_array(actual, "the result")
    expected_np = np.asarray(as_float64_array(expected, "expected"))
    if actual_np.shape == expected_np.shape and close(actual_np, expected_np, rtol=RTOL, atol=ATOL):
        return
    if not bool(np.isfinite(actual_np).all()) and bool(np.isfinite(expected_np).all()):
        raise WrongAnswer(f"{call_text} returned {_fmt(actual_np)} (expected {_fmt(expected_np)}). {nan_hint}".strip())
    for value, message in variants:
        value_np = as_float64_array(value, "variant")
        if value_np.shape == actual_np.shape and close(actual_np, value_np, rtol=RTOL, atol=ATOL):
            raise WrongAnswer(f"{call_text}: {message}")
    if actual_np.shape != expected_np.shape:
        raise WrongAnswer(f"{call_text} returned shape {actual_np.shape}, expected {expected_np.shape}.")
    raise WrongAnswer(f"{call_text} returned {_fmt(actual_np)}, expected {_fmt(expected_np)}.")


_NAN_LOSS_HINT = (
    "NaN/inf at large logits: a teacher probability underflowed to 0 and 0·log 0 became 0·(−inf) = NaN, "
    "or exp() overflowed. Work with log_softmax (log-space terms) or torch.xlogy instead of p.log()."
)

# Fixed visible inputs (float64).
_Z = [[1.0, 2.0, 0.5, -1.0], [0.0, -0.5, 3.0, 1.0], [2.0, 2.0, -2.0, 0.0]]
_V = [[2.5, 0.0, 1.0, -2.0], [-1.0, 0.5, 4.0, 0.0], [0.0, 3.0, -1.0, 1.0]]
_BIG_Z = [[1000.0, -1000.0, 0.0, 5.0], [-1000.0, 1000.0, 10.0, 0.0]]
_BIG_V = [[-1000.0, 1000.0, 3.0, 0.0], [0.0, 1000.0, -1000.0, 2.0]]
_Y = [1, 2, 0]


# --- softmax_with_temperature ---------------------------------------------------------------


def _softmax_variants(z, T):
    return [
        (_softmax(z * T, -1), "you multiplied the logits by T; the temperature DIVIDES them: softmax(z / T)."),
        (_softmax(z, -1), "the temperature is ignored: use softmax(z / T)."),
        (_softmax(z / T, 0), "softmax over the wrong dimension: normalise over the classes (dim=-1), "
                             "not over the batch (dim=0)."),
        (_log_softmax(z / T, -1), "you returned log-probabilities; return probabilities."),
        (z / T, "you returned the scaled logits z / T without the softmax."),
    ]


def _check_softmax_case(fn, z, T, expected=None):
    z = _t(z)
    expected = _softmax(z / T, -1) if expected is None else _t(expected)
    actual = _tensor_result(call_student(fn, "softmax_with_temperature", z.clone(), T), "softmax_with_temperature")
    _compare(f"softmax_with_temperature(logits of shape {tuple(z.shape)}, T={T})", actual, expected,
             _softmax_variants(z, T),
             nan_hint="Overflow: exp(1000) is inf. Subtract the largest logit of each row before exponentiating "
                      "(softmax is unchanged by a constant shift).")


def check_softmax_with_temperature(softmax_with_temperature) -> None:
    """Visible checks: several temperatures, a batch, rows summing to 1, logits of ±1000."""
    for T in (1.0, 2.0, 0.5, 10.0):
        _check_softmax_case(softmax_with_temperature, _Z, T)
    _check_softmax_case(softmax_with_temperature, _BIG_Z, 1.0)


def check_softmax_values(softmax_with_temperature, cases) -> None:
    """Hidden: ``cases`` = ``[(logits, T, expected probabilities)]`` hard-coded in float64."""
    forbid_delegation(softmax_with_temperature, "softmax_with_temperature", banned_names=("softmax_with_temperature",))
    for logits, T, expected in cases:
        _check_softmax_case(softmax_with_temperature, logits, T, expected)


# --- distillation_loss ------------------------------------------------------------------------


def _check_loss_case(fn, name, z, v, T, expected=None, expected_grad=None, teacher_requires_grad=True):
    """Value and gradient of a loss ``fn(z, v, T)``.

    With ``teacher_requires_grad`` the teacher logits require a gradient, and an answer that lets one
    reach them fails (the teacher must be detached); without it the teacher is a plain constant.
    """
    z = _t(z).clone().requires_grad_(True)
    v = _t(v).clone().requires_grad_(teacher_requires_grad)
    correct, variants = _loss_variants(z.detach(), v.detach(), T)
    expected = correct if expected is None else _t(expected)
    call_text = f"{name}(student, teacher, T={T}) on a batch of {z.shape[0]}"
    result = call_student(fn, name, z, v, T)
    loss = _tensor_result(result, name)
    if loss.ndim != 0:
        _compare(call_text, loss.detach(), expected, variants, _NAN_LOSS_HINT)
        _tensor_result(loss, name, ndim=0)
    _compare(call_text, loss.detach(), expected, variants, _NAN_LOSS_HINT)
    if not loss.requires_grad or loss.grad_fn is None:
        raise WrongAnswer(
            f"{call_text}: the value is right but no gradient flows to the student: .detach(), .item(), "
            "torch.tensor(...) of a result or a numpy round trip cut the computation graph."
        )
    with torch.enable_grad():
        call_student(loss.backward, f"{name}(...).backward")
    if z.grad is None:
        raise WrongAnswer(f"{call_text}: the student logits received no gradient (the graph was cut).")
    if v.grad is not None and bool((v.grad.abs() > 0).any()):
        raise WrongAnswer(
            f"{call_text}: the teacher logits received a gradient. The teacher is fixed: "
            "detach it (teacher_logits.detach()) so only the student learns."
        )
    grad_expected = T * (_softmax(z.detach() / T, -1) - _softmax(v.detach() / T, -1)) / z.shape[0]
    if expected_grad is not None:
        grad_expected = _t(expected_grad)
    if not close(z.grad, grad_expected, rtol=RTOL, atol=ATOL):
        raise WrongAnswer(
            f"{call_text}: the value is right but the gradient with respect to the student logits is not "
            f"T·(p_s − p_t)/B: got {_fmt(z.grad)}, expected {_fmt(grad_expected)}."
        )


def check_distillation_loss(distillation_loss) -> None:
    """Visible checks: values at T = 1, 2, 4, gradients, the teacher detached, logits of ±1000."""
    for T in (1.0, 2.0, 4.0):
        _check_loss_case(distillation_loss, "distillation_loss", _Z, _V, T)
    _check_loss_case(distillation_loss, "distillation_loss", _BIG_Z, _BIG_V, 1.0)


def check_distillation_loss_values(distillation_loss, cases) -> None:
    """Hidden: ``cases`` = ``[(z, v, T, expected_loss, expected_grad_wrt_z)]``; no F.kl_div/kdcourse."""
    forbid_delegation(distillation_loss, "distillation_loss", banned_names=BANNED_LOSS_NAMES)
    for z, v, T, expected, expected_grad in cases:
        _check_loss_case(distillation_loss, "distillation_loss", z, v, T, expected, expected_grad)


# --- analytic gradient ----------------------------------------------------------------------------


def _check_gradient_case(fn, z, v, T, expected=None):
    z, v = _t(z), _t(v)
    correct, variants = _gradient_variants(z, v, T)
    expected = correct if expected is None else _t(expected)
    result = _tensor_result(call_student(fn, "distillation_gradient", z.clone(), v.clone(), T),
                            "distillation_gradient")
    _compare(f"distillation_gradient(student, teacher, T={T}) on a batch of {z.shape[0]}",
             result.detach(), expected, variants)


def check_distillation_gradient(distillation_gradient) -> None:
    """Visible checks of the analytic gradient against autograd of the trusted loss."""
    for T in (1.0, 3.0):
        _check_gradient_case(distillation_gradient, _Z, _V, T)


def check_gradient_values(distillation_gradient, cases) -> None:
    """Hidden: ``cases`` = ``[(z, v, T, expected)]``; the answer may not call autograd."""
    forbid_delegation(distillation_gradient, "distillation_gradient", banned_names=BANNED_GRADIENT_NAMES)
    for z, v, T, expected in cases:
        _check_gradient_case(distillation_gradient, z, v, T, expected)


# --- the F.kl_div fix -------------------------------------------------------------------------------


_KL_DIV_NAMES = ("kl_div", "KLDivLoss")
_NOT_KL_DIV = ("distillation_loss", "combined_loss", "kl_divergence", "rel_entr", "xlogy")


def _require_kl_div_fix(kd_loss_fixed) -> None:
    """The exercise is to repair the ``F.kl_div`` call: the answer must still make it, and no other loss."""
    # an unanswered stub raises NotImplementedError first, like every other exercise
    call_student(kd_loss_fixed, "kd_loss_fixed", _t(_Z).clone().requires_grad_(True), _t(_V), 1.0)
    other = find_delegation(kd_loss_fixed, banned_names=_NOT_KL_DIV)
    if other is not None:
        raise WrongAnswer(
            f"kd_loss_fixed calls {other}: the exercise is to fix the F.kl_div call of kd_loss_buggy "
            "(one F.kl_div call with its four bugs repaired), not to reuse another loss."
        )
    if find_delegation(kd_loss_fixed, banned_names=_KL_DIV_NAMES, banned_packages=()) is None:
        raise WrongAnswer(
            "kd_loss_fixed does not call F.kl_div: the exercise is to fix the F.kl_div call of kd_loss_buggy "
            "(argument order, log-probabilities as input, reduction, T²), keeping F.kl_div."
        )


def check_kd_loss_fixed(kd_loss_fixed) -> None:
    """Visible checks of the repaired ``F.kl_div`` call (uses F.kl_div; value, T², batch mean, gradient).

    The teacher logits here do not require a gradient: the exercise is about the four bugs of the call
    (argument order, probabilities as input, ``reduction="mean"``, missing T²), and the textbook fix
    ``T**2 * F.kl_div(F.log_softmax(z / T, -1), F.softmax(v / T, -1), reduction="batchmean")`` is right.
    """
    _require_kl_div_fix(kd_loss_fixed)
    for T in (1.0, 3.0):
        _check_loss_case(kd_loss_fixed, "kd_loss_fixed", _Z, _V, T, teacher_requires_grad=False)


def check_kd_loss_fixed_values(kd_loss_fixed, cases) -> None:
    """Hidden: ``cases`` = ``[(z, v, T, expected_loss, expected_grad)]``."""
    _require_kl_div_fix(kd_loss_fixed)
    for z, v, T, expected, expected_grad in cases:
        _check_loss_case(kd_loss_fixed, "kd_loss_fixed", z, v, T, expected, expected_grad,
                         teacher_requires_grad=False)


# --- combined objective ------------------------------------------------------------------------


def _check_combined_case(fn, z, v, y, alpha, T, expected=None):
    z = _t(z).clone().requires_grad_(True)
    v = _t(v)
    y = torch.as_tensor(y, dtype=torch.long)
    correct, variants = _combined_variants(z.detach(), v, y, alpha, T)
    expected = correct if expected is None else _t(expected)
    call_text = f"combined_loss(student, teacher, targets, alpha={alpha}, T={T})"
    loss = _tensor_result(call_student(fn, "combined_loss", z, v.clone(), y.clone(), alpha, T), "combined_loss", ndim=0)
    _compare(call_text, loss.detach(), expected, variants, _NAN_LOSS_HINT)
    if not loss.requires_grad:
        raise WrongAnswer(f"{call_text}: no gradient flows to the student (the graph was cut).")


def check_combined_loss(combined_loss) -> None:
    """Visible checks: alpha = 0, 1 and in between, at two temperatures."""
    for alpha, T in ((0.0, 2.0), (1.0, 2.0), (0.3, 1.0), (0.3, 4.0)):
        _check_combined_case(combined_loss, _Z, _V, _Y, alpha, T)


def check_combined_loss_values(combined_loss, cases) -> None:
    """Hidden: ``cases`` = ``[(z, v, y, alpha, T, expected)]``; no kdcourse or F.kl_div shortcut."""
    # the exercise allows reusing the student's distillation_loss (checked on its own above)
    forbid_delegation(combined_loss, "combined_loss", banned_names=("kl_div", "KLDivLoss"),
                      allowed=("distillation_loss",))
    for z, v, y, alpha, T, expected in cases:
        _check_combined_case(combined_loss, z, v, y, alpha, T, expected)


# --- choices ------------------------------------------------------------------------------------


def check_format(answer, options, name) -> None:
    """Visible format check of a multiple-choice answer (not whether it is right)."""
    require_answered(answer, name, f"set it to one of {list(options)}")
    check_choice(answer, options, name)
