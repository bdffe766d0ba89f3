r"""Judge of assignment a03 (a distillation training step; weak-to-strong and the PGR).

``distill_step`` is judged by **behaviour on a fixed seed**, never by a final accuracy. The kernel runs
the student's step on a tiny teacher/student pair (:func:`kdcourse.answers.scenarios.tiny_scenario`,
weights drawn from numpy, so the same on every machine and torch version) with ``torch.optim.SGD`` and
reports the losses it returned, whether the teacher changed or received a gradient, and the student's
parameter update. Here the same scenario is rebuilt and the reference step taken; because an SGD update
is ``-lr * gradient``, equal updates mean equal gradients. When the update differs it is compared with
the updates that known mistakes produce (the reverse KL(p_s‖p_t), missing :math:`T^2`, α on the wrong
term, temperature on one side, gradients not zeroed, ...) and the mistake is named.

``performance_gap_recovered`` is called on visible and hidden accuracies (including ones without a gap,
where it must raise ``ValueError``); ``pgr_digits`` is compared, when graded, with the PGR of a trusted
rerun of :func:`kdcourse.weak_to_strong.measure_weak_to_strong` in this process, never with the
notebook's variables; so are ``pgr_soft_seeds`` and ``pgr_hard_seeds``, the PGRs over
:data:`PSEUDO_LABEL_SEEDS` of a student trained on the weak tree's probabilities and on its argmax
labels.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from kdcourse.answers.plain import Value
from kdcourse.answers.scenarios import flat_parameters, stale_gradients, tiny_scenario

from .items import Answer, Call, Context, Item, Results, Step
from .matching import carried_forward, carried_results, close, expected_clause
from .static import forbid_delegation
from .values import as_numbers, choice_item, require_answered
from .verdict import Wrong

__all__ = ["ITEMS", "reference_step", "digits_accuracies", "pseudo_label_accuracies"]

#: The visible scenarios: 11 steps on one batch (the loss must fall), and one step that must run.
BEHAVIOUR_CASE = {"seed": 7, "temperature": 2.0, "alpha": 0.5, "lr": 0.5, "steps": 11}
RUNS_CASE = {"seed": 3, "temperature": 2.0, "alpha": 0.5, "lr": 0.1, "steps": 1}
#: Relative tolerance of an update against a reference update (as a vector norm).
UPDATE_RTOL = 1e-6

#: Names that hand the PGR to the course's own implementation (``kdcourse.weak_to_strong``) or read it
#: off the experiment's result object.
BANNED_PGR_NAMES = ("performance_gap_recovered", "kdcourse", "weak_to_strong", "run_weak_to_strong")
BANNED_PACKAGES = ("scipy", "kdcourse", "sklearn")
#: The seeds of the soft- against hard-label experiment (Exercise 6.2).
PSEUDO_LABEL_SEEDS = tuple(range(6))
#: Test digits the weak tree, the weak-to-strong student and the ceiling get right out of 360, as the
#: trusted reruns measure them (a test keeps these equal to the reruns). The student's own
#: performance_gap_recovered is called on them so that its mistakes are carried forward.
TEST_SIZE = 360
DIGITS_COUNTS = (243, 290, 337)
PSEUDO_LABEL_COUNTS = {
    "soft": ((243, 290, 337), (235, 257, 338), (222, 240, 334), (223, 260, 339), (238, 268, 335), (219, 252, 335)),
    "hard": ((243, 274, 337), (235, 240, 338), (222, 225, 334), (223, 255, 339), (238, 256, 335), (219, 230, 335)),
}
#: A PGR typed from the printed accuracies (4 decimals) is accepted.
SEED_PGR_ATOL = 1e-3


def _accuracies(counts: tuple[int, int, int]) -> list[float]:
    return [count / TEST_SIZE for count in counts]


def _own_pgr(*counts: tuple[int, int, int]) -> Answer:
    """The student's performance_gap_recovered on an experiment's accuracies, so that its mistakes are carried forward."""
    return Answer("performance_gap_recovered", "call", ("float", "float", "float"),
                  cases=tuple(_accuracies(c) for c in counts), required=False)


CARRIED = (" — {what} differ(s) from the true PGR but is what your performance_gap_recovered gives, so only "
           "test_performance_gap_recovered counts that mistake (errors carried forward)")


# --- the reference step and the known mistakes -----------------------------------------------------------


def _kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Batch mean of KL(p‖q) from log-probabilities."""
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1).mean()


