r"""Judge of assignment a02 (temperature, the distillation loss in torch, its gradient).

Notation: student logits :math:`z`, teacher logits :math:`v`, temperature :math:`T`,
:math:`p_s^T = \mathrm{softmax}(z/T)`, :math:`p_t^T = \mathrm{softmax}(v/T)`, batch size :math:`B`.
The distillation loss is :math:`L = \frac{T^2}{B}\sum_b \mathrm{KL}(p_t^T \| p_s^T)` and its gradient
with respect to the student logits is :math:`T (p_s^T - p_t^T) / B`.

Every function answer is called on the visible inputs below and, when graded, on the hidden inputs of
``grading/assignments/a02_distillation_loss.toml``; the expected values (and, for the losses, the
expected gradients) are computed here in float64. A wrong answer's message names the misconception it
matches: arguments swapped, :math:`T^2` missing or applied twice, temperature on one side only,
``reduction="mean"``, probabilities passed as log-probabilities, softmax over the wrong dimension, NaN
from :math:`0 \log 0`, a gradient cut by ``.item()``/``.detach()``/numpy, a gradient reaching the
teacher, a library doing the exercise (``torch.softmax`` in the softmax, ``F.kl_div`` in the loss,
autograd in the analytic gradient).
"""

from __future__ import annotations

import numpy as np
import torch

from .items import Answer, Call, Context, Item, Results
from .matching import close, expect_close, expected_clause, fmt
from .static import forbid_delegation
from .values import as_array, choice_item
from .verdict import Wrong

__all__ = ["ITEMS"]

RTOL, ATOL = 1e-5, 1e-8
#: Packages that do an exercise for the student (kdcourse holds the course's own reference).
BANNED_PACKAGES = ("scipy", "kdcourse", "sklearn", "torch.distributions")
#: The softmax exercise is to write the formula: torch's softmax in any spelling does it instead.
SOFTMAX_MEMBERS = ("softmax", "log_softmax", "softmin", "Softmax", "LogSoftmax", "Softmin")
BANNED_LOSS_NAMES = ("kl_div", "KLDivLoss", "distillation_loss", "rel_entr")
#: The analytic gradient may not ask autograd (as a member: a local variable ``grad`` is fine).
AUTOGRAD_MEMBERS = ("backward", "grad", "autograd")
KL_DIV_MEMBERS = ("kl_div", "KLDivLoss")
#: What the F.kl_div exercise may not call instead of repairing the call.
NOT_KL_DIV = ("distillation_loss", "combined_loss", "kl_divergence", "rel_entr", "xlogy")

# Visible inputs (float64).
Z = [[1.0, 2.0, 0.5, -1.0], [0.0, -0.5, 3.0, 1.0], [2.0, 2.0, -2.0, 0.0]]
V = [[2.5, 0.0, 1.0, -2.0], [-1.0, 0.5, 4.0, 0.0], [0.0, 3.0, -1.0, 1.0]]
BIG_Z = [[1000.0, -1000.0, 0.0, 5.0], [-1000.0, 1000.0, 10.0, 0.0]]
BIG_V = [[-1000.0, 1000.0, 3.0, 0.0], [0.0, 1000.0, -1000.0, 2.0]]
Y = [1, 2, 0]

NAN_LOSS_HINT = (
    "NaN/inf at large logits: a teacher probability underflowed to 0 and 0·log 0 became 0·(−inf) = NaN, "
    "or exp() overflowed. Work with log_softmax (log-space terms) or torch.xlogy instead of p.log()."
)
OVERFLOW_HINT = ("Overflow: exp(1000) is inf. Subtract the largest logit of each row before exponentiating "
                 "(softmax is unchanged by a constant shift).")


# --- trusted maths (float64) ---------------------------------------------------------------------------


def _t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


