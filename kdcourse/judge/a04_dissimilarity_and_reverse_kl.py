r"""Judge of assignment a04 (what a falling dissimilarity score means; the reverse KL(p_θ‖p_t)).

Every function answer is called on the visible inputs below and, when graded, on the hidden inputs of
``grading/assignments/a04_dissimilarity_and_reverse_kl.toml``; the expected values are computed here with
trusted code. The scenario C numbers are judged against a rerun of the scenario
(:func:`kdcourse.falling_score.scenario_c_predictions`), never against the notebook's predictions; the
entropies of the Gaussian fits and the unimodal fit's top class against :mod:`kdcourse.fits`. A wrong
answer's message names the misconception it matches: "falling KL means higher accuracy", "falling KL means
the student beats the teacher", "the reverse KL(p_θ‖p_t) is the same loss as KL(p_t‖p_θ)", "the reverse
KL(p_θ‖p_t) is mass-covering" (those four through the answer keys of the instructor file), swapped
arguments, a missing :math:`T^2`, a count instead of a rate, a share over the wrong examples, and so on.
"""

from __future__ import annotations

import functools
import math
from types import MappingProxyType

import numpy as np

from .items import Answer, Call, Context, Item, Results
from .matching import close, diagnose, expected_clause
from .static import forbid_delegation
from .values import as_number, check_choice_format, choice_item, choice_key, judge_choice, require_answered
from .verdict import Wrong

__all__ = ["ITEMS", "agreement", "share_copied", "scenario_numbers", "reverse_loss", "gaussian_entropy",
           "scenario_c_expected", "fit_expectations", "width_gaps"]

#: Library losses that would do exercise 2.2. ``torch.xlogy`` is not among them: it is the safe way to
#: write p·log p that assignment 2 teaches.
BANNED_LOSS_NAMES = ("kl_div", "KLDivLoss", "distillation_loss", "combined_loss")
BANNED_PACKAGES = ("scipy", "kdcourse", "sklearn", "torch.distributions")
SCENARIO_NAMES = ("accuracy_before", "accuracy_after", "copied_before", "copied_after")
SCENARIO_HINT = "accuracy compares with the true labels; copied errors are counted on the teacher's errors"
#: How far the scenario C answers may be from the rerun when the grading kernels train on an accelerator
#: (some of its kernels differ in the last bits from run to run, which can flip a borderline prediction).
ACCELERATOR_ATOL = 0.02
#: A rate may be a float32 mean ((s == t).float().mean()): 1e-6 relative covers its rounding, and no
#: misconception (a count, the disagreement rate, a share over other examples) comes that close.
RATE_RTOL, RATE_ATOL = 1e-6, 1e-9

# --- visible inputs ---------------------------------------------------------------------------------

EXAMPLE_STUDENT = [0, 1, 2, 2, 1, 0, 3, 3, 1, 2]
EXAMPLE_TEACHER = [0, 1, 2, 1, 1, 0, 3, 2, 2, 2]
EXAMPLE_LABELS = [0, 1, 1, 1, 2, 0, 3, 3, 2, 0]
LABEL_TENSORS = ("label_tensor", "label_tensor")
LABEL_ARRAYS = ["labels", "labels"]


def _both_kinds(*pairs) -> tuple:
    """Each ``(student, teacher)`` pair twice: as int64 tensors, then as int64 numpy arrays."""
    cases = []
    for student, teacher in pairs:
        cases += [[student, teacher], {"args": [student, teacher], "convert": LABEL_ARRAYS}]
    return tuple(cases)


def _reverse_loss_cases() -> tuple:
    """Logits drawn from ``default_rng(4)``: two random batches (T = 1 and 2.5), then equal logits (T = 2)."""
    rng = np.random.default_rng(4)
    cases = []
    for T in (1.0, 2.5):
        z, v = rng.normal(size=(5, 4)) * 2, rng.normal(size=(5, 4)) * 2
        cases.append([z.tolist(), v.tolist(), T])
    same = rng.normal(size=(3, 6)).tolist()
    cases.append([same, same, 2.0])
    return tuple(cases)


# --- trusted maths ---------------------------------------------------------------------------------


