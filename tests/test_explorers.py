"""The temperature explorer: the pure function's numbers, its errors, and the widget driven headlessly."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from kdcourse import divergences
from kdcourse.temperature_explorer import temperature_explorer, temperature_view


def test_view_numbers_match_the_definitions():
    view = temperature_view([2.0, 6.0, -1.0], [0.0, 5.0, 1.0], temperature=4.0)
    p_t = divergences.softmax([2.0, 6.0, -1.0], temperature=4.0)
    p_s = divergences.softmax([0.0, 5.0, 1.0], temperature=4.0)
    np.testing.assert_allclose(view.teacher_probs, p_t)
    np.testing.assert_allclose(view.student_probs, p_s)
    assert view.kl == pytest.approx(float(divergences.kl_divergence(p_t, p_s)))
    assert view.kd_loss == pytest.approx(16.0 * view.kl)
    assert view.teacher_entropy == pytest.approx(float(divergences.entropy(p_t)))
    plt.close(view.figure)


def test_higher_temperature_softens_the_teacher():
    entropies = []
    for T in (0.5, 1.0, 4.0, 20.0):
        view = temperature_view(temperature=T)
        entropies.append(view.teacher_entropy)
        plt.close(view.figure)
    assert entropies == sorted(entropies) and entropies[-1] > entropies[0] + 0.5


def test_figure_is_labelled():
    view = temperature_view(temperature=2.0)
    for ax in view.figure.axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
    plt.close(view.figure)


@pytest.mark.parametrize("kwargs, match", [
    ({"temperature": 0.0}, "temperature"),
    ({"temperature": -1.0}, "temperature"),
    ({"teacher_logits": [1.0, float("nan")]}, "teacher_logits"),
    ({"student_logits": [1.0, 2.0, 3.0, 4.0]}, "same length"),
    ({"teacher_logits": [[1.0, 2.0]]}, "teacher_logits"),
])
def test_bad_input_names_the_problem(kwargs, match):
    with pytest.raises(ValueError, match=match):
        temperature_view(**kwargs)


def test_widget_follows_its_slider():
    explorer = temperature_explorer(initial=1.0)
    assert explorer.result.temperature == pytest.approx(1.0)
    explorer.children[0].value = 5.0
    assert explorer.result.temperature == pytest.approx(5.0)
    expected = temperature_view(temperature=5.0)
    assert explorer.result.kd_loss == pytest.approx(expected.kd_loss)
    plt.close("all")
