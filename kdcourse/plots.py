"""Figures for the course (matplotlib; safe under the non-interactive Agg backend).

Every function returns the ``Figure`` it drew on, with labelled axes and a title. This module needs
only numpy and matplotlib: the fits and histories it draws are read by attribute, and the module
that defines them is imported only when one is drawn.

The figures of the two lecture explorers (:mod:`kdcourse.explorers`) are drawn here too, from the
numbers their view functions computed, with a fixed size and a fixed layout so that moving a slider
or flipping a switch never resizes the picture; :func:`figure_png` renders them at exactly that size.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from kdcourse.fits import ClassFit, GaussianFit
    from kdcourse.training import History

__all__ = [
    "plot_distributions",
    "plot_history",
    "plot_forward_reverse_fits",
    "plot_temperature_view",
    "plot_seed_comparison",
    "plot_per_example_kl",
    "kl_label",
    "figure_png",
    "FIT_FIGSIZE",
    "TEMPERATURE_FIGSIZE",
    "FADED_ALPHA",
]

#: Size in inches of the figures :func:`plot_forward_reverse_fits` and :func:`plot_temperature_view`
#: make themselves (at matplotlib's default 100 dpi: 800 × 400 and 1000 × 380 pixels).
FIT_FIGSIZE = (8.0, 4.0)
TEMPERATURE_FIGSIZE = (10.0, 3.8)
#: Alpha of the fits :func:`plot_forward_reverse_fits` draws faded (and of their legend entries).
FADED_ALPHA = 0.3
#: One colour per KL direction, so a fit keeps its colour when the selection changes.
_DIRECTION_COLOURS = {"forward": "tab:blue", "reverse": "tab:orange"}


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def kl_label(direction: str) -> str:
    """The divergence a direction minimises, both arguments written out (teacher ``p_t``, student ``q``).

    Parameters
    ----------
    direction : {"forward", "reverse"}

    Returns
    -------
    str
        ``"KL(p_t‖q)"`` for ``"forward"``, ``"KL(q‖p_t)"`` for ``"reverse"``.

    Raises
    ------
    ValueError
        For any other direction.
    """
    if direction == "forward":
        return "KL(p_t‖q)"
    if direction == "reverse":
        return "KL(q‖p_t)"
    raise ValueError(f"direction must be one of 'forward', 'reverse' (got {direction!r})")


def figure_png(fig: Figure) -> bytes:
    """Render ``fig`` as PNG at exactly its own size (``figsize × dpi`` pixels, no tight cropping).

    The explorers display their figures this way, so two views of the same kind have the same size
    on screen (a notebook's inline display would crop each figure to its contents).
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi)
    return buffer.getvalue()


