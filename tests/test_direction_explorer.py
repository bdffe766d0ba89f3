"""Tests for kdcourse.direction_explorer: the pure view function and the headless widget."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from kdcourse.direction_explorer import direction_explorer, direction_view, fit_for  # noqa: E402


def test_gaussian_views_show_mass_covering_and_mode_seeking():
    forward, reverse = direction_view("forward", "gaussian"), direction_view("reverse", "gaussian")
    # Course figures: forward σ ≈ 2.02, entropy 2.12 nats; reverse σ ≈ 0.50, entropy 0.73; teacher 1.40.
    assert forward.entropy == pytest.approx(2.12, abs=0.01)
    assert reverse.entropy == pytest.approx(0.73, abs=0.01)
    assert forward.teacher_entropy == pytest.approx(1.40, abs=0.01)
    assert forward.entropy > forward.teacher_entropy > reverse.entropy
    # Each fit wins under the divergence it minimised.
    assert forward.forward_kl < reverse.forward_kl
    assert reverse.reverse_kl < forward.reverse_kl
    assert "between the teacher's modes" in forward.mass_note and "37%" in forward.mass_note


def test_class_views_place_mass_as_the_course_says():
    forward, reverse = fit_for("forward", "classes"), fit_for("reverse", "classes")
    assert forward.argmax == 4
    assert 0.9 < reverse.probabilities[2] < 0.97 and reverse.probabilities[7] < 1e-6
    view = direction_view("reverse", "classes")
    assert "most likely class is 2" in view.mass_note


def test_view_returns_a_labelled_figure_and_a_summary_naming_both_arguments():
    view = direction_view("reverse", "gaussian")
    assert isinstance(view.figure, Figure)
    ax = view.figure.axes[0]
    assert ax.get_xlabel() and ax.get_ylabel() and "selected min KL(q‖p_t)" in ax.get_title()
    assert "minimising KL(q‖p_t)" in view.summary() and "KL(p_t‖q) =" in view.summary()
    assert "selected min KL(p_t‖q)" in direction_view("forward", "gaussian").figure.axes[0].get_title()


def test_texts_never_name_a_direction_without_its_arguments():
    view = direction_view("reverse", "gaussian")
    texts = [view.summary(), view.figure.axes[0].get_title()]
    texts += [label for label, _ in direction_explorer().children[0].options]
    for text in texts:
        assert "forward" not in text.lower() and "reverse" not in text.lower(), text


def test_view_without_the_other_fit_draws_one_student():
    one = direction_view("forward", "gaussian", show_other=False)
    two = direction_view("forward", "gaussian", show_other=True)
    assert len(two.figure.axes[0].lines) == len(one.figure.axes[0].lines) + 1


@pytest.mark.parametrize("kwargs, name", [({"direction": "sideways"}, "direction"), ({"problem": "images"}, "problem")])
def test_bad_settings_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        direction_view(**kwargs)


def test_widget_switches_direction_headlessly():
    explorer = direction_explorer()
    assert explorer.result.direction == "forward"
    direction_control = explorer.children[0]
    direction_control.value = "reverse"
    assert explorer.result.direction == "reverse"
    assert explorer.result.entropy < 1.0
    explorer.children[1].value = "classes"
    assert explorer.result.problem == "classes"
