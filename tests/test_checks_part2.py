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