def plot_distributions(
    reference: Sequence[float],
    candidates: Mapping[str, Sequence[float]],
    class_names: Sequence[str] | None = None,
    reference_name: str = "teacher",
    ax: Axes | None = None,
    divergence: Callable[[np.ndarray, np.ndarray], float] | None = None,
) -> Figure:
    """Grouped bars: the reference (teacher) distribution beside each candidate (student).

    Parameters
    ----------
    reference : sequence of float
        The reference distribution over ``num_classes`` classes.
    candidates : mapping of str to sequence of float
        Named distributions of the same length.
    class_names : sequence of str, optional
        Tick labels; default ``"0"``, ``"1"``, ...
    reference_name : str, default="teacher"
        Legend entry and title of the reference.
    ax : matplotlib.axes.Axes, optional
        Where to draw; default a new ``7 × 3.5`` inch figure.
    divergence : callable, optional
        ``divergence(reference, candidate) -> float`` in nats, e.g. :func:`kdcourse.kl_divergence` or
        a student's own implementation. When given, each candidate's legend entry reads
        ``"name: KL(reference_name‖name) = 0.0066"``; when ``None`` the legend shows the names only and
        nothing is computed.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If ``reference`` is not one-dimensional, a candidate's shape differs from it, or
        ``class_names`` has the wrong length.
    """
    reference = np.asarray(reference, dtype=np.float64)
    if reference.ndim != 1:
        raise ValueError(f"reference must be one distribution (got shape {reference.shape})")
    num_classes = reference.shape[-1]
    values = {name: np.asarray(candidate, dtype=np.float64) for name, candidate in candidates.items()}
    for name, candidate in values.items():
        if candidate.shape != reference.shape:
            raise ValueError(f"candidate {name!r} must have the reference's shape {reference.shape} "
                             f"(got {candidate.shape})")
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"class_names must have {num_classes} entries (got {len(class_names)})")
    fig, ax = _axes(ax, (7, 3.5))
    width = 0.8 / (1 + len(values))
    positions = np.arange(num_classes)
    ax.bar(positions - 0.4 + width / 2, reference, width, label=reference_name, color="black", alpha=0.8)
    for i, (name, candidate) in enumerate(values.items(), start=1):
        label = name
        if divergence is not None:
            label = f"{name}: KL({reference_name}‖{name}) = {float(divergence(reference, candidate)):.4f}"
        ax.bar(positions - 0.4 + width * (i + 0.5), candidate, width, label=label)
    ax.set_xticks(positions)
    ax.set_xticklabels(class_names if class_names is not None else [str(k) for k in range(num_classes)])
    ax.set_xlabel("class")
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1)
    title = f"{reference_name.capitalize()} vs candidates"
    ax.set_title(title + (" (KL in nats)" if divergence is not None else ""))
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_history(histories: Mapping[str, History] | History, title: str = "Training history") -> Figure:
    """Three panels per epoch: validation KL(teacher‖model), accuracy on true labels, agreement.

    Parameters
    ----------
    histories : History or mapping of str to History
        One run (labelled "model") or several, by name (see :class:`kdcourse.training.History`).
    title : str, default="Training history"
        The figure's title.

    Returns
    -------
    matplotlib.figure.Figure
        ``12 × 3.5`` inches; a panel leaves out runs whose values are all NaN (e.g. no reference).
    """
    if not isinstance(histories, Mapping):
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


def _fit_style(fit, selected: str | None) -> dict:
    faded = selected is not None and fit.direction != selected
    return {"color": _DIRECTION_COLOURS.get(fit.direction), "alpha": FADED_ALPHA if faded else 1.0}


def _plot_gaussian_fits(fits: Sequence[GaussianFit], ax: Axes, selected: str | None, show_entropy: bool) -> list[str]:
    from kdcourse.fits import default_mixture

    mixture = default_mixture()
    x = np.linspace(-7, 7, 1001)
    ax.fill_between(x, mixture.pdf(x), color="black", alpha=0.2, label="teacher p_t (two modes)")
    labels = []
    for fit in fits:
        entropy = f", H={fit.entropy:.2f} nats" if show_entropy else ""
        labels.append(f"min {kl_label(fit.direction)}: μ={fit.mu:.2f}, σ={fit.sigma:.2f}{entropy}")
        ax.plot(x, fit.density(x), linewidth=2, label=labels[-1], **_fit_style(fit, selected))
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    ax.set_title("One Gaussian fitted to a two-mode teacher")
    return labels


def _plot_class_fits(fits: Sequence[ClassFit], teacher: np.ndarray, ax: Axes, selected: str | None,
                     show_entropy: bool) -> list[str]:
    positions = np.arange(teacher.shape[-1])
    width = 0.8 / (1 + len(fits))
    ax.bar(positions - 0.4 + width / 2, teacher, width, color="black", alpha=0.7, label="teacher p_t")
    labels = []
    for i, fit in enumerate(fits, start=1):
        labels.append(f"min {kl_label(fit.direction)}" + (f" (H={fit.entropy:.2f} nats)" if show_entropy else ""))
        ax.bar(positions - 0.4 + width * (i + 0.5), fit.probabilities, width, label=labels[-1],
               **_fit_style(fit, selected))
    ax.set_xticks(positions)
    ax.set_xlabel("class")
    ax.set_ylabel("probability")
    ax.set_title("A unimodal student fitted to a two-mode teacher")
    return labels


