r"""Forward versus reverse KL when the student is constrained.

Two toys show what the direction of the KL does once the student cannot copy the teacher:

* :func:`fit_gaussian` fits one Gaussian :math:`q = \mathcal N(\mu, \sigma^2)` to the two-mode
  mixture :math:`p = 0.6\,\mathcal N(-2, 0.5^2) + 0.4\,\mathcal N(2, 0.5^2)`.
* :func:`fit_unimodal_classes` fits a unimodal distribution over 10 classes,
  :math:`q_k \propto \exp(-(k - \mu)^2 / 2s^2)`, to a teacher with modes on classes 2 and 7.

Minimising the forward KL, :math:`\mathrm{KL}(p \,\|\, q)`, spreads the student over everything the
teacher supports (mass-covering); minimising the reverse KL, :math:`\mathrm{KL}(q \,\|\, p)`, makes it
pick one mode (mode-seeking).

The class toy's divergences and entropies are those of :mod:`kdcourse.divergences`. The Gaussian toy's
are *differential* (densities, integrals over :math:`x`), evaluated on a fine grid as Riemann sums.
All values are in nats. scipy's optimiser is imported only when a fit is made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kdcourse._validation import as_array_or_tensor, check_choice, check_probabilities, check_scalar
from kdcourse.divergences import entropy as categorical_entropy
from kdcourse.divergences import kl_divergence, kl_unchecked
from kdcourse.losses import DIRECTIONS

__all__ = [
    "GaussianMixture",
    "GaussianFit",
    "ClassFit",
    "default_mixture",
    "bimodal_class_teacher",
    "unimodal_class_distribution",
    "fit_gaussian",
    "fit_unimodal_classes",
]

_TINY = 1e-300


def _normal_pdf(x: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    r""":math:`\mathcal N(x; \mu, \sigma^2) = \exp(-(x-\mu)^2 / 2\sigma^2) / (\sigma\sqrt{2\pi})`."""
    z = (x - mu) / sigma
    return np.exp(-0.5 * z * z) / (sigma * math.sqrt(2.0 * math.pi))


@dataclass(frozen=True)
class GaussianMixture:
    r"""A one-dimensional Gaussian mixture :math:`\sum_i w_i \mathcal N(m_i, s_i^2)`.

    Attributes
    ----------
    weights : tuple of float
        Mixture weights :math:`w_i`, summing to 1.
    means : tuple of float
        Component means :math:`m_i`.
    stds : tuple of float
        Component standard deviations :math:`s_i > 0`.

    Raises
    ------
    TypeError, ValueError
        For lengths that differ, weights that are negative or do not sum to 1, or ``stds <= 0``.
    """

    weights: tuple[float, ...] = (0.6, 0.4)
    means: tuple[float, ...] = (-2.0, 2.0)
    stds: tuple[float, ...] = (0.5, 0.5)

    def __post_init__(self) -> None:
        if not len(self.weights) == len(self.means) == len(self.stds) >= 1:
            raise ValueError("weights, means and stds must have the same length >= 1 "
                             f"(got {len(self.weights)}, {len(self.means)} and {len(self.stds)})")
        weights = [check_scalar(w, f"weights[{i}]", float, min_val=0) for i, w in enumerate(self.weights)]
        for i, m in enumerate(self.means):
            check_scalar(m, f"means[{i}]", float)
        for i, s in enumerate(self.stds):
            check_scalar(s, f"stds[{i}]", float, min_val=0, include_boundaries="neither")
        if abs(sum(weights) - 1.0) > 1e-9:
            raise ValueError(f"weights must sum to 1 (got {sum(weights)})")

    def pdf(self, x: np.ndarray) -> np.ndarray:
        """The mixture's density at ``x`` (any shape)."""
        return sum(w * _normal_pdf(x, m, s) for w, m, s in zip(self.weights, self.means, self.stds))

    def grid(self, points: int = 2001) -> np.ndarray:
        """An evenly spaced grid wide enough to hold all but a negligible share of the mass.

        Parameters
        ----------
        points : int, default=2001
            Number of grid points, >= 2.

        Returns
        -------
        numpy.ndarray
            Shape ``(points,)``, from 8 standard deviations (plus 4) below the lowest mean to as far
            above the highest.
        """
        points = check_scalar(points, "points", int, min_val=2)
        low = min(m - 8 * s for m, s in zip(self.means, self.stds)) - 4.0
        high = max(m + 8 * s for m, s in zip(self.means, self.stds)) + 4.0
        return np.linspace(low, high, points)


def default_mixture() -> GaussianMixture:
    """The course's teacher: 0.6·N(−2, 0.5²) + 0.4·N(2, 0.5²)."""
    return GaussianMixture()


def _kl_on_grid(p: np.ndarray, q: np.ndarray, dx: float) -> float:
    r"""Differential :math:`\int p \log(p/q)\,dx` as a Riemann sum (0·log 0 = 0; q floored at 1e-300)."""
    mask = p > 0
    return float(np.sum(p[mask] * (np.log(p[mask]) - np.log(np.maximum(q[mask], _TINY)))) * dx)