def variant_loss(name: str, z: torch.Tensor, v: torch.Tensor, y: torch.Tensor, T: float,
                 alpha: float) -> torch.Tensor:
    """The loss of a correct step (``"correct"``) or of a known mistake, on student logits z, teacher logits v."""
    log_s, log_t = F.log_softmax(z / T, dim=-1), F.log_softmax(v / T, dim=-1)
    hard = F.cross_entropy(z, y)
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
        return alpha * hard + (1 - alpha) * T**2 * _kl(log_t, F.log_softmax(z, dim=-1))
    if name == "teacher_not_tempered":
        return alpha * hard + (1 - alpha) * T**2 * _kl(F.log_softmax(v, dim=-1), log_s)
    if name == "kd_only":
        return T**2 * forward
    if name == "ce_only":
        return hard
    if name == "class_mean":
        return alpha * hard + (1 - alpha) * T**2 * forward / z.shape[-1]
    raise ValueError(f"unknown step variant {name!r}")


MISTAKES = {
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
}
NO_ZERO_GRAD = ("the update contains the gradients that were already stored in the student's .grad: "
                "call optimizer.zero_grad() before loss.backward() (gradients accumulate otherwise)")


def _load_flat(model: torch.nn.Module, flat: torch.Tensor) -> None:
    offset = 0
    with torch.no_grad():
        for p in model.parameters():
            n = p.numel()
            p.copy_(flat[offset:offset + n].reshape(p.shape))
            offset += n


def reference_step(case: dict, name: str = "correct", stale: bool = False,
                   start: torch.Tensor | None = None) -> tuple[float, np.ndarray]:
    """One SGD step of the loss ``name`` on the scenario of ``case``: ``(loss before the step, update)``.

    Parameters
    ----------
    case : dict
        ``seed``, ``temperature``, ``alpha``, ``lr`` (as the step probe receives them).
    name : str
        ``"correct"`` or a key of :data:`MISTAKES`.
    stale : bool
        Start from the scenario's stale gradients instead of zeroed ones (what forgetting
        ``optimizer.zero_grad()`` gives).
    start : tensor, optional
        The student's parameters to start from (default: the scenario's).
    """
    teacher, student, (X, y) = tiny_scenario(int(case["seed"]))
    if start is not None:
        _load_flat(student, start)
    optimizer = torch.optim.SGD(student.parameters(), lr=float(case["lr"]))
    with torch.no_grad():
        v = teacher(X)
    loss = variant_loss(name, student(X), v, y, float(case["temperature"]), float(case["alpha"]))
    optimizer.zero_grad()
    if stale:
        for p, g in zip(student.parameters(), stale_gradients(student, int(case["seed"]))):
            p.grad = g.clone()
    before = flat_parameters(student)
    loss.backward()
    optimizer.step()
    return float(loss.detach()), (flat_parameters(student) - before).numpy()


def _loss_at(case: dict, flat: torch.Tensor) -> float:
    """The correct objective with the student's parameters set to ``flat``."""
    teacher, student, (X, y) = tiny_scenario(int(case["seed"]))
    _load_flat(student, flat)
    with torch.no_grad():
        return float(variant_loss("correct", student(X), teacher(X), y, float(case["temperature"]),
                                  float(case["alpha"])))


# --- reading a step -------------------------------------------------------------------------------------


def _raise_if_raised(step: Step) -> None:
    if not step.raised:
        return
    kind, message = step.raised
    text = f"distill_step raised {kind}: {message}"
    if "does not require grad" in message or "does not have a grad_fn" in message:
        raise Wrong(f"{text}. The loss has no gradient path to the student: its logits were cut from the graph "
                    "(.detach(), .item(), .numpy() or torch.no_grad() around the student), so no gradient "
                    "reaches the student")
    raise Wrong(text)


def loss_value(value: Value) -> float:
    """The loss a step returned: a finite Python (or numpy) number, not a tensor."""
    if value.kind == "tensor":
        raise Wrong("distill_step returned a tensor: return loss.item(), a Python float (a tensor keeps the whole "
                    "graph of the step alive)")
    if value.kind not in ("int", "float"):
        raise Wrong(f"distill_step should return the loss as a float, got {value.describe()}")
    number = float(value.data)
    if not math.isfinite(number):
        raise Wrong(f"distill_step returned a loss of {number}, not a finite number")
    return number


def _first_loss(step: Step) -> float:
    if not step.returned:
        _raise_if_raised(step)
        raise Wrong("distill_step returned nothing")  # pragma: no cover - a probe always records one or the other
    return loss_value(step.returned[0])


def _require_teacher_unchanged(step: Step) -> None:
    if step.teacher_changed:
        raise Wrong("the teacher's parameters changed: only the student may be updated (the teacher is frozen)")


