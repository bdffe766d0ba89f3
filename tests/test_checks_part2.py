"""Tests for the checks of assignments a03 and a04: right answers pass, each misconception is named."""

import math

import pytest
import torch
import torch.nn.functional as F

import kdcourse
from kdcourse.checks import a03
from kdcourse.checks.common import WrongAnswer

EXPECTED_LOSS = a03.reference_loss()


# --- a03: distill_step ---------------------------------------------------------------------------


def make_step(kind="correct"):
    """A distill_step with one deliberate mistake (or none)."""

    def step(student, teacher, batch, optimizer, temperature, alpha):
        X, y = batch
        T = temperature
        if kind == "teacher_grad":
            v = teacher(X)
        else:
            with torch.no_grad():
                v = teacher(X)
        z = student(X)
        if kind == "detach":
            z = z.detach()
        z_soft = z if kind == "one_side" else z / T
        kd = F.kl_div(F.log_softmax(z_soft, -1), F.softmax(v / T, -1), reduction="batchmean")
        if kind == "reverse":
            kd = F.kl_div(F.log_softmax(v / T, -1), F.softmax(z / T, -1), reduction="batchmean")
        if kind == "class_mean":
            kd = kd / z.shape[-1]
        t2 = 1.0 if kind == "no_t2" else T**2
        ce = F.cross_entropy(z, y)
        loss = (1 - alpha) * ce + alpha * t2 * kd if kind == "alpha_swapped" else alpha * ce + (1 - alpha) * t2 * kd
        if kind != "no_zero_grad":
            optimizer.zero_grad()
        loss.backward()
        if kind != "no_step":
            optimizer.step()
        if kind == "tensor":
            return loss
        return loss.item()

    return step


def library_step(student, teacher, batch, optimizer, temperature, alpha):
    X, y = batch
    with torch.no_grad():
        v = teacher(X)
    loss = kdcourse.combined_loss(student(X), v, y, alpha, temperature)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def run_all_checks(step):
    a03.check_distill_step(step)
    a03.check_distill_step_runs(step)
    a03.check_distill_step_matches_reference(step, EXPECTED_LOSS)


@pytest.mark.parametrize("step", [make_step("correct"), library_step])
def test_correct_steps_pass(step):
    run_all_checks(step)


def test_reference_loss_is_stable():
    # The scenario is built from numpy's generator, so this value is machine-independent.
    assert math.isclose(EXPECTED_LOSS, 2.6696127591741097, rel_tol=1e-9)


@pytest.mark.parametrize(
    "kind, visible_passes, message",
    [
        ("teacher_grad", False, "gradient reached the teacher"),
        ("detach", False, "no gradient reaches the student"),
        ("no_step", False, "did not change"),
        ("tensor", False, "return loss.item()"),
        ("reverse", True, "swapped arguments"),
        ("no_t2", True, "T² factor missing"),
        ("alpha_swapped", True, "α weights the wrong term"),
        ("one_side", True, "temperature on one side only"),
        ("class_mean", True, "averaged over classes"),
        ("no_zero_grad", True, "optimizer.zero_grad()"),
    ],
)
def test_each_mistake_is_named(kind, visible_passes, message):
    step = make_step(kind)
    if visible_passes:
        a03.check_distill_step(step)
    else:
        with pytest.raises(WrongAnswer, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
            a03.check_distill_step(step)
    with pytest.raises(WrongAnswer) as info:
        a03.check_distill_step_matches_reference(step, EXPECTED_LOSS)
    assert message in str(info.value)


def test_loss_after_the_step_is_recognised():
    def step(student, teacher, batch, optimizer, temperature, alpha):
        library_step(student, teacher, batch, optimizer, temperature, alpha)
        X, y = batch
        with torch.no_grad():
            return kdcourse.combined_loss(student(X), teacher(X), y, alpha, temperature).item()

    with pytest.raises(WrongAnswer, match="loss after the step"):
        a03.check_distill_step_matches_reference(step, EXPECTED_LOSS)


def test_unanswered_step_raises_not_implemented():
    def step(*args):
        raise NotImplementedError()

    with pytest.raises(NotImplementedError):
        a03.check_distill_step(step)


def test_the_teacher_weights_are_compared_not_trusted():
    def step(student, teacher, batch, optimizer, temperature, alpha):
        with torch.no_grad():
            for p in teacher.parameters():
                p.add_(0.01)
        return library_step(student, teacher, batch, optimizer, temperature, alpha)

    with pytest.raises(WrongAnswer, match="teacher's parameters changed"):
        a03.check_distill_step(step)


# --- a03: performance gap recovered ------------------------------------------------------------


def pgr(weak, transferred, ceiling):
    if not ceiling > weak:
        raise ValueError("no gap")
    return (transferred - weak) / (ceiling - weak)


HIDDEN_CASES = [((0.675, 0.8055555555555556, 0.9361111111111111), 0.5000000000000001), ((0.6, 0.55, 0.8), -0.25000000000000006)]


def test_pgr_checks_pass_the_formula():
    a03.check_pgr_function(pgr)
    a03.check_pgr_values(pgr, HIDDEN_CASES)
    a03.check_pgr_number(pgr(0.675, 0.81, 0.936), 0.675, 0.81, 0.936)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda w, s, c: (c - s) / (c - w), "1 − PGR"),
        (lambda w, s, c: 100 * (s - w) / (c - w), "percentage"),
        (lambda w, s, c: (s - w) / c, "divided by the ceiling"),
        (lambda w, s, c: s / c, "ratio of accuracies"),
        (lambda w, s, c: 0.5, "expected"),
    ],
)
def test_pgr_mistakes_are_named(wrong, message):
    with pytest.raises(WrongAnswer, match=message):
        a03.check_pgr_function(wrong)


