r"""The lectures' two interactive explorers: the temperature, and the direction of the KL.

Each explorer follows one rule. A pure *view* function computes the numbers and returns them in a
frozen dataclass together with a ``Figure`` that :mod:`kdcourse.plots` drew from those numbers; the
figure is closed for pyplot (so a notebook does not show it twice: display it explicitly). A thin
ipywidgets function wraps each view; its ``interactive(...).result`` is the current view, so it can
be driven headlessly by setting a control's ``.value``.

* :func:`temperature_view` / :func:`temperature_explorer`: for teacher logits :math:`v`, student
  logits :math:`z` and a temperature :math:`T`, the softened :math:`p_t^T = \mathrm{softmax}(v/T)` and
  :math:`p_s^T = \mathrm{softmax}(z/T)`, :math:`\mathrm{KL}(p_t^T \| p_s^T)` and the distillation loss
  :math:`T^2\,\mathrm{KL}(p_t^T \| p_s^T)` (nats), all from :mod:`kdcourse.divergences`.
* :func:`direction_view` / :func:`direction_explorer`: minimising :math:`\mathrm{KL}(p_t \,\|\, q)`
  (``"forward"``) or :math:`\mathrm{KL}(q \,\|\, p_t)` (``"reverse"``) over the constrained students of
  :mod:`kdcourse.fits`; the fits are computed once and cached, so switching is instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from kdcourse import plots
from kdcourse._validation import check_choice, check_scalar
from kdcourse.divergences import entropy, kl_divergence, softmax
from kdcourse.losses import DIRECTIONS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kdcourse.fits import ClassFit, GaussianFit

__all__ = [
    "DEFAULT_TEACHER_LOGITS",
    "DEFAULT_STUDENT_LOGITS",
    "DEFAULT_TEMPERATURE_RANGE",
    "PROBLEMS",
    "TemperatureView",
    "temperature_view",
    "temperature_explorer",
    "DirectionView",
    "fit_for",
    "direction_view",
    "direction_explorer",
]

#: A confident teacher whose logits still rank the wrong classes (class 0 is the "look-alike").
DEFAULT_TEACHER_LOGITS = (2.0, 6.0, -1.0, 0.5, -2.0)
#: A student that gets the top class right but not the ranking of the others.
DEFAULT_STUDENT_LOGITS = (0.0, 5.0, 1.0, 1.5, -1.0)
#: The temperatures the slider and the right-hand panel span.
DEFAULT_TEMPERATURE_RANGE = (0.5, 20.0)
#: The toy problems of the direction explorer: one Gaussian, or a unimodal distribution over classes.
PROBLEMS = ("gaussian", "classes")

_CURVE_POINTS = 60


def _read_only(array: np.ndarray) -> np.ndarray:
    array = np.array(array, dtype=np.float64)
    array.flags.writeable = False
    return array


def _close_for_pyplot(figure: Figure) -> Figure:
    """Detach ``figure`` from pyplot (it stays drawable and displayable) so it is shown only when asked."""
    plt.close(figure)
    return figure


def _display_figure(figure: Figure) -> None:
    """Show ``figure`` at its own size in pixels (the inline backend would crop it to its contents)."""
    from IPython.display import Image, display

    display(Image(data=plots.figure_png(figure), format="png"))


# --- temperature -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemperatureView:
    """The numbers and the figure shown for one temperature (probabilities on the last axis, nats).

    Attributes
    ----------
    temperature : float
        :math:`T`.
    teacher_probs, student_probs : numpy.ndarray
        :math:`p_t^T` and :math:`p_s^T`, shape ``(num_classes,)``, read-only.
    teacher_entropy : float
        :math:`H(p_t^T)`.
    kl : float
        :math:`\\mathrm{KL}(p_t^T \\| p_s^T)`.
    kd_loss : float
        The distillation loss :math:`T^2\\,\\mathrm{KL}(p_t^T \\| p_s^T)`.
    temperatures, kl_curve, kd_curve : numpy.ndarray
        A log-spaced grid over the temperature range and the KL and the loss on it, read-only.
    figure : matplotlib.figure.Figure
        Drawn by :func:`kdcourse.plots.plot_temperature_view`; closed for pyplot.
    """

    temperature: float
    teacher_probs: np.ndarray
    student_probs: np.ndarray
    teacher_entropy: float
    kl: float
    kd_loss: float
    temperatures: np.ndarray
    kl_curve: np.ndarray
    kd_curve: np.ndarray
    figure: Figure


def _check_logits(logits, name: str) -> np.ndarray:
    try:
        array = np.asarray(logits, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numeric (could not convert: {error})") from None
    if array.ndim != 1 or array.size < 2:
        raise ValueError(f"{name} must be a 1-D sequence of at least 2 logits (got shape {array.shape})")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _check_temperature_range(temperature_range, name: str) -> tuple[float, float]:
    if len(temperature_range) != 2:
        raise ValueError(f"{name} must be a pair (lowest, highest) (got {temperature_range!r})")
    low = check_scalar(temperature_range[0], f"{name}[0]", float, min_val=0, include_boundaries="neither")
    high = check_scalar(temperature_range[1], f"{name}[1]", float, min_val=low, include_boundaries="neither")
    return low, high


def temperature_view(
    teacher_logits: Sequence[float] = DEFAULT_TEACHER_LOGITS,
    student_logits: Sequence[float] = DEFAULT_STUDENT_LOGITS,
    temperature: float = 1.0,
    temperature_range: tuple[float, float] = DEFAULT_TEMPERATURE_RANGE,
    class_names: Sequence[str] | None = None,
) -> TemperatureView:
    r"""Softened distributions, KL and :math:`T^2`-scaled KD loss at ``temperature``, with a figure.

    .. math:: p_t^T = \mathrm{softmax}(v/T), \quad p_s^T = \mathrm{softmax}(z/T), \quad
              \mathcal{L}_{KD} = T^2\,\mathrm{KL}(p_t^T \,\|\, p_s^T)

    The softmax, KL and entropy are those of :mod:`kdcourse.divergences`; :math:`\mathcal{L}_{KD}` equals
    :func:`kdcourse.distillation_loss` of the same logits (a test checks it).

    Parameters
    ----------
    teacher_logits, student_logits : sequence of float
        :math:`v` and :math:`z`, one-dimensional, finite, of the same length (at least 2).
    temperature : float, default=1.0
        :math:`T > 0`.
    temperature_range : (float, float), default=(0.5, 20.0)
        ``0 < lowest < highest``: the temperatures of the right-hand panel (log scale).
    class_names : sequence of str, optional
        Tick labels, one per class.

    Returns
    -------
    TemperatureView

    Raises
    ------
    TypeError
        If ``temperature`` or a bound of ``temperature_range`` is not a real number.
    ValueError
        For logits that are not 1-D and finite or differ in length, ``temperature <= 0``, a bad
        ``temperature_range``, or ``class_names`` of the wrong length.
    """
    v = _check_logits(teacher_logits, "teacher_logits")
    z = _check_logits(student_logits, "student_logits")
    if v.shape != z.shape:
        raise ValueError(f"teacher_logits and student_logits must have the same length (got {v.size} and {z.size})")
    T = check_scalar(temperature, "temperature", float, min_val=0, include_boundaries="neither")
    low, high = _check_temperature_range(temperature_range, "temperature_range")
    if class_names is not None and len(class_names) != v.size:
        raise ValueError(f"class_names must have {v.size} entries (got {len(class_names)})")

    p_t, p_s = softmax(v, temperature=T), softmax(z, temperature=T)
    kl = float(kl_divergence(p_t, p_s))
    grid = np.geomspace(low, high, _CURVE_POINTS)
    # One row per temperature: softmax(v / t) is the tempered softmax at t.
    kl_curve = kl_divergence(softmax(v[None, :] / grid[:, None]), softmax(z[None, :] / grid[:, None]))
    kd_curve = grid**2 * kl_curve
    figure = plots.plot_temperature_view(p_t, p_s, T, kl, T * T * kl, grid, kl_curve, kd_curve, class_names)
    return TemperatureView(
        temperature=T,
        teacher_probs=_read_only(p_t),
        student_probs=_read_only(p_s),
        teacher_entropy=float(entropy(p_t)),
        kl=kl,
        kd_loss=T * T * kl,
        temperatures=_read_only(grid),
        kl_curve=_read_only(kl_curve),
        kd_curve=_read_only(kd_curve),
        figure=_close_for_pyplot(figure),
    )


def temperature_explorer(
    teacher_logits: Sequence[float] = DEFAULT_TEACHER_LOGITS,
    student_logits: Sequence[float] = DEFAULT_STUDENT_LOGITS,
    temperatures: tuple[float, float] = DEFAULT_TEMPERATURE_RANGE,
    initial: float = 1.0,
):
    """An ipywidgets slider over ``T`` showing :func:`temperature_view`.

    Parameters
    ----------
    teacher_logits, student_logits : sequence of float
        As for :func:`temperature_view`.
    temperatures : (float, float), default=(0.5, 20.0)
        The slider's range (log scale), ``0 < lowest < highest``.
    initial : float, default=1.0
        The slider's first position, within ``temperatures``.

    Returns
    -------
    ipywidgets.interactive
        ``.children[0]`` is the slider; ``.result`` the current :class:`TemperatureView`.

    Raises
    ------
    TypeError, ValueError
        For a bad range or ``initial``, and as :func:`temperature_view`.
    """
    import ipywidgets as widgets

    low, high = _check_temperature_range(temperatures, "temperatures")
    initial = check_scalar(initial, "initial", float, min_val=low, max_val=high)
    slider = widgets.FloatLogSlider(value=initial, base=10, min=np.log10(low), max=np.log10(high), step=0.02,
                                    description="T", continuous_update=False, readout_format=".2f")

    def show(T: float) -> TemperatureView:
        view = temperature_view(teacher_logits, student_logits, T, temperature_range=(low, high))
        _display_figure(view.figure)
        return view

    return widgets.interactive(show, T=slider)


# --- direction -------------------------------------------------------------------------------------


@cache
def fit_for(direction: str, problem: str) -> GaussianFit | ClassFit:
    """The (cached) constrained fit for one direction and problem.

    Parameters
    ----------
    direction : {"forward", "reverse"}
    problem : {"gaussian", "classes"}
        :func:`kdcourse.fits.fit_gaussian` or :func:`kdcourse.fits.fit_unimodal_classes`.

    Returns
    -------
    GaussianFit or ClassFit

    Raises
    ------
    ValueError
        An unknown ``direction`` or ``problem``.
    """
    from kdcourse.fits import fit_gaussian, fit_unimodal_classes

    check_choice(direction, DIRECTIONS, "direction")
    check_choice(problem, PROBLEMS, "problem")
    return fit_gaussian(direction) if problem == "gaussian" else fit_unimodal_classes(direction)


@dataclass(frozen=True)
class DirectionView:
    """What the direction explorer shows for one setting.

    Attributes
    ----------
    direction : {"forward", "reverse"}
        ``"forward"`` minimised KL(p_t‖q), ``"reverse"`` KL(q‖p_t).
    problem : {"gaussian", "classes"}
    forward_kl : float
        KL(p_t‖q) of the fit, nats.
    reverse_kl : float
        KL(q‖p_t) of the fit, nats.
    entropy, teacher_entropy : float
        Entropies of the student and of the teacher, nats (differential for the Gaussian problem).
    mass_note : str
        Where the student put its mass, in words.
    figure : matplotlib.figure.Figure
        Drawn by :func:`kdcourse.plots.plot_forward_reverse_fits`; closed for pyplot.
    """

    direction: str
    problem: str
    forward_kl: float
    reverse_kl: float
    entropy: float
    teacher_entropy: float
    mass_note: str
    figure: Figure

    def summary(self) -> str:
        """One sentence with the fit's two divergences and entropy, and :attr:`mass_note`."""
        return (
            f"minimising {plots.kl_label(self.direction)}: {plots.kl_label('forward')} = {self.forward_kl:.3f}, "
            f"{plots.kl_label('reverse')} = {self.reverse_kl:.3f} nats; entropy {self.entropy:.2f} "
            f"(teacher {self.teacher_entropy:.2f}) nats. {self.mass_note}"
        )


