"""Forward vs reverse KL on a trained digits teacher: the reverse student is the more confident one."""

import math

import numpy as np
import pytest
import torch

import kdcourse
from kdcourse.data import load_digits_splits
from kdcourse.directions import compare_directions_on_digits, mean_entropy
from kdcourse.models import make_mlp
from kdcourse.training import train


def test_mean_entropy_of_uniform_and_one_hot_logits():
    assert mean_entropy(torch.zeros(3, 4)) == pytest.approx(math.log(4))
    assert mean_entropy(torch.tensor([[100.0, 0.0, 0.0]])) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.slow
def test_the_reverse_kl_student_is_more_confident_on_every_seed():
    data = load_digits_splits(seed=0)
    kdcourse.seed_everything(0)
    teacher = make_mlp(data.num_features, data.num_classes, hidden=(256,))
    train(teacher, data, epochs=30, progress=False)
    results = compare_directions_on_digits(teacher, data, width=4, seeds=range(3))
    forward = np.array([r["entropy"] for r in results["forward"]])
    reverse = np.array([r["entropy"] for r in results["reverse"]])
    assert (reverse < forward).all(), (forward, reverse)
    assert all(0 <= r["agreement"] <= 1 for rows in results.values() for r in rows)


@pytest.mark.slow
def test_a_wide_student_closes_the_entropy_gap_between_the_directions():
    from kdcourse.directions import narrow_and_wide_students

    torch.set_num_threads(1)
    runs = narrow_and_wide_students(widths=(4, 64), seeds=range(5))
    gaps = {width: np.array([f["entropy"] - r["entropy"] for f, r in zip(by["forward"], by["reverse"])])
            for width, by in runs.items()}
    assert (gaps[4] > 0.05).all(), gaps[4]
    assert (np.abs(gaps[64]) < 0.02).all(), gaps[64]
    assert np.abs(gaps[64]).mean() < np.abs(gaps[4]).mean() / 5