def _labels(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def agreement(student, teacher) -> float:
    """Share of examples where the two predicted classes are equal."""
    return float((_labels(student) == _labels(teacher)).mean())


def share_copied(student, teacher, labels) -> float:
    """Among the teacher's errors, the share where the student predicts the teacher's same wrong class."""
    s, t, y = _labels(student), _labels(teacher), _labels(labels)
    wrong = t != y
    return float((s[wrong] == t[wrong]).mean())


def scenario_numbers(before, after, teacher, labels) -> dict[str, float]:
    """Accuracy, agreement and copied share of the student before and after distillation."""
    y = _labels(labels)
    return {
        "accuracy_before": float((_labels(before) == y).mean()),
        "accuracy_after": float((_labels(after) == y).mean()),
        "agreement_before": agreement(before, teacher),
        "agreement_after": agreement(after, teacher),
        "copied_before": share_copied(before, teacher, labels),
        "copied_after": share_copied(after, teacher, labels),
    }


def _tempered(z, v, T):
    import torch

    return torch.log_softmax(z / T, dim=-1), torch.log_softmax(v / T, dim=-1)


def reverse_loss(z, v, T):
    """T²·KL(p_s^T‖p_t^T), summed over classes, averaged over the batch (torch, float64)."""
    log_s, log_t = _tempered(z, v, T)
    return T**2 * (log_s.exp() * (log_s - log_t)).sum(dim=-1).mean()


def _forward_loss(z, v, T):
    log_s, log_t = _tempered(z, v, T)
    return T**2 * (log_t.exp() * (log_t - log_s)).sum(dim=-1).mean()


def gaussian_entropy(sigma: float) -> float:
    """Differential entropy of N(μ, σ²) in nats."""
    return 0.5 * math.log(2 * math.pi * math.e * sigma**2)


@functools.lru_cache(maxsize=1)
def scenario_c_expected() -> MappingProxyType:
    """The scenario C numbers of a trusted rerun on the CPU (once per process).

    The rerun uses one torch thread, as the notebook does, and leaves the random number generators of
    Python, numpy and torch, and torch's thread count, as it found them.
    """
    import random

    import torch

    from kdcourse.falling_score import scenario_c_predictions

    np_state, py_state, threads = np.random.get_state(), random.getstate(), torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with torch.random.fork_rng(devices=[]):
            predictions = scenario_c_predictions(torch.device("cpu"))
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
        torch.set_num_threads(threads)
    return MappingProxyType(scenario_numbers(*(p.numpy() for p in predictions)))


def _scenario_atol() -> float:
    """Rounding on the CPU, where the grading kernels train unless ``KDCOURSE_DEVICE`` says otherwise."""
    from kdcourse.execution import kernel_environment

    return 1e-9 if kernel_environment()["KDCOURSE_DEVICE"] == "cpu" else ACCELERATOR_ATOL


@functools.lru_cache(maxsize=1)
def fit_expectations() -> MappingProxyType:
    """Sigmas and entropies of the two Gaussian fits, and the top class of the KL(p‖q) unimodal fit."""
    from kdcourse.fits import fit_gaussian, fit_unimodal_classes

    sigma = {d: float(fit_gaussian(d).sigma) for d in ("forward", "reverse")}
    return MappingProxyType({
        "sigma_forward": sigma["forward"], "sigma_reverse": sigma["reverse"],
        "entropy_forward": gaussian_entropy(sigma["forward"]), "entropy_reverse": gaussian_entropy(sigma["reverse"]),
        "forward_class_argmax": int(np.argmax(fit_unimodal_classes("forward").probabilities)),
    })


# --- reading answers -----------------------------------------------------------------------------------


def _float(value, name: str) -> float:
    """A returned or assigned number as a float: a Python or numpy number, or a one-element tensor."""
    if value.kind == "bool" or not value.is_number or value.kind == "ndarray":
        raise Wrong(f"{name} should be a float, got {value.describe()}")
    if value.kind == "tensor":
        return float(value.data.reshape(-1)[0])
    return float(value.data)


def _returned(call: Call, name: str, where: str) -> float:
    if call.raised:
        raise Wrong(f"{name} raised {call.raised[0]}: {call.raised[1]}")
    return _float(call.returned, where)


def _number(results: Results, name: str, hint: str = "compute it in the cell above") -> float:
    value = results.value(name)
    require_answered(value, name, hint)
    return _float(value, name)


def _fraction(results: Results, name: str) -> float:
    value = _number(results, name)
    if not 0.0 <= value <= 1.0:
        raise Wrong(f"{name} = {value} is not a fraction in [0, 1]")
    return value


def _expect_number(value: float, expected: float, name: str, hint: str, rtol: float = 1e-6, atol: float = 1e-9):
    if not close(value, expected, rtol=rtol, atol=atol):
        raise Wrong(f"{name} = {value:.6g} is not right: {hint}")


def _choice(results: Results, name: str, options: list[str], hint: str = "set it to one of the letters") -> str:
    require_answered(results.value(name), name, hint)
    return check_choice_format(results.value(name), options, name)


# --- agreement and copied teacher errors ----------------------------------------------------------------


def _judge_agreement(results: Results, context: Context) -> None:
    for call in results.calls["agreement"]:
        s, t = call.args
        actual = _returned(call, "agreement", "agreement(...)")
        expected = agreement(s, t)
        if close(actual, expected, rtol=RATE_RTOL, atol=RATE_ATOL):
            continue
        found = diagnose(actual, [
            (expected * len(s), "agreement returned a count: divide by the number of examples to get a rate"),
            (1 - expected, "agreement returned the disagreement rate: agreement is the share of examples where "
                           "the student's top class equals the teacher's"),
        ], rtol=RATE_RTOL, atol=RATE_ATOL)
        raise Wrong(found or f"agreement({s}, {t}) returned {actual}{expected_clause(expected, call.hidden)}")


def _copied_variants(s, t, y) -> list:
    s, t, y = _labels(s), _labels(t), _labels(y)
    wrong = t != y
    return [
        (float(((s == t) & wrong).mean()), "you divided by all examples: the share is taken over the examples "
         "the teacher gets wrong only"),
        (float((s[wrong] != y[wrong]).mean()), "you counted every student error where the teacher is wrong; a "
         "copied error is one where the student predicts the teacher's *same* wrong class"),
        (float((s[~wrong] == t[~wrong]).mean()) if (~wrong).any() else None,
         "you looked at the examples the teacher gets right; the share is over the teacher's errors"),
        (float((s == t).mean()), "that is the overall agreement; restrict it to the examples the teacher gets wrong"),
    ]


def _judge_share_copied(results: Results, context: Context) -> None:
    name = "share_of_teacher_errors_copied"
    for call in results.calls[name]:
        s, t, y = call.args
        actual = _returned(call, name, f"{name}(...)")
        expected = share_copied(s, t, y)
        if close(actual, expected, rtol=RATE_RTOL, atol=RATE_ATOL):
            continue
        found = diagnose(actual, _copied_variants(s, t, y), rtol=RATE_RTOL, atol=RATE_ATOL)
        if found:
            raise Wrong(f"{name} returned {actual:.4f}{expected_clause(expected, call.hidden)}: {found}")
        raise Wrong(f"{name} returned {actual!r}{expected_clause(expected, call.hidden)}")


def _judge_scenario_c(results: Results, context: Context) -> str:
    numbers = {name: _fraction(results, name) for name in SCENARIO_NAMES}
    if context.full:
        expected, atol = scenario_c_expected(), _scenario_atol()
        for name in SCENARIO_NAMES:
            if not close(numbers[name], expected[name], rtol=1e-6, atol=atol):
                raise Wrong(f"{name} = {numbers[name]:.4f} is not right: {SCENARIO_HINT}")
    state = "checks passed" if context.full else "answers recorded"
    return (f"scenario C numbers: {state} (accuracy {numbers['accuracy_before']:.3f} → "
            f"{numbers['accuracy_after']:.3f}; teacher errors copied {numbers['copied_before']:.2f} → "
            f"{numbers['copied_after']:.2f})")


# --- the reverse KL(p_s‖p_t) --------------------------------------------------------------------------


def _reverse_variants(z, v, T) -> list:
    log_s, log_t = _tempered(z, v, T)
    per = (log_s.exp() * (log_s - log_t)).sum(dim=-1)
    return [
        (float(_forward_loss(z, v, T)), "this is the forward KL, KL(p_t‖p_s): the reverse loss puts the student "
         "first, T²·KL(p_s^T‖p_t^T) (swapped arguments: the reverse KL(p_s‖p_t) is not the same loss as "
         "KL(p_t‖p_s))"),
        (float(per.mean()), "the T² factor is missing: multiply by T² as in the forward loss T²·KL(p_t^T‖p_s^T) "
         "(T² factor missing)"),
        (float(T**4 * per.mean()), "T² is applied twice"),
        (float(T**2 * per.mean() / z.shape[-1]), "you averaged over classes instead of summing: the KL sums over "
         "classes and averages over the batch"),
        (float(T**2 * per.sum()), "you summed over the batch: take the batch mean"),
        (float(T * per.mean()), "only one factor of T is applied"),
    ]


def _judge_reverse_call(call: Call) -> None:
    import torch

    name = "reverse_distillation_loss"
    if call.raised:
        raise Wrong(f"{name} raised {call.raised[0]}: {call.raised[1]}")
    result = call.returned
    if result.kind != "tensor":
        raise Wrong(f"{name} should return a torch tensor, got {result.describe()}")
    if result.data.ndim != 0:
        raise Wrong(f"{name} should return a scalar (the batch mean), got shape {tuple(result.data.shape)}")
    actual = float(result.data)
    if math.isnan(actual):
        raise Wrong(f"{name} returned NaN: a probability underflowed to 0 and 0·log 0 became NaN. Work with "
                    "log_softmax and write p·(log p − log q) with the log-probabilities")
    z = torch.tensor(call.args[0], dtype=torch.float64)
    v = torch.tensor(call.args[1], dtype=torch.float64)
    T = float(call.args[2])
    truth = float(reverse_loss(z, v, T))
    if not close(actual, truth, rtol=1e-6, atol=1e-9):
        found = diagnose(actual, _reverse_variants(z, v, T), rtol=1e-6, atol=1e-9)
        if found:
            raise Wrong(f"{name} returned {actual:.6f}{expected_clause(truth, call.hidden)}: {found}")
        raise Wrong(f"{name} returned {actual:.6f}{expected_clause(truth, call.hidden)} "
                    "(T²·KL(p_s^T‖p_t^T), summed over classes, averaged over the batch)")
    grad = (call.grads or {}).get(0)
    if not result.requires_grad or grad is None or grad.kind != "tensor":
        raise Wrong("the loss has no gradient: keep the student's logits in the graph (no .detach()/.item()/numpy)"
                    + (f" ({call.grad_problem})" if call.grad_problem and result.requires_grad else ""))
    if np.isnan(grad.data).any():
        raise Wrong("the value is right but the gradient with respect to the student's logits contains NaN: where "
                    "a student probability underflows to exactly 0, the derivative of p.log() or of "
                    "torch.xlogy(p, p) divides 0 by 0. Write the per-class terms as p·(log p − log q) with "
                    "log_softmax log-probabilities")
    z_ref = z.clone().requires_grad_(True)
    (grad_ref,) = torch.autograd.grad(reverse_loss(z_ref, v, T), z_ref)
    if not close(grad.data, grad_ref.numpy(), rtol=1e-5, atol=1e-9):
        raise Wrong("the value is right but the gradient with respect to the student's logits is not: do not "
                    "detach any part that depends on the student")


def _static_reverse(context: Context) -> None:
    forbid_delegation(context.code, "reverse_distillation_loss", BANNED_LOSS_NAMES, BANNED_PACKAGES)


def _judge_reverse(results: Results, context: Context) -> None:
    for call in results.calls["reverse_distillation_loss"]:
        _judge_reverse_call(call)


# --- Gaussian entropy, the fits and the choices ----------------------------------------------------------


def _judge_gaussian_entropy(results: Results, context: Context) -> None:
    for call in results.calls["gaussian_entropy"]:
        sigma = float(call.args[0])
        actual = _returned(call, "gaussian_entropy", f"gaussian_entropy({sigma})")
        expected = gaussian_entropy(sigma)
        if close(actual, expected, rtol=1e-9, atol=1e-12):
            continue
        found = diagnose(actual, [
            (expected / math.log(2), "you used log base 2 (bits); the course measures in nats (natural log)"),
            (math.log(2 * math.pi * math.e * sigma**2), "the factor 1/2 is missing: H = ½·log(2πe σ²)"),
            (0.5 * math.log(2 * math.pi * math.e * sigma), "you used σ where the formula has the variance σ²"),
            (0.5 * math.log(2 * math.pi * sigma**2), "the e inside the log is missing: H = ½·log(2πe σ²)"),
        ], rtol=1e-9, atol=1e-12)
        if found:
            raise Wrong(f"gaussian_entropy({sigma}) returned {actual:.6f}{expected_clause(expected, call.hidden)}: {found}")
        raise Wrong(f"gaussian_entropy({sigma}) returned {actual!r}{expected_clause(expected, call.hidden)}")


def _judge_fit_entropies(results: Results, context: Context) -> str:
    hints = {"entropy_forward": "use gaussian_entropy on the sigma of the KL(p‖q) fit",
             "entropy_reverse": "use gaussian_entropy on the sigma of the KL(q‖p) fit"}
    for name, hint in hints.items():
        require_answered(results.value(name), name, hint)
    numbers = {name: _float(results.value(name), name) for name in hints}
    if context.full:
        fits = fit_expectations()
        for name, fit in (("entropy_forward", "KL(p‖q)"), ("entropy_reverse", "KL(q‖p)")):
            sigma = fits["sigma_" + name.split("_")[1]]
            hint = f"the {fit} fit has sigma ≈ {sigma:.2f}, so its entropy is about {fits[name]:.2f} nats"
            _expect_number(numbers[name], fits[name], name, hint, rtol=1e-3)
    state = "checks passed" if context.full else "answers recorded"
    return (f"entropies: {state} (KL(p‖q) fit {numbers['entropy_forward']:.2f} nats, "
            f"KL(q‖p) fit {numbers['entropy_reverse']:.2f} nats)")


def _judge_fit_readings(results: Results, context: Context) -> str:
    mode = _choice(results, "mode_seeking_fit", ["forward", "reverse"],
                   'set it to "forward" (the KL(p‖q) fit) or "reverse" (the KL(q‖p) fit)')
    require_answered(results.value("forward_class_argmax"), "forward_class_argmax",
                     "read it from class_fits['forward'] (the KL(p‖q) fit)")
    why = _choice(results, "why_forward_score_is_large", ["A", "B", "C", "D"])
    if context.full:
        judge_choice(mode, choice_key(context, "mode_seeking_fit"), "mode_seeking_fit")
        argmax = _float(results.value("forward_class_argmax"), "forward_class_argmax")
        _expect_number(argmax, fit_expectations()["forward_class_argmax"], "forward_class_argmax",
                       hint="the KL(p‖q) fit covers both modes, so its peak lies between classes 2 and 7")
        judge_choice(why, choice_key(context, "why_forward_score_is_large"), "why_forward_score_is_large")
    return f"fit readings: {'checks passed' if context.full else 'answers recorded'}"




# --- narrow and wide students on the digits (Exercise 2.8) -------------------------------------------------

#: The two student widths of the experiment; the gaps are typed from 4 printed decimals at worst.
WIDTHS = (4, 64)
GAP_ATOL = 1e-3


@functools.lru_cache(maxsize=1)
def width_gaps() -> MappingProxyType:
    """``{width: {score: mean over seeds of the difference}}`` of a trusted rerun on the CPU, one thread.

    The scores are ``entropy``, ``agreement`` and ``accuracy``; the difference is the score of the student
    distilled with KL(p_t‖p_θ) minus that of the student distilled with KL(p_θ‖p_t)
    (:func:`kdcourse.directions.narrow_and_wide_students`).
    """
    import torch

    from kdcourse.directions import narrow_and_wide_students

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = narrow_and_wide_students(widths=WIDTHS)
    finally:
        torch.set_num_threads(threads)
    return MappingProxyType({
        width: {score: float(np.mean([f[score] - r[score] for f, r in zip(by["forward"], by["reverse"])]))
                for score in ("entropy", "agreement", "accuracy")}
        for width, by in runs.items()})


def _judge_one_gap(number: float, name: str, width: int, gaps: MappingProxyType) -> None:
    expected = gaps[width]["entropy"]
    if close(number, expected, rtol=0, atol=GAP_ATOL):
        return
    other = next(w for w in WIDTHS if w != width)
    variants = [
        (-expected, "the sign is flipped: the gap is the entropy of the student trained with KL(p_t‖p_θ) minus "
                    "that of the student trained with KL(p_θ‖p_t)"),
        (gaps[other]["entropy"], f"this is the gap of the {other}-unit student: {name} is the {width}-unit one's"),
        (gaps[width]["agreement"], "this is the difference in agreement with the teacher; the question asks for the "
                                   "difference in mean entropy"),
        (gaps[width]["accuracy"], "this is the difference in accuracy; the question asks for the difference in mean "
                                  "entropy"),
    ]
    message = diagnose(number, variants, rtol=0, atol=GAP_ATOL)
    raise Wrong(f"{name} = {number:.4f} is not the mean over the five seeds of the {width}-unit students' entropy "
                "gap, KL(p_t‖p_θ) student minus KL(p_θ‖p_t) student"
                + (f": {message}" if message else " (average the per-seed differences of direction_runs)"))


def _judge_entropy_gaps(results: Results, context: Context) -> str:
    hint = "the mean over seeds of the KL(p_t‖p_θ) student's entropy minus the KL(p_θ‖p_t) student's"
    narrow = as_number(results.value("entropy_gap_narrow"), "entropy_gap_narrow", hint)
    wide = as_number(results.value("entropy_gap_wide"), "entropy_gap_wide", hint)
    if not context.full:
        return "entropy gaps: answers recorded"
    gaps = width_gaps()
    _judge_one_gap(narrow, "entropy_gap_narrow", WIDTHS[0], gaps)
    _judge_one_gap(wide, "entropy_gap_wide", WIDTHS[1], gaps)
    return "entropy gaps: checks passed"


ITEMS = (
    Item("test_agreement",
         (Answer("agreement", "call", LABEL_TENSORS,
                 _both_kinds((EXAMPLE_STUDENT, EXAMPLE_TEACHER), ([3, 3, 3], [1, 2, 0]))),),
         _judge_agreement, passed="agreement: checks passed"),
    Item("test_share_of_teacher_errors_copied",
         (Answer("share_of_teacher_errors_copied", "call", ("label_tensor",) * 3,
                 ([EXAMPLE_STUDENT, EXAMPLE_TEACHER, EXAMPLE_LABELS], [[1, 1, 0, 2], [2, 1, 0, 1], [0, 1, 0, 2]])),),
         _judge_share_copied, passed="share_of_teacher_errors_copied: checks passed"),
    Item("test_scenario_c_numbers", tuple(Answer(name) for name in SCENARIO_NAMES), _judge_scenario_c),
    choice_item("test_falling_score_meaning", "falling_score_meaning", ["A", "B", "C", "D"], hint="set it to one of the letters"),
    Item("test_reverse_distillation_loss",
         (Answer("reverse_distillation_loss", "loss", ("tensor_grad", "tensor", "float"), _reverse_loss_cases(),
                 grads=(0,)),),
         _judge_reverse, passed="reverse_distillation_loss: checks passed", static=_static_reverse),
    Item("test_gaussian_entropy", (Answer("gaussian_entropy", "call", ("float",), ([1.0], [0.25])),),
         _judge_gaussian_entropy, passed="gaussian_entropy: checks passed"),
    Item("test_fit_entropies", (Answer("entropy_forward"), Answer("entropy_reverse")), _judge_fit_entropies),
    Item("test_fit_readings",
         (Answer("mode_seeking_fit"), Answer("forward_class_argmax"), Answer("why_forward_score_is_large")),
         _judge_fit_readings),
    choice_item("test_reverse_kl_behaviour", "reverse_kl_behaviour", ["A", "B", "C", "D"], hint="set it to one of the letters"),
    choice_item("test_directions_agree", "directions_agree", ["A", "B", "C", "D"], hint="set it to one of the letters"),
    choice_item("test_wide_student_gap", "wide_student_gap", ["A", "B", "C", "D"], hint="set it to one of the letters"),
    Item("test_entropy_gaps", (Answer("entropy_gap_narrow"), Answer("entropy_gap_wide")), _judge_entropy_gaps),
)