def test_pgr_without_value_error_is_caught():
    def no_guard(w, s, c):
        return (s - w) / (c - w) if c != w else 0.0

    with pytest.raises(WrongAnswer, match="raise ValueError"):
        a03.check_pgr_values(no_guard, HIDDEN_CASES)


def test_pgr_number_checks_type_and_value():
    with pytest.raises(NotImplementedError):
        a03.check_pgr_number(None, 0.6, 0.7, 0.8)
    with pytest.raises(WrongAnswer, match="should be a float"):
        a03.check_pgr_number("0.5", 0.6, 0.7, 0.8)
    with pytest.raises(WrongAnswer, match="1 − PGR"):
        a03.check_pgr_number(0.75, 0.6, 0.65, 0.8)


# --- a04: agreement and copied teacher errors ---------------------------------------------------

from kdcourse.checks import a04  # noqa: E402
import numpy as np  # noqa: E402


def agreement(s, t):
    return float(np.mean(np.asarray(s) == np.asarray(t)))


def share_copied(s, t, y):
    s, t, y = np.asarray(s), np.asarray(t), np.asarray(y)
    wrong = t != y
    return float(np.mean(s[wrong] == t[wrong]))


def test_agreement_and_copied_share_pass():
    a04.check_agreement(agreement)
    a04.check_agreement_values(agreement, [(([0, 0, 0], [1, 0, 2]), 1 / 3)])
    a04.check_share_copied(share_copied)
    a04.check_share_copied_values(share_copied, [(([0, 0, 0], [1, 0, 2], [1, 1, 1]), 0.5)])


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda s, t: float(np.sum(np.asarray(s) == np.asarray(t))), "returned a count"),
        (lambda s, t: float(np.mean(np.asarray(s) != np.asarray(t))), "disagreement rate"),
        (lambda s, t: 0.7, "expected 0.0"),
    ],
)
def test_agreement_mistakes_are_named(wrong, message):
    with pytest.raises(WrongAnswer, match=message):
        a04.check_agreement(wrong)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda s, t, y: float(np.mean((np.asarray(s) == np.asarray(t)) & (np.asarray(t) != np.asarray(y)))),
         "divided by all examples"),
        (lambda s, t, y: float(np.mean(np.asarray(s)[np.asarray(t) != np.asarray(y)]
                                       != np.asarray(y)[np.asarray(t) != np.asarray(y)])), "same"),
        (lambda s, t, y: agreement(s, t), "overall agreement"),
    ],
)
def test_copied_share_mistakes_are_named(wrong, message):
    with pytest.raises(WrongAnswer, match=message):
        a04.check_share_copied(wrong)


