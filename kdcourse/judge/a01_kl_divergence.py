r"""Judge of assignment a01 (entropy, cross-entropy and the KL divergence, in numpy).

Every function answer is called on the visible inputs below and, when graded, on the hidden inputs of
``grading/assignments/a01_kl_divergence.toml``; the expected values are computed here, in float64.
A wrong answer's message names the misconception it matches: swapped arguments, log base 2, per-class
terms, mean over classes, NaN from :math:`0 \log 0`, a flipped sign, the cross-entropy for the KL, a
batch summed or averaged away, a library call doing the exercise.

The numeric questions also collect the student's ``kl_divergence`` on their own pairs: a number that is
wrong only because that function is wrong, and equals what it returns, is accepted (errors are
carried forward), so one mistake costs the points of ``test_kl_divergence`` once.
"""

from __future__ import annotations

import math

import numpy as np

from .items import Answer, Call, Context, Item, Results
from .matching import carried_forward, carried_results, diagnose, expect_close, expected_clause, fmt
from .static import forbid_delegation
from .values import as_array, as_number, check_choice_format, choice_item, judge_choice
from .verdict import Wrong

__all__ = ["ITEMS"]

LN2 = math.log(2.0)
#: Names and packages that do the exercise for the student.
BANNED_NAMES = ("kl_div", "rel_entr", "entr", "KLDivLoss", "xlogy", "xlog1py")
BANNED_PACKAGES = ("scipy", "kdcourse", "sklearn", "torch")
#: The graded functions may reuse one another (each is judged on its own).
REUSABLE = ("entropy", "cross_entropy", "kl_divergence")
RTOL, ATOL = 1e-6, 1e-9
# A number the student assigned may be typed from the 6 printed decimals (0.006577).
NUMBER_RTOL, NUMBER_ATOL = 1e-4, 5e-7

P = [0.7, 0.2, 0.1]
Q = [0.5, 0.3, 0.2]
BATCH_P = [[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]]
BATCH_Q = [[0.5, 0.3, 0.2], [0.6, 0.3, 0.1]]
ZERO_P = [0.5, 0.5, 0.0]
ZERO_Q = [0.25, 0.25, 0.5]

REFERENCE = [0.70, 0.20, 0.10]
REPLICAS = {"kl_A": [0.65, 0.22, 0.13], "kl_B": [0.70, 0.10, 0.20], "kl_C": [0.50, 0.30, 0.20]}
ASYMMETRY_P = [0.85, 0.10, 0.05]
ASYMMETRY_Q = [0.40, 0.30, 0.30]


# --- trusted maths ---------------------------------------------------------------------------------


