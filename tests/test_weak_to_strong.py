"""Tests for kdcourse.weak_to_strong: the PGR formula, the sklearn teacher wrapper, the digits experiment."""

import math

import numpy as np
import pytest
import torch
from sklearn.tree import DecisionTreeClassifier

from kdcourse.weak_to_strong import (
    SklearnTeacher,
    fit_linear_student,
    measure_weak_to_strong,
    performance_gap_recovered,
    run_weak_to_strong,
    train_weak_teacher,
)


@pytest.mark.parametrize(
    "weak, transferred, ceiling, expected",
    [
        (0.6, 0.7, 0.8, 0.5),
        (0.6, 0.65, 0.8, 0.25),
        (0.6, 0.8, 0.8, 1.0),
        (0.6, 0.6, 0.8, 0.0),
        (0.6, 0.55, 0.8, -0.25),
        (0.2, 0.95, 0.7, 1.5),
    ],
)
def test_pgr_formula(weak, transferred, ceiling, expected):
    assert math.isclose(performance_gap_recovered(weak, transferred, ceiling), expected, rel_tol=1e-12, abs_tol=1e-12)


def test_pgr_accepts_numpy_scalars_and_returns_float():
    value = performance_gap_recovered(np.float32(0.5), np.float64(0.75), 1)
    assert type(value) is float and math.isclose(value, 0.5)


@pytest.mark.parametrize("weak, ceiling", [(0.7, 0.7), (0.9, 0.8)])
def test_pgr_without_a_gap_raises(weak, ceiling):
    with pytest.raises(ValueError, match="strong_ceiling_accuracy must be above weak_accuracy"):
        performance_gap_recovered(weak, 0.75, ceiling)


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan"), float("inf")])
def test_pgr_rejects_values_that_are_not_accuracies_naming_the_argument(bad):
    with pytest.raises(ValueError, match=r"^weak_to_strong_accuracy must be (in \[0, 1\]|finite) \(got "):
        performance_gap_recovered(0.5, bad, 0.9)


@pytest.mark.parametrize("bad", ["0.5", True, None, [0.5]])
def test_pgr_rejects_non_numbers_with_a_type_error_naming_the_argument(bad):
    with pytest.raises(TypeError, match=r"^weak_to_strong_accuracy must be a float \(a real number\), not "):
        performance_gap_recovered(0.5, bad, 0.9)


def test_sklearn_teacher_logits_give_back_the_probabilities():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0).astype(int)
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    teacher = SklearnTeacher(tree, num_classes=3)
    logits = teacher(torch.as_tensor(X, dtype=torch.float32))
    assert logits.shape == (200, 3) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    recovered = torch.softmax(logits.double(), dim=1).numpy()
    np.testing.assert_allclose(recovered, tree.predict_proba(X), atol=1e-6)
    assert list(teacher.parameters()) == []


def test_sklearn_teacher_rejects_a_classifier_missing_classes():
    tree = DecisionTreeClassifier().fit(np.zeros((4, 2)), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="all classes 0..2"):
        SklearnTeacher(tree, num_classes=3)


def test_fit_linear_student_on_one_hot_targets_learns_a_separable_problem():
    rng = np.random.default_rng(1)
    X = torch.as_tensor(rng.normal(size=(300, 2)), dtype=torch.float32)
    y = (X[:, 0] + X[:, 1] > 0).long()
    student = fit_linear_student(X, torch.nn.functional.one_hot(y, 2).float(), epochs=20, lr=0.05)
    accuracy = (student(X).argmax(1) == y).float().mean().item()
    assert accuracy > 0.95


