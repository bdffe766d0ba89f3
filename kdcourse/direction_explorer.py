r"""An interactive switch between minimising KL(p_t‖q) and KL(q‖p_t) over the fits of :mod:`kdcourse.fits`.

:func:`direction_view` is a pure function: given a direction (``"forward"`` minimises
:math:`\mathrm{KL}(p_t \,\|\, q)`, ``"reverse"`` minimises :math:`\mathrm{KL}(q \,\|\, p_t)`) and a toy
problem (``"gaussian"``: one Gaussian fitted to a two-mode mixture; ``"classes"``: a unimodal
distribution over 10 classes fitted to a two-mode teacher), it returns the fit's numbers and a figure.
:func:`direction_explorer` wraps it in ipywidgets toggle buttons for lectures; the fits are computed
once and cached, so switching is instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from kdcourse._validation import check_choice
from kdcourse.fits import ClassFit, GaussianFit, fit_gaussian, fit_unimodal_classes
from kdcourse.plots import plot_forward_reverse_fits

__all__ = ["DIRECTIONS", "PROBLEMS", "DirectionView", "fit_for", "direction_view", "direction_explorer"]

DIRECTIONS = ("forward", "reverse")
PROBLEMS = ("gaussian", "classes")


@lru_cache(maxsize=None)
def fit_for(direction: str, problem: str) -> GaussianFit | ClassFit:
    """The (cached) constrained fit for one direction and problem.

    Raises:
        ValueError: an unknown ``direction`` or ``problem``.
    """
    check_choice(direction, DIRECTIONS, "direction")
    check_choice(problem, PROBLEMS, "problem")
    return fit_gaussian(direction) if problem == "gaussian" else fit_unimodal_classes(direction)


@dataclass(frozen=True)
class DirectionView:
    """What the explorer shows for one setting: the fit's scores in nats, its entropy, and a figure.

    ``mass_note`` says in words where the student put its mass.
    """

    direction: str
    problem: str
    forward_kl: float  # KL(teacher ‖ student)
    reverse_kl: float  # KL(student ‖ teacher)
    entropy: float
    teacher_entropy: float
    mass_note: str
    figure: Figure

    def summary(self) -> str:
        return (
            f"minimising {_objective(self.direction)}: KL(p_t‖q) = {self.forward_kl:.3f}, "
            f"KL(q‖p_t) = {self.reverse_kl:.3f} nats; entropy {self.entropy:.2f} "
            f"(teacher {self.teacher_entropy:.2f}) nats. {self.mass_note}"
        )


def _objective(direction: str) -> str:
    """The divergence a direction minimises, with both arguments written out (teacher p_t, student q)."""
    return "KL(p_t‖q)" if direction == "forward" else "KL(q‖p_t)"


def _mass_note(fit: GaussianFit | ClassFit) -> str:
    if isinstance(fit, GaussianFit):
        return (f"The student puts {fit.gap_mass:.0%} of its mass between the teacher's modes (|x| < 1), "
                f"where the teacher has {fit.teacher_gap_mass:.1%}.")
    probabilities = fit.probabilities
    return (f"Its most likely class is {fit.argmax} (probability {probabilities[fit.argmax]:.2f}); "
            f"it gives class 2 {probabilities[2]:.3f} and class 7 {probabilities[7]:.3f}.")


def direction_view(direction: str = "forward", problem: str = "gaussian", show_other: bool = True) -> DirectionView:
    """Numbers and a figure for one direction; ``show_other`` draws the other direction's fit faintly too.

    Returns a :class:`DirectionView`; its figure is closed for pyplot (display it explicitly).

    Raises:
        ValueError: an unknown ``direction`` or ``problem``.
    """
    fit = fit_for(direction, problem)
    fits = [fit]
    if show_other:
        other = "reverse" if direction == "forward" else "forward"
        fits.append(fit_for(other, problem))
    figure = plot_forward_reverse_fits(fits)
    ax = figure.axes[0]
    if show_other:  # the selected fit bold, the other one faint
        artists = ax.lines if problem == "gaussian" else ax.containers[1:]
        for artist in artists[1:]:
            if hasattr(artist, "set_alpha"):
                artist.set_alpha(0.3)
            else:
                for patch in artist:
                    patch.set_alpha(0.3)
    ax.set_title(f"{ax.get_title()}: selected min {_objective(direction)}")
    plt.close(figure)
    return DirectionView(
        direction=direction,
        problem=problem,
        forward_kl=fit.forward_kl,
        reverse_kl=fit.reverse_kl,
        entropy=fit.entropy,
        teacher_entropy=fit.teacher_entropy,
        mass_note=_mass_note(fit),
        figure=figure,
    )


def direction_explorer(problem: str = "gaussian"):
    """An ipywidgets ``interactive`` with a KL(p_t‖q) / KL(q‖p_t) switch and a problem selector.

    ``explorer.result`` is the :class:`DirectionView` of the current setting, so the widget can be
    tested headlessly by setting a control's ``.value``.
    """
    import ipywidgets as widgets
    from IPython.display import display

    check_choice(problem, PROBLEMS, "problem")
    direction = widgets.ToggleButtons(
        options=[("min KL(p_t‖q)", "forward"), ("min KL(q‖p_t)", "reverse")],
        value="forward", description="direction",
    )
    problem_box = widgets.ToggleButtons(options=list(PROBLEMS), value=problem, description="problem")

    def show(direction: str, problem: str) -> DirectionView:
        view = direction_view(direction, problem)
        display(view.figure)
        print(view.summary())
        return view

    return widgets.interactive(show, direction=direction, problem=problem_box)
