"""Forward vs reverse KL fits of constrained students (figures from COURSE facts)."""

import numpy as np
import pytest

from kdcourse import fits


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


def test_bad_arguments():
    with pytest.raises(ValueError, match="direction must be one of 'forward', 'reverse'"):
        fits.fit_gaussian("both")
    with pytest.raises(ValueError, match="scale must be > 0"):
        fits.unimodal_class_distribution(1.0, 0.0)
