r"""Checks for assignment a04 (what a falling dissimilarity score means; the reverse KL(p_θ‖p_t)).

The locked test cells of ``a04_dissimilarity_and_reverse_kl.ipynb`` call these functions. Visible checks
compute their expectations here with trusted code captured at import time; hidden checks receive
hard-coded float64 expectations from the notebook. Messages name the misconception they recognise:
"falling KL means higher accuracy", "falling KL means the student beats the teacher", "the reverse
KL(p_θ‖p_t) is the same loss as KL(p_t‖p_θ)", "the reverse KL(p_θ‖p_t) is mass-covering", swapped arguments,
missing :math:`T^2`, and so on.
Nothing here writes to stderr.
"""

from __future__ import annotations

import copy
import math
import random

import numpy as np
import torch
import torch.nn.functional as F

from kdcourse.data import load_digits_splits
from kdcourse.device import pick_device
from kdcourse.models import make_student
from kdcourse.training import distill, seed_everything, train
from kdcourse.weak_to_strong import SklearnTeacher, train_weak_teacher

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
    "check_agreement",
    "check_agreement_values",
    "check_share_copied",
    "check_share_copied_values",
    "check_fraction",
    "check_fraction_value",
    "check_scenario_c_numbers",
    "check_reverse_loss",
    "check_reverse_loss_values",
    "check_gaussian_entropy",
    "check_gaussian_entropy_values",
    "check_number",
    "check_choice",
    "check_answer",
    "require_answered",
]

# Trusted references, captured when the checks are imported (before any student code runs).
_log_softmax = F.log_softmax
_exp = torch.exp
_as_tensor = torch.as_tensor
_Tensor = torch.Tensor
_ndarray = np.ndarray
_asarray = np.asarray
_log = math.log
_pi, _e = math.pi, math.e
_isfinite = math.isfinite
# What scenario C of the notebook is built from, captured so that its hidden check reruns the scenario
# with trusted code instead of reading predictions that the notebook's unlocked cells set.
_load_digits_splits = load_digits_splits
_pick_device = pick_device
_make_student = make_student
_train, _distill, _seed_everything = train, distill, seed_everything
_SklearnTeacher, _train_weak_teacher = SklearnTeacher, train_weak_teacher
_deepcopy = copy.deepcopy
_fork_rng = torch.random.fork_rng
_np_get_state, _np_set_state = np.random.get_state, np.random.set_state
_py_get_state, _py_set_state = random.getstate, random.setstate

#: Library losses that would do the exercise. ``torch.xlogy`` is not among them: it is the safe way to
#: write p·log p that assignment 2 teaches.
BANNED_LOSS_NAMES = ("kl_div", "KLDivLoss", "distillation_loss", "combined_loss")


def _labels(x) -> np.ndarray:
    if isinstance(x, _Tensor):
        x = x.detach().cpu().numpy()
    return _asarray(x).astype(np.int64)