def plot_forward_reverse_fits(
    fits: Sequence[GaussianFit] | Sequence[ClassFit],
    teacher: Sequence[float] | None = None,
    ax: Axes | None = None,
    selected: str | None = None,
    show_entropy: bool = True,
) -> Figure:
    """Draw the teacher and each constrained fit (see :mod:`kdcourse.fits`) on one axes.

    Gaussian fits are drawn as densities over the course's mixture; class fits as bars beside
    ``teacher``. Each direction has its own colour; legends name the minimised divergence with both
    arguments, ``KL(p_t‖q)`` or ``KL(q‖p_t)`` (teacher ``p_t``, student ``q``).

    Parameters
    ----------
    fits : sequence of GaussianFit or sequence of ClassFit
        At least one fit, all of one kind.
    teacher : sequence of float, optional
        The class teacher; default :func:`kdcourse.fits.bimodal_class_teacher`. Unused for Gaussians.
    ax : matplotlib.axes.Axes, optional
        Where to draw (the figure is then laid out with ``tight_layout``). By default a new figure of
        :data:`FIT_FIGSIZE` with a fixed layout, so that every such figure has the same size and axes.
    selected : {"forward", "reverse"}, optional
        Emphasise the fits of this direction: the others, and their legend entries, are drawn faded,
        and the title names the selected divergence.
    show_entropy : bool, default=True
        Write each fit's entropy in its legend entry; ``False`` where computing it is an exercise.

    Returns
    -------
    matplotlib.figure.Figure
        The figure of ``ax`` (a new one of fixed size when ``ax`` is not given).

    Raises
    ------
    ValueError
        If ``fits`` is empty or mixes kinds, or ``selected`` is not a direction.
    """
    from kdcourse.fits import ClassFit, GaussianFit, bimodal_class_teacher

    if not fits:
        raise ValueError("fits must contain at least one fit")
    if selected is not None:
        kl_label(selected)  # validates it
    created = ax is None
    fig, ax = _axes(ax, FIT_FIGSIZE)
    if all(isinstance(f, GaussianFit) for f in fits):
        labels = _plot_gaussian_fits(fits, ax, selected, show_entropy)
    elif all(isinstance(f, ClassFit) for f in fits):
        teacher_probs = bimodal_class_teacher() if teacher is None else np.asarray(teacher, dtype=np.float64)
        labels = _plot_class_fits(fits, teacher_probs, ax, selected, show_entropy)
    else:
        raise ValueError("fits must be all GaussianFit or all ClassFit objects")
    if selected is not None:
        ax.set_title(f"{ax.get_title()}: selected min {kl_label(selected)}")
    legend = ax.legend(fontsize="small", loc="upper right")
    faded = {label for label, fit in zip(labels, fits) if fit.direction != selected and selected is not None}
    for text in legend.get_texts():  # the faded fits' legend handles already carry their alpha
        if text.get_text() in faded:
            text.set_alpha(FADED_ALPHA)
    if created:
        fig.subplots_adjust(left=0.08, right=0.98, bottom=0.13, top=0.9)
    else:
        fig.tight_layout()
    return fig