def _mass_note(fit: GaussianFit | ClassFit, problem: str) -> str:
    if problem == "gaussian":
        return (f"The student puts {fit.gap_mass:.0%} of its mass between the teacher's modes (|x| < 1), "
                f"where the teacher has {fit.teacher_gap_mass:.1%}.")
    probabilities = fit.probabilities
    return (f"Its most likely class is {fit.argmax} (probability {probabilities[fit.argmax]:.2f}); "
            f"it gives class 2 {probabilities[2]:.3f} and class 7 {probabilities[7]:.3f}.")


def direction_view(direction: str = "forward", problem: str = "gaussian", show_other: bool = True) -> DirectionView:
    """Numbers and a figure for one direction.

    Parameters
    ----------
    direction : {"forward", "reverse"}, default="forward"
        The fit to show: the minimiser of KL(p_t‖q) or of KL(q‖p_t).
    problem : {"gaussian", "classes"}, default="gaussian"
        The toy of :mod:`kdcourse.fits`.
    show_other : bool, default=True
        Also draw the other direction's fit, faded (its legend entry too).

    Returns
    -------
    DirectionView
        Its figure has the size :data:`kdcourse.plots.FIT_FIGSIZE` whatever the setting.

    Raises
    ------
    TypeError
        If ``show_other`` is not a bool.
    ValueError
        An unknown ``direction`` or ``problem``.
    """
    check_choice(direction, DIRECTIONS, "direction")
    check_choice(problem, PROBLEMS, "problem")
    if not isinstance(show_other, (bool, np.bool_)):
        raise TypeError(f"show_other must be a bool, not {type(show_other).__name__} ({show_other!r})")
    fit = fit_for(direction, problem)
    # Always in the order of DIRECTIONS, so flipping the switch changes the emphasis, not the layout.
    shown = DIRECTIONS if show_other else (direction,)
    figure = plots.plot_forward_reverse_fits([fit_for(d, problem) for d in shown], selected=direction)
    return DirectionView(
        direction=direction,
        problem=problem,
        forward_kl=fit.forward_kl,
        reverse_kl=fit.reverse_kl,
        entropy=fit.entropy,
        teacher_entropy=fit.teacher_entropy,
        mass_note=_mass_note(fit, problem),
        figure=_close_for_pyplot(figure),
    )


def direction_explorer(problem: str = "gaussian"):
    """An ipywidgets switch between minimising KL(p_t‖q) and KL(q‖p_t), and a problem selector.

    Parameters
    ----------
    problem : {"gaussian", "classes"}, default="gaussian"
        The problem shown first.

    Returns
    -------
    ipywidgets.interactive
        ``.children[0]`` is the direction switch, ``.children[1]`` the problem selector; ``.result`` the
        current :class:`DirectionView`.

    Raises
    ------
    ValueError
        An unknown ``problem``.
    """
    import ipywidgets as widgets

    check_choice(problem, PROBLEMS, "problem")
    direction = widgets.ToggleButtons(
        options=[(f"min {plots.kl_label(d)}", d) for d in DIRECTIONS], value="forward", description="direction",
    )
    problem_box = widgets.ToggleButtons(options=list(PROBLEMS), value=problem, description="problem")

    def show(direction: str, problem: str) -> DirectionView:
        view = direction_view(direction, problem)
        _display_figure(view.figure)
        print(view.summary())
        return view

    return widgets.interactive(show, direction=direction, problem=problem_box)
