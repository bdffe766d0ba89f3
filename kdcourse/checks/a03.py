r"""Checks for assignment a03 (a distillation training step; weak-to-strong and the PGR).

``distill_step`` is graded by **behaviour on a fixed seed**, never by a final accuracy: on a tiny
teacher/student pair whose weights are drawn from numpy (so they are the same on every machine and
torch version) the checks take one step with ``torch.optim.SGD`` and compare the student's update with
the update of a trusted reference step. Because an SGD update is ``-lr * gradient``, equal updates mean
equal gradients. When the update differs, the checks compare it with the updates that known mistakes
would produce (the reverse KL(p_s‖p_t), missing :math:`T^2`, α on the wrong term, temperature on one side, gradients
not zeroed, ...) and name the mistake.

Every failure raises :class:`~kdcourse.checks.common.WrongAnswer`; nothing here writes to stderr.
"""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kdcourse.weak_to_strong import measure_weak_to_strong

from .common import (
    WrongAnswer,
    call_student,
    check_answer,
    check_choice,
    close,
    forbid_delegation,
    require,
    require_answered,
)

__all__ = [
    "check_distill_step",
    "check_distill_step_runs",
    "check_distill_step_matches_reference",
    "check_pgr_function",
    "check_pgr_values",
    "check_pgr_number",
    "check_pgr_digits",
    "check_choice",
    "check_answer",
]

# Trusted references, captured when the checks are imported (before any student code runs).
_log_softmax = F.log_softmax
_cross_entropy = F.cross_entropy
_exp = torch.exp
_no_grad = torch.no_grad
_cat = torch.cat
_SGD = torch.optim.SGD
_deepcopy = copy.deepcopy
_Tensor = torch.Tensor
_isfinite = math.isfinite
# The digits experiment, captured here so that the hidden check of ``pgr_digits`` recomputes its
# accuracies with trusted code instead of reading variables that the notebook's unlocked cells set.
_measure_weak_to_strong = measure_weak_to_strong

# --- the fixed scenario ---------------------------------------------------------------------

_IN, _HIDDEN_T, _HIDDEN_S, _CLASSES, _BATCH = 6, 10, 5, 4, 16


def _linear(rng: np.random.Generator, n_in: int, n_out: int, scale: float) -> nn.Linear:
    layer = nn.Linear(n_in, n_out).double()
    with _no_grad():
        layer.weight.copy_(torch.as_tensor(rng.normal(0.0, scale, size=(n_out, n_in))))
        layer.bias.copy_(torch.as_tensor(rng.normal(0.0, 0.1, size=n_out)))
    return layer


def _scenario(seed: int):
    """A teacher, a student and a batch, all float64, built from numpy's generator (machine-independent)."""
    rng = np.random.default_rng(seed)
    teacher = nn.Sequential(_linear(rng, _IN, _HIDDEN_T, 0.9), nn.ReLU(), _linear(rng, _HIDDEN_T, _CLASSES, 1.2))
    student = nn.Sequential(_linear(rng, _IN, _HIDDEN_S, 0.5), nn.ReLU(), _linear(rng, _HIDDEN_S, _CLASSES, 0.5))
    X = torch.as_tensor(rng.normal(size=(_BATCH, _IN)))
    y = torch.as_tensor(rng.integers(0, _CLASSES, size=_BATCH), dtype=torch.int64)
    teacher.eval()
    student.train()
    return teacher, student, (X, y)


def _flat(model: nn.Module) -> torch.Tensor:
    return _cat([p.detach().reshape(-1).clone() for p in model.parameters()])