def plot_temperature_view(
    teacher_probs: np.ndarray,
    student_probs: np.ndarray,
    temperature: float,
    kl: float,
    kd_loss: float,
    temperatures: np.ndarray,
    kl_curve: np.ndarray,
    kd_curve: np.ndarray,
    class_names: Sequence[str] | None = None,
) -> Figure:
    r"""The temperature explorer's figure, drawn from numbers computed elsewhere.

    Left: :math:`p_t^T` and :math:`p_s^T` as bars. Right: :math:`\mathrm{KL}(p_t^T\|p_s^T)` and the
    distillation loss :math:`T^2\,\mathrm{KL}` against :math:`T` (log scale), the current ``T`` marked.

    Parameters
    ----------
    teacher_probs, student_probs : numpy.ndarray
        ``(num_classes,)`` softened distributions at ``temperature``.
    temperature : float
        The current :math:`T`.
    kl, kd_loss : float
        :math:`\mathrm{KL}(p_t^T\|p_s^T)` and :math:`T^2\,\mathrm{KL}` at ``temperature``, nats.
    temperatures, kl_curve, kd_curve : numpy.ndarray
        A grid of temperatures and the two quantities on it.
    class_names : sequence of str, optional
        Tick labels; default ``"0"``, ``"1"``, ...

    Returns
    -------
    matplotlib.figure.Figure
        :data:`TEMPERATURE_FIGSIZE` with a fixed layout.
    """
    fig, (ax_bars, ax_curve) = plt.subplots(1, 2, figsize=TEMPERATURE_FIGSIZE)
    x = np.arange(len(teacher_probs))
    names = list(class_names) if class_names is not None else [str(k) for k in x]
    ax_bars.bar(x - 0.2, teacher_probs, 0.4, label=r"teacher $p_t^T$", color="black", alpha=0.8)
    ax_bars.bar(x + 0.2, student_probs, 0.4, label=r"student $p_s^T$", color="tab:orange")
    ax_bars.set_xticks(x)
    ax_bars.set_xticklabels(names)
    ax_bars.set_ylim(0, 1)
    ax_bars.set_xlabel("class")
    ax_bars.set_ylabel("probability")
    ax_bars.set_title(f"Softened outputs at T = {temperature:.2g}")
    ax_bars.legend(loc="upper right")
    ax_curve.plot(temperatures, kl_curve, label=r"KL$(p_t^T \| p_s^T)$")
    ax_curve.plot(temperatures, kd_curve, label=r"$T^2\,$KL$(p_t^T \| p_s^T)$ (KD loss)")
    ax_curve.axvline(temperature, color="grey", linestyle=":", label=f"T = {temperature:.2g}")
    ax_curve.set_xscale("log")
    ax_curve.set_xlabel("temperature T")
    ax_curve.set_ylabel("nats")
    ax_curve.set_title(f"KL = {kl:.4f}, KD loss = {kd_loss:.4f} nats")
    ax_curve.legend(fontsize="small", loc="upper left")
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.14, top=0.9, wspace=0.25)
    return fig


def plot_seed_comparison(rows: Sequence, scores: Sequence[str], title: str) -> Figure:
    """One panel per score: each method's mean ± sd over seeds (a large marker with an error bar) and every
    seed (small dots beside it). ``rows`` are :class:`kdcourse.lm.experiments.Row`-like objects with
    ``method``, ``seed`` and ``scores``."""
    methods = list(dict.fromkeys(row.method for row in rows))
    fig, axes = plt.subplots(1, len(scores), figsize=(4.2 * len(scores), 3.6), squeeze=False)
    for ax, score in zip(axes[0], scores):
        for index, method in enumerate(methods):
            values = np.array([row.scores[score] for row in rows if row.method == method])
            sd = values.std(ddof=1) if len(values) > 1 else 0.0
            ax.errorbar(index, values.mean(), yerr=sd, fmt="o", markersize=8, capsize=6, color=f"C{index}")
            ax.plot(np.full(len(values), index + 0.15), values, ".", color=f"C{index}", alpha=0.6)
        ax.set_xticks(range(len(methods)), [m.split(" (")[0] for m in methods], rotation=15, ha="right")
        ax.set_xlim(-0.5, len(methods) - 0.5)
        ax.set_xlabel("method")
        ax.set_ylabel(score)
        ax.set_title(f"{score} (mean ± sd, dots: seeds)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_per_example_kl(values_by_name: Mapping[str, np.ndarray], quantile: float = 0.99,
                        title: str = "Per-example KL(p_t‖p_s) on the test split") -> Figure:
    """One panel per model: a histogram of its per-example KL(p_t‖p_s) (nats, log-scaled counts), with the
    mean and the ``quantile`` marked, so a tail the mean hides is seen."""
    fig, axes = plt.subplots(1, len(values_by_name), figsize=(4.2 * len(values_by_name), 3.4), squeeze=False)
    for ax, (name, values) in zip(axes[0], values_by_name.items()):
        values = np.asarray(values, dtype=np.float64)
        ax.hist(values, bins=40, color="tab:blue", alpha=0.7)
        ax.set_yscale("log")
        mean, tail = values.mean(), np.quantile(values, quantile)
        ax.axvline(mean, color="black", linestyle="-", label=f"mean {mean:.2f}")
        ax.axvline(tail, color="tab:red", linestyle="--", label=f"{quantile:.0%} quantile {tail:.2f}")
        ax.set_xlabel("KL(p_t‖p_s) of one example [nats]")
        ax.set_ylabel("examples")
        ax.set_title(name)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