def _require_untouched_teacher(step: Step) -> None:
    """The teacher neither changed nor received a gradient.

    A gradient that reaches the teacher leaves the student's update unchanged (the optimizer only holds
    the student), so it costs only the reference item, as much as a wrong loss does, and not the
    behaviour item as well.
    """
    _require_teacher_unchanged(step)
    if step.teacher_grad:
        raise Wrong("gradient reached the teacher: its parameters have a non-zero .grad. Compute the teacher's logits "
                    "under torch.no_grad() (or .detach() them): the teacher is a fixed reference, not trained")


def _update(step: Step) -> np.ndarray:
    if step.update is None or step.update.kind != "tensor":
        raise Wrong("the student's parameter update could not be read")
    return np.asarray(step.update.data, dtype=np.float64)


def _matches(update: np.ndarray, candidate: np.ndarray) -> bool:
    return bool(np.linalg.norm(update - candidate) <= UPDATE_RTOL * np.linalg.norm(candidate) + 1e-12)


# --- distill_step: behaviour --------------------------------------------------------------------------------


def _judge_behaviour(results: Results, context: Context) -> str:
    for step in results.calls["distill_step"]:
        value = _first_loss(step)
        _require_teacher_unchanged(step)
        if not _update(step).any():
            raise Wrong("the student's parameters did not change: call loss.backward() and optimizer.step() "
                        "(and keep the student's logits in the graph)")
        if not value > 0:
            raise Wrong(f"distill_step returned {value}; the combined loss is positive here")
        _raise_if_raised(step)
        losses = [loss_value(v) for v in step.returned]
        if not losses[-1] < losses[0] - 1e-3:
            raise Wrong(f"repeated steps on one batch should lower the loss, but it went {losses[0]:.4f} → "
                        f"{losses[-1]:.4f}")
    return "distill_step: the teacher stays untouched, the student learns, the loss goes down"


# --- distill_step: the update of one step against the reference ---------------------------------------------


def _judge_against_reference(step: Step) -> None:
    case = step.case
    value = _first_loss(step)
    _require_untouched_teacher(step)
    update = _update(step)
    if not update.any():
        raise Wrong("the student's parameters did not change: call optimizer.step() after loss.backward()")
    stale = bool(case.get("stale"))
    expected_loss, expected_update = reference_step(case)
    if _matches(update, expected_update):
        if close(value, expected_loss, rtol=1e-6, atol=1e-9):
            return
        _, student, _ = tiny_scenario(int(case["seed"]))
        after = flat_parameters(student) + torch.as_tensor(update)
        if close(value, _loss_at(case, after), rtol=1e-6):
            raise Wrong("distill_step returned the loss after the step: return the loss computed before "
                        "optimizer.step()")
        raise Wrong(f"the update is right but the returned loss {value:.6f} is not the loss of the step "
                    f"({expected_loss:.6f})")
    if stale and _matches(update, reference_step(case, stale=True)[1]):
        raise Wrong(NO_ZERO_GRAD)
    for name, message in MISTAKES.items():
        if _matches(update, reference_step(case, name)[1]):
            raise Wrong(message)
    raise Wrong("the student's update does not match one SGD step on α·CE(y, p_s) + (1−α)·T²·KL(p_t^T‖p_s^T) "
                "(batch means; teacher under torch.no_grad(); optimizer.zero_grad(), loss.backward(), "
                "optimizer.step())")


def _judge_reference(results: Results, context: Context) -> str:
    for step in results.calls["distill_step"]:
        if step.hidden:
            _judge_against_reference(step)
        else:
            _first_loss(step)
    return "distill_step: matches the reference step" if context.full else "distill_step: runs and returns a float"


# --- performance gap recovered -----------------------------------------------------------------------------


def pgr(weak: float, transferred: float, ceiling: float) -> float:
    return (transferred - weak) / (ceiling - weak)


def pgr_diagnosis(actual: float, weak: float, transferred: float, ceiling: float, atol: float = 1e-12) -> str | None:
    """The misconception whose PGR ``actual`` equals, if any."""
    variants = [
        (1 - pgr(weak, transferred, ceiling), "you computed the share of the gap still missing, "
         "(ceiling − weak→strong)/(ceiling − weak) = 1 − PGR; PGR measures the part recovered"),
        (100 * pgr(weak, transferred, ceiling), "you returned a percentage: PGR is a fraction (1 = the whole gap)"),
        ((transferred - weak) / ceiling, "you divided by the ceiling accuracy: divide by the gap (ceiling − weak)"),
        (transferred / ceiling, "you computed a ratio of accuracies, not the share of the weak-to-ceiling gap recovered"),
        ((ceiling - weak) / (transferred - weak) if transferred != weak else math.nan,
         "numerator and denominator are swapped: PGR = (weak→strong − weak)/(ceiling − weak)"),
    ]
    for value, message in variants:
        if math.isfinite(value) and close(actual, value, rtol=1e-9, atol=atol):
            return message
    return None


