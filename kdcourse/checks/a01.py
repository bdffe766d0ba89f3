r"""Checks for assignment a01 (entropy, cross-entropy and KL divergence in numpy).

The locked test cells of ``a01_kl_divergence.ipynb`` call these functions. Visible checks compute
their expectations here; hidden checks receive hard-coded float64 expectations from the notebook.
Every failure raises :class:`~kdcourse.checks.common.WrongAnswer` with a message that names the
misconception it recognised (swapped arguments, log base 2, per-class terms, mean over classes,
NaN from :math:`0 \log 0`, ...). Nothing here writes to stderr.
"""

from __future__ import annotations

import math

import numpy as np

from .common import (
    WrongAnswer,
    call_student,
    check_answer,
    check_choice,
    close,
    forbid_delegation,
    require_answered,
)

__all__ = [
    "check_entropy",
    "check_cross_entropy",
    "check_kl_divergence",
    "check_entropy_values",
    "check_cross_entropy_values",
    "check_kl_values",
    "check_kl_number",
    "check_kl_numbers",
    "check_format",
    "check_answer",
    "check_number_format",
]

# Trusted references, captured when the checks are imported (before any student code runs).
_asarray = np.asarray
_log = np.log
_where = np.where
_sum = np.sum
_isnan = np.isnan
_isfinite = np.isfinite
_float64 = np.float64
_ndarray = np.ndarray
_LN2 = math.log(2.0)

# Names that do the exercise for the student: scipy/kdcourse are banned as packages too.
BANNED_NAMES = ("kl_div", "rel_entr", "entr", "KLDivLoss", "xlogy", "xlog1py")
# The graded functions may reuse one another (each is checked on its own).
REUSABLE = ("entropy", "cross_entropy", "kl_divergence")

# Tolerances: functions are compared tightly; a number the student assigned may be typed from the
# 6 printed decimals (kl_A = 0.006577), so it gets half a unit in the 6th decimal or 0.01 %.
RTOL, ATOL = 1e-6, 1e-9
NUMBER_RTOL, NUMBER_ATOL = 1e-4, 5e-7


# --- trusted maths -------------------------------------------------------------------------


def _probs(x) -> np.ndarray:
    return _asarray(x, dtype=_float64)


def _plogq(p, q):
    """p·log q with 0·log(anything) = 0."""
    safe_q = _where(p > 0, q, 1.0)
    with np.errstate(divide="ignore"):
        return _where(p > 0, p * _log(safe_q), 0.0)


def _entropy_terms(p):
    return -_plogq(p, p)


def _ce_terms(p, q):
    return -_plogq(p, q)


def _kl_terms(p, q):
    return _plogq(p, p) - _plogq(p, q)


# --- conversion and comparison --------------------------------------------------------------


def _as_result(value, name: str) -> np.ndarray:
    """Student output as a float64 array; only floats and numpy arrays are accepted."""
    if value is None:
        raise WrongAnswer(f"{name} returned None: did you forget the `return` statement?")
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (float, int, np.floating, np.integer, _ndarray)
    ):
        raise WrongAnswer(
            f"{name} must return a float or a numpy array (got {type(value).__name__})"
        )
    array = _asarray(value, dtype=_float64)
    if array.dtype != _float64:
        raise WrongAnswer(f"{name} must return floating-point values (got dtype {array.dtype})")
    return array


def _compare(name, call_text, actual, expected, variants, zeros_in_input=False, rtol=RTOL, atol=ATOL,
             mismatch=None):
    """Raise a WrongAnswer naming the misconception when ``actual`` differs from ``expected``.

    ``mismatch`` is the message when no known misconception matches (default: got X, expected Y).
    """
    expected = _asarray(expected, dtype=_float64)
    if actual.shape != expected.shape:
        for value, message in variants:
            if _asarray(value).shape == actual.shape and close(actual, value, rtol=rtol, atol=atol):
                raise WrongAnswer(f"{call_text}: {message}")
        raise WrongAnswer(
            f"{call_text} returned shape {actual.shape}, expected shape {expected.shape}: "
            "reduce over the last axis only (one value per distribution)."
        )
    if bool(_isnan(actual).any()) and not bool(_isnan(expected).any()):
        if zeros_in_input:
            raise WrongAnswer(
                f"{call_text} returned NaN: a class with probability 0 gave 0·log 0 = 0·(−inf) = NaN. "
                "By convention 0·log 0 = 0: such a class contributes nothing (use np.where(p > 0, ..., 0.0))."
            )
        raise WrongAnswer(f"{call_text} returned NaN (expected {_fmt(expected)}).")
    if close(actual, expected, rtol=rtol, atol=atol):
        return
    for value, message in variants:
        value = _asarray(value, dtype=_float64)
        if value.shape == actual.shape and close(actual, value, rtol=rtol, atol=atol):
            raise WrongAnswer(f"{call_text}: {message}")
    raise WrongAnswer(mismatch or f"{call_text} returned {_fmt(actual)}, expected {_fmt(expected)}.")


def _fmt(x) -> str:
    x = _asarray(x, dtype=_float64)
    if x.ndim == 0:
        return f"{float(x):.6f}"
    return np.array2string(x, precision=6, separator=", ")


def _reduced_variants(terms, name, first, second=None):
    """Misconceptions shared by every 'sum of per-class terms' quantity."""
    total = terms.sum(axis=-1)
    k = terms.shape[-1]
    variants = [
        (terms, f"you returned the per-class terms; {name} is their SUM over the last axis "
                "(individual terms can even be negative, only the sum has a meaning)."),
        (total / _LN2, "this is in bits (log base 2); the course uses the natural log, so the answer is in nats "
                       "(use np.log, not np.log2)."),
        (total / k, f"you took the MEAN over classes instead of the SUM: {name} adds up the per-class terms "
                    f"(your value is {name}/{k})."),
    ]
    if terms.ndim > 1:
        variants.append((total.sum(), "you summed over the whole batch; sum over the last axis only "
                                      "and return one value per distribution."))
        variants.append((total.mean(), "you averaged over the batch; return one value per distribution "
                                       "(shape = input shape without the last axis)."))
    return variants


def _entropy_variants(p):
    terms = _entropy_terms(p)
    return [(-terms.sum(axis=-1), "the sign is flipped: H(p) = −Σ p_k log p_k is ≥ 0.")] + _reduced_variants(
        terms, "the entropy", "p"
    )


def _ce_variants(p, q):
    terms = _ce_terms(p, q)
    swapped = _ce_terms(q, p).sum(axis=-1)
    return [
        (swapped, "you computed CE(q, p): the arguments are swapped. CE(p, q) = −Σ p_k log q_k "
                  "averages log q under the FIRST argument p."),
        (-terms.sum(axis=-1), "the sign is flipped: CE(p, q) = −Σ p_k log q_k is ≥ 0."),
        (_kl_terms(p, q).sum(axis=-1), "this is KL(p‖q); the cross-entropy is KL(p‖q) + H(p)."),
    ] + _reduced_variants(terms, "the cross-entropy", "p", "q")


def _kl_variants(p, q):
    terms = _kl_terms(p, q)
    kl = terms.sum(axis=-1)
    variants = []
    if _asarray(p).shape == _asarray(q).shape:
        swapped = _kl_terms(q, p).sum(axis=-1)
        variants.append(
            (swapped, "you computed KL(q‖p), not KL(p‖q): the arguments are swapped. KL(p‖q) = "
                      "Σ p_k log(p_k/q_k) weights the log-ratio by the FIRST argument "
                      "(in distillation: the teacher).")
        )
    variants += [
        (-kl, "the sign is flipped: KL(p‖q) = Σ p_k log(p_k / q_k), not Σ p_k log(q_k / p_k)."),
        (_ce_terms(p, q).sum(axis=-1), "this is the cross-entropy CE(p, q); KL(p‖q) = CE(p, q) − H(p)."),
    ]
    return variants + _reduced_variants(terms, "KL", "p", "q")


# --- visible checks ------------------------------------------------------------------------

_P = [0.7, 0.2, 0.1]
_Q = [0.5, 0.3, 0.2]
_BATCH_P = [[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]]
_BATCH_Q = [[0.5, 0.3, 0.2], [0.6, 0.3, 0.1]]
_ZERO_P = [0.5, 0.5, 0.0]
_ZERO_Q = [0.25, 0.25, 0.5]


def _run(fn, name, args, expected, variants, zeros=False):
    rendered = ", ".join(_fmt(a) for a in args)
    call_text = f"{name}({rendered})"
    actual = _as_result(call_student(fn, name, *[_probs(a) for a in args]), name)
    _compare(name, call_text, actual, expected, variants, zeros_in_input=zeros)


def check_entropy(entropy) -> None:
    """Visible checks of ``entropy(p)``: several values, a batch, and a zero probability."""
    name = "entropy"
    for p in ([1 / 3, 1 / 3, 1 / 3], _P, [0.5, 0.5]):
        p = _probs(p)
        _run(entropy, name, (p,), _entropy_terms(p).sum(-1), _entropy_variants(p))
    p = _probs([1.0, 0.0, 0.0])
    _run(entropy, name, (p,), 0.0, _entropy_variants(p), zeros=True)
    p = _probs(_BATCH_P)
    _run(entropy, name, (p,), _entropy_terms(p).sum(-1), _entropy_variants(p))


