"""Figures draw under Agg, with labelled axes and titles."""

import struct

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from kdcourse import fits, plots
from kdcourse.divergences import kl_divergence
from kdcourse.training import History


def labelled(fig: Figure) -> bool:
    return all(ax.get_xlabel() and ax.get_ylabel() and ax.get_title() for ax in fig.axes)


def legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


REFERENCE = [0.7, 0.2, 0.1]
OUTPUTS = {"A": [0.65, 0.22, 0.13], "B": [0.7, 0.1, 0.2]}


def test_plot_distributions_shows_the_given_divergence_in_the_legend():
    fig = plots.plot_distributions(REFERENCE, OUTPUTS, divergence=kl_divergence)
    labels = legend_texts(fig.axes[0])
    assert labels == ["teacher", "A: KL(teacher‖A) = 0.0066", "B: KL(teacher‖B) = 0.0693"]
    assert labelled(fig) and "KL in nats" in fig.axes[0].get_title()


def test_plot_distributions_uses_the_callable_it_is_given():
    calls = []

    def student_kl(p, q):  # e.g. the student's own kl_divergence in assignment a01
        calls.append((tuple(p), tuple(q)))
        return 1.25

    fig = plots.plot_distributions(REFERENCE, OUTPUTS, reference_name="reference", divergence=student_kl)
    assert legend_texts(fig.axes[0])[1:] == ["A: KL(reference‖A) = 1.2500", "B: KL(reference‖B) = 1.2500"]
    assert calls == [(tuple(REFERENCE), tuple(OUTPUTS["A"])), (tuple(REFERENCE), tuple(OUTPUTS["B"]))]


def test_plot_distributions_without_a_divergence_shows_names_only():
    fig = plots.plot_distributions(REFERENCE, OUTPUTS, class_names=["x", "y", "z"])
    assert legend_texts(fig.axes[0]) == ["teacher", "A", "B"]
    assert "KL" not in fig.axes[0].get_title() and labelled(fig)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["x", "y", "z"]


