r"""Forward versus reverse KL when the student is constrained.

Two toys show what the direction of the KL does once the student cannot copy the teacher:

* :func:`fit_gaussian` fits one Gaussian :math:`q = \mathcal N(\mu, \sigma^2)` to the two-mode
  mixture :math:`p = 0.6\,\mathcal N(-2, 0.5^2) + 0.4\,\mathcal N(2, 0.5^2)`.
* :func:`fit_unimodal_classes` fits a unimodal distribution over 10 classes,
  :math:`q_k \propto \exp(-(k - \mu)^2 / 2s^2)`, to a teacher with modes on classes 2 and 7.

Minimising the forward KL, :math:`\mathrm{KL}(p \,\|\, q)`, spreads the student over everything the
teacher supports (mass-covering); minimising the reverse KL, :math:`\mathrm{KL}(q \,\|\, p)`, makes it
pick one mode (mode-seeking). Densities are evaluated on a fine grid; integrals are Riemann sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from kdcourse._validation import check_choice

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

DIRECTIONS = ("forward", "reverse")
_TINY = 1e-300


@dataclass(frozen=True)
class GaussianMixture:
    """A one-dimensional Gaussian mixture :math:`\\sum_i w_i \\mathcal N(m_i, s_i^2)`."""

    weights: tuple[float, ...] = (0.6, 0.4)
    means: tuple[float, ...] = (-2.0, 2.0)
    stds: tuple[float, ...] = (0.5, 0.5)

    def pdf(self, x: np.ndarray) -> np.ndarray:
        return sum(w * stats.norm.pdf(x, m, s) for w, m, s in zip(self.weights, self.means, self.stds))

    def grid(self, points: int = 2001) -> np.ndarray:
        """An evenly spaced grid wide enough to hold all but a negligible share of the mass."""
        low = min(m - 8 * s for m, s in zip(self.means, self.stds)) - 4.0
        high = max(m + 8 * s for m, s in zip(self.means, self.stds)) + 4.0
        return np.linspace(low, high, points)


def default_mixture() -> GaussianMixture:
    """The course's teacher: 0.6·N(−2, 0.5²) + 0.4·N(2, 0.5²)."""
    return GaussianMixture()


def _kl_on_grid(p: np.ndarray, q: np.ndarray, dx: float) -> float:
    """∫ p log(p/q) dx on a grid (0·log 0 = 0)."""
    mask = p > 0
    return float(np.sum(p[mask] * (np.log(p[mask]) - np.log(np.maximum(q[mask], _TINY)))) * dx)


def _entropy_on_grid(p: np.ndarray, dx: float) -> float:
    mask = p > 0
    return float(-np.sum(p[mask] * np.log(p[mask])) * dx)


@dataclass(frozen=True)
class GaussianFit:
    """A single-Gaussian student fitted with one KL direction, and how it places its mass."""

    direction: str
    mu: float
    sigma: float
    forward_kl: float  # KL(teacher ‖ student), nats
    reverse_kl: float  # KL(student ‖ teacher), nats
    entropy: float  # differential entropy of the student, nats
    teacher_entropy: float
    gap_mass: float  # student's probability of |x| < 1, between the teacher's modes
    teacher_gap_mass: float

    def density(self, x: np.ndarray) -> np.ndarray:
        return stats.norm.pdf(x, self.mu, self.sigma)


def _gaussian_objective(params: np.ndarray, x: np.ndarray, p: np.ndarray, dx: float, direction: str) -> float:
    mu, log_sigma = params
    q = stats.norm.pdf(x, mu, np.exp(log_sigma))
    return _kl_on_grid(p, q, dx) if direction == "forward" else _kl_on_grid(q, p, dx)


def fit_gaussian(
    direction: str,
    mixture: GaussianMixture | None = None,
    init: tuple[float, float] | None = None,
) -> GaussianFit:
    """Fit :math:`\\mathcal N(\\mu, \\sigma^2)` to ``mixture`` by minimising the chosen KL.

    ``direction="forward"`` minimises KL(teacher ‖ student) (the result is moment matching);
    ``"reverse"`` minimises KL(student ‖ teacher). The reverse objective has several local minima,
    so without ``init`` (μ, σ) the best of a few deterministic starts is returned.
    """
    check_choice(direction, DIRECTIONS, "direction")
    mixture = mixture or default_mixture()
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
    q = stats.norm.pdf(x, mu, sigma)
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
    """A 10-class teacher with a main mode on class 2 and a second one on class 7."""
    weights = np.array([0.005, 0.02, 0.50, 0.02, 0.001, 0.001, 0.02, 0.40, 0.02, 0.005])
    return weights / weights.sum()


def unimodal_class_distribution(mu: float, scale: float, num_classes: int = 10) -> np.ndarray:
    """:math:`q_k \\propto \\exp(-(k-\\mu)^2 / 2 s^2)` for k = 0 … num_classes − 1."""
    if not scale > 0:
        raise ValueError(f"scale must be > 0 (got {scale})")
    k = np.arange(num_classes)
    log_q = -((k - mu) ** 2) / (2 * scale**2)
    log_q -= log_q.max()
    q = np.exp(log_q)
    return q / q.sum()


@dataclass(frozen=True)
class ClassFit:
    """A unimodal student over classes fitted with one KL direction."""

    direction: str
    mu: float
    scale: float
    probabilities: np.ndarray
    forward_kl: float  # KL(teacher ‖ student)
    reverse_kl: float  # KL(student ‖ teacher)
    entropy: float
    teacher_entropy: float

    @property
    def argmax(self) -> int:
        return int(np.argmax(self.probabilities))


def _discrete_kl(p: np.ndarray, q: np.ndarray) -> float:
    mask = p > 0
    return float(np.sum(p[mask] * (np.log(p[mask]) - np.log(np.maximum(q[mask], _TINY)))))


def fit_unimodal_classes(direction: str, teacher: np.ndarray | None = None) -> ClassFit:
    """Fit the unimodal family to ``teacher`` (default :func:`bimodal_class_teacher`) with one KL."""
    check_choice(direction, DIRECTIONS, "direction")
    teacher = bimodal_class_teacher() if teacher is None else np.asarray(teacher, dtype=np.float64)
    num_classes = teacher.shape[-1]

    def objective(params: np.ndarray) -> float:
        q = unimodal_class_distribution(params[0], np.exp(params[1]), num_classes)
        return _discrete_kl(teacher, q) if direction == "forward" else _discrete_kl(q, teacher)

    best = None
    for mu0 in np.linspace(0, num_classes - 1, 7):
        for scale0 in (0.5, 2.0):
            result = optimize.minimize(objective, x0=np.array([mu0, np.log(scale0)]), method="Nelder-Mead",
                                       options={"xatol": 1e-7, "fatol": 1e-12, "maxiter": 4000})
            if best is None or result.fun < best.fun:
                best = result
    mu, scale = float(best.x[0]), float(np.exp(best.x[1]))
    q = unimodal_class_distribution(mu, scale, num_classes)
    mask = q > 0
    return ClassFit(
        direction=direction,
        mu=mu,
        scale=scale,
        probabilities=q,
        forward_kl=_discrete_kl(teacher, q),
        reverse_kl=_discrete_kl(q, teacher),
        entropy=float(-np.sum(q[mask] * np.log(q[mask]))),
        teacher_entropy=float(-np.sum(teacher[teacher > 0] * np.log(teacher[teacher > 0]))),
    )