def _kl_rows(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Σ_k p_k (log p_k − log q_k) per row, from log-probabilities (0·log 0 = 0)."""
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def softmax_variants(z: torch.Tensor, T: float) -> list:
    """Values that known misconceptions give for softmax(z / T) over the last dimension."""
    return [
        (torch.softmax(z * T, -1), "you multiplied the logits by T; the temperature DIVIDES them: softmax(z / T)."),
        (torch.softmax(z, -1), "the temperature is ignored: use softmax(z / T)."),
        (torch.softmax(z / T, 0), "softmax over the wrong dimension: normalise over the classes (dim=-1), "
                                  "not over the batch (dim=0)."),
        (torch.log_softmax(z / T, -1), "you returned log-probabilities; return probabilities."),
        (z / T, "you returned the scaled logits z / T without the softmax."),
    ]


def loss_variants(z: torch.Tensor, v: torch.Tensor, T: float) -> tuple[torch.Tensor, list]:
    """The batch-mean KD loss T²·KL(p_t^T‖p_s^T) and the values known misconceptions give instead."""
    B, C = z.shape
    ls, lt = torch.log_softmax(z / T, -1), torch.log_softmax(v / T, -1)
    rows = _kl_rows(lt, ls)
    correct = T * T * rows.mean()
    probabilities_as_logs = T * T * (lt.exp() * (lt - ls.exp())).sum(-1).mean()
    variants = [
        (T * T * _kl_rows(ls, lt).mean(),
         "this is KL(p_s‖p_t) with the student first: the arguments are swapped. The distillation loss is "
         "KL(p_t‖p_s): the teacher comes first and weights the log-ratio."),
        (rows.mean(), "the T² factor is missing: multiply the KL by T² so that the gradient keeps its size "
                      "as T changes (Hinton et al. 2015)."),
        (T ** 4 * rows.mean(), "T² is applied twice (your value is T⁴·KL): multiply by T² once."),
        (T * rows.mean(), "you multiplied by T instead of T²."),
        (T * T * _kl_rows(lt, torch.log_softmax(z, -1)).mean(),
         "temperature on one side only: you softened the teacher (v/T) but not the student (z). "
         "Divide BOTH logits by T."),
        (T * T * _kl_rows(torch.log_softmax(v, -1), ls).mean(),
         "temperature on one side only: you softened the student (z/T) but not the teacher (v). "
         "Divide BOTH logits by T."),
        (correct / C, "this is reduction=\"mean\": you averaged over batch × classes, which gives 1/C of the "
                      "KL. Sum over classes, then average over the batch (\"batchmean\")."),
        (T * T * rows.sum(), "you summed over the batch (reduction=\"sum\"); take the mean over the batch "
                             "(\"batchmean\") so the loss does not grow with the batch size."),
        (probabilities_as_logs,
         "you used the student's probabilities where log-probabilities belong: the KL needs log p_s "
         "(log_softmax), not p_s."),
        (probabilities_as_logs / C,
         "probabilities passed where log-probabilities belong AND reduction=\"mean\"."),
        (-correct, "the sign is flipped: KL(p_t‖p_s) = Σ p_t (log p_t − log p_s) ≥ 0."),
        (T * T * rows, "you returned one value per example; average them over the batch (a scalar loss)."),
    ]
    if B > 1:
        ls0, lt0 = torch.log_softmax(z / T, 0), torch.log_softmax(v / T, 0)
        wrong_dim = ("softmax over the wrong dimension: you normalised over the batch (dim=0); "
                     "probabilities must sum to 1 over the classes (dim=-1).")
        variants.append((T * T * (lt0.exp() * (lt0 - ls0)).sum(-1).mean(), wrong_dim))
        variants.append((T * T * (lt0.exp() * (lt0 - ls0)).sum(0).mean(), wrong_dim))
    return correct, variants


def loss_gradient(z: torch.Tensor, v: torch.Tensor, T: float) -> torch.Tensor:
    """∂L/∂z = T·(p_s^T − p_t^T)/B."""
    return T * (torch.softmax(z / T, -1) - torch.softmax(v / T, -1)) / z.shape[0]


def gradient_variants(z: torch.Tensor, v: torch.Tensor, T: float) -> tuple[torch.Tensor, list]:
    """The analytic gradient and the values known misconceptions give instead."""
    B = z.shape[0]
    diff = torch.softmax(z / T, -1) - torch.softmax(v / T, -1)
    correct = T * diff / B
    return correct, [
        (-correct, "the sign is flipped: the gradient is T·(p_s − p_t)/B (student minus teacher)."),
        (diff / B, "the factor T is missing: with the T² scaling the gradient is T²·(p_s − p_t)/(T·B) = T·(p_s − p_t)/B."),
        (diff / (T * B), "this is the gradient of the KL without the T² factor, (p_s − p_t)/(T·B); the loss "
                         "you differentiate is T²·KL, so the gradient is T·(p_s − p_t)/B."),
        (T * T * diff / B, "one T too many: the chain rule through z/T contributes 1/T, so T²·(1/T) = T."),
        (T * diff, "the 1/B from the batch mean is missing."),
        (torch.softmax(z, -1) - torch.softmax(v, -1), "you dropped both T and 1/B, and the temperature in the softmax."),
    ]


def combined_variants(z: torch.Tensor, v: torch.Tensor, y: torch.Tensor, alpha: float,
                      T: float) -> tuple[torch.Tensor, list]:
    """α·CE(y, p_s) + (1 − α)·T²·KL(p_t^T‖p_s^T) and the values known misconceptions give instead."""
    ce = -torch.log_softmax(z, -1).gather(-1, y.view(-1, 1)).squeeze(-1).mean()
    ce_T = -torch.log_softmax(z / T, -1).gather(-1, y.view(-1, 1)).squeeze(-1).mean()
    kl = _kl_rows(torch.log_softmax(v / T, -1), torch.log_softmax(z / T, -1)).mean()
    correct = alpha * ce + (1 - alpha) * T * T * kl
    return correct, [
        ((1 - alpha) * ce + alpha * T * T * kl,
         "alpha weights the wrong term: in this course alpha multiplies the hard-label cross-entropy and "
         "(1 − alpha) the distillation term."),
        (alpha * ce + (1 - alpha) * kl, "the T² factor on the distillation term is missing."),
        (alpha * ce_T + (1 - alpha) * T * T * kl,
         "the cross-entropy with the labels uses the softened student (z/T); it must use T = 1."),
        (alpha * ce + (1 - alpha) * _kl_rows(torch.log_softmax(v, -1), torch.log_softmax(z, -1)).mean(),
         "the distillation term ignores the temperature: use softmax(v/T) and softmax(z/T)."),
        (alpha * ce + (1 - alpha) * T * T * _kl_rows(torch.log_softmax(z / T, -1), torch.log_softmax(v / T, -1)).mean(),
         "the distillation term is KL(p_s‖p_t) with the student first: the arguments are swapped; "
         "it must be KL(p_t‖p_s)."),
    ]


# --- reading and comparing results -------------------------------------------------------------------


def _raise_if_raised(call: Call, name: str) -> None:
    if call.raised:
        raise Wrong(f"{name} raised {call.raised[0]}: {call.raised[1]}")


def tensor_result(call: Call, name: str, scalar: bool = False) -> np.ndarray:
    """A call's result as float64, after checking that it is a torch tensor (a scalar if ``scalar``).

    Raises
    ------
    Wrong
        The call raised, or returned None, a number (``.item()``), a numpy array or anything else.
    """
    _raise_if_raised(call, name)
    value = call.returned
    if value.kind == "none":
        raise Wrong(f"{name} returned None: did you forget the `return` statement?")
    if value.kind in ("int", "float"):
        raise Wrong(f"{name} returned a Python/numpy number, not a torch tensor: .item() (or float()) breaks the "
                    "computation graph, so no gradient can reach the student. Return the tensor.")
    if value.kind == "ndarray":
        raise Wrong(f"{name} returned a numpy array: a round trip through numpy breaks the computation graph. "
                    "Stay in torch.")
    if value.kind != "tensor":
        raise Wrong(f"{name} must return a torch tensor (got {value.describe()})")
    if scalar and value.data.ndim != 0:
        raise Wrong(f"{name} must return a scalar tensor (shape ()), got shape {tuple(value.data.shape)}: "
                    "sum over classes and average over the batch.")
    return as_array(value, name)


def compare(call_text: str, actual: np.ndarray, expected, variants: list, nan_hint: str = "",
            hidden: bool = False) -> None:
    """Raise :class:`Wrong` unless ``actual`` is ``expected``; name the misconception it matches (a hidden
    input's expected value is not shown)."""
    expected = np.asarray(expected, dtype=np.float64)
    if close(actual, expected, rtol=RTOL, atol=ATOL):
        return
    if not np.isfinite(actual).all() and np.isfinite(expected).all():
        raise Wrong(f"{call_text} returned {fmt(actual)}{expected_clause(expected, hidden)}. {nan_hint}".strip())
    plain = [(np.asarray(value, dtype=np.float64), message) for value, message in variants]
    expect_close(call_text, actual, expected, plain, rtol=RTOL, atol=ATOL, hidden=hidden)


def _args(call: Call) -> list:
    """The (trusted) case arguments as float64 tensors, numbers as floats."""
    return [_t(a) if isinstance(a, list) else float(a) for a in call.args]


# --- softmax_with_temperature ---------------------------------------------------------------------------


def _judge_softmax(results: Results, context: Context) -> None:
    for call in results.calls["softmax_with_temperature"]:
        z, T = _args(call)
        actual = tensor_result(call, "softmax_with_temperature")
        compare(f"softmax_with_temperature(logits of shape {tuple(z.shape)}, T={T})", actual,
                torch.softmax(z / T, -1), softmax_variants(z, T), nan_hint=OVERFLOW_HINT, hidden=call.hidden)


def _static_softmax(context: Context) -> None:
    forbid_delegation(context.code, "softmax_with_temperature", banned_packages=BANNED_PACKAGES,
                      banned_attributes=SOFTMAX_MEMBERS)


# --- the losses (value, then the gradient that reached each argument) -----------------------------------


def _judge_loss_call(name: str, call: Call, teacher_graded: bool) -> None:
    """Value and gradients of one call of a loss ``fn(z, v, T)``.

    With ``teacher_graded`` the teacher logits required a gradient, and one that reached them fails
    (the teacher must be detached); otherwise the teacher was a constant.
    """
    z, v, T = _args(call)
    correct, variants = loss_variants(z, v, T)
    call_text = f"{name}(student, teacher, T={T}) on a batch of {z.shape[0]}"
    actual = tensor_result(call, name)
    compare(call_text, actual, correct, variants, NAN_LOSS_HINT, call.hidden)  # a non-scalar fails here, by its shape
    returned = call.returned
    if not returned.requires_grad or not returned.grad_fn:
        raise Wrong(f"{call_text}: the value is right but no gradient flows to the student: .detach(), .item(), "
                    "torch.tensor(...) of a result or a numpy round trip cut the computation graph.")
    if call.grad_problem:
        raise Wrong(f"{call_text}: {call.grad_problem}")
    grads = call.grads or {}
    student_grad = grads.get(0)
    if student_grad is None or student_grad.kind == "none":
        raise Wrong(f"{call_text}: the student logits received no gradient (the graph was cut).")
    teacher_grad = grads.get(1)
    if teacher_graded and teacher_grad is not None and teacher_grad.kind == "tensor" \
            and bool((np.abs(teacher_grad.data) > 0).any()):
        raise Wrong(f"{call_text}: the teacher logits received a gradient. The teacher is fixed: "
                    "detach it (teacher_logits.detach()) so only the student learns.")
    expected_grad = loss_gradient(z, v, T).numpy()
    got = as_array(student_grad, f"the gradient of {name}")
    if not close(got, expected_grad, rtol=RTOL, atol=ATOL):
        raise Wrong(f"{call_text}: the value is right but the gradient with respect to the student logits is not "
                    f"T·(p_s − p_t)/B: got {fmt(got)}{expected_clause(expected_grad, call.hidden)}.")


def _judge_distillation_loss(results: Results, context: Context) -> None:
    for call in results.calls["distillation_loss"]:
        _judge_loss_call("distillation_loss", call, teacher_graded=True)


def _static_distillation_loss(context: Context) -> None:
    forbid_delegation(context.code, "distillation_loss", BANNED_LOSS_NAMES, BANNED_PACKAGES)


# --- distillation_gradient -------------------------------------------------------------------------------


def _judge_gradient(results: Results, context: Context) -> None:
    for call in results.calls["distillation_gradient"]:
        z, v, T = _args(call)
        correct, variants = gradient_variants(z, v, T)
        actual = tensor_result(call, "distillation_gradient")
        compare(f"distillation_gradient(student, teacher, T={T}) on a batch of {z.shape[0]}", actual, correct,
                variants, hidden=call.hidden)


def _static_gradient(context: Context) -> None:
    forbid_delegation(context.code, "distillation_gradient", BANNED_LOSS_NAMES, BANNED_PACKAGES,
                      banned_attributes=AUTOGRAD_MEMBERS)


# --- the F.kl_div fix ---------------------------------------------------------------------------------------


def _static_kd_loss_fixed(context: Context) -> None:
    """The exercise is to repair the ``F.kl_div`` call: no other loss may do the work."""
    other = context.code.delegation("kd_loss_fixed", NOT_KL_DIV, BANNED_PACKAGES)
    if other is not None:
        raise Wrong(f"kd_loss_fixed calls {other}: the exercise is to fix the F.kl_div call of kd_loss_buggy "
                    "(one F.kl_div call with its four bugs repaired), not to reuse another loss.")


def _judge_kd_loss_fixed(results: Results, context: Context) -> None:
    """The repaired call: it still calls F.kl_div (judged here, after an unwritten stub was recognised),
    and gives the distillation loss and its gradient. The teacher logits are a constant here: the
    exercise is the four bugs of the call, and the textbook fix leaves the teacher undetached."""
    if not context.code.empty and context.code.delegation("kd_loss_fixed", banned_attributes=KL_DIV_MEMBERS) is None:
        raise Wrong("kd_loss_fixed does not call F.kl_div: the exercise is to fix the F.kl_div call of kd_loss_buggy "
                    "(argument order, log-probabilities as input, reduction, T²), keeping F.kl_div.")
    for call in results.calls["kd_loss_fixed"]:
        _judge_loss_call("kd_loss_fixed", call, teacher_graded=False)


# --- combined objective -------------------------------------------------------------------------------------


def _judge_combined(results: Results, context: Context) -> None:
    for call in results.calls["combined_loss"]:
        z, v, _, alpha, T = _args(call)
        y = torch.tensor(call.args[2], dtype=torch.int64)
        correct, variants = combined_variants(z, v, y, alpha, T)
        call_text = f"combined_loss(student, teacher, targets, alpha={alpha}, T={T})"
        actual = tensor_result(call, "combined_loss", scalar=True)
        compare(call_text, actual, correct, variants, NAN_LOSS_HINT, call.hidden)
        if not call.returned.requires_grad:
            raise Wrong(f"{call_text}: no gradient flows to the student (the graph was cut).")


def _static_combined(context: Context) -> None:
    # the exercise allows reusing the student's distillation_loss (judged, and penalised, on its own)
    forbid_delegation(context.code, "combined_loss", KL_DIV_MEMBERS, BANNED_PACKAGES, allowed=("distillation_loss",))


# --- choices ---------------------------------------------------------------------------------------------




LOSS_ARGS = ("tensor_grad", "tensor_grad", "float")

ITEMS = (
    Item("test_softmax_with_temperature",
         (Answer("softmax_with_temperature", "call", ("tensor", "float"),
                 tuple([Z, T] for T in (1.0, 2.0, 0.5, 10.0)) + ([BIG_Z, 1.0],)),),
         _judge_softmax, passed="softmax_with_temperature: checks passed", static=_static_softmax),
    Item("test_distillation_loss",
         (Answer("distillation_loss", "loss", LOSS_ARGS,
                 tuple([Z, V, T] for T in (1.0, 2.0, 4.0)) + ([BIG_Z, BIG_V, 1.0],), grads=(0, 1)),),
         _judge_distillation_loss, passed="distillation_loss: checks passed", static=_static_distillation_loss),
    Item("test_distillation_gradient",
         (Answer("distillation_gradient", "call", ("tensor", "tensor", "float"),
                 tuple([Z, V, T] for T in (1.0, 3.0))),),
         _judge_gradient, passed="distillation_gradient: checks passed", static=_static_gradient),
    Item("test_kd_loss_fixed",
         (Answer("kd_loss_fixed", "loss", ("tensor_grad", "tensor", "float"),
                 tuple([Z, V, T] for T in (1.0, 3.0)), grads=(0,)),),
         _judge_kd_loss_fixed, passed="kd_loss_fixed: checks passed", static=_static_kd_loss_fixed),
    Item("test_combined_loss",
         (Answer("combined_loss", "call", ("tensor_grad", "tensor", "label_tensor", "float", "float"),
                 tuple([Z, V, Y, alpha, T] for alpha, T in ((0.0, 2.0), (1.0, 2.0), (0.3, 1.0), (0.3, 4.0)))),),
         _judge_combined, passed="combined_loss: checks passed", static=_static_combined),
    choice_item("test_alpha_to_one", "alpha_to_one", ["a", "b", "c", "d"]),
    choice_item("test_alpha_to_zero", "alpha_to_zero", ["a", "b", "c", "d"]),
    choice_item("test_without_t_squared", "without_t_squared", ["a", "b", "c", "d"]),
)