def _entropy_on_grid(p: np.ndarray, dx: float) -> float:
    r"""Differential entropy :math:`-\int p \log p\,dx` as a Riemann sum."""
    mask = p > 0
    return float(-np.sum(p[mask] * np.log(p[mask])) * dx)


@dataclass(frozen=True)
class GaussianFit:
    """A single-Gaussian student fitted with one KL direction, and how it places its mass.

    Attributes
    ----------
    direction : {"forward", "reverse"}
        The KL that was minimised: ``"forward"`` is KL(teacher ‖ student), ``"reverse"`` KL(student ‖ teacher).
    mu, sigma : float
        The fitted Gaussian's mean and standard deviation.
    forward_kl : float
        KL(teacher ‖ student), nats.
    reverse_kl : float
        KL(student ‖ teacher), nats.
    entropy : float
        Differential entropy of the student, :math:`\\tfrac12 \\log(2\\pi e \\sigma^2)` nats.
    teacher_entropy : float
        Differential entropy of the teacher, nats.
    gap_mass : float
        The student's probability of :math:`|x| < 1`, between the teacher's modes.
    teacher_gap_mass : float
        The teacher's probability of the same interval.
    """

    direction: str
    mu: float
    sigma: float
    forward_kl: float
    reverse_kl: float
    entropy: float
    teacher_entropy: float
    gap_mass: float
    teacher_gap_mass: float

    def density(self, x: np.ndarray) -> np.ndarray:
        """The student's density at ``x``."""
        return _normal_pdf(x, self.mu, self.sigma)


def _gaussian_objective(params: np.ndarray, x: np.ndarray, p: np.ndarray, dx: float, direction: str) -> float:
    mu, log_sigma = params
    q = _normal_pdf(x, mu, np.exp(log_sigma))
    return _kl_on_grid(p, q, dx) if direction == "forward" else _kl_on_grid(q, p, dx)


def fit_gaussian(
    direction: str,
    mixture: GaussianMixture | None = None,
    init: tuple[float, float] | None = None,
) -> GaussianFit:
    r"""Fit :math:`\mathcal N(\mu, \sigma^2)` to ``mixture`` by minimising the chosen KL.

    Parameters
    ----------
    direction : {"forward", "reverse"}
        ``"forward"`` minimises KL(teacher ‖ student) (the result is moment matching); ``"reverse"``
        minimises KL(student ‖ teacher).
    mixture : GaussianMixture, optional
        The teacher; default :func:`default_mixture`.
    init : (float, float), optional
        Start ``(mu, sigma)`` with ``sigma > 0``. The reverse objective has several local minima, so
        without ``init`` the best of a few deterministic starts is returned.

    Returns
    -------
    GaussianFit

    Raises
    ------
    TypeError
        If ``init`` holds something other than two real numbers.
    ValueError
        An unknown ``direction``, or ``init`` not ``(mu, sigma)`` with ``sigma > 0``.
    """
    from scipy import optimize

    check_choice(direction, DIRECTIONS, "direction")
    mixture = mixture or default_mixture()
    if init is not None:
        if len(init) != 2:
            raise ValueError(f"init must be a pair (mu, sigma) (got {init!r})")
        init = (check_scalar(init[0], "init[0] (mu)", float),
                check_scalar(init[1], "init[1] (sigma)", float, min_val=0, include_boundaries="neither"))
    x = mixture.grid()
    dx = float(x[1] - x[0])
    p = mixture.pdf(x)
    starts = [init] if init is not None else [(m, s) for m in (*mixture.means, 0.0) for s in (0.5, 2.0)]
    best = None
    for mu0, sigma0 in starts:
        result = optimize.minimize(
            _gaussian_objective, x0=np.array([mu0, np.log(sigma0)]), args=(x, p, dx, direction),
            method="Nelder-Mead", options={"xatol": 1e-7, "fatol": 1e-10, "maxiter": 4000},
        )
        if best is None or result.fun < best.fun:
            best = result
    mu, sigma = float(best.x[0]), float(np.exp(best.x[1]))
    q = _normal_pdf(x, mu, sigma)
    gap = np.abs(x) < 1.0
    return GaussianFit(
        direction=direction,
        mu=mu,
        sigma=sigma,
        forward_kl=_kl_on_grid(p, q, dx),
        reverse_kl=_kl_on_grid(q, p, dx),
        entropy=float(0.5 * np.log(2 * np.pi * np.e * sigma**2)),
        teacher_entropy=_entropy_on_grid(p, dx),
        gap_mass=float(q[gap].sum() * dx),
        teacher_gap_mass=float(p[gap].sum() * dx),
    )


def bimodal_class_teacher() -> np.ndarray:
    """A 10-class teacher with a main mode on class 2 (0.50) and a second one on class 7 (0.40).

    Returns
    -------
    numpy.ndarray
        Shape ``(10,)``, summing to 1.
    """
    weights = np.array([0.005, 0.02, 0.50, 0.02, 0.001, 0.001, 0.02, 0.40, 0.02, 0.005])
    return weights / weights.sum()


