"""Entropy, cross-entropy, KL and JS: values from the course, properties, and bad input."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.special import rel_entr, xlogy

import kdcourse
from kdcourse import cross_entropy, divergences, entropy, js_divergence, kl_divergence, log_softmax, softmax

REFERENCE = [0.70, 0.20, 0.10]
TEACHER = [0.8, 0.1, 0.1]


@pytest.mark.parametrize(
    "candidate, expected",
    [([0.65, 0.22, 0.13], 0.006577), ([0.70, 0.10, 0.20], 0.069315), ([0.50, 0.30, 0.20], 0.085123)],
)
def test_seed_item_reference_vs_outputs_abc(candidate, expected):
    assert float(kl_divergence(REFERENCE, candidate)) == pytest.approx(expected, abs=5e-7)


def test_output_b_equals_tenth_of_ln2_and_a_wins():
    values = {name: float(kl_divergence(REFERENCE, q)) for name, q in
              {"A": [0.65, 0.22, 0.13], "B": [0.70, 0.10, 0.20], "C": [0.50, 0.30, 0.20]}.items()}
    assert values["B"] == pytest.approx(0.1 * math.log(2), rel=1e-12)
    assert min(values, key=values.get) == "A"


@pytest.mark.parametrize(
    "student, expected",
    [
        ([0.75, 0.15, 0.10], 0.011084),
        ([0.98, 0.01, 0.01], 0.298164),
        ([1 / 3, 1 / 3, 1 / 3], 0.459580),
        ([0.999, 0.0005, 0.0005], 0.881949),
        ([0.1, 0.8, 0.1], 1.455609),
    ],
)
def test_seed_item_teacher_vs_students(student, expected):
    assert float(kl_divergence(TEACHER, student)) == pytest.approx(expected, abs=5e-7)


def test_one_hot_student_forward_infinite_reverse_finite():
    one_hot = [1.0, 0.0, 0.0]
    assert float(kl_divergence(TEACHER, one_hot)) == math.inf
    assert float(kl_divergence(one_hot, TEACHER)) == pytest.approx(-math.log(0.8))


def test_zero_times_log_zero_is_zero():
    assert float(entropy([1.0, 0.0])) == 0.0
    assert float(kl_divergence([1.0, 0.0], [0.5, 0.5])) == pytest.approx(math.log(2))
    assert float(cross_entropy([0.5, 0.5, 0.0], [0.5, 0.5, 0.0])) == pytest.approx(math.log(2))


def test_top_level_names_are_the_functions_of_their_modules():
    from kdcourse import device, losses, token_losses, training

    homes = {divergences: ("entropy", "cross_entropy", "kl_divergence", "js_divergence", "softmax", "log_softmax"),
             losses: ("distillation_loss", "combined_loss"),
             token_losses: ("token_distillation_loss", "fused_linear_distillation_loss"),
             device: ("pick_device", "describe_device"),
             training: ("seed_everything", "train", "distill", "evaluate")}
    for module, names in homes.items():
        for name in names:
            assert getattr(kdcourse, name) is getattr(module, name), name
    assert set(kdcourse.__all__) == {"__version__", *(n for names in homes.values() for n in names)}
    assert set(kdcourse.__all__) <= set(dir(kdcourse))
    assert kdcourse.__version__ == "0.1.0"
    assert float(kdcourse.kl_divergence(REFERENCE, [0.65, 0.22, 0.13])) == pytest.approx(0.006577, abs=5e-7)
    with pytest.raises(AttributeError, match="module 'kdcourse' has no attribute 'kl_divergance'"):
        _ = kdcourse.kl_divergance  # a misspelt name must not resolve


def test_batched_inputs_reduce_last_axis():
    p = np.array([REFERENCE, TEACHER])
    q = np.array([[0.65, 0.22, 0.13], [0.1, 0.8, 0.1]])
    result = kl_divergence(p, q)
    assert result.shape == (2,)
    assert result[1] == pytest.approx(1.455609, abs=5e-7)


def test_axis_argument():
    p = np.array([REFERENCE, TEACHER]).T  # classes along axis 0
    q = np.array([[0.65, 0.22, 0.13], [0.1, 0.8, 0.1]]).T
    np.testing.assert_allclose(kl_divergence(p, q, axis=0), kl_divergence(p.T, q.T))


# --- properties -----------------------------------------------------------------------------

def distributions(size: int):
    return arrays(np.float64, size, elements=st.floats(0.01, 10.0)).map(lambda w: w / w.sum())


pairs = st.integers(2, 8).flatmap(lambda n: st.tuples(distributions(n), distributions(n)))


@settings(max_examples=200, deadline=None)
@given(pairs)
def test_kl_non_negative_and_equals_ce_minus_h(pair):
    p, q = pair
    kl = float(kl_divergence(p, q))
    assert kl >= 0.0
    assert kl == pytest.approx(float(cross_entropy(p, q)) - float(entropy(p)), abs=1e-10)


@settings(max_examples=200, deadline=None)
@given(pairs)
def test_kl_matches_scipy_rel_entr(pair):
    p, q = pair
    assert float(kl_divergence(p, q)) == pytest.approx(rel_entr(p, q).sum(), rel=1e-9, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 8).flatmap(
    lambda n: st.tuples(arrays(np.float64, n, elements=st.sampled_from([0.0, 1e-300, 0.3, 1.0])),
                        arrays(np.float64, n, elements=st.sampled_from([0.0, 1e-300, 0.5, 2.0])))))
def test_numpy_xlogy_matches_scipy_including_zeros(pair):
    x, y = pair
    np.testing.assert_array_equal(divergences._xlogy(x, y), xlogy(x, y))


def test_kl_with_zeros_in_p_matches_the_sum_over_its_support():
    p, q = np.array([0.5, 0.0, 0.5]), np.array([0.25, 0.5, 0.25])
    assert float(kl_divergence(p, q)) == pytest.approx(math.log(2), rel=1e-12)
    assert float(kl_divergence(q, p)) == math.inf


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 8).flatmap(distributions))
def test_kl_zero_for_equal_distributions(p):
    assert float(kl_divergence(p, p)) == 0.0


@settings(max_examples=100, deadline=None)
@given(pairs)
def test_kl_zero_only_if_equal(pair):
    p, q = pair
    if np.abs(p - q).max() > 1e-3:
        assert float(kl_divergence(p, q)) > 0.0


def test_kl_is_asymmetric():
    p, q = np.array(TEACHER), np.array([0.5, 0.3, 0.2])
    assert float(kl_divergence(p, q)) != pytest.approx(float(kl_divergence(q, p)), rel=1e-3)


@settings(max_examples=100, deadline=None)
@given(pairs)
def test_numpy_and_torch_agree(pair):
    p, q = pair
    numpy_value = float(kl_divergence(p, q))
    torch_value = kl_divergence(torch.tensor(p), torch.tensor(q))
    assert isinstance(torch_value, torch.Tensor)
    assert float(torch_value) == pytest.approx(numpy_value, rel=1e-9, abs=1e-12)
    assert float(entropy(torch.tensor(p))) == pytest.approx(float(entropy(p)), rel=1e-9, abs=1e-12)
    assert float(js_divergence(torch.tensor(p), torch.tensor(q))) == pytest.approx(
        float(js_divergence(p, q)), rel=1e-9, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(pairs)
def test_kl_matches_torch_kl_div(pair):
    p, q = pair
    expected = F.kl_div(torch.tensor(q).log(), torch.tensor(p), reduction="sum")
    assert float(kl_divergence(p, q)) == pytest.approx(float(expected), rel=1e-9, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(pairs)
def test_js_symmetric_and_bounded(pair):
    p, q = pair
    js = float(js_divergence(p, q))
    assert js == pytest.approx(float(js_divergence(q, p)), abs=1e-12)
    assert 0.0 <= js <= math.log(2) + 1e-12


@settings(max_examples=100, deadline=None)
@given(pairs)
def test_pinsker_inequality(pair):
    p, q = pair
    total_variation = 0.5 * np.abs(p - q).sum()
    assert total_variation <= math.sqrt(float(kl_divergence(p, q)) / 2) + 1e-12


def test_torch_kl_is_differentiable():
    q_logits = torch.tensor([0.2, -0.1, 0.3], dtype=torch.float64, requires_grad=True)
    p = torch.tensor(TEACHER, dtype=torch.float64)
    kl_divergence(p, softmax(q_logits)).backward()
    expected = softmax(q_logits.detach()) - p  # d KL(p ‖ softmax(z)) / dz = q - p
    torch.testing.assert_close(q_logits.grad, expected)


# --- softmax ----------------------------------------------------------------------------------

@settings(max_examples=100, deadline=None)
@given(arrays(np.float64, st.integers(2, 10), elements=st.floats(-1e4, 1e4)),
       st.floats(0.05, 50.0))
def test_softmax_is_a_distribution_and_stable(logits, temperature):
    p = softmax(logits, temperature)
    assert np.all(np.isfinite(p)) and np.all(p >= 0)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.isfinite(log_softmax(logits, temperature)))
    torch_p = softmax(torch.tensor(logits), temperature)
    np.testing.assert_allclose(torch_p.numpy(), p, atol=1e-12)


def test_huge_logits():
    p = softmax([1e4, -1e4, 0.0])
    np.testing.assert_array_equal(p, [1.0, 0.0, 0.0])
    assert log_softmax([1e4, -1e4, 0.0])[1] == pytest.approx(-2e4)


def test_temperature_flattens():
    logits = [3.0, 1.0, 0.2]
    assert float(entropy(softmax(logits, 5.0))) > float(entropy(softmax(logits, 1.0))) > float(
        entropy(softmax(logits, 0.5)))


# --- bad input --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "function, args, pattern",
    [
        (kl_divergence, ([0.5, 0.5], [0.2, 0.3, 0.5]), r"p and q must have the same shape"),
        (kl_divergence, ([0.5, 0.5], [1.2, -0.2]), r"q has negative probabilities"),
        (kl_divergence, ([-0.5, 1.5], [0.5, 0.5]), r"p has negative probabilities"),
        (kl_divergence, ([0.5, 0.6], [0.5, 0.5]), r"p must sum to 1 along the last axis within 1e-06"),
        (kl_divergence, ([0.5, 0.5], [2.0, 3.0]), r"q must sum to 1"),
        (kl_divergence, ([0.5, float("nan")], [0.5, 0.5]), r"p contains NaN"),
        (kl_divergence, ([0.5, 0.5], [float("inf"), 0.5]), r"q contains infinite values"),
        (entropy, ([0.3, 0.3],), r"p must sum to 1"),
        (cross_entropy, ([0.5, 0.5], [[0.5, 0.5]]), r"same shape"),
        (js_divergence, ([0.5, 0.5], [0.9, 0.2]), r"q must sum to 1"),
        (softmax, ([1.0, 2.0], 0.0), r"temperature must be > 0 \(got 0.0\)"),
        (softmax, ([1.0, 2.0], -1.0), r"temperature must be > 0 \(got -1.0\)"),
        (softmax, ([1.0, 2.0], float("nan")), r"temperature must be finite \(got nan\)"),
        (log_softmax, ([1.0, 2.0], float("inf")), r"temperature must be finite \(got inf\)"),
        (log_softmax, ([1.0, float("nan")],), r"logits contains NaN"),
        (kl_divergence, (0.5, 0.5), r"p must have at least one axis"),
        (kl_divergence, ([], []), r"p must not be empty"),
        (kl_divergence, (["a", "b"], [0.5, 0.5]), r"p must be numeric"),
    ],
)
def test_bad_input_names_argument_and_problem(function, args, pattern):
    with pytest.raises(ValueError, match=pattern):
        function(*args)


@pytest.mark.parametrize("temperature", ["2", None, True, [2.0]])
def test_temperature_of_the_wrong_type_is_a_type_error(temperature):
    with pytest.raises(TypeError, match=r"^temperature must be a float \(a real number\), not "):
        softmax([1.0, 2.0], temperature)


def test_temperature_accepts_numpy_scalars_and_one_element_tensors():
    expected = softmax([1.0, 2.0], 2.0)
    np.testing.assert_array_equal(softmax([1.0, 2.0], np.float32(2.0)), expected)
    np.testing.assert_array_equal(softmax([1.0, 2.0], np.int64(2)), expected)
    np.testing.assert_array_equal(softmax([1.0, 2.0], torch.tensor(2.0)), expected)


def test_bad_torch_input_is_caught_too():
    with pytest.raises(ValueError, match="q must sum to 1"):
        kl_divergence(torch.tensor([0.5, 0.5]), torch.tensor([0.5, 0.6]))
    with pytest.raises(ValueError, match="p contains NaN"):
        kl_divergence(torch.tensor([float("nan"), 0.5]), torch.tensor([0.5, 0.5]))


def test_float32_tolerance_is_looser():
    p = torch.tensor([0.5, 0.50005], dtype=torch.float32)
    q = torch.tensor([0.5, 0.5], dtype=torch.float32)
    assert float(kl_divergence(p, q)) >= 0.0  # within 1e-4: accepted
    with pytest.raises(ValueError, match="within 1e-06"):
        kl_divergence(p.double(), q.double())
