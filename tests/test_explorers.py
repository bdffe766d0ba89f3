"""The two lecture explorers: the pure views' numbers and figures, their errors, and the widgets driven headlessly."""

import dataclasses
import struct

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from kdcourse import distillation_loss, divergences, plots
from kdcourse.explorers import (
    DEFAULT_STUDENT_LOGITS,
    DEFAULT_TEACHER_LOGITS,
    direction_explorer,
    direction_view,
    fit_for,
    temperature_explorer,
    temperature_view,
)


def png_size(data: bytes) -> tuple[int, int]:
    return struct.unpack(">II", data[16:24])


def legend_texts(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


# --- temperature -----------------------------------------------------------------------------------


def test_view_numbers_come_from_the_divergences_module():
    view = temperature_view([2.0, 6.0, -1.0], [0.0, 5.0, 1.0], temperature=4.0)
    p_t = divergences.softmax([2.0, 6.0, -1.0], temperature=4.0)
    p_s = divergences.softmax([0.0, 5.0, 1.0], temperature=4.0)
    np.testing.assert_array_equal(view.teacher_probs, p_t)
    np.testing.assert_array_equal(view.student_probs, p_s)
    assert view.kl == float(divergences.kl_divergence(p_t, p_s))
    assert view.kd_loss == pytest.approx(16.0 * view.kl, rel=1e-15)
    assert view.teacher_entropy == float(divergences.entropy(p_t))
    for t, kl in zip(view.temperatures[::7], view.kl_curve[::7]):
        expected = divergences.kl_divergence(divergences.softmax([2.0, 6.0, -1.0], t),
                                             divergences.softmax([0.0, 5.0, 1.0], t))
        assert kl == pytest.approx(float(expected), rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(view.kd_curve, view.temperatures**2 * view.kl_curve)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0, 20.0])
def test_view_kd_loss_is_the_library_distillation_loss(temperature):
    view = temperature_view(temperature=temperature)
    expected = distillation_loss(torch.tensor([DEFAULT_STUDENT_LOGITS], dtype=torch.float64),
                                 torch.tensor([DEFAULT_TEACHER_LOGITS], dtype=torch.float64), temperature)
    assert view.kd_loss == pytest.approx(expected.item(), rel=1e-12)


@settings(max_examples=15, deadline=None)
@given(st.integers(2, 6).flatmap(lambda n: st.tuples(
    st.lists(st.floats(-8, 8), min_size=n, max_size=n), st.lists(st.floats(-8, 8), min_size=n, max_size=n))),
    st.floats(0.5, 20.0))
def test_view_kd_loss_is_the_library_distillation_loss_for_any_logits(logits, temperature):
    teacher, student = logits
    view = temperature_view(teacher, student, temperature=temperature)
    expected = distillation_loss(torch.tensor([student], dtype=torch.float64),
                                 torch.tensor([teacher], dtype=torch.float64), temperature)
    assert view.kd_loss == pytest.approx(expected.item(), rel=1e-9, abs=1e-12)
    plt.close("all")


def test_view_is_frozen_read_only_and_its_figure_closed_for_pyplot():
    view = temperature_view(temperature=2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.kl = 0.0
    with pytest.raises(ValueError, match="read-only"):
        view.teacher_probs[0] = 1.0
    assert isinstance(view.figure, Figure) and view.figure.number not in plt.get_fignums()
    assert png_size(plots.figure_png(view.figure))[0] > 0  # still drawable


def test_higher_temperature_softens_the_teacher():
    entropies = [temperature_view(temperature=T).teacher_entropy for T in (0.5, 1.0, 4.0, 20.0)]
    assert entropies == sorted(entropies) and entropies[-1] > entropies[0] + 0.5


def test_temperature_figure_is_labelled_and_keeps_its_size():
    low, high = temperature_view(temperature=0.5), temperature_view(temperature=20.0)
    for ax in low.figure.axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
    assert png_size(plots.figure_png(low.figure)) == png_size(plots.figure_png(high.figure))
    assert [ax.get_position().bounds for ax in low.figure.axes] == [ax.get_position().bounds for ax in high.figure.axes]


@pytest.mark.parametrize("kwargs, error, match", [
    ({"temperature": 0.0}, ValueError, r"temperature must be > 0 \(got 0.0\)"),
    ({"temperature": -1.0}, ValueError, r"temperature must be > 0 \(got -1.0\)"),
    ({"temperature": "2"}, TypeError, r"temperature must be a float \(a real number\), not str"),
    ({"temperature": float("nan")}, ValueError, "temperature must be finite"),
    ({"temperature_range": (0.0, 5.0)}, ValueError, r"temperature_range\[0\] must be > 0"),
    ({"temperature_range": (5.0, 2.0)}, ValueError, r"temperature_range\[1\] must be > 5"),
    ({"temperature_range": (1.0,)}, ValueError, r"temperature_range must be a pair"),
    ({"teacher_logits": [1.0, float("nan")]}, ValueError, "teacher_logits contains NaN"),
    ({"teacher_logits": ["a", "b"]}, ValueError, "teacher_logits must be numeric"),
    ({"student_logits": [1.0, 2.0, 3.0, 4.0]}, ValueError, "same length"),
    ({"teacher_logits": [[1.0, 2.0]]}, ValueError, "teacher_logits must be a 1-D sequence"),
    ({"class_names": ["a"]}, ValueError, "class_names must have 5 entries"),
])
def test_bad_input_names_the_problem(kwargs, error, match):
    with pytest.raises(error, match=match):
        temperature_view(**kwargs)


def test_temperature_widget_follows_its_slider():
    explorer = temperature_explorer(initial=1.0)
    assert explorer.result.temperature == pytest.approx(1.0)
    explorer.children[0].value = 5.0
    assert explorer.result.temperature == pytest.approx(5.0)
    assert explorer.result.kd_loss == pytest.approx(temperature_view(temperature=5.0).kd_loss)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"initial": 50.0}, ValueError, r"initial must be in \[0.5, 20\] \(got 50.0\)"),
    ({"temperatures": (2.0, 1.0)}, ValueError, r"temperatures\[1\] must be > 2"),
    ({"initial": "1"}, TypeError, "initial must be a float"),
])
def test_bad_temperature_widget_settings(kwargs, error, match):
    with pytest.raises(error, match=match):
        temperature_explorer(**kwargs)


