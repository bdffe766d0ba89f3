"""Few labels and a teacher: the labelled subset, the objective's two ends, and the effect of combining them."""

import numpy as np
import pytest
import torch

import kdcourse
from kdcourse.data import load_digits_splits
from kdcourse.few_labels import labelled_subset, sweep_alpha_and_temperature, train_with_few_labels
from kdcourse.models import make_mlp
from kdcourse.weak_to_strong import SklearnTeacher, train_weak_teacher


@pytest.fixture(scope="module")
def data():
    return load_digits_splits(seed=0)


@pytest.fixture(scope="module")
def tree_logits(data):
    tree = SklearnTeacher(train_weak_teacher(data.X_train.numpy(), data.y_train.numpy(), max_depth=5),
                          data.num_classes)
    with torch.no_grad():
        return tree(data.X_train)


def test_the_labelled_subset_is_fixed_by_its_seed(data):
    first, again, other = labelled_subset(data, 50, 0), labelled_subset(data, 50, 0), labelled_subset(data, 50, 1)
    assert len(set(first.tolist())) == 50 and torch.equal(first, again) and not torch.equal(first, other)
    with pytest.raises(ValueError, match="size must be in"):
        labelled_subset(data, 0, 0)


def test_alpha_one_never_reads_the_teacher(data, tree_logits):
    labelled = labelled_subset(data, 50, 0)
    students = []
    for logits in (tree_logits, torch.randn_like(tree_logits)):
        kdcourse.seed_everything(0)
        student = make_mlp(data.num_features, data.num_classes, hidden=(8,))
        students.append(train_with_few_labels(student, logits, data, labelled, alpha=1.0, temperature=2.0, epochs=2))
    for a, b in zip(students[0].parameters(), students[1].parameters()):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_the_combined_objective_beats_both_pure_terms(data, tree_logits):
    runs = sweep_alpha_and_temperature(tree_logits, data, labels=50, temperatures=(2.0,), seeds=range(3))
    mean = {alpha: np.mean([r.test_accuracy for r in runs if r.alpha == alpha]) for alpha in (0.0, 0.5, 1.0)}
    assert mean[0.5] > max(mean[0.0], mean[1.0]), mean
