"""Per-example KL, its quantiles, and the expected calibration error."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcourse import kl_divergence, softmax
from kdcourse.metrics import expected_calibration_error, kl_quantiles, per_example_kl


def test_per_example_kl_is_the_kl_of_each_row_teacher_first():
    generator = torch.Generator().manual_seed(0)
    z, v = torch.randn(6, 4, generator=generator), torch.randn(6, 4, generator=generator)
    expected = kl_divergence(softmax(v.numpy()), softmax(z.numpy()))
    np.testing.assert_allclose(per_example_kl(z, v), expected, rtol=1e-5)


def test_quantiles_are_numpys_and_name_a_bad_input():
    values = np.arange(101.0)
    assert kl_quantiles(values, (0.5, 0.9)) == {0.5: 50.0, 0.9: 90.0}
    with pytest.raises(ValueError, match="quantile must be in"):
        kl_quantiles(values, (1.5,))
    with pytest.raises(ValueError, match="non-empty 1-D"):
        kl_quantiles(np.array([]))


def test_ece_by_hand():
    # two examples at confidence 0.9 (bin 9): one right -> |0.5 - 0.9| = 0.4, weight 1/2;
    # two at confidence ~0.6 (bin 6): both right -> |1 - 0.6| = 0.4, weight 1/2
    p_high, p_mid = np.log([0.9, 0.1]), np.log([0.6, 0.4])
    logits = torch.tensor(np.stack([p_high, p_high, p_mid, p_mid]))
    labels = torch.tensor([0, 1, 0, 0])
    assert expected_calibration_error(logits, labels) == pytest.approx(0.4)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 1000))
def test_a_model_whose_confidence_is_its_accuracy_has_a_small_ece(seed):
    rng = np.random.default_rng(seed)
    confidence = rng.uniform(0.5, 1.0, size=20_000)
    correct = rng.uniform(size=confidence.size) < confidence  # right exactly as often as it is confident
    logits = torch.tensor(np.log(np.stack([confidence, 1 - confidence], axis=1)))
    labels = torch.tensor(np.where(correct, 0, 1))
    assert expected_calibration_error(logits, labels) < 0.03
    overconfident = torch.tensor(np.log(np.stack([np.full(confidence.size, 0.999), np.full(confidence.size, 0.001)],
                                                 axis=1)))
    assert expected_calibration_error(overconfident, labels) > 0.2


def test_ece_names_bad_shapes():
    with pytest.raises(ValueError, match=r"logits must be \(n, classes\)"):
        expected_calibration_error(torch.zeros(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="bins must be >= 1"):
        expected_calibration_error(torch.zeros(3, 2), torch.zeros(3, dtype=torch.long), bins=0)
