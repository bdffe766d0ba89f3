"""Forward vs reverse KL fits of constrained students (figures from COURSE facts)."""

import numpy as np
import pytest
from scipy import stats

from kdcourse import divergences, fits


@pytest.fixture(scope="module")
def gaussian_fits():
    return {d: fits.fit_gaussian(d) for d in ("forward", "reverse")}


@pytest.fixture(scope="module")
def class_fits():
    return {d: fits.fit_unimodal_classes(d) for d in ("forward", "reverse")}


def test_forward_gaussian_fit_matches_moments(gaussian_fits):
    fit = gaussian_fits["forward"]
    assert fit.mu == pytest.approx(-0.40, abs=0.01)
    assert fit.sigma == pytest.approx(np.sqrt(0.25 + 4 - 0.16), abs=0.01)
    assert fit.entropy == pytest.approx(2.12, abs=0.01)
    assert fit.teacher_entropy == pytest.approx(1.40, abs=0.01)
    assert fit.gap_mass == pytest.approx(0.37, abs=0.02)
    assert fit.teacher_gap_mass < 0.03


def test_reverse_gaussian_fit_seeks_the_larger_mode(gaussian_fits):
    fit = gaussian_fits["reverse"]
    assert fit.mu == pytest.approx(-2.0, abs=0.02)
    assert fit.sigma == pytest.approx(0.5, abs=0.02)
    assert fit.entropy == pytest.approx(0.73, abs=0.01)
    assert fit.reverse_kl == pytest.approx(-np.log(0.6), abs=0.01)


def test_each_fit_wins_its_own_objective(gaussian_fits, class_fits):
    for pair in (gaussian_fits, class_fits):
        assert pair["forward"].forward_kl < pair["reverse"].forward_kl
        assert pair["reverse"].reverse_kl < pair["forward"].reverse_kl
        assert pair["reverse"].entropy < pair["forward"].entropy


def test_unimodal_class_fits(class_fits):
    teacher = fits.bimodal_class_teacher()
    forward, reverse = class_fits["forward"], class_fits["reverse"]
    assert forward.argmax == 4 and teacher[4] == pytest.approx(0.001, abs=1e-4)
    assert 0.90 < reverse.probabilities[2] < 0.97
    assert reverse.probabilities[7] < 1e-3


def test_a_single_gaussian_teacher_is_fitted_exactly_by_both_directions():
    teacher = fits.GaussianMixture(weights=(1.0,), means=(0.5,), stds=(1.5,))
    for direction in ("forward", "reverse"):
        fit = fits.fit_gaussian(direction, teacher)
        assert fit.mu == pytest.approx(0.5, abs=1e-4) and fit.sigma == pytest.approx(1.5, abs=1e-4)
        assert fit.forward_kl == pytest.approx(0.0, abs=1e-7) and fit.reverse_kl == pytest.approx(0.0, abs=1e-7)


def test_reverse_init_matters():
    near_small_mode = fits.fit_gaussian("reverse", init=(2.0, 0.5))
    assert near_small_mode.mu == pytest.approx(2.0, abs=0.05)
    assert near_small_mode.reverse_kl > fits.fit_gaussian("reverse").reverse_kl


def test_directions_agree_when_student_can_represent_teacher():
    teacher = fits.unimodal_class_distribution(3.3, 1.2)
    forward = fits.fit_unimodal_classes("forward", teacher)
    reverse = fits.fit_unimodal_classes("reverse", teacher)
    np.testing.assert_allclose(forward.probabilities, teacher, atol=1e-4)
    np.testing.assert_allclose(reverse.probabilities, teacher, atol=1e-4)


def test_class_fit_numbers_are_those_of_the_divergences_module(class_fits):
    teacher = fits.bimodal_class_teacher()
    for fit in class_fits.values():
        q = fit.probabilities
        assert fit.forward_kl == float(divergences.kl_divergence(teacher, q))
        assert fit.reverse_kl == float(divergences.kl_divergence(q, teacher))
        assert fit.entropy == float(divergences.entropy(q))
        np.testing.assert_allclose(q, fits.unimodal_class_distribution(fit.mu, fit.scale))


def test_gaussian_density_is_the_normal_density():
    x = np.linspace(-6, 6, 101)
    np.testing.assert_allclose(fits.GaussianFit("forward", 0.3, 1.7, 0, 0, 0, 0, 0, 0).density(x),
                               stats.norm.pdf(x, 0.3, 1.7), rtol=1e-12)
    mixture = fits.default_mixture()
    np.testing.assert_allclose(mixture.pdf(x), 0.6 * stats.norm.pdf(x, -2, 0.5) + 0.4 * stats.norm.pdf(x, 2, 0.5),
                               rtol=1e-12)


def test_a_teacher_given_as_a_list_gives_the_same_fit(class_fits):
    fit = fits.fit_unimodal_classes("reverse", fits.bimodal_class_teacher().tolist())
    assert fit.mu == class_fits["reverse"].mu and fit.forward_kl == class_fits["reverse"].forward_kl


@pytest.mark.parametrize(
    "call, error, pattern",
    [
        (lambda: fits.fit_gaussian("both"), ValueError,
         r"direction must be one of 'forward', 'reverse' \(got 'both'\)"),
        (lambda: fits.fit_unimodal_classes("sideways"), ValueError, "direction must be one of"),
        (lambda: fits.fit_gaussian("reverse", init=(2.0, 0.0)), ValueError, r"init\[1\] \(sigma\) must be > 0"),
        (lambda: fits.fit_gaussian("reverse", init=("2", 0.5)), TypeError, r"init\[0\] \(mu\) must be a float"),
        (lambda: fits.fit_gaussian("reverse", init=(2.0,)), ValueError, r"init must be a pair \(mu, sigma\)"),
        (lambda: fits.unimodal_class_distribution(1.0, 0.0), ValueError, r"scale must be > 0 \(got 0.0\)"),
        (lambda: fits.unimodal_class_distribution(1.0, "wide"), TypeError, r"scale must be a float"),
        (lambda: fits.unimodal_class_distribution(np.nan, 1.0), ValueError, r"mu must be finite"),
        (lambda: fits.unimodal_class_distribution(1.0, 1.0, num_classes=0), ValueError, r"num_classes must be >= 1"),
        (lambda: fits.fit_unimodal_classes("forward", [0.5, 0.6]), ValueError, "teacher must sum to 1"),
        (lambda: fits.fit_unimodal_classes("forward", [1.0]), ValueError, "teacher must be one probability vector"),
        (lambda: fits.fit_unimodal_classes("forward", [[0.5, 0.5]]), ValueError, "teacher must be one probability"),
        (lambda: fits.default_mixture().grid(points=1), ValueError, r"points must be >= 2 \(got 1\)"),
        (lambda: fits.GaussianMixture(stds=(0.5, 0.0)), ValueError, r"stds\[1\] must be > 0 \(got 0.0\)"),
        (lambda: fits.GaussianMixture(weights=(0.6, 0.6)), ValueError, r"weights must sum to 1"),
        (lambda: fits.GaussianMixture(means=(0.0,)), ValueError, r"must have the same length"),
    ],
)
def test_bad_arguments(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()