def _shown(value: Value) -> str:
    """A returned value as the student would write it."""
    return repr(value.data) if value.kind in ("none", "bool", "int", "float", "str") else value.describe()


def _judge_pgr_call(call: Call) -> None:
    weak, transferred, ceiling = (float(a) for a in call.args)
    call_text = f"performance_gap_recovered({weak}, {transferred}, {ceiling})"
    if not ceiling > weak:
        if call.raised_type == "ValueError":
            return
        if call.raised:
            raise Wrong(f"{call_text} raised {call.raised_type}; raise ValueError instead when the ceiling is not "
                        "above the weak accuracy")
        raise Wrong(f"{call_text} returned {_shown(call.returned)}: when the ceiling is not above the weak "
                    "accuracy there is no gap to recover, so raise ValueError")
    if call.raised:
        raise Wrong(f"performance_gap_recovered raised {call.raised[0]}: {call.raised[1]}")
    value = call.returned
    if value.kind not in ("int", "float"):
        raise Wrong(f"performance_gap_recovered should return a float, got {value.describe()}")
    actual, expected = float(value.data), pgr(weak, transferred, ceiling)
    if close(actual, expected, rtol=1e-9, atol=1e-12):
        return
    message = pgr_diagnosis(actual, weak, transferred, ceiling)
    shown = f", expected {expected!r}" if not call.hidden else expected_clause(expected, hidden=True)
    raise Wrong(f"{call_text} returned {actual!r}{shown}" + (f": {message}" if message else ""))


def _judge_pgr(results: Results, context: Context) -> None:
    for call in results.calls["performance_gap_recovered"]:
        _judge_pgr_call(call)


def _static_pgr(context: Context) -> None:
    forbid_delegation(context.code, "performance_gap_recovered", BANNED_PGR_NAMES, BANNED_PACKAGES)


@lru_cache(maxsize=1)
def digits_accuracies() -> tuple[float, float, float]:
    """``(weak, weak→strong, ceiling)`` test accuracies of a trusted rerun of the digits experiment.

    :func:`~kdcourse.weak_to_strong.measure_weak_to_strong` runs on the CPU with its own seed; with one
    torch thread, as in the notebook, it reproduces the notebook's numbers. Computed once per process.
    """
    from kdcourse.weak_to_strong import measure_weak_to_strong

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        measured = measure_weak_to_strong()
    finally:
        torch.set_num_threads(threads)
    return measured.weak_accuracy, measured.weak_to_strong_accuracy, measured.strong_ceiling_accuracy


def _judge_pgr_digits(results: Results, context: Context) -> str:
    value = results.value("pgr_digits")
    require_answered(value, "pgr_digits", "compute it with your performance_gap_recovered")
    if value.kind not in ("int", "float"):
        raise Wrong(f"pgr_digits should be a float, got {value.describe()}")
    if not context.full:
        return "pgr_digits: answer recorded"
    number = float(value.data)
    weak, transferred, ceiling = digits_accuracies()
    expected = pgr(weak, transferred, ceiling)
    if close(number, expected, rtol=1e-6, atol=1e-9):
        return "pgr_digits: checks passed"
    own = carried_results(results, context, "performance_gap_recovered", "test_performance_gap_recovered").get(
        tuple(_accuracies(DIGITS_COUNTS)))
    if carried_forward(number, expected, own, rtol=1e-6, atol=1e-9):
        return "pgr_digits: checks passed" + CARRIED.format(what="pgr_digits")
    message = pgr_diagnosis(number, weak, transferred, ceiling)
    raise Wrong(f"pgr_digits = {number:.4f} is not the PGR of the digits experiment"
                + (f": {message}" if message else ": use the weak teacher's, the distilled student's and the "
                                                  "ceiling's test accuracies"))


@lru_cache(maxsize=1)
def pseudo_label_accuracies() -> dict[str, list[tuple[float, float, float]]]:
    """``{"soft" | "hard": [(weak, weak→strong, ceiling) per seed]}`` of a trusted rerun, one torch thread."""
    from kdcourse.weak_to_strong import measure_weak_to_strong

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = {labels: [measure_weak_to_strong(seed=seed, pseudo_labels=labels) for seed in PSEUDO_LABEL_SEEDS]
                for labels in ("soft", "hard")}
    finally:
        torch.set_num_threads(threads)
    return {labels: [(r.weak_accuracy, r.weak_to_strong_accuracy, r.strong_ceiling_accuracy) for r in measured]
            for labels, measured in runs.items()}