def _float_answer(value, name: str) -> float:
    if isinstance(value, _Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise WrongAnswer(f"{name} should be a float, got {type(value).__name__}")
    return float(value)


# --- agreement and copied teacher errors ----------------------------------------------------------


def _agreement(s, t) -> float:
    s, t = _labels(s), _labels(t)
    return float((s == t).mean())


def _share_copied(s, t, y) -> float:
    s, t, y = _labels(s), _labels(t), _labels(y)
    wrong = t != y
    return float((s[wrong] == t[wrong]).mean())


_EXAMPLE = dict(
    student=[0, 1, 2, 2, 1, 0, 3, 3, 1, 2],
    teacher=[0, 1, 2, 1, 1, 0, 3, 2, 2, 2],
    labels=[0, 1, 1, 1, 2, 0, 3, 3, 2, 0],
)


def _agreement_case(fn, s, t, expected) -> None:
    for kind in (torch.tensor, np.array):
        actual = _float_answer(call_student(fn, "agreement", kind(s), kind(t)), "agreement(...)")
        if close(actual, expected, rtol=1e-9, atol=1e-12):
            continue
        n = len(s)
        if close(actual, expected * n, rtol=1e-9):
            raise WrongAnswer("agreement returned a count: divide by the number of examples to get a rate")
        if close(actual, 1 - expected, rtol=1e-9):
            raise WrongAnswer("agreement returned the disagreement rate: agreement is the share of examples "
                              "where the student's top class equals the teacher's")
        raise WrongAnswer(f"agreement({s}, {t}) returned {actual}, expected {expected}")


def check_agreement(fn) -> None:
    """Visible checks of ``agreement(student_pred, teacher_pred)`` on small label vectors."""
    _agreement_case(fn, _EXAMPLE["student"], _EXAMPLE["teacher"], 0.7)
    _agreement_case(fn, [3, 3, 3], [1, 2, 0], 0.0)


def check_agreement_values(fn, cases) -> None:
    """Hidden checks: ``cases`` are ``((student, teacher), expected)``."""
    for (s, t), expected in cases:
        _agreement_case(fn, s, t, expected)


def _copied_case(fn, s, t, y, expected) -> None:
    actual = _float_answer(
        call_student(fn, "share_of_teacher_errors_copied", torch.tensor(s), torch.tensor(t), torch.tensor(y)),
        "share_of_teacher_errors_copied(...)",
    )
    if close(actual, expected, rtol=1e-9, atol=1e-12):
        return
    s_, t_, y_ = _labels(s), _labels(t), _labels(y)
    wrong = t_ != y_
    variants = [
        (float(((s_ == t_) & wrong).mean()), "you divided by all examples: the share is taken over the examples "
         "the teacher gets wrong only"),
        (float((s_[wrong] != y_[wrong]).mean()), "you counted every student error where the teacher is wrong; a copied "
         "error is one where the student predicts the teacher's *same* wrong class"),
        (float((s_[~wrong] == t_[~wrong]).mean()) if (~wrong).any() else math.nan,
         "you looked at the examples the teacher gets right; the share is over the teacher's errors"),
        (float((s_ == t_).mean()), "that is the overall agreement; restrict it to the examples the teacher gets wrong"),
    ]
    for value, message in variants:
        if _isfinite(value) and close(actual, value, rtol=1e-9, atol=1e-12):
            raise WrongAnswer(f"share_of_teacher_errors_copied returned {actual:.4f}, expected {expected:.4f}: {message}")
    raise WrongAnswer(f"share_of_teacher_errors_copied returned {actual!r}, expected {expected!r}")


def check_share_copied(fn) -> None:
    """Visible checks of ``share_of_teacher_errors_copied(student_pred, teacher_pred, labels)``."""
    e = _EXAMPLE
    _copied_case(fn, e["student"], e["teacher"], e["labels"], _share_copied(e["student"], e["teacher"], e["labels"]))
    _copied_case(fn, [1, 1, 0, 2], [2, 1, 0, 1], [0, 1, 0, 2], 0.0)


def check_share_copied_values(fn, cases) -> None:
    """Hidden checks: ``cases`` are ``((student, teacher, labels), expected)``."""
    for (s, t, y), expected in cases:
        _copied_case(fn, s, t, y, expected)


def check_fraction(value, name: str) -> None:
    """Visible format check: a float in [0, 1]."""
    require_answered(value, name, "compute it in the cell above")
    value = _float_answer(value, name)
    require(0.0 <= value <= 1.0, f"{name} = {value} is not a fraction in [0, 1]")


def check_fraction_value(value, expected, name: str, hint: str = "") -> None:
    """Hidden value check of a fraction computed from the notebook's predictions."""
    check_fraction(value, name)
    if not close(float(value), expected, rtol=1e-6, atol=1e-9):
        raise WrongAnswer(f"{name} = {float(value):.4f} is not right{': ' + hint if hint else ''}")


def scenario_numbers(student_before, student_after, teacher_pred, labels) -> dict[str, float]:
    """Trusted accuracy, agreement and copied share before/after distillation (for the hidden cells)."""
    y = _labels(labels)
    return {
        "accuracy_before": float((_labels(student_before) == y).mean()),
        "accuracy_after": float((_labels(student_after) == y).mean()),
        "agreement_before": _agreement(student_before, teacher_pred),
        "agreement_after": _agreement(student_after, teacher_pred),
        "copied_before": _share_copied(student_before, teacher_pred, labels),
        "copied_after": _share_copied(student_after, teacher_pred, labels),
    }


def scenario_c_predictions(device=None) -> dict[str, np.ndarray]:
    """Rerun the notebook's scenario C with trusted code; return test-set predictions and labels.

    Same recipe as the notebook: digits split with seed 0, a depth-5 tree fitted on the whole training
    split as the teacher, a 16-unit student seeded with 1, trained on labels for 5 epochs (``before``),
    then distilled for 20 epochs at T = 1 with α = 0 (``after``). The random number generators are
    restored afterwards, so the rerun does not change what later cells draw.
    """
    device = _pick_device() if device is None else device
    np_state, py_state = _np_get_state(), _py_get_state()
    devices = [device] if getattr(device, "type", str(device)) == "cuda" else []
    try:
        with _fork_rng(devices=devices):
            data = _load_digits_splits(seed=0).to(device)
            tree = _train_weak_teacher(data.X_train.cpu().numpy(), data.y_train.cpu().numpy(), max_depth=5)
            teacher = _SklearnTeacher(tree, data.num_classes)
            _seed_everything(1)
            student = _make_student(data.num_features, data.num_classes, width=16)
            _train(student, data, epochs=5, device=device, progress=False)
            before = _deepcopy(student)
            _distill(student, teacher, data, epochs=20, temperature=1.0, alpha=0.0, device=device, progress=False)
            with torch.no_grad():
                predictions = {
                    "before": before(data.X_test).argmax(dim=1).cpu().numpy(),
                    "after": student(data.X_test).argmax(dim=1).cpu().numpy(),
                    "teacher": teacher(data.X_test).argmax(dim=1).cpu().numpy(),
                    "labels": data.y_test.cpu().numpy(),
                }
    finally:
        _np_set_state(np_state)
        _py_set_state(py_state)
    return predictions


def check_scenario_c_numbers(answers: dict, device=None) -> None:
    """Hidden check of ``accuracy_before/after`` and ``copied_before/after`` against a trusted rerun.

    On the CPU the rerun reproduces the notebook's training exactly, so the answers must match to
    rounding. On a GPU some kernels may differ in the last bits from run to run, which can flip the
    prediction of a borderline example, so a tolerance of 0.02 is allowed there.
    """
    device = _pick_device() if device is None else device
    reference = scenario_c_predictions(device)
    expected = scenario_numbers(reference["before"], reference["after"], reference["teacher"], reference["labels"])
    atol = 1e-9 if getattr(device, "type", str(device)) == "cpu" else 0.02
    hint = "accuracy compares with the true labels; copied errors are counted on the teacher's errors"
    for name in ("accuracy_before", "accuracy_after", "copied_before", "copied_after"):
        value = answers.get(name)
        check_fraction(value, name)
        if not close(float(value), expected[name], rtol=1e-6, atol=atol):
            raise WrongAnswer(f"{name} = {float(value):.4f} is not right: {hint}")


# --- the reverse KL(p_s‖p_t) ------------------------------------------------------------------


def _reverse(z, v, T):
    log_s, log_t = _log_softmax(z / T, dim=-1), _log_softmax(v / T, dim=-1)
    return T**2 * (_exp(log_s) * (log_s - log_t)).sum(dim=-1).mean()


def _forward(z, v, T):
    log_s, log_t = _log_softmax(z / T, dim=-1), _log_softmax(v / T, dim=-1)
    return T**2 * (_exp(log_t) * (log_t - log_s)).sum(dim=-1).mean()


def _reverse_variants(z, v, T):
    log_s, log_t = _log_softmax(z / T, dim=-1), _log_softmax(v / T, dim=-1)
    per = (_exp(log_s) * (log_s - log_t)).sum(dim=-1)
    return [
        (float(_forward(z, v, T)), "this is the forward KL, KL(p_t‖p_s): the reverse loss puts the student first, "
         "T²·KL(p_s^T‖p_t^T) (swapped arguments: the reverse KL(p_s‖p_t) is not the same loss as KL(p_t‖p_s))"),
        (float(per.mean()), "the T² factor is missing: multiply by T² as in the forward loss T²·KL(p_t^T‖p_s^T) (T² factor missing)"),
        (float(T**4 * per.mean()), "T² is applied twice"),
        (float(T**2 * per.mean() / z.shape[-1]), "you averaged over classes instead of summing: the KL sums over "
         "classes and averages over the batch"),
        (float(T**2 * per.sum()), "you summed over the batch: take the batch mean"),
        (float(T**2 * (_exp(log_s) * (log_s - log_t)).sum(dim=-1).mean() / T), "only one factor of T is applied"),
    ]


def _reverse_case(fn, z, v, T, expected=None) -> None:
    z = _as_tensor(z, dtype=torch.float64).clone().requires_grad_(True)
    v = _as_tensor(v, dtype=torch.float64)
    result = call_student(fn, "reverse_distillation_loss", z, v.clone(), T)
    if not isinstance(result, _Tensor):
        raise WrongAnswer(f"reverse_distillation_loss should return a torch tensor, got {type(result).__name__}")
    if result.ndim != 0:
        raise WrongAnswer(f"reverse_distillation_loss should return a scalar (the batch mean), got shape {tuple(result.shape)}")
    actual = float(result.detach())
    if math.isnan(actual):
        raise WrongAnswer("reverse_distillation_loss returned NaN: a probability underflowed to 0 and 0·log 0 became "
                          "NaN. Work with log_softmax and write p·(log p − log q) with the log-probabilities")
    truth = float(_reverse(z.detach(), v, T)) if expected is None else float(expected)
    if not close(actual, truth, rtol=1e-6, atol=1e-9):
        for value, message in _reverse_variants(z.detach(), v, T):
            if close(actual, value, rtol=1e-6, atol=1e-9):
                raise WrongAnswer(f"reverse_distillation_loss returned {actual:.6f}, expected {truth:.6f}: {message}")
        raise WrongAnswer(f"reverse_distillation_loss returned {actual:.6f}, expected {truth:.6f} "
                          "(T²·KL(p_s^T‖p_t^T), summed over classes, averaged over the batch)")
    if not result.requires_grad:
        raise WrongAnswer("the loss has no gradient: keep the student's logits in the graph (no .detach()/.item()/numpy)")
    (grad,) = torch.autograd.grad(result, z)
    if bool(torch.isnan(grad).any()):
        raise WrongAnswer(
            "the value is right but the gradient with respect to the student's logits contains NaN: where a "
            "student probability underflows to exactly 0, the derivative of p.log() or of torch.xlogy(p, p) "
            "divides 0 by 0. Write the per-class terms as p·(log p − log q) with log_softmax log-probabilities"
        )
    z_ref = z.detach().clone().requires_grad_(True)
    (grad_ref,) = torch.autograd.grad(_reverse(z_ref, v, T), z_ref)
    if not close(grad, grad_ref, rtol=1e-5, atol=1e-9):
        raise WrongAnswer("the value is right but the gradient with respect to the student's logits is not: "
                          "do not detach any part that depends on the student")


def check_reverse_loss(fn) -> None:
    """Visible checks of ``reverse_distillation_loss(student_logits, teacher_logits, T)``."""
    forbid_delegation(fn, "reverse_distillation_loss", banned_names=BANNED_LOSS_NAMES)
    rng = np.random.default_rng(4)
    for T in (1.0, 2.5):
        _reverse_case(fn, rng.normal(size=(5, 4)) * 2, rng.normal(size=(5, 4)) * 2, T)
    # Equal logits: both divergences are 0.
    same = rng.normal(size=(3, 6))
    _reverse_case(fn, same, same, 2.0)


def check_reverse_loss_values(fn, cases) -> None:
    """Hidden checks: ``cases`` are ``((student_logits, teacher_logits, T), expected)``, float64."""
    forbid_delegation(fn, "reverse_distillation_loss", banned_names=BANNED_LOSS_NAMES)
    for (z, v, T), expected in cases:
        _reverse_case(fn, z, v, T, expected)


# --- Gaussian entropy and numbers -------------------------------------------------------------


def _gaussian_entropy(sigma: float) -> float:
    return 0.5 * _log(2 * _pi * _e * sigma**2)


def _entropy_case(fn, sigma, expected) -> None:
    actual = _float_answer(call_student(fn, "gaussian_entropy", sigma), f"gaussian_entropy({sigma})")
    if close(actual, expected, rtol=1e-9, atol=1e-12):
        return
    variants = [
        (expected / _log(2), "you used log base 2 (bits); the course measures in nats (natural log)"),
        (_log(2 * _pi * _e * sigma**2), "the factor 1/2 is missing: H = ½·log(2πe σ²)"),
        (0.5 * _log(2 * _pi * _e * sigma), "you used σ where the formula has the variance σ²"),
        (0.5 * _log(2 * _pi * sigma**2), "the e inside the log is missing: H = ½·log(2πe σ²)"),
    ]
    for value, message in variants:
        if close(actual, value, rtol=1e-9, atol=1e-12):
            raise WrongAnswer(f"gaussian_entropy({sigma}) returned {actual:.6f}, expected {expected:.6f}: {message}")
    raise WrongAnswer(f"gaussian_entropy({sigma}) returned {actual!r}, expected {expected!r}")


def check_gaussian_entropy(fn) -> None:
    """Visible checks of ``gaussian_entropy(sigma)`` (nats)."""
    for sigma in (1.0, 0.25):
        _entropy_case(fn, sigma, _gaussian_entropy(sigma))


def check_gaussian_entropy_values(fn, cases) -> None:
    """Hidden checks: ``cases`` are ``(sigma, expected)``."""
    for sigma, expected in cases:
        _entropy_case(fn, sigma, expected)


def check_number(value, expected, name: str, rtol: float = 1e-6, atol: float = 1e-9, hint: str = "") -> None:
    """A numeric answer variable against its expectation (format and value)."""
    require_answered(value, name, "compute it in the cell above")
    value = _float_answer(value, name)
    if not close(value, expected, rtol=rtol, atol=atol):
        raise WrongAnswer(f"{name} = {value:.6g} is not right{': ' + hint if hint else ''}")
