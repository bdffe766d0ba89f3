"""The omitted-class experiment: the transfer set, the validation-tuned bias, and the effect it shows."""

import numpy as np
import pytest
import torch

import kdcourse
from kdcourse.data import load_digits_splits
from kdcourse.models import make_mlp
from kdcourse.omitted_class import BIAS_CANDIDATES, run_omitted_class, tune_class_bias, without_class
from kdcourse.training import train


@pytest.fixture(scope="module")
def data():
    return load_digits_splits(seed=0)


@pytest.fixture(scope="module")
def teacher(data):
    kdcourse.seed_everything(0)
    model = make_mlp(data.num_features, data.num_classes, hidden=(256,))
    train(model, data, epochs=30, progress=False)
    return model


def test_the_transfer_set_has_no_example_of_the_omitted_class(data):
    transfer = without_class(data, 3)
    assert (transfer.y_train != 3).all() and (data.y_train == 3).any()
    assert len(transfer.y_train) == int((data.y_train != 3).sum())
    assert torch.equal(transfer.X_test, data.X_test) and torch.equal(transfer.y_val, data.y_val)
    with pytest.raises(ValueError, match=r"omitted must be in \[0, 9\] \(got 10\)"):
        without_class(data, 10)


def test_the_bias_is_the_one_that_maximises_accuracy_on_the_data_given():
    # class 1 needs a bias above 2 (its logit is 2 below class 0's) and below 4 (else class-0 examples flip)
    logits = torch.tensor([[4.0, 0.0], [4.0, 2.0], [4.0, 1.0], [0.0, -5.0]])
    labels = torch.tensor([0, 1, 1, 0])
    bias = tune_class_bias(logits, labels, 1)
    assert 3.0 < bias < 4.0 + 1e-9 and bias in BIAS_CANDIDATES
    assert tune_class_bias(logits, torch.tensor([0, 0, 0, 0]), 1) == 0.0  # nothing to gain: the smallest


@pytest.mark.slow
def test_distilling_at_a_high_temperature_teaches_a_class_the_student_never_saw(data, teacher):
    runs = run_omitted_class(teacher, data, temperatures=(10.0,), seeds=range(2))
    by_method = {}
    for run in runs:
        by_method.setdefault(run.method, []).append(run)
    assert set(by_method) == {"labels only", "distilled, T = 10"}
    labels, distilled = by_method["labels only"], by_method["distilled, T = 10"]
    assert all(r.omitted_correct == 0.0 for r in labels)  # never saw a 3, never says 3
    assert np.mean([r.omitted_correct for r in distilled]) > 0.4
    assert np.mean([r.omitted_correct_with_bias for r in distilled]) > np.mean(
        [r.omitted_correct_with_bias for r in labels])
    assert all(0 <= r.omitted_correct <= 1 and 0 <= r.test_accuracy_with_bias <= 1 for r in runs)