def _kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Batch mean of KL(p‖q) from log-probabilities."""
    return (_exp(log_p) * (log_p - log_q)).sum(dim=-1).mean()


def _variant_loss(name: str, z: torch.Tensor, v: torch.Tensor, y: torch.Tensor, T: float, alpha: float):
    """The loss of a correct step (``"correct"``) or of a known mistake, on logits z (student), v (teacher)."""
    log_s, log_t = _log_softmax(z / T, dim=-1), _log_softmax(v / T, dim=-1)
    hard = _cross_entropy(z, y)
    forward = _kl(log_t, log_s)
    if name == "correct":
        return alpha * hard + (1 - alpha) * T**2 * forward
    if name == "reverse":
        return alpha * hard + (1 - alpha) * T**2 * _kl(log_s, log_t)
    if name == "no_t_squared":
        return alpha * hard + (1 - alpha) * forward
    if name == "t_squared_twice":
        return alpha * hard + (1 - alpha) * T**4 * forward
    if name == "alpha_swapped":
        return (1 - alpha) * hard + alpha * T**2 * forward
    if name == "student_not_tempered":
        return alpha * hard + (1 - alpha) * T**2 * _kl(log_t, _log_softmax(z, dim=-1))
    if name == "teacher_not_tempered":
        return alpha * hard + (1 - alpha) * T**2 * _kl(_log_softmax(v, dim=-1), log_s)
    if name == "kd_only":
        return T**2 * forward
    if name == "ce_only":
        return hard
    if name == "class_mean":
        return alpha * hard + (1 - alpha) * T**2 * forward / z.shape[-1]
    raise ValueError(name)


_MESSAGES = {
    "reverse": "the update matches KL(p_s‖p_t), the reverse KL: the distillation loss puts the teacher first, "
    "KL(p_t^T‖p_s^T) (swapped arguments)",
    "no_t_squared": "the update matches the loss without the T² factor: multiply the KL term by T² "
    "(Hinton et al. 2015), otherwise its gradient shrinks like 1/T² and the soft targets are silently ignored "
    "(T² factor missing)",
    "t_squared_twice": "the update matches the loss with T⁴ instead of T² on the KL term (T² factor applied twice)",
    "alpha_swapped": "the update matches (1−α)·CE + α·T²·KL: in this course α weights the hard-label "
    "cross-entropy and (1−α) the distillation term (α weights the wrong term)",
    "student_not_tempered": "the update matches a loss where only the teacher is divided by T: both logits "
    "must be divided by the same temperature (temperature on one side only)",
    "teacher_not_tempered": "the update matches a loss where only the student is divided by T: both logits "
    "must be divided by the same temperature (temperature on one side only)",
    "kd_only": "the update matches the distillation term alone: the hard-label cross-entropy weighted by α is missing",
    "ce_only": "the update matches plain cross-entropy on the labels: the distillation term is missing",
    "class_mean": "the update matches a KL averaged over classes instead of summed (reduction='mean' "
    "divides by the number of classes): use a batch mean of the per-example sum",
    "no_zero_grad": "the update contains the gradients that were already stored in the student's .grad: "
    "call optimizer.zero_grad() before loss.backward() (gradients accumulate otherwise)",
}


def _reference_run(name, teacher, student, batch, T, alpha, lr, stale_grads=None):
    """Apply one SGD step of the given variant to copies; return (loss value, parameter update)."""
    teacher, student = _deepcopy(teacher), _deepcopy(student)
    X, y = batch
    optimizer = _SGD(student.parameters(), lr=lr)
    with _no_grad():
        v = teacher(X)
    loss = _variant_loss(name, student(X), v, y, T, alpha)
    optimizer.zero_grad()
    if stale_grads is not None:
        for p, g in zip(student.parameters(), stale_grads):
            p.grad = g.clone()
    before = _flat(student)
    loss.backward()
    optimizer.step()
    return float(loss.detach()), _flat(student) - before


def _run_student(distill_step, teacher, student, batch, T, alpha, lr, stale_grads=None):
    teacher_before = _flat(teacher)
    student_before = _flat(student)
    optimizer = _SGD(student.parameters(), lr=lr)
    if stale_grads is not None:
        for p, g in zip(student.parameters(), stale_grads):
            p.grad = g.clone()
    try:
        value = call_student(distill_step, "distill_step", student, teacher, batch, optimizer, T, alpha)
    except WrongAnswer as error:
        text = str(error)
        if "does not require grad" in text or "does not have a grad_fn" in text:
            raise WrongAnswer(
                f"{text}. The loss has no gradient path to the student: its logits were cut from the graph "
                "(.detach(), .item(), .numpy() or torch.no_grad() around the student), so no gradient "
                "reaches the student"
            ) from None
        raise
    return value, teacher_before, student_before


def _require_untouched_teacher(teacher, teacher_before):
    require(
        bool((_flat(teacher) == teacher_before).all()),
        "the teacher's parameters changed: only the student may be updated (the teacher is frozen)",
    )
    grads = [p.grad for p in teacher.parameters() if p.grad is not None]
    require(
        not any(bool((g != 0).any()) for g in grads),
        "gradient reached the teacher: its parameters have a non-zero .grad. Compute the teacher's logits "
        "under torch.no_grad() (or .detach() them): the teacher is a fixed reference, not trained",
    )


def _as_loss_value(value) -> float:
    if isinstance(value, _Tensor):
        raise WrongAnswer(
            "distill_step returned a tensor: return loss.item(), a Python float (a tensor keeps the whole "
            "graph of the step alive)"
        )
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise WrongAnswer(f"distill_step should return the loss as a float, got {type(value).__name__}")
    value = float(value)
    require(_isfinite(value), f"distill_step returned a loss of {value}, not a finite number")
    return value


# --- visible check ----------------------------------------------------------------------------


def check_distill_step(distill_step) -> None:
    """Visible behaviour checks: float loss, teacher untouched, student updated, loss decreasing."""
    teacher, student, batch = _scenario(7)
    value, teacher_before, student_before = _run_student(distill_step, teacher, student, batch, 2.0, 0.5, 0.5)
    value = _as_loss_value(value)
    _require_untouched_teacher(teacher, teacher_before)
    require(
        not bool((_flat(student) == student_before).all()),
        "the student's parameters did not change: call loss.backward() and optimizer.step() "
        "(and keep the student's logits in the graph)",
    )
    require(value > 0, f"distill_step returned {value}; the combined loss is positive here")
    # Ten more steps on the same batch: the loss must go down.
    optimizer = _SGD(student.parameters(), lr=0.5)
    losses = [value]
    for _ in range(10):
        losses.append(_as_loss_value(call_student(distill_step, "distill_step", student, teacher, batch, optimizer, 2.0, 0.5)))
    require(
        losses[-1] < losses[0] - 1e-3,
        f"repeated steps on one batch should lower the loss, but it went {losses[0]:.4f} → {losses[-1]:.4f}",
    )
    _require_untouched_teacher(teacher, teacher_before)


def check_distill_step_runs(distill_step) -> None:
    """Visible smoke check before the hidden one: one step runs and returns a float loss."""
    teacher, student, batch = _scenario(3)
    value, _, _ = _run_student(distill_step, teacher, student, batch, 2.0, 0.5, 0.1)
    _as_loss_value(value)


# --- hidden check ----------------------------------------------------------------------------


def check_distill_step_matches_reference(distill_step, expected_loss: float, seed: int = 11,
                                         temperature: float = 3.0, alpha: float = 0.25, lr: float = 0.1) -> None:
    """Hidden check: returned loss and parameter update equal the reference step's (any stale .grad present).

    ``expected_loss`` is the reference loss on this scenario, hard-coded in the notebook.
    """
    teacher, student, batch = _scenario(seed)
    rng = np.random.default_rng(seed + 1)
    stale = [torch.as_tensor(rng.normal(0.0, 0.5, size=tuple(p.shape))) for p in student.parameters()]
    reference_loss, reference_update = _reference_run("correct", teacher, student, batch, temperature, alpha, lr)
    require(
        close(reference_loss, expected_loss, rtol=1e-9, atol=1e-12),
        "internal check failed: the reference step does not reproduce its recorded loss",
    )
    value, teacher_before, student_before = _run_student(
        distill_step, teacher, student, batch, temperature, alpha, lr, stale_grads=stale
    )
    value = _as_loss_value(value)
    _require_untouched_teacher(teacher, teacher_before)
    update = _flat(student) - student_before
    if not bool((update != 0).any()):
        raise WrongAnswer("the student's parameters did not change: call optimizer.step() after loss.backward()")

    def matches(candidate: torch.Tensor) -> bool:
        return bool(((update - candidate).norm() <= 1e-6 * candidate.norm() + 1e-12).item())

    if matches(reference_update) and close(value, expected_loss, rtol=1e-6, atol=1e-9):
        return
    if matches(reference_update):
        if close(value, _reference_run("correct", teacher, student, batch, temperature, alpha, lr)[0], rtol=1e-6):
            raise WrongAnswer("distill_step returned the loss after the step: return the loss computed before optimizer.step()")
        raise WrongAnswer(
            f"the update is right but the returned loss {value:.6f} is not the loss of the step ({expected_loss:.6f})"
        )
    for name in ("no_zero_grad", *[k for k in _MESSAGES if k != "no_zero_grad"]):
        if name == "no_zero_grad":
            _, candidate = _reference_run("correct", teacher, _model_at(student, student_before), batch,
                                          temperature, alpha, lr, stale_grads=stale)
        else:
            _, candidate = _reference_run(name, teacher, _model_at(student, student_before), batch,
                                          temperature, alpha, lr)
        if matches(candidate):
            raise WrongAnswer(_MESSAGES[name])
    raise WrongAnswer(
        "the student's update does not match one SGD step on α·CE(y, p_s) + (1−α)·T²·KL(p_t^T‖p_s^T) "
        "(batch means; teacher under torch.no_grad(); optimizer.zero_grad(), loss.backward(), optimizer.step())"
    )


def _model_at(student: nn.Module, flat_before: torch.Tensor) -> nn.Module:
    """A copy of ``student`` with its parameters reset to ``flat_before``."""
    clone = _deepcopy(student)
    offset = 0
    with _no_grad():
        for p in clone.parameters():
            n = p.numel()
            p.copy_(flat_before[offset : offset + n].reshape(p.shape))
            p.grad = None
            offset += n
    return clone


def reference_loss(seed: int = 11, temperature: float = 3.0, alpha: float = 0.25, lr: float = 0.1) -> float:
    """The reference step's loss on the hidden scenario (used to write the notebook's hard-coded value)."""
    teacher, student, batch = _scenario(seed)
    return _reference_run("correct", teacher, student, batch, temperature, alpha, lr)[0]


# --- performance gap recovered -------------------------------------------------------------------


def _pgr(weak, transferred, ceiling):
    return (transferred - weak) / (ceiling - weak)


def _pgr_diagnosis(actual, weak, transferred, ceiling):
    variants = [
        (1 - _pgr(weak, transferred, ceiling), "you computed the share of the gap still missing, "
         "(ceiling − weak→strong)/(ceiling − weak) = 1 − PGR; PGR measures the part recovered"),
        (100 * _pgr(weak, transferred, ceiling), "you returned a percentage: PGR is a fraction (1 = the whole gap)"),
        ((transferred - weak) / ceiling, "you divided by the ceiling accuracy: divide by the gap (ceiling − weak)"),
        (transferred / ceiling, "you computed a ratio of accuracies, not the share of the weak-to-ceiling gap recovered"),
        ((ceiling - weak) / (transferred - weak) if transferred != weak else math.nan,
         "numerator and denominator are swapped: PGR = (weak→strong − weak)/(ceiling − weak)"),
    ]
    for value, message in variants:
        if _isfinite(value) and close(actual, value, rtol=1e-9, atol=1e-12):
            return message
    return None


def _call_pgr(fn, weak, transferred, ceiling) -> float:
    value = call_student(fn, "performance_gap_recovered", weak, transferred, ceiling)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise WrongAnswer(f"performance_gap_recovered should return a float, got {type(value).__name__}")
    return float(value)


def _check_pgr_case(fn, weak, transferred, ceiling, expected) -> None:
    actual = _call_pgr(fn, weak, transferred, ceiling)
    if close(actual, expected, rtol=1e-9, atol=1e-12):
        return
    message = _pgr_diagnosis(actual, weak, transferred, ceiling)
    raise WrongAnswer(
        f"performance_gap_recovered({weak}, {transferred}, {ceiling}) returned {actual!r}, expected {expected!r}"
        + (f": {message}" if message else "")
    )


#: Names that hand the exercise to the course's own implementation (``kdcourse.weak_to_strong``) or
#: read the PGR off the experiment's result object.
BANNED_PGR_NAMES = ("performance_gap_recovered", "kdcourse", "weak_to_strong", "run_weak_to_strong")


def _forbid_pgr_delegation(fn) -> None:
    forbid_delegation(fn, "performance_gap_recovered", banned_names=BANNED_PGR_NAMES)


def check_pgr_function(fn) -> None:
    """Visible checks of ``performance_gap_recovered(weak, weak_to_strong, ceiling)``."""
    _forbid_pgr_delegation(fn)
    _check_pgr_case(fn, 0.6, 0.65, 0.8, _pgr(0.6, 0.65, 0.8))
    _check_pgr_case(fn, 0.5, 0.9, 0.9, 1.0)


def check_pgr_values(fn, cases) -> None:
    """Hidden checks: ``cases`` are ``((weak, weak_to_strong, ceiling), expected)`` with float64 expectations;
    also the ValueError when there is no gap, and that the formula is written out (no library call)."""
    _forbid_pgr_delegation(fn)
    for (weak, transferred, ceiling), expected in cases:
        _check_pgr_case(fn, weak, transferred, ceiling, expected)
    for weak, ceiling in ((0.7, 0.7), (0.9, 0.8)):
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = fn(weak, 0.75, ceiling)
        except ValueError:
            continue
        except NotImplementedError:
            raise
        except Exception as error:  # noqa: BLE001
            raise WrongAnswer(
                f"performance_gap_recovered({weak}, 0.75, {ceiling}) raised {type(error).__name__}; "
                "raise ValueError instead when the ceiling is not above the weak accuracy"
            ) from None
        raise WrongAnswer(
            f"performance_gap_recovered({weak}, 0.75, {ceiling}) returned {result!r}: when the ceiling is not "
            "above the weak accuracy there is no gap to recover, so raise ValueError"
        )


def check_pgr_number(value, weak, transferred, ceiling, name: str = "pgr_digits") -> None:
    """The PGR of the digits experiment, computed from its three accuracies."""
    require_answered(value, name, "compute it with your performance_gap_recovered")
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise WrongAnswer(f"{name} should be a float, got {type(value).__name__}")
    expected = _pgr(float(weak), float(transferred), float(ceiling))
    if close(float(value), expected, rtol=1e-6, atol=1e-9):
        return
    message = _pgr_diagnosis(float(value), float(weak), float(transferred), float(ceiling))
    raise WrongAnswer(
        f"{name} = {float(value):.4f} is not the PGR of the digits experiment"
        + (f": {message}" if message else ": use the weak teacher's, the distilled student's and the ceiling's test accuracies")
    )


def check_pgr_digits(value, name: str = "pgr_digits") -> None:
    """Hidden check of the digits experiment's PGR against a trusted rerun of the experiment.

    The three accuracies are recomputed here with :func:`kdcourse.weak_to_strong.measure_weak_to_strong`
    as captured when the checks were imported (it always runs on the CPU with its own seed, so the rerun
    reproduces the notebook's numbers), never taken from the notebook's variables.
    """
    require_answered(value, name, "compute it with your performance_gap_recovered")
    accuracies = _measure_weak_to_strong()
    check_pgr_number(value, accuracies.weak_accuracy, accuracies.weak_to_strong_accuracy,
                     accuracies.strong_ceiling_accuracy, name=name)