def _judge_seed_pgrs(numbers: np.ndarray, name: str, runs: list[tuple[float, float, float]],
                     other: list[tuple[float, float, float]], own: list) -> bool:
    """Judge one list of per-seed PGRs; ``True`` when accepted as carried forward from the student's function."""
    expected = np.array([pgr(*run) for run in runs])
    if close(numbers, expected, rtol=0, atol=SEED_PGR_ATOL):
        return False
    carried = [carried_forward(n, e, o, rtol=0, atol=SEED_PGR_ATOL) for n, e, o in zip(numbers, expected, own)]
    if all(c or close(n, e, rtol=0, atol=SEED_PGR_ATOL) for c, n, e in zip(carried, numbers, expected)):
        return True
    if close(numbers, np.array([pgr(*run) for run in other]), rtol=0, atol=SEED_PGR_ATOL):
        raise Wrong(f"{name} holds the PGRs of the other kind of label: pgr_soft_seeds is the student trained "
                    "on the tree's probabilities (pseudo_labels='soft'), pgr_hard_seeds on its argmax labels ('hard')")
    if close(numbers, expected[::-1], rtol=0, atol=SEED_PGR_ATOL):
        raise Wrong(f"{name} is not in seed order: list the PGRs by seed, 0 first")
    for seed, (number, run) in enumerate(zip(numbers, runs)):
        if not (carried[seed] or close(number, pgr(*run), rtol=0, atol=SEED_PGR_ATOL)):
            message = pgr_diagnosis(float(number), *run, atol=SEED_PGR_ATOL)
            raise Wrong(f"{name}[{seed}] = {number:.4f} is not the PGR of seed {seed}"
                        + (f": {message}" if message else ": compute (weak→strong − weak)/(ceiling − weak) from "
                                                          "that seed's three test accuracies with your function"))


def _judge_soft_vs_hard(results: Results, context: Context) -> str:
    count = len(PSEUDO_LABEL_SEEDS)
    hint = "one PGR per seed, computed with your performance_gap_recovered"
    soft = as_numbers(results.value("pgr_soft_seeds"), "pgr_soft_seeds", count, hint)
    hard = as_numbers(results.value("pgr_hard_seeds"), "pgr_hard_seeds", count, hint)
    if not context.full:
        return "soft against hard labels: answers recorded"
    runs = pseudo_label_accuracies()
    own = carried_results(results, context, "performance_gap_recovered", "test_performance_gap_recovered")
    carried = [name for name, numbers, labels, other in (("pgr_soft_seeds", soft, "soft", "hard"),
                                                          ("pgr_hard_seeds", hard, "hard", "soft"))
               if _judge_seed_pgrs(numbers, name, runs[labels], runs[other],
                                   [own.get(tuple(_accuracies(c))) for c in PSEUDO_LABEL_COUNTS[labels]])]
    return "soft against hard labels: checks passed" + (CARRIED.format(what=", ".join(carried)) if carried else "")


ITEMS = (
    Item("test_distill_step_behaviour", (Answer("distill_step", "step", cases=(BEHAVIOUR_CASE,)),), _judge_behaviour),
    Item("test_distill_step_reference", (Answer("distill_step", "step", cases=(RUNS_CASE,)),), _judge_reference),
    Item("test_performance_gap_recovered",
         (Answer("performance_gap_recovered", "call", ("float", "float", "float"),
                 cases=([0.6, 0.65, 0.8], [0.5, 0.9, 0.9])),),
         _judge_pgr, passed="performance_gap_recovered: checks passed", static=_static_pgr),
    Item("test_pgr_digits", (Answer("pgr_digits"), _own_pgr(DIGITS_COUNTS)), _judge_pgr_digits),
    choice_item("test_linear_teacher_pgr", "linear_teacher_pgr", ["A", "B", "C", "D"]),
    choice_item("test_hard_labels_prediction", "hard_labels_prediction", ["A", "B", "C", "D"]),
    Item("test_pgr_soft_vs_hard", (Answer("pgr_soft_seeds"), Answer("pgr_hard_seeds"),
                                   _own_pgr(*PSEUDO_LABEL_COUNTS["soft"], *PSEUDO_LABEL_COUNTS["hard"])),
         _judge_soft_vs_hard),
)