def test_scenario_numbers_and_fraction_checks():
    numbers = a04.scenario_numbers([0, 1, 2, 2], [0, 1, 1, 2], [0, 1, 1, 1], [0, 1, 2, 2])
    assert numbers["accuracy_before"] == 1.0 and numbers["accuracy_after"] == 0.75
    assert numbers["copied_before"] == 0.0 and numbers["copied_after"] == 0.5
    assert numbers["agreement_after"] == 0.75
    a04.check_fraction_value(0.75, numbers["accuracy_after"], "accuracy_after")
    with pytest.raises(WrongAnswer, match="not right"):
        a04.check_fraction_value(0.5, numbers["accuracy_after"], "accuracy_after")
    with pytest.raises(WrongAnswer, match="not a fraction"):
        a04.check_fraction(1.5, "copied_after")
    with pytest.raises(NotImplementedError):
        a04.check_fraction(None, "copied_after")


# --- a04: reverse distillation loss --------------------------------------------------------------


def reverse_loss(z, v, T):
    log_s, log_t = torch.log_softmax(z / T, dim=-1), torch.log_softmax(v / T, dim=-1)
    return T**2 * (log_s.exp() * (log_s - log_t)).sum(dim=-1).mean()


def forward_loss(z, v, T):
    log_s, log_t = torch.log_softmax(z / T, dim=-1), torch.log_softmax(v / T, dim=-1)
    return T**2 * (log_t.exp() * (log_t - log_s)).sum(dim=-1).mean()


def no_t2(z, v, T):
    return reverse_loss(z, v, T) / T**2


def class_mean(z, v, T):
    return reverse_loss(z, v, T) / z.shape[-1]


def batch_sum(z, v, T):
    return reverse_loss(z, v, T) * z.shape[0]


def from_probabilities(z, v, T):
    p, q = torch.softmax(z / T, dim=-1), torch.softmax(v / T, dim=-1)
    return T**2 * (p * (p.log() - q.log())).sum(dim=-1).mean()


def detached(z, v, T):
    return reverse_loss(z.detach(), v, T)


def library(z, v, T):
    return kdcourse.distillation_loss(z, v, T, direction="reverse")


HIDDEN_REVERSE = [(([[1000.0, -1000.0, 0.0], [2.0, 1.0, 0.5]], [[-1000.0, 1000.0, 0.0], [0.5, 1.0, 2.0]], 1.0),
                   1000.3662155020343)]


def test_reverse_loss_passes():
    a04.check_reverse_loss(reverse_loss)
    a04.check_reverse_loss_values(reverse_loss, HIDDEN_REVERSE)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (forward_loss, "swapped arguments"),
        (no_t2, "T² factor missing"),
        (class_mean, "averaged over classes"),
        (batch_sum, "summed over the batch"),
        (detached, "no gradient"),
        (library, "write the formula yourself"),
    ],
)
def test_reverse_loss_mistakes_are_named(wrong, message):
    with pytest.raises(WrongAnswer, match=message):
        a04.check_reverse_loss(wrong)


def test_reverse_loss_nan_at_extreme_logits_is_named():
    with pytest.raises(WrongAnswer, match="NaN"):
        a04.check_reverse_loss_values(from_probabilities, HIDDEN_REVERSE)


# --- a04: Gaussian entropy, numbers and choices ----------------------------------------------------


def test_gaussian_entropy_checks():
    good = lambda s: 0.5 * math.log(2 * math.pi * math.e * s**2)  # noqa: E731
    a04.check_gaussian_entropy(good)
    a04.check_gaussian_entropy_values(good, [(0.1, -0.8836465597893729)])
    for wrong, message in [
        (lambda s: good(s) / math.log(2), "log base 2"),
        (lambda s: 2 * good(s), "factor 1/2"),
        (lambda s: 0.5 * math.log(2 * math.pi * math.e * s), "variance"),
    ]:
        with pytest.raises(WrongAnswer, match=message):
            a04.check_gaussian_entropy(wrong)


def test_number_and_answer_checks():
    a04.check_number(2.1232, 2.1232110125832593, "entropy_forward", rtol=1e-3)
    with pytest.raises(WrongAnswer, match="about 2.12"):
        a04.check_number(0.73, 2.1232110125832593, "entropy_forward", rtol=1e-3, hint="about 2.12 nats")
    with pytest.raises(WrongAnswer, match="should be a float"):
        a04.check_number("2.12", 2.12, "entropy_forward")
    with pytest.raises(WrongAnswer, match="mass-covering"):
        a04.check_answer("B", "C", "reverse_kl_behaviour", {"B": "reverse KL is mass-covering"})