def unimodal_class_distribution(mu: float, scale: float, num_classes: int = 10) -> np.ndarray:
    r"""The student family over classes, :math:`q_k \propto \exp(-(k-\mu)^2 / 2 s^2)`.

    Parameters
    ----------
    mu : float
        Centre :math:`\mu` (need not be an integer or a class).
    scale : float
        Width :math:`s > 0`.
    num_classes : int, default=10
        Classes :math:`k = 0, \dots, K-1`, :math:`K \ge 1`.

    Returns
    -------
    numpy.ndarray
        Shape ``(num_classes,)``, summing to 1.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If ``scale <= 0``, ``num_classes < 1`` or ``mu`` is not finite.
    """
    mu = check_scalar(mu, "mu", float)
    scale = check_scalar(scale, "scale", float, min_val=0, include_boundaries="neither")
    num_classes = check_scalar(num_classes, "num_classes", int, min_val=1)
    return _unimodal(mu, scale, num_classes)


def _unimodal(mu: float, scale: float, num_classes: int) -> np.ndarray:
    k = np.arange(num_classes)
    log_q = -((k - mu) ** 2) / (2 * scale**2)
    log_q -= log_q.max()
    q = np.exp(log_q)
    return q / q.sum()


@dataclass(frozen=True)
class ClassFit:
    """A unimodal student over classes fitted with one KL direction.

    Attributes
    ----------
    direction : {"forward", "reverse"}
        The KL that was minimised.
    mu, scale : float
        The fitted parameters of :func:`unimodal_class_distribution`.
    probabilities : numpy.ndarray
        The student's distribution, shape ``(num_classes,)``.
    forward_kl : float
        KL(teacher ‖ student), nats.
    reverse_kl : float
        KL(student ‖ teacher), nats.
    entropy, teacher_entropy : float
        Shannon entropies of the student and the teacher, nats.
    """

    direction: str
    mu: float
    scale: float
    probabilities: np.ndarray
    forward_kl: float
    reverse_kl: float
    entropy: float
    teacher_entropy: float

    @property
    def argmax(self) -> int:
        """The student's most likely class."""
        return int(np.argmax(self.probabilities))


def fit_unimodal_classes(direction: str, teacher: np.ndarray | None = None) -> ClassFit:
    """Fit the unimodal family of :func:`unimodal_class_distribution` to ``teacher`` with one KL.

    Parameters
    ----------
    direction : {"forward", "reverse"}
        ``"forward"`` minimises KL(teacher ‖ student), ``"reverse"`` KL(student ‖ teacher), both the
        formula of :func:`kdcourse.divergences.kl_divergence`.
    teacher : array-like, optional
        A probability vector over at least 2 classes; default :func:`bimodal_class_teacher`.

    Returns
    -------
    ClassFit
        The best of 14 deterministic Nelder–Mead starts.

    Raises
    ------
    ValueError
        An unknown ``direction``, or ``teacher`` not a 1-D probability vector over at least 2 classes.
    """
    from scipy import optimize

    check_choice(direction, DIRECTIONS, "direction")
    if teacher is None:
        teacher = bimodal_class_teacher()
    else:
        teacher = as_array_or_tensor(teacher, "teacher")
        if teacher.ndim != 1 or teacher.shape[0] < 2:
            raise ValueError(f"teacher must be one probability vector over at least 2 classes "
                             f"(got shape {tuple(teacher.shape)})")
        check_probabilities(teacher, "teacher")
        teacher = np.asarray(teacher.detach().cpu() if hasattr(teacher, "detach") else teacher, dtype=np.float64)
    num_classes = teacher.shape[-1]

    def objective(params: np.ndarray) -> float:
        # q is a distribution by construction: the checks of kl_divergence are left out of the inner loop.
        q = _unimodal(params[0], np.exp(params[1]), num_classes)
        return float(kl_unchecked(teacher, q) if direction == "forward" else kl_unchecked(q, teacher))

    best = None
    for mu0 in np.linspace(0, num_classes - 1, 7):
        for scale0 in (0.5, 2.0):
            result = optimize.minimize(objective, x0=np.array([mu0, np.log(scale0)]), method="Nelder-Mead",
                                       options={"xatol": 1e-7, "fatol": 1e-12, "maxiter": 4000})
            if best is None or result.fun < best.fun:
                best = result
    mu, scale = float(best.x[0]), float(np.exp(best.x[1]))
    q = _unimodal(mu, scale, num_classes)
    return ClassFit(
        direction=direction,
        mu=mu,
        scale=scale,
        probabilities=q,
        forward_kl=float(kl_divergence(teacher, q)),
        reverse_kl=float(kl_divergence(q, teacher)),
        entropy=float(categorical_entropy(q)),
        teacher_entropy=float(categorical_entropy(teacher)),
    )
