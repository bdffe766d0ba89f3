"""Figures draw under Agg, with labelled axes and titles."""

import pytest
import torch
from matplotlib.figure import Figure

from kdcourse import fits, plots
from kdcourse.training import History


def labelled(fig: Figure) -> bool:
    return all(ax.get_xlabel() and ax.get_ylabel() and ax.get_title() for ax in fig.axes)


def test_plot_distributions_shows_kl_in_legend():
    fig = plots.plot_distributions([0.7, 0.2, 0.1], {"A": [0.65, 0.22, 0.13], "B": [0.7, 0.1, 0.2]})
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[1] == "A: KL(teacher‖A) = 0.0066"
    assert labels[2] == "B: KL(teacher‖B) = 0.0693"
    assert labelled(fig)


def test_plot_history():
    history = History()
    for epoch, kl in enumerate((2.0, 1.0, 0.5)):
        history.append(epoch, float("nan") if epoch == 0 else kl, {"kl": kl, "accuracy": 0.5, "agreement": 0.6})
    fig = plots.plot_history({"student": history})
    assert len(fig.axes) == 3 and labelled(fig)
    assert list(fig.axes[0].lines[0].get_ydata()) == [2.0, 1.0, 0.5]


def test_plot_forward_reverse_fits():
    fig = plots.plot_forward_reverse_fits([fits.fit_gaussian("forward"), fits.fit_gaussian("reverse")])
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("KL(p‖q), forward" in label for label in labels)
    assert any("KL(q‖p), reverse" in label for label in labels)
    assert labelled(fig)
    fig = plots.plot_forward_reverse_fits([fits.fit_unimodal_classes("reverse")])
    assert labelled(fig)
    with pytest.raises(ValueError, match="at least one fit"):
        plots.plot_forward_reverse_fits([])