# --- direction -------------------------------------------------------------------------------------


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
    assert "most likely class is 2" in direction_view("reverse", "classes").mass_note


def test_view_returns_a_labelled_closed_figure_and_a_summary_naming_both_arguments():
    view = direction_view("reverse", "gaussian")
    assert isinstance(view.figure, Figure) and view.figure.number not in plt.get_fignums()
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.direction = "forward"
    ax = view.figure.axes[0]
    assert ax.get_xlabel() and ax.get_ylabel() and "selected min KL(q‖p_t)" in ax.get_title()
    assert "minimising KL(q‖p_t)" in view.summary() and "KL(p_t‖q) =" in view.summary()
    assert "selected min KL(p_t‖q)" in direction_view("forward", "gaussian").figure.axes[0].get_title()


@pytest.mark.parametrize("problem", ["gaussian", "classes"])
def test_legends_write_each_kl_as_the_buttons_do(problem):
    buttons = [label for label, _ in direction_explorer(problem).children[0].options]
    assert buttons == ["min KL(p_t‖q)", "min KL(q‖p_t)"]
    for direction in ("forward", "reverse"):
        view = direction_view(direction, problem)
        fit_labels = legend_texts(view.figure)[1:]
        assert [label.split(":")[0].split(" (")[0] for label in fit_labels] == buttons


def test_texts_never_name_a_direction_without_its_arguments():
    view = direction_view("reverse", "gaussian")
    texts = [view.summary(), view.figure.axes[0].get_title(), *legend_texts(view.figure)]
    texts += [label for label, _ in direction_explorer().children[0].options]
    for text in texts:
        assert "forward" not in text.lower() and "reverse" not in text.lower(), text
        assert "KL(p‖q)" not in text and "KL(q‖p)" not in text, text


@pytest.mark.parametrize("problem", ["gaussian", "classes"])
def test_the_other_directions_fit_is_faded_with_its_legend_entry(problem):
    view = direction_view("forward", problem)
    legend = view.figure.axes[0].get_legend()
    by_label = {text.get_text(): (handle, text) for handle, text in zip(legend.legend_handles, legend.get_texts())}
    (other,) = [label for label in by_label if label.startswith("min KL(q‖p_t)")]
    (selected,) = [label for label in by_label if label.startswith("min KL(p_t‖q)")]
    handle, text = by_label[other]
    assert handle.get_alpha() == plots.FADED_ALPHA and text.get_alpha() == plots.FADED_ALPHA
    assert by_label[selected][0].get_alpha() == 1.0


def test_toggling_keeps_the_figure_size_and_layout():
    views = [direction_view(d, p) for p in ("gaussian", "classes") for d in ("forward", "reverse")]
    sizes = {png_size(plots.figure_png(view.figure)) for view in views}
    dpi = views[0].figure.dpi
    assert sizes == {(round(plots.FIT_FIGSIZE[0] * dpi), round(plots.FIT_FIGSIZE[1] * dpi))}
    assert len({view.figure.axes[0].get_position().bounds for view in views}) == 1
    # Flipping the switch changes the emphasis only: same curves in the same order.
    forward, reverse = views[0].figure.axes[0], views[1].figure.axes[0]
    for a, b in zip(forward.lines, reverse.lines):
        np.testing.assert_array_equal(a.get_ydata(), b.get_ydata())
        assert a.get_color() == b.get_color() and a.get_alpha() != b.get_alpha()


def test_view_without_the_other_fit_draws_one_student():
    one = direction_view("forward", "gaussian", show_other=False)
    two = direction_view("forward", "gaussian", show_other=True)
    assert len(two.figure.axes[0].lines) == len(one.figure.axes[0].lines) + 1
    assert {line.get_alpha() for line in one.figure.axes[0].lines} == {1.0}


@pytest.mark.parametrize("kwargs, error, name", [
    ({"direction": "sideways"}, ValueError, "direction"),
    ({"problem": "images"}, ValueError, "problem"),
    ({"show_other": "yes"}, TypeError, "show_other"),
])
def test_bad_settings_name_the_argument(kwargs, error, name):
    with pytest.raises(error, match=name):
        direction_view(**kwargs)
    if name == "problem":
        with pytest.raises(ValueError, match="problem must be one of 'gaussian', 'classes'"):
            direction_explorer("images")


def test_direction_widget_switches_headlessly():
    explorer = direction_explorer()
    assert explorer.result.direction == "forward"
    explorer.children[0].value = "reverse"
    assert explorer.result.direction == "reverse"
    assert explorer.result.entropy < 1.0
    explorer.children[1].value = "classes"
    assert explorer.result.problem == "classes" and explorer.result.direction == "reverse"
    assert "most likely class is 2" in explorer.result.mass_note