# --- a03: the PGR is written out, and pgr_digits is checked against a trusted rerun -------------

import kdcourse.weak_to_strong  # noqa: E402


def pgr_via_kdcourse(weak, transferred, ceiling):
    return kdcourse.weak_to_strong.performance_gap_recovered(weak, transferred, ceiling)


class _Result:
    performance_gap_recovered = 0.5


def pgr_read_off_a_result(weak, transferred, ceiling):
    return _Result.performance_gap_recovered if ceiling > weak else pgr(weak, transferred, ceiling)


@pytest.mark.parametrize(
    "delegating", [kdcourse.weak_to_strong.performance_gap_recovered, pgr_via_kdcourse, pgr_read_off_a_result]
)
def test_pgr_delegation_is_rejected_by_the_visible_and_hidden_checks(delegating):
    with pytest.raises(WrongAnswer, match="write the formula yourself"):
        a03.check_pgr_function(delegating)
    with pytest.raises(WrongAnswer, match="write the formula yourself"):
        a03.check_pgr_values(delegating, HIDDEN_CASES)


# Measured on the CPU with measure_weak_to_strong() (its defaults, one torch thread): the tree's, the
# distilled student's and the ceiling's test accuracies, and the PGR of these three numbers.
DIGITS_ACCURACIES = (0.675, 0.8055555555555556, 0.9361111111111111)
DIGITS_PGR = 0.5000000000000001


def test_the_digits_rerun_reproduces_the_recorded_accuracies():
    torch.set_num_threads(1)
    measured = kdcourse.weak_to_strong.measure_weak_to_strong()
    assert (measured.weak_accuracy, measured.weak_to_strong_accuracy, measured.strong_ceiling_accuracy) == DIGITS_ACCURACIES
    assert math.isclose(pgr(*DIGITS_ACCURACIES), DIGITS_PGR, rel_tol=1e-12)


def test_pgr_digits_is_checked_against_the_rerun_not_the_notebook_variables(monkeypatch):
    torch.set_num_threads(1)
    a03.check_pgr_digits(DIGITS_PGR)
    # A notebook that changed the experiment's numbers (or the function the notebook calls) cannot move
    # the expectation: the check uses the function captured when it was imported.
    fake = kdcourse.weak_to_strong.WeakToStrongAccuracies(0.5, 0.9, 0.95, 0.5, 1, 1, 1)
    monkeypatch.setattr(kdcourse.weak_to_strong, "measure_weak_to_strong", lambda *a, **k: fake)
    with pytest.raises(WrongAnswer, match="not the PGR of the digits experiment"):
        a03.check_pgr_digits(pgr(0.5, 0.9, 0.95))
    with pytest.raises(WrongAnswer, match="percentage"):
        a03.check_pgr_digits(100 * DIGITS_PGR)
    with pytest.raises(NotImplementedError):
        a03.check_pgr_digits(None)


# --- a04: torch.xlogy is allowed in the reverse loss ---------------------------------------------


def xlogy_reverse(z, v, T):
    """T²·KL(p_s‖p_t) with the p·log p term written with torch.xlogy (as assignment 2 teaches)."""
    p = torch.softmax(z / T, dim=-1)
    return T**2 * (torch.xlogy(p, p) - p * torch.log_softmax(v / T, dim=-1)).sum(dim=-1).mean()


def xlogy_reverse_clamped(z, v, T):
    """The same with xlogy's second argument clamped away from 0, so its gradient stays finite."""
    p = torch.softmax(z / T, dim=-1)
    return T**2 * (torch.xlogy(p, p.clamp_min(1e-300)) - p * torch.log_softmax(v / T, dim=-1)).sum(dim=-1).mean()


# Hidden cases of the notebook without saturated logits (values as in the notebook's hidden test).
HIDDEN_REVERSE_MODERATE = [(([[5.0, 0.0, -5.0, 1.0]], [[0.0, 4.0, 0.0, -3.0]], 4.0), 8.84206988915573)]


