r"""What the temperature does to a teacher, a student and the distillation loss.

:func:`temperature_view` is a pure function: for fixed teacher logits :math:`v`, student logits
:math:`z` and a temperature :math:`T` it returns :math:`p_t^T = \mathrm{softmax}(v/T)`,
:math:`p_s^T = \mathrm{softmax}(z/T)`, :math:`\mathrm{KL}(p_t^T \| p_s^T)` and the distillation loss
:math:`T^2\,\mathrm{KL}(p_t^T \| p_s^T)` (nats), plus a figure. :func:`temperature_explorer` wraps it in
an ipywidgets slider for the lectures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from kdcourse.divergences import entropy, kl_divergence, softmax

__all__ = ["TemperatureView", "temperature_view", "temperature_explorer",
           "DEFAULT_TEACHER_LOGITS", "DEFAULT_STUDENT_LOGITS"]

#: A confident teacher whose logits still rank the wrong classes (class 0 is the "look-alike").
DEFAULT_TEACHER_LOGITS = (2.0, 6.0, -1.0, 0.5, -2.0)
#: A student that gets the top class right but not the ranking of the others.
DEFAULT_STUDENT_LOGITS = (0.0, 5.0, 1.0, 1.5, -1.0)


@dataclass
class TemperatureView:
    """The numbers and the figure shown for one temperature (probabilities on the last axis, nats)."""

    temperature: float
    teacher_probs: np.ndarray
    student_probs: np.ndarray
    teacher_entropy: float
    kl: float
    kd_loss: float
    figure: object


def _check_logits(logits, name: str) -> np.ndarray:
    array = np.asarray(logits, dtype=np.float64)
    if array.ndim != 1 or array.size < 2:
        raise ValueError(f"{name} must be a 1-D sequence of at least 2 logits (got shape {array.shape})")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def temperature_view(
    teacher_logits: Sequence[float] = DEFAULT_TEACHER_LOGITS,
    student_logits: Sequence[float] = DEFAULT_STUDENT_LOGITS,
    temperature: float = 1.0,
    temperature_range: tuple[float, float] = (0.5, 20.0),
    class_names: Sequence[str] | None = None,
) -> TemperatureView:
    r"""Softened distributions, KL and :math:`T^2`-scaled KD loss at ``temperature``, with a figure.

    Left panel: :math:`p_t^T` and :math:`p_s^T` as bars. Right panel: :math:`\mathrm{KL}(p_t^T\|p_s^T)`
    and :math:`T^2\,\mathrm{KL}` over ``temperature_range`` (log scale), the current ``T`` marked.

    Raises ``ValueError`` for logits that are not 1-D and finite, of different lengths, or
    ``temperature <= 0``.
    """
    import matplotlib.pyplot as plt

    v = _check_logits(teacher_logits, "teacher_logits")
    z = _check_logits(student_logits, "student_logits")
    if v.shape != z.shape:
        raise ValueError(f"teacher_logits and student_logits must have the same length (got {v.size} and {z.size})")
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a number > 0 (got {temperature})")
    T = float(temperature)
    p_t, p_s = softmax(v, temperature=T), softmax(z, temperature=T)
    kl = float(kl_divergence(p_t, p_s))
    names = list(class_names) if class_names is not None else [str(k) for k in range(v.size)]

    grid = np.geomspace(temperature_range[0], temperature_range[1], 60)
    kls = np.array([float(kl_divergence(softmax(v, temperature=t), softmax(z, temperature=t))) for t in grid])

    fig, (ax_bars, ax_curve) = plt.subplots(1, 2, figsize=(10, 3.6))
    x = np.arange(v.size)
    ax_bars.bar(x - 0.2, p_t, 0.4, label=r"teacher $p_t^T$", color="black", alpha=0.8)
    ax_bars.bar(x + 0.2, p_s, 0.4, label=r"student $p_s^T$", color="tab:orange")
    ax_bars.set_xticks(x)
    ax_bars.set_xticklabels(names)
    ax_bars.set_ylim(0, 1)
    ax_bars.set_xlabel("class")
    ax_bars.set_ylabel("probability")
    ax_bars.set_title(f"Softened outputs at T = {T:.2g}")
    ax_bars.legend()
    ax_curve.plot(grid, kls, label=r"KL$(p_t^T \| p_s^T)$")
    ax_curve.plot(grid, grid ** 2 * kls, label=r"$T^2\,$KL$(p_t^T \| p_s^T)$ (KD loss)")
    ax_curve.axvline(T, color="grey", linestyle=":", label=f"T = {T:.2g}")
    ax_curve.set_xscale("log")
    ax_curve.set_xlabel("temperature T")
    ax_curve.set_ylabel("nats")
    ax_curve.set_title(f"KL = {kl:.4f}, KD loss = {T * T * kl:.4f} nats")
    ax_curve.legend(fontsize="small")
    fig.tight_layout()
    return TemperatureView(T, p_t, p_s, float(entropy(p_t)), kl, T * T * kl, fig)


def temperature_explorer(
    teacher_logits: Sequence[float] = DEFAULT_TEACHER_LOGITS,
    student_logits: Sequence[float] = DEFAULT_STUDENT_LOGITS,
    temperatures: tuple[float, float] = (0.5, 20.0),
    initial: float = 1.0,
):
    """An ipywidgets slider over ``T`` showing :func:`temperature_view`.

    Returns the ``ipywidgets.interactive`` object; its ``.result`` is the current
    :class:`TemperatureView` (set ``.children[0].value`` to move the slider headlessly).
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    slider = widgets.FloatLogSlider(value=initial, base=10, min=np.log10(temperatures[0]),
                                    max=np.log10(temperatures[1]), step=0.02, description="T",
                                    continuous_update=False, readout_format=".2f")

    def show(T: float) -> TemperatureView:
        view = temperature_view(teacher_logits, student_logits, T, temperature_range=temperatures)
        display(view.figure)
        plt.close(view.figure)
        return view

    return widgets.interactive(show, T=slider)