def check_cross_entropy(cross_entropy) -> None:
    """Visible checks of ``cross_entropy(p, q)``: asymmetric pairs, a batch, zeros in both."""
    name = "cross_entropy"
    for p, q in ((_P, _Q), (_Q, _P), (_BATCH_P, _BATCH_Q)):
        p, q = _probs(p), _probs(q)
        _run(cross_entropy, name, (p, q), _ce_terms(p, q).sum(-1), _ce_variants(p, q))
    p = q = _probs(_ZERO_P)
    _run(cross_entropy, name, (p, q), _LN2, _ce_variants(p, q), zeros=True)


def check_kl_divergence(kl_divergence) -> None:
    """Visible checks of ``kl_divergence(p, q)``: asymmetry, KL(p‖p) = 0, a batch, zeros."""
    name = "kl_divergence"
    for p, q in ((_P, _Q), (_Q, _P), (_BATCH_P, _BATCH_Q)):
        p, q = _probs(p), _probs(q)
        _run(kl_divergence, name, (p, q), _kl_terms(p, q).sum(-1), _kl_variants(p, q))
    p = _probs(_BATCH_P)
    _run(kl_divergence, name, (p, p), [0.0, 0.0], _kl_variants(p, p)[1:])
    p, q = _probs(_ZERO_P), _probs(_ZERO_Q)
    _run(kl_divergence, name, (p, q), _LN2, _kl_variants(p, q), zeros=True)


# --- hidden checks (expected values come from the notebook) -----------------------------------


def _check_cases(fn, name, cases, variants_for):
    forbid_delegation(fn, name, banned_names=BANNED_NAMES, allowed=REUSABLE)
    for args, expected in cases:
        args = tuple(_probs(a) for a in args)
        zeros = any(bool((a == 0).any()) for a in args)
        _run(fn, name, args, expected, variants_for(*args), zeros=zeros)


def check_entropy_values(entropy, cases) -> None:
    """Hidden check: ``cases`` is a list of ``((p,), expected)`` with hard-coded float64 values."""
    _check_cases(entropy, "entropy", cases, _entropy_variants)


def check_cross_entropy_values(cross_entropy, cases) -> None:
    """Hidden check: ``cases`` is a list of ``((p, q), expected)`` with hard-coded float64 values."""
    _check_cases(cross_entropy, "cross_entropy", cases, _ce_variants)


def check_kl_values(kl_divergence, cases) -> None:
    """Hidden check: ``cases`` is a list of ``((p, q), expected)`` with hard-coded float64 values."""
    _check_cases(kl_divergence, "kl_divergence", cases, _kl_variants)


# --- numbers and choices -------------------------------------------------------------------


def check_format(answer, options, name) -> None:
    """Visible format check of a multiple-choice answer (not whether it is right)."""
    require_answered(answer, name, f"set it to one of {list(options)}")
    check_choice(answer, options, name)


def check_number_format(value, name, hint="compute it with your kl_divergence") -> None:
    """Visible format check of a computed number: a finite float ≥ 0."""
    require_answered(value, name, hint)
    array = _as_result(value, name)
    if array.ndim != 0:
        raise WrongAnswer(f"{name} must be a single number (got an array of shape {array.shape}).")
    if not bool(_isfinite(array)):
        raise WrongAnswer(f"{name} must be finite (got {float(array)}).")
    if float(array) < -1e-12:
        raise WrongAnswer(f"{name} = {float(array):.6f} is negative, but KL is never negative (Gibbs' inequality).")


def check_kl_number(value, name, p, q, expected) -> None:
    """Hidden check of one KL value the student computed for the pair ``(p, q)``.

    The value may be typed from the 6 printed decimals; the message says what should have been assigned.
    """
    check_number_format(value, name)
    p, q = _probs(p), _probs(q)
    array = _as_result(value, name)
    pair = f"KL(p‖q) with p = {_fmt(p)}, q = {_fmt(q)}"
    _compare(name, f"{name} = {float(array):.6f} should be {pair}", array, expected, _kl_variants(p, q),
             rtol=NUMBER_RTOL, atol=NUMBER_ATOL,
             mismatch=f"{name} = {float(array):.6f}, but it should hold {pair}, which is "
                      f"{float(expected):.6f} nats: assign the result of your kl_divergence(p, q) "
                      "(a float; the 6 printed decimals are enough).")


def check_kl_numbers(values, pairs, expected) -> None:
    """Hidden check of several KL values: dicts keyed by the answer variable's name."""
    for key in pairs:
        check_kl_number(values[key], key, pairs[key][0], pairs[key][1], expected[key])