def test_a_correct_xlogy_reverse_loss_passes():
    assert "xlogy" not in a04.BANNED_LOSS_NAMES
    a04.check_reverse_loss(xlogy_reverse)
    a04.check_reverse_loss_values(xlogy_reverse, HIDDEN_REVERSE_MODERATE)
    a04.check_reverse_loss(xlogy_reverse_clamped)
    a04.check_reverse_loss_values(xlogy_reverse_clamped, HIDDEN_REVERSE + HIDDEN_REVERSE_MODERATE)


def test_a_nan_gradient_at_saturated_logits_is_named():
    with pytest.raises(WrongAnswer, match="gradient with respect to the student's logits contains NaN"):
        a04.check_reverse_loss_values(xlogy_reverse, HIDDEN_REVERSE)


# --- a04: scenario C is rerun inside the check --------------------------------------------------

# Measured on the CPU with a04.scenario_c_predictions("cpu") (one torch thread): the notebook's scenario C.
SCENARIO_C = {"accuracy_before": 0.8277777777777777, "accuracy_after": 0.7444444444444445,
              "copied_before": 0.1328125, "copied_after": 0.375}


def test_scenario_c_check_reruns_the_scenario_and_leaves_the_random_state_alone():
    torch.set_num_threads(1)
    np.random.seed(5)
    torch.manual_seed(5)
    a04.check_scenario_c_numbers(dict(SCENARIO_C), device=torch.device("cpu"))
    after_check = (np.random.rand(), torch.rand(1).item())
    np.random.seed(5)
    torch.manual_seed(5)
    assert (np.random.rand(), torch.rand(1).item()) == after_check
    for name, wrong in [("accuracy_after", 0.75), ("copied_after", 0.1328125)]:
        with pytest.raises(WrongAnswer, match=f"{name} = .* is not right: accuracy compares with the true labels"):
            a04.check_scenario_c_numbers({**SCENARIO_C, name: wrong}, device=torch.device("cpu"))
    with pytest.raises(NotImplementedError):
        a04.check_scenario_c_numbers({**SCENARIO_C, "copied_before": None}, device=torch.device("cpu"))


# --- notebooks and messages: release shape and wording --------------------------------------------

import ast  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PART2_NOTEBOOKS = [
    ROOT / "notebooks/assignments/a03_teacher_student/a03_teacher_student.ipynb",
    ROOT / "notebooks/assignments/a04_dissimilarity_and_reverse_kl/a04_dissimilarity_and_reverse_kl.ipynb",
    *sorted((ROOT / "notebooks/lectures").glob("l0[34]_*.ipynb")),
]


def _cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


@pytest.mark.parametrize("path", PART2_NOTEBOOKS[:2], ids=lambda p: p.stem)
def test_markdown_answer_cells_have_no_stub_outside_the_solution(path):
    for cell in _cells(path):
        meta = cell["metadata"].get("nbgrader", {})
        if cell["cell_type"] == "markdown" and meta.get("solution"):
            text = "".join(cell["source"])
            outside = text.split("### BEGIN SOLUTION")[0] + text.split("### END SOLUTION")[-1]
            assert "YOUR ANSWER HERE" not in outside, meta["grade_id"]


DIRECTION_WORD = re.compile(r"\b(forward|reverse)\b", re.IGNORECASE)
KL_WITH_ARGUMENTS = re.compile(r"KL\}?\\?\(|KL\(")


def _unnamed_directions(text):
    """Sentences that say forward or reverse (outside code spans) without a KL with its arguments."""
    text = re.sub(r"`[^`]*`", "", text)
    return [s for s in re.split(r"(?<=[.;:?!])\s+|\n\s*[*\d]", text) if DIRECTION_WORD.search(s)
            and not KL_WITH_ARGUMENTS.search(s) and "KL(" not in s.replace(r"\mathrm{KL}", "KL")]


@pytest.mark.parametrize("path", PART2_NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_prose_writes_both_arguments_of_each_named_direction(path):
    for cell in _cells(path):
        if cell["cell_type"] == "markdown":
            assert _unnamed_directions("".join(cell["source"])) == []


@pytest.mark.parametrize("module", ["a03.py", "a04.py"])
def test_check_messages_write_both_arguments_of_each_named_direction(module):
    tree = ast.parse((ROOT / "kdcourse/checks" / module).read_text(encoding="utf-8"))
    strings = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    prose = [s for s in strings if " " in s]  # skip identifiers such as "reverse"
    assert [s for s in prose if _unnamed_directions(s)] == []
