"""Figures for the course (matplotlib; safe under the non-interactive Agg backend).

Every function returns the ``Figure`` it drew on, with labelled axes and a title.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from kdcourse.divergences import kl_divergence
from kdcourse.fits import ClassFit, GaussianFit, bimodal_class_teacher, default_mixture
from kdcourse.training import History

__all__ = ["plot_distributions", "plot_history", "plot_forward_reverse_fits"]


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def plot_distributions(
    reference: Sequence[float],
    candidates: Mapping[str, Sequence[float]],
    class_names: Sequence[str] | None = None,
    reference_name: str = "teacher",
    ax: Axes | None = None,
) -> Figure:
    """Grouped bars: the reference (teacher) distribution beside each candidate (student).

    Each candidate's legend entry shows KL(reference ‖ candidate) in nats.
    """
    reference = np.asarray(reference, dtype=np.float64)
    fig, ax = _axes(ax, (7, 3.5))
    num_classes = reference.shape[-1]
    groups = 1 + len(candidates)
    width = 0.8 / groups
    positions = np.arange(num_classes)
    ax.bar(positions - 0.4 + width / 2, reference, width, label=reference_name, color="black", alpha=0.8)
    for i, (name, values) in enumerate(candidates.items(), start=1):
        kl = float(kl_divergence(reference, values))
        ax.bar(positions - 0.4 + width * (i + 0.5), np.asarray(values, dtype=np.float64), width,
               label=f"{name}: KL({reference_name}‖{name}) = {kl:.4f}")
    ax.set_xticks(positions)
    ax.set_xticklabels(class_names if class_names is not None else [str(k) for k in range(num_classes)])
    ax.set_xlabel("class")
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1)
    ax.set_title(f"{reference_name.capitalize()} vs candidates (KL in nats)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_history(histories: Mapping[str, History] | History, title: str = "Training history") -> Figure:
    """Three panels per epoch: validation KL(teacher‖model), accuracy on true labels, agreement."""
    if isinstance(histories, History):
        histories = {"model": histories}
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    panels = (
        ("val_kl", "KL(teacher ‖ model) [nats]", "Dissimilarity to the teacher"),
        ("val_accuracy", "accuracy", "Accuracy on true labels"),
        ("val_agreement", "top-1 agreement", "Agreement with the teacher"),
    )
    for ax, (key, ylabel, panel_title) in zip(axes, panels):
        for name, history in histories.items():
            values = getattr(history, key)
            if not np.all(np.isnan(values)):
                ax.plot(history.epoch, values, marker=".", label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(panel_title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _kl_name(direction: str) -> str:
    """Both arguments written out: p is the teacher, q the student."""
    return "KL(p‖q), forward" if direction == "forward" else "KL(q‖p), reverse"


def _plot_gaussian_fits(fits: Sequence[GaussianFit], ax: Axes) -> None:
    mixture = default_mixture()
    x = np.linspace(-7, 7, 1001)
    ax.fill_between(x, mixture.pdf(x), color="black", alpha=0.2, label="teacher p (two modes)")
    for fit in fits:
        label = (f"min {_kl_name(fit.direction)}: μ={fit.mu:.2f}, σ={fit.sigma:.2f}, "
                 f"H={fit.entropy:.2f} nats")
        ax.plot(x, fit.density(x), linewidth=2, label=label)
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    ax.set_title("One Gaussian fitted to a two-mode teacher")


def _plot_class_fits(fits: Sequence[ClassFit], teacher: np.ndarray, ax: Axes) -> None:
    positions = np.arange(teacher.shape[-1])
    width = 0.8 / (1 + len(fits))
    ax.bar(positions - 0.4 + width / 2, teacher, width, color="black", alpha=0.7, label="teacher")
    for i, fit in enumerate(fits, start=1):
        ax.bar(positions - 0.4 + width * (i + 0.5), fit.probabilities, width,
               label=f"min {_kl_name(fit.direction)} (H={fit.entropy:.2f} nats)")
    ax.set_xticks(positions)
    ax.set_xlabel("class")
    ax.set_ylabel("probability")
    ax.set_title("A unimodal student fitted to a two-mode teacher")


def plot_forward_reverse_fits(
    fits: Sequence[GaussianFit] | Sequence[ClassFit],
    teacher: Sequence[float] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Draw the teacher and each constrained fit (see :mod:`kdcourse.fits`) on one axes.

    Gaussian fits are drawn as densities over the course's mixture; class fits as bars beside
    ``teacher`` (default: :func:`kdcourse.fits.bimodal_class_teacher`).
    """
    if not fits:
        raise ValueError("fits must contain at least one fit")
    fig, ax = _axes(ax, (8, 3.8))
    if all(isinstance(f, GaussianFit) for f in fits):
        _plot_gaussian_fits(fits, ax)
    elif all(isinstance(f, ClassFit) for f in fits):
        teacher_probs = bimodal_class_teacher() if teacher is None else np.asarray(teacher, dtype=np.float64)
        _plot_class_fits(fits, teacher_probs, ax)
    else:
        raise ValueError("fits must be all GaussianFit or all ClassFit objects")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig
