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