@pytest.mark.parametrize("kwargs, error, pattern", [
    (dict(batch_size=0), ValueError, r"batch_size must be >= 1 \(got 0\)"),  # used to be a ZeroDivisionError
    (dict(batch_size=2.0), TypeError, r"batch_size must be an int, not float"),
    (dict(epochs=-1), ValueError, r"epochs must be >= 0 \(got -1\)"),
    (dict(lr=0), ValueError, r"lr must be > 0 \(got 0.0\)"),
    (dict(seed=-1), ValueError, r"seed must be in \[0, 4294967295\]"),
    (dict(warmup_fraction=1.5), ValueError, r"warmup_fraction must be in \[0, 1\] \(got 1.5\)"),
    (dict(confidence_weight="0.5"), TypeError, r"confidence_weight must be a float"),
])
def test_fit_linear_student_validates_its_scalars(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        fit_linear_student(torch.zeros(3, 2), torch.full((3, 2), 0.5), **kwargs)


@pytest.mark.parametrize("call, error, pattern", [
    (lambda: train_weak_teacher(np.zeros((4, 2)), [0, 1, 0, 1], max_depth=0), ValueError, r"max_depth must be >= 1"),
    (lambda: train_weak_teacher(np.zeros((4, 2)), [0, 1, 0, 1], max_depth=2.0), TypeError, r"max_depth must be an int"),
    (lambda: measure_weak_to_strong(seed=-2), ValueError, r"seed must be in \[0, 4294967295\] \(got -2\)"),
    (lambda: measure_weak_to_strong(batch_size=0), ValueError, r"batch_size must be >= 1"),
    (lambda: SklearnTeacher(None, num_classes=0), ValueError, r"num_classes must be >= 1 \(got 0\)"),
])
def test_the_experiment_validates_its_scalars(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_fit_linear_student_rejects_targets_that_are_not_distributions():
    X = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="sum to 1"):
        fit_linear_student(X, torch.full((3, 2), 0.2))
    with pytest.raises(ValueError, match="same n"):
        fit_linear_student(X, torch.full((4, 2), 0.5))


def test_digits_experiment_reproduces_the_course_figures():
    torch.set_num_threads(1)
    result = run_weak_to_strong()
    # Course figures: weak ≈ 0.68, ceiling ≈ 0.94, weak-to-strong ≈ 0.81, PGR ≈ 0.5.
    assert abs(result.weak_accuracy - 0.68) < 0.03
    assert abs(result.strong_ceiling_accuracy - 0.936) < 0.03
    assert abs(result.weak_to_strong_accuracy - 0.81) < 0.04
    assert 0.3 < result.performance_gap_recovered < 0.7
    assert result.weak_accuracy < result.weak_to_strong_accuracy < result.strong_ceiling_accuracy
    assert math.isclose(
        result.performance_gap_recovered,
        performance_gap_recovered(result.weak_accuracy, result.weak_to_strong_accuracy, result.strong_ceiling_accuracy),
    )
    assert result.weak_train_size + result.transfer_size == 1077 and result.test_size == 360
    assert "performance gap recovered" in result.table()


def test_digits_experiment_is_deterministic():
    torch.set_num_threads(1)
    assert run_weak_to_strong().as_dict() == run_weak_to_strong().as_dict()


def test_training_much_longer_fits_the_teacher_and_loses_the_gain():
    torch.set_num_threads(1)
    short, long = run_weak_to_strong(epochs=10), run_weak_to_strong(epochs=100)
    assert long.weak_to_strong_accuracy < short.weak_to_strong_accuracy - 0.02
    assert long.performance_gap_recovered < short.performance_gap_recovered


def test_measuring_the_experiment_does_not_hand_out_the_pgr():
    torch.set_num_threads(1)
    accuracies = measure_weak_to_strong()
    assert not hasattr(accuracies, "performance_gap_recovered")
    assert "performance_gap_recovered" not in accuracies.as_dict()
    assert "PGR" not in repr(accuracies) and "gap" not in repr(accuracies)
    full = run_weak_to_strong()
    assert {k: v for k, v in full.as_dict().items() if k != "performance_gap_recovered"} == accuracies.as_dict()


def test_auxiliary_confidence_loss_recovers_more_of_the_gap():
    # Burns et al. (2023): letting the strong student trust its own hardened predictions helps.
    from kdcourse.weak_to_strong import run_weak_to_strong

    plain = [run_weak_to_strong(seed=seed) for seed in (0, 1)]
    confident = [run_weak_to_strong(seed=seed, confidence_weight=0.5) for seed in (0, 1)]
    for a, b in zip(plain, confident):
        assert b.weak_accuracy == a.weak_accuracy and b.strong_ceiling_accuracy == a.strong_ceiling_accuracy
        assert b.performance_gap_recovered > a.performance_gap_recovered + 0.05


def test_confidence_weight_must_be_below_one():
    import torch

    from kdcourse.weak_to_strong import fit_linear_student

    X = torch.zeros(4, 3)
    targets = torch.full((4, 2), 0.5)
    with pytest.raises(ValueError, match=r"confidence_weight must be in \[0, 1\)"):
        fit_linear_student(X, targets, confidence_weight=1.0)


def test_hard_pseudo_labels_recover_less_of_the_gap_than_the_soft_distribution():
    # The weak tree's argmax labels ("generated data") against its full distribution, same seeds.
    torch.set_num_threads(1)
    for seed in (0, 1, 2):
        soft = run_weak_to_strong(seed=seed)
        hard = run_weak_to_strong(seed=seed, pseudo_labels="hard")
        assert hard.weak_accuracy == soft.weak_accuracy
        assert hard.strong_ceiling_accuracy == soft.strong_ceiling_accuracy
        assert hard.performance_gap_recovered < soft.performance_gap_recovered


def test_hard_pseudo_labels_give_a_student_that_follows_the_tree_more_closely():
    torch.set_num_threads(1)
    soft = measure_weak_to_strong(seed=0)
    hard = measure_weak_to_strong(seed=0, pseudo_labels="hard")
    assert hard.student_teacher_agreement > soft.student_teacher_agreement


def test_pseudo_labels_must_be_soft_or_hard():
    with pytest.raises(ValueError, match=r"pseudo_labels must be one of \('soft', 'hard'\) \(got 'argmax'\)"):
        measure_weak_to_strong(pseudo_labels="argmax")