def _plogq(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """p·log q per class, with 0·log(anything) = 0."""
    with np.errstate(divide="ignore"):
        return np.where(p > 0, p * np.log(np.where(p > 0, q, 1.0)), 0.0)


def entropy_terms(p):
    return -_plogq(p, p)


def cross_entropy_terms(p, q):
    return -_plogq(p, q)


def kl_terms(p, q):
    return _plogq(p, p) - _plogq(p, q)


# --- misconceptions -----------------------------------------------------------------------------------


def _reduced_variants(terms: np.ndarray, name: str) -> list:
    """Misconceptions shared by every 'sum of per-class terms' quantity."""
    total = terms.sum(axis=-1)
    k = terms.shape[-1]
    variants = [
        (terms, f"you returned the per-class terms; {name} is their SUM over the last axis "
                "(individual terms can even be negative, only the sum has a meaning)."),
        (total / LN2, "this is in bits (log base 2); the course uses the natural log, so the answer is in nats "
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


def entropy_variants(p):
    terms = entropy_terms(p)
    return [(-terms.sum(axis=-1), "the sign is flipped: H(p) = −Σ p_k log p_k is ≥ 0.")] \
        + _reduced_variants(terms, "the entropy")


def cross_entropy_variants(p, q):
    terms = cross_entropy_terms(p, q)
    return [
        (cross_entropy_terms(q, p).sum(axis=-1),
         "you computed CE(q, p): the arguments are swapped. CE(p, q) = −Σ p_k log q_k averages log q under the "
         "FIRST argument p."),
        (-terms.sum(axis=-1), "the sign is flipped: CE(p, q) = −Σ p_k log q_k is ≥ 0."),
        (kl_terms(p, q).sum(axis=-1), "this is KL(p‖q); the cross-entropy is KL(p‖q) + H(p)."),
    ] + _reduced_variants(terms, "the cross-entropy")


def kl_variants(p, q):
    terms = kl_terms(p, q)
    kl = terms.sum(axis=-1)
    variants = []
    if not np.array_equal(p, q):
        variants.append((kl_terms(q, p).sum(axis=-1),
                         "you computed KL(q‖p), not KL(p‖q): the arguments are swapped. KL(p‖q) = Σ p_k log(p_k/q_k) "
                         "weights the log-ratio by the FIRST argument (in distillation: the teacher)."))
    variants += [
        (-kl, "the sign is flipped: KL(p‖q) = Σ p_k log(p_k / q_k), not Σ p_k log(q_k / p_k)."),
        (cross_entropy_terms(p, q).sum(axis=-1), "this is the cross-entropy CE(p, q); KL(p‖q) = CE(p, q) − H(p)."),
    ]
    return variants + _reduced_variants(terms, "KL")


FUNCTIONS = {
    "entropy": (lambda p: entropy_terms(p).sum(-1), entropy_variants),
    "cross_entropy": (lambda p, q: cross_entropy_terms(p, q).sum(-1), cross_entropy_variants),
    "kl_divergence": (lambda p, q: kl_terms(p, q).sum(-1), kl_variants),
}


# --- judging one call ----------------------------------------------------------------------------------


def _result(call: Call, name: str) -> np.ndarray:
    """A call's result as float64; only floats and numpy arrays count as an answer."""
    if call.raised:
        raise Wrong(f"{name} raised {call.raised[0]}: {call.raised[1]}")
    value = call.returned
    if value.kind == "none":
        raise Wrong(f"{name} returned None: did you forget the `return` statement?")
    if value.kind not in ("float", "int", "ndarray") or "bool" in value.dtype:
        raise Wrong(f"{name} must return a float or a numpy array (got {value.describe()})")
    return as_array(value, name)


def _judge_call(name: str, call: Call) -> None:
    reference, variants_of = FUNCTIONS[name]
    args = [np.asarray(a, dtype=np.float64) for a in call.args]
    call_text = f"{name}({', '.join(fmt(a) for a in args)})"
    actual = _result(call, name)
    expected = np.asarray(reference(*args), dtype=np.float64)
    variants = variants_of(*args)
    if name == "kl_divergence" and len(args) == 2 and np.array_equal(args[0], args[1]):
        variants = variants[1:]  # KL(p‖p) = 0: the sign flip gives the right value too
    if actual.shape != expected.shape:
        found = diagnose(actual, variants, rtol=RTOL, atol=ATOL)
        raise Wrong(f"{call_text}: {found}" if found else
                    f"{call_text} returned shape {actual.shape}, expected shape {expected.shape}: "
                    "reduce over the last axis only (one value per distribution).")
    if np.isnan(actual).any() and not np.isnan(expected).any():
        if any((a == 0).any() for a in args):
            raise Wrong(f"{call_text} returned NaN: a class with probability 0 gave 0·log 0 = 0·(−inf) = NaN. "
                        "By convention 0·log 0 = 0: such a class contributes nothing "
                        "(use np.where(p > 0, ..., 0.0)).")
        raise Wrong(f"{call_text} returned NaN{expected_clause(expected, call.hidden)}.")
    expect_close(call_text, actual, expected, variants, rtol=RTOL, atol=ATOL, hidden=call.hidden)


def _function_item(grade_id: str, name: str, args: tuple[str, ...], cases: list) -> Item:
    def static(context: Context) -> None:
        forbid_delegation(context.code, name, BANNED_NAMES, BANNED_PACKAGES, allowed=REUSABLE)

    def judge(results: Results, context: Context) -> None:
        for call in results.calls[name]:
            _judge_call(name, call)

    return Item(grade_id, (Answer(name, "call", args, tuple(cases)),), judge,
                passed=f"{name}: checks passed", static=static)


# --- numbers and choices ---------------------------------------------------------------------------------


def _kl_number(results: Results, name: str, hint: str = "compute it with your kl_divergence") -> float:
    """A computed KL value: a finite number ≥ 0."""
    value = as_number(results.value(name), name, hint)
    if not math.isfinite(value):
        raise Wrong(f"{name} must be finite (got {value}).")
    if value < -1e-12:
        raise Wrong(f"{name} = {value:.6f} is negative, but KL is never negative (Gibbs' inequality).")
    return value


def _judge_kl_number(value: float, name: str, p: list, q: list, own: dict | None = None) -> bool:
    """Judge a KL number; ``True`` when it is accepted as carried forward from the student's function."""
    own_value = (own or {}).get((tuple(p), tuple(q)))
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    expected = float(kl_terms(p, q).sum())
    if own_value is not None and own_value.size == 1 and carried_forward(value, expected, own_value,
                                                                         rtol=NUMBER_RTOL, atol=NUMBER_ATOL):
        return True
    pair = f"KL(p‖q) with p = {fmt(p)}, q = {fmt(q)}"
    expect_close(f"{name} = {value:.6f} should be {pair}", value, expected, kl_variants(p, q),
                 rtol=NUMBER_RTOL, atol=NUMBER_ATOL,
                 mismatch=f"{name} = {value:.6f}, but it should hold {pair}, which is {expected:.6f} nats: assign "
                          "the result of your kl_divergence(p, q) (a float; the 6 printed decimals are enough).")
    return False


CARRIED = (" — {names} differ from the true KL but are what your kl_divergence gives, so only "
           "test_kl_divergence counts that mistake (errors carried forward)")




def _judge_replica(results: Results, context: Context) -> str:
    numbers = {name: _kl_number(results, name) for name in REPLICAS}
    choice = check_choice_format(results.value("best_replica"), ["A", "B", "C"], "best_replica")
    carried = []
    if context.full:
        own = carried_results(results, context, "kl_divergence", "test_kl_divergence")
        carried = [name for name, output in REPLICAS.items()
                   if _judge_kl_number(numbers[name], name, REFERENCE, output, own)]
        judge_choice(choice, context.key("best_replica"), "best_replica")
    return "replica question: checks passed" + (CARRIED.format(names=", ".join(carried)) if carried else "")


def _judge_asymmetry(results: Results, context: Context) -> str:
    kl_pq, kl_qp = _kl_number(results, "kl_pq"), _kl_number(results, "kl_qp")
    carried = []
    if context.full:
        own = carried_results(results, context, "kl_divergence", "test_kl_divergence")
        carried = [name for name, value, p, q in (("kl_pq", kl_pq, ASYMMETRY_P, ASYMMETRY_Q),
                                                  ("kl_qp", kl_qp, ASYMMETRY_Q, ASYMMETRY_P))
                   if _judge_kl_number(value, name, p, q, own)]
    return "asymmetry question: checks passed" + (CARRIED.format(names=", ".join(carried)) if carried else "")


def _own_kl(*pairs: tuple[list, list]) -> Answer:
    """The student's kl_divergence on a question's pairs, collected so that its mistakes are carried forward."""
    return Answer("kl_divergence", "call", ("array", "array"), cases=tuple([p, q] for p, q in pairs),
                  required=False)


ITEMS = (
    _function_item("test_entropy", "entropy", ("array",),
                   [[[1 / 3, 1 / 3, 1 / 3]], [P], [[0.5, 0.5]], [[1.0, 0.0, 0.0]], [BATCH_P]]),
    _function_item("test_cross_entropy", "cross_entropy", ("array", "array"),
                   [[P, Q], [Q, P], [BATCH_P, BATCH_Q], [ZERO_P, ZERO_P]]),
    _function_item("test_kl_divergence", "kl_divergence", ("array", "array"),
                   [[P, Q], [Q, P], [BATCH_P, BATCH_Q], [BATCH_P, BATCH_P], [ZERO_P, ZERO_Q]]),
    Item("test_replica", (*(Answer(n) for n in (*REPLICAS, "best_replica")),
                          _own_kl(*((REFERENCE, output) for output in REPLICAS.values()))), _judge_replica),
    choice_item("test_guided", "best_guided", ["S1", "S2", "S3", "S4", "S5"]),
    choice_item("test_scenario", "highest_dissimilarity", ["a", "b", "c", "d"]),
    Item("test_asymmetry", (Answer("kl_pq"), Answer("kl_qp"),
                            _own_kl((ASYMMETRY_P, ASYMMETRY_Q), (ASYMMETRY_Q, ASYMMETRY_P))), _judge_asymmetry),
)