@pytest.mark.parametrize(
    "args, kwargs, pattern",
    [
        (([[0.5, 0.5]], OUTPUTS), {}, "reference must be one distribution"),
        ((REFERENCE, {"A": [0.5, 0.5]}), {}, r"candidate 'A' must have the reference's shape \(3,\)"),
        ((REFERENCE, OUTPUTS), {"class_names": ["x"]}, "class_names must have 3 entries"),
    ],
)
def test_plot_distributions_rejects_mismatched_input(args, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        plots.plot_distributions(*args, **kwargs)


def test_plot_history():
    history = History()
    for epoch, kl in enumerate((2.0, 1.0, 0.5)):
        history.append(epoch, float("nan") if epoch == 0 else kl, {"kl": kl, "accuracy": 0.5, "agreement": 0.6})
    fig = plots.plot_history({"student": history})
    assert len(fig.axes) == 3 and labelled(fig)
    assert list(fig.axes[0].lines[0].get_ydata()) == [2.0, 1.0, 0.5]
    single = plots.plot_history(history)
    assert legend_texts(single.axes[0]) == ["model"]


def test_plot_forward_reverse_fits_names_both_arguments_of_each_kl():
    fig = plots.plot_forward_reverse_fits([fits.fit_gaussian("forward"), fits.fit_gaussian("reverse")])
    labels = legend_texts(fig.axes[0])
    assert labels[0] == "teacher p_t (two modes)"
    assert labels[1].startswith("min KL(p_t‖q): μ=-0.40, σ=2.02")
    assert labels[2].startswith("min KL(q‖p_t): μ=-2.00, σ=0.50")
    assert labelled(fig)
    fig = plots.plot_forward_reverse_fits([fits.fit_unimodal_classes("reverse")])
    assert labelled(fig) and legend_texts(fig.axes[0])[1].startswith("min KL(q‖p_t)")
    with pytest.raises(ValueError, match="at least one fit"):
        plots.plot_forward_reverse_fits([])
    with pytest.raises(ValueError, match="direction must be one of"):
        plots.plot_forward_reverse_fits([fits.fit_gaussian("forward")], selected="both")


def test_selected_direction_is_emphasised_and_the_other_faded_in_the_legend_too():
    gaussian = [fits.fit_gaussian("forward"), fits.fit_gaussian("reverse")]
    fig = plots.plot_forward_reverse_fits(gaussian, selected="reverse")
    ax = fig.axes[0]
    forward_line, reverse_line = ax.lines
    assert forward_line.get_alpha() == plots.FADED_ALPHA and reverse_line.get_alpha() == 1.0
    legend = ax.get_legend()
    handles = dict(zip(legend_texts(ax), legend.legend_handles))
    texts = dict(zip(legend_texts(ax), legend.get_texts()))
    faded = next(label for label in handles if label.startswith("min KL(p_t‖q)"))
    kept = next(label for label in handles if label.startswith("min KL(q‖p_t)"))
    assert handles[faded].get_alpha() == plots.FADED_ALPHA and texts[faded].get_alpha() == plots.FADED_ALPHA
    assert handles[kept].get_alpha() == 1.0 and texts[kept].get_alpha() in (None, 1.0)
    assert ax.get_title().endswith(": selected min KL(q‖p_t)")
    # Each direction keeps its colour whichever is selected.
    other = plots.plot_forward_reverse_fits(gaussian, selected="forward")
    assert [line.get_color() for line in other.axes[0].lines] == [line.get_color() for line in ax.lines]


def test_class_fits_fade_their_bars_and_legend_entry():
    classes = [fits.fit_unimodal_classes("forward"), fits.fit_unimodal_classes("reverse")]
    ax = plots.plot_forward_reverse_fits(classes, selected="forward").axes[0]
    assert {patch.get_alpha() for patch in ax.containers[2]} == {plots.FADED_ALPHA}
    assert {patch.get_alpha() for patch in ax.containers[1]} == {1.0}
    assert ax.get_legend().legend_handles[2].get_alpha() == plots.FADED_ALPHA


def test_fit_figures_have_one_fixed_size_and_layout():
    gaussian = [fits.fit_gaussian("forward"), fits.fit_gaussian("reverse")]
    classes = [fits.fit_unimodal_classes("forward"), fits.fit_unimodal_classes("reverse")]
    figures = [plots.plot_forward_reverse_fits(gaussian, selected="forward"),
               plots.plot_forward_reverse_fits(gaussian[::-1], selected="reverse"),
               plots.plot_forward_reverse_fits(classes, selected="reverse")]
    expected = tuple(int(round(v * figures[0].dpi)) for v in plots.FIT_FIGSIZE)
    for fig in figures:
        assert png_size(plots.figure_png(fig)) == expected
        assert fig.axes[0].get_position().bounds == figures[0].axes[0].get_position().bounds


def test_fits_drawn_on_given_axes():
    fig, axes = plt.subplots(1, 2, figsize=(15, 4))
    assert plots.plot_forward_reverse_fits([fits.fit_gaussian("forward")], ax=axes[0]) is fig
    assert len(axes[0].lines) == 1 and axes[0].get_legend() is not None and axes[1].get_legend() is None


def test_kl_label():
    assert plots.kl_label("forward") == "KL(p_t‖q)" and plots.kl_label("reverse") == "KL(q‖p_t)"
    with pytest.raises(ValueError, match="direction must be one of"):
        plots.kl_label("p‖q")


def test_plot_temperature_view_is_labelled_and_draws_the_numbers_it_is_given():
    grid = np.geomspace(0.5, 20, 5)
    fig = plots.plot_temperature_view(np.array([0.6, 0.4]), np.array([0.5, 0.5]), 2.0, 0.1, 0.4,
                                      grid, np.full(5, 0.1), np.full(5, 0.4), class_names=["a", "b"])
    assert labelled(fig) and len(fig.axes) == 2
    bars, curve = fig.axes
    assert [patch.get_height() for patch in bars.containers[0]] == [0.6, 0.4]
    np.testing.assert_array_equal(curve.lines[1].get_ydata(), np.full(5, 0.4))
    assert curve.get_title() == "KL = 0.1000, KD loss = 0.4000 nats"
    assert png_size(plots.figure_png(fig)) == tuple(int(round(v * fig.dpi)) for v in plots.TEMPERATURE_FIGSIZE)


def test_plot_seed_comparison_draws_each_methods_mean_and_seeds():
    from kdcourse.lm.experiments import Row
    from kdcourse.plots import plot_seed_comparison

    rows = [Row(method, seed, {"KL": base + seed, "other": -base}) for method, base in (("a (x)", 1.0), ("b", 3.0))
            for seed in range(3)]
    fig = plot_seed_comparison(rows, ["KL", "other"], "title")
    left = fig.axes[0]
    means = sorted(float(line.get_ydata()[0]) for line in left.lines if line.get_marker() == "o")
    assert means == [2.0, 4.0]  # 1 + mean(0, 1, 2) and 3 + 1
    assert [t.get_text() for t in left.get_xticklabels()] == ["a", "b"]
    assert left.get_ylabel() == "KL" and fig.get_suptitle() == "title"
    assert len(fig.axes) == 2


def test_plot_per_example_kl_marks_the_mean_and_the_tail():
    from kdcourse.plots import plot_per_example_kl

    values = np.concatenate([np.full(99, 0.1), [10.0]])
    fig = plot_per_example_kl({"student": values}, quantile=0.99)
    (ax,) = fig.axes
    positions = sorted(float(line.get_xdata()[0]) for line in ax.lines)
    assert positions == pytest.approx([0.199, np.quantile(values, 0.99)])
    assert "KL(p_t‖p_s)" in ax.get_xlabel() and ax.get_yscale() == "log"


def test_the_fit_legends_can_leave_out_the_entropy():
    # a04 asks for the fits' entropies: its figure must not print them.
    gaussian = [fits.fit_gaussian("forward"), fits.fit_gaussian("reverse")]
    shown = [t.get_text() for t in plots.plot_forward_reverse_fits(gaussian).axes[0].get_legend().get_texts()]
    hidden = [t.get_text() for t in
              plots.plot_forward_reverse_fits(gaussian, show_entropy=False).axes[0].get_legend().get_texts()]
    assert any("H=" in t for t in shown) and not any("H=" in t or "nats" in t for t in hidden)
    classes = [fits.fit_unimodal_classes("forward")]
    legend = plots.plot_forward_reverse_fits(classes, show_entropy=False).axes[0].get_legend().get_texts()
    assert not any("H=" in t.get_text() for t in legend)
