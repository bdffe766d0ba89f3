"""Unit tests of kdcourse.checks.a01/a02: each misconception gets the message that names it.

The wrong implementations are the ones in grading/assignments/<aid>.toml (the same code the
misconception submissions use), executed here in a small namespace that mimics the notebook, and
handed straight to the check functions — no kernel needed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdcourse import notebook_tools as nt
from kdcourse.checks import a01, a02, common
from kdcourse.checks.common import WrongAnswer
from kdcourse.grading.course import Course

COURSE = Course.from_repo(nt.REPO_ROOT)
A01 = COURSE.spec("a01_kl_divergence")
A02 = COURSE.spec("a02_distillation_loss")


# --- reference (correct) implementations, written as a student would --------------------------


def entropy(p):
    p = np.asarray(p, dtype=float)
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)


def cross_entropy(p, q):
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, q, 1.0)), 0.0), axis=-1)


def kl_divergence(p, q):
    return cross_entropy(p, q) - entropy(p)


def softmax_with_temperature(logits, T):
    scaled = logits / T
    shifted = scaled - scaled.max(dim=-1, keepdim=True).values
    return torch.exp(shifted) / torch.exp(shifted).sum(dim=-1, keepdim=True)


def distillation_loss(student_logits, teacher_logits, T):
    log_p_s = torch.log_softmax(student_logits / T, dim=-1)
    log_p_t = torch.log_softmax(teacher_logits.detach() / T, dim=-1)
    return T ** 2 * (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=-1).mean()


def distillation_gradient(student_logits, teacher_logits, T):
    p_s = softmax_with_temperature(student_logits, T)
    p_t = softmax_with_temperature(teacher_logits, T)
    return T * (p_s - p_t) / student_logits.shape[0]


def kd_loss_fixed(student_logits, teacher_logits, T):
    return T ** 2 * F.kl_div(F.log_softmax(student_logits / T, dim=-1),
                             F.softmax(teacher_logits.detach() / T, dim=-1), reduction="batchmean")


def combined_loss(student_logits, teacher_logits, targets, alpha, T):
    return alpha * F.cross_entropy(student_logits, targets) + (1 - alpha) * distillation_loss(
        student_logits, teacher_logits, T)


def _namespace():
    """What a student's notebook has defined when the test cells run (module '__main__')."""
    ns = {"__name__": "__main__", "np": np, "torch": torch, "F": F}
    for fn in (entropy, cross_entropy, kl_divergence, softmax_with_temperature, distillation_loss,
               distillation_gradient, kd_loss_fixed, combined_loss):
        exec(compile(_source(fn), "<student>", "exec"), ns)
    return ns


def _source(fn):
    import inspect
    return inspect.getsource(fn)


def _wrong(spec, name):
    item = next(m for m in spec.misconceptions if m.name == name)
    ns = _namespace()
    for source in item.replace.values():
        exec(compile(source, "<student>", "exec"), ns)
    return ns, item


def _student(source):
    """A namespace like the notebook's after the student ran ``source`` (module '__main__')."""
    ns = _namespace()
    exec(compile(source, "<student>", "exec"), ns)
    return ns


def _message(check, *args) -> str:
    with pytest.raises(WrongAnswer) as info:
        check(*args)
    return str(info.value)


# --- correct answers pass; trivial answers fail ------------------------------------------------


def test_correct_answers_pass_every_check():
    ns = _namespace()
    a01.check_entropy(ns["entropy"])
    a01.check_cross_entropy(ns["cross_entropy"])
    a01.check_kl_divergence(ns["kl_divergence"])
    a01.check_kl_values(ns["kl_divergence"], [(([0.7, 0.2, 0.1], [0.65, 0.22, 0.13]), 0.0065771180999912235)])
    a02.check_softmax_with_temperature(ns["softmax_with_temperature"])
    a02.check_distillation_loss(ns["distillation_loss"])
    a02.check_distillation_gradient(ns["distillation_gradient"])
    a02.check_kd_loss_fixed(ns["kd_loss_fixed"])
    a02.check_combined_loss(ns["combined_loss"])


@pytest.mark.parametrize("constant", [0.0, 0.5, np.log(3)])
def test_constant_answers_fail_visible_checks(constant):
    for check in (a01.check_entropy, a01.check_cross_entropy, a01.check_kl_divergence):
        _message(check, lambda *args: constant)
    _message(a02.check_distillation_loss, lambda *args: torch.tensor(constant, requires_grad=True))


def test_always_equal_object_is_rejected():
    class AlwaysEqual(float):
        def __eq__(self, other):
            return True

    assert "returned" in _message(a01.check_entropy, lambda p: AlwaysEqual(0.0))

    class Fake:
        def __eq__(self, other):
            return True

    assert "float or a numpy array" in _message(a01.check_kl_divergence, lambda p, q: Fake())


def test_hidden_value_check_uses_the_given_expectation():
    assert "expected 1.000000" in _message(
        a01.check_kl_values, kl_divergence, [(([0.7, 0.2, 0.1], [0.65, 0.22, 0.13]), 1.0)])


def test_monkeypatched_numpy_does_not_fool_the_checks(monkeypatch):
    monkeypatch.setattr(np, "allclose", lambda *a, **k: True)
    monkeypatch.setattr(np, "isclose", lambda *a, **k: True)
    _message(a01.check_kl_divergence, lambda p, q: np.float64(0.1))


def test_unanswered_items_raise_not_implemented():
    with pytest.raises(NotImplementedError):
        a01.check_format(None, ["A", "B", "C"], "best_replica")
    with pytest.raises(NotImplementedError):
        a01.check_number_format(None, "kl_A")

    def stub(p):
        raise NotImplementedError()

    with pytest.raises(NotImplementedError):
        a01.check_entropy(stub)


def test_choice_checks():
    assert "one of" in _message(a01.check_format, "E", ["A", "B", "C"], "best_replica")
    a01.check_format("A", ["A", "B", "C"], "best_replica")
    assert "top class" in _message(a01.check_answer, "B", "A", "best_replica", {"B": "top class"})
    a01.check_answer("A", "A", "best_replica", {})


def test_delegation_is_detected():
    from scipy.special import rel_entr
    from scipy import stats

    def uses_import(p, q):
        return np.sum(rel_entr(p, q), axis=-1)

    def uses_module(p):
        return stats.entropy(p)

    def uses_kl_div(z, v, T):
        return T * T * F.kl_div(F.log_softmax(z / T, -1), F.softmax(v / T, -1), reduction="batchmean")

    assert common.find_delegation(uses_import, banned_names=a01.BANNED_NAMES) is not None
    assert common.find_delegation(uses_module) is not None
    assert common.find_delegation(uses_kl_div, banned_names=a02.BANNED_LOSS_NAMES) == "kl_div"
    assert common.find_delegation(kl_divergence) is None
    assert common.find_delegation(distillation_loss, banned_names=a02.BANNED_LOSS_NAMES) is None


def test_checks_print_nothing_to_stderr(capsys):
    ns, _ = _wrong(A02, "kl_div_reduction_mean")  # F.kl_div(reduction="mean") warns when called
    _message(a02.check_kd_loss_fixed, ns["kd_loss_fixed"])
    assert capsys.readouterr().err == ""


# --- every function misconception of the instructor files gets its message -------------------

_VISIBLE = {
    "entropy": a01.check_entropy,
    "cross_entropy": a01.check_cross_entropy,
    "kl_divergence": a01.check_kl_divergence,
    "softmax_with_temperature": a02.check_softmax_with_temperature,
    "distillation_loss": a02.check_distillation_loss,
    "distillation_gradient": a02.check_distillation_gradient,
    "kd_loss_fixed": a02.check_kd_loss_fixed,
    "combined_loss": a02.check_combined_loss,
}
_HIDDEN = {  # misconceptions only the hidden checks can see (delegation): check with the hidden function
    "kl_delegates_to_scipy": lambda fn: a01.check_kl_values(
        fn, [(([0.7, 0.2, 0.1], [0.65, 0.22, 0.13]), 0.0065771180999912235)]),
    "loss_delegates_to_kl_div": lambda fn: a02.check_distillation_loss_values(fn, []),
    "gradient_uses_autograd": lambda fn: a02.check_gradient_values(fn, []),
}

FUNCTION_CASES = [
    (spec, item.name)
    for spec in (A01, A02)
    for item in spec.misconceptions
    if set(item.replace) <= set(_VISIBLE)
]


@pytest.mark.parametrize("config,name", FUNCTION_CASES, ids=[n for _, n in FUNCTION_CASES])
def test_misconception_gets_its_message(config, name):
    ns, item = _wrong(config, name)
    (cell,) = item.replace
    fn = ns[cell]
    check = _HIDDEN.get(name, _VISIBLE[cell])
    message = _message(check, fn)
    # The first expected message is the one that names the misconception in this cell.
    assert item.expected_messages[0] in message, f"{name}: got {message!r}"


def test_every_function_misconception_is_covered():
    names = {n for _, n in FUNCTION_CASES}
    assert len(names) >= 20
    assert {"kl_swapped_arguments", "kl_log_base_2", "kl_per_class_terms", "kl_mean_over_classes",
            "kl_nan_from_zero_log_zero", "loss_missing_t_squared", "loss_t_squared_twice",
            "loss_temperature_student_only", "loss_reduction_mean", "loss_softmax_wrong_dim",
            "loss_item_breaks_graph", "loss_detach_student", "loss_numpy_round_trip",
            "kl_div_probabilities_as_input"} <= names


def test_wrong_choice_messages():
    assert "B matches the top class" in _message(
        a01.check_answer, "B", "A", "best_replica", {"B": "B matches the top class exactly"})
    # alpha convention: answering "b" to alpha -> 1 names the convention
    assert "alpha" in _message(a02.check_answer, "b", "a", "alpha_to_one", {"b": "that is alpha → 0"})


# --- delegation cannot hide behind an import inside the function or a helper --------------------


def test_import_inside_the_function_is_detected():
    ns = _student(
        "def kl_divergence(p, q):\n"
        "    import scipy.stats\n"
        "    return scipy.stats.entropy(p, q, axis=-1)\n")
    assert "scipy" in common.find_delegation(ns["kl_divergence"])
    assert "write the formula yourself" in _message(
        a01.check_kl_values, ns["kl_divergence"], [(([0.7, 0.2, 0.1], [0.65, 0.22, 0.13]), 0.0065771180999912235)])
    for source in ("def f(p):\n    from scipy.special import entr\n    return entr(p).sum(-1)\n",
                   "def f(p):\n    return __import__('scipy.stats').stats.entropy(p)\n",
                   "def f(p):\n    def inner(x):\n        import sklearn.metrics\n        return x\n"
                   "    return inner(p)\n"):
        assert common.find_delegation(_student(source)["f"]) is not None, source


def test_helper_that_wraps_a_library_call_is_detected():
    ns = _student(
        "from scipy.special import rel_entr as _re\n"
        "def _terms(p, q):\n"
        "    return _re(p, q)\n"
        "def _total(p, q):\n"
        "    return np.sum(_terms(p, q), axis=-1)\n"
        "def kl_divergence(p, q):\n"
        "    return _total(np.asarray(p, dtype=float), np.asarray(q, dtype=float))\n")
    found = common.find_delegation(ns["kl_divergence"], banned_names=a01.BANNED_NAMES)
    assert found is not None and found.startswith("_total → _terms"), found
    assert "write the formula yourself" in _message(
        a01.check_kl_values, ns["kl_divergence"], [(([0.7, 0.2, 0.1], [0.65, 0.22, 0.13]), 0.0065771180999912235)])
    kl_helper = _student(
        "def _kd(a, b):\n"
        "    return F.kl_div(a, b, reduction='batchmean')\n"
        "def distillation_loss(z, v, T):\n"
        "    return T ** 2 * _kd(F.log_softmax(z / T, -1), F.softmax(v.detach() / T, -1))\n")
    assert common.find_delegation(kl_helper["distillation_loss"], banned_names=a02.BANNED_LOSS_NAMES) == "_kd → kl_div"


def test_recursion_ends_on_mutually_recursive_helpers():
    ns = _student("def a(n):\n    return b(n - 1) if n else 0\ndef b(n):\n    return a(n)\n")
    assert common.find_delegation(ns["a"], banned_names=("kl_div",)) is None


def test_reuse_the_exercise_allows_is_not_delegation():
    # a01: kl_divergence may reuse entropy and cross_entropy, even if one of them is itself wrong
    ns = _student("from scipy.stats import entropy as _h\ndef entropy(p):\n    return _h(p, axis=-1)\n")
    assert common.find_delegation(ns["entropy"]) is not None
    a01.check_kl_values(ns["kl_divergence"], [(([0.7, 0.2, 0.1], [0.65, 0.22, 0.13]), 0.0065771180999912235)])
    # a02: combined_loss may reuse distillation_loss (which is graded, and penalised, on its own)
    ns, _ = _wrong(A02, "loss_delegates_to_kl_div")
    a02.check_combined_loss_values(ns["combined_loss"], [])
    assert "combined_loss calls" in _message(a02.check_combined_loss_values, _student(
        "def combined_loss(z, v, y, alpha, T):\n"
        "    return alpha * F.cross_entropy(z, y) + (1 - alpha) * T ** 2 * F.kl_div(\n"
        "        F.log_softmax(z / T, -1), F.softmax(v / T, -1), reduction='batchmean')\n")["combined_loss"], [])


# --- the F.kl_div exercise: the textbook fix is right, other losses are not the exercise ---------

_KD_CASES = [([[3.0, -1.0, 0.5, 2.0, 0.0], [-2.0, 4.0, 1.0, 0.0, 0.5]],
              [[1.0, 0.0, -1.0, 3.5, 0.2], [0.0, 2.0, 2.5, -1.0, 1.0]], 2.0, 1.1888519604627854,
              [[0.2811509252784895, -0.03875390705089745, 0.06728724608258455, -0.2995267969142569,
                -0.010157467395919884],
               [-0.07419450382618609, 0.34487358494776865, -0.22776616571617966, 0.021456496739109446,
                -0.06436941214451211]])]


def test_textbook_kl_div_fix_passes():
    """The four bugs fixed, nothing else: the teacher is not detached, and that is fine here."""
    ns = _student(
        "def kd_loss_fixed(z, v, T):\n"
        "    return T**2 * F.kl_div(F.log_softmax(z / T, -1), F.softmax(v / T, -1), reduction='batchmean')\n")
    a02.check_kd_loss_fixed(ns["kd_loss_fixed"])
    a02.check_kd_loss_fixed_values(ns["kd_loss_fixed"], _KD_CASES)


@pytest.mark.parametrize("body", [
    "    return distillation_loss(z, v, T)\n",
    "    import kdcourse\n    return kdcourse.distillation_loss(z, v, temperature=T)\n",
])
def test_kl_div_exercise_rejects_other_losses(body):
    fn = _student("def kd_loss_fixed(z, v, T):\n" + body)["kd_loss_fixed"]
    for check in (lambda f: a02.check_kd_loss_fixed(f), lambda f: a02.check_kd_loss_fixed_values(f, _KD_CASES)):
        assert "the exercise is to fix the F.kl_div call" in _message(check, fn)


def test_unanswered_kl_div_exercise_raises_not_implemented():
    def kd_loss_fixed(z, v, T):
        raise NotImplementedError()

    for check in (lambda f: a02.check_kd_loss_fixed(f), lambda f: a02.check_kd_loss_fixed_values(f, _KD_CASES)):
        with pytest.raises(NotImplementedError):
            check(kd_loss_fixed)


def test_kl_div_exercise_needs_kl_div():
    fn = _student(
        "def kd_loss_fixed(z, v, T):\n"
        "    lp_s, lp_t = F.log_softmax(z / T, -1), F.log_softmax(v.detach() / T, -1)\n"
        "    return T ** 2 * (lp_t.exp() * (lp_t - lp_s)).sum(-1).mean()\n")["kd_loss_fixed"]
    assert "does not call F.kl_div" in _message(a02.check_kd_loss_fixed, fn)


def test_distillation_loss_still_requires_a_detached_teacher():
    ns, item = _wrong(A02, "loss_teacher_not_detached")
    assert item.expected_messages[0] in _message(a02.check_distillation_loss, ns["distillation_loss"])


# --- numbers typed from the printed decimals ---------------------------------------------------

_REPLICA = ({"kl_A": ([0.7, 0.2, 0.1], [0.65, 0.22, 0.13]), "kl_B": ([0.7, 0.2, 0.1], [0.7, 0.1, 0.2])},
            {"kl_A": 0.006577118099991286, "kl_B": 0.06931471805599465})


def test_numbers_typed_with_six_decimals_pass():
    a01.check_kl_numbers({"kl_A": 0.006577, "kl_B": 0.069315}, *_REPLICA)
    a01.check_kl_numbers({"kl_A": 0.006577118099991286, "kl_B": 0.06931471805599465}, *_REPLICA)


def test_wrong_number_says_what_to_assign():
    message = _message(a01.check_kl_numbers, {"kl_A": 0.0066, "kl_B": 0.069315}, *_REPLICA)
    assert "kl_A = 0.006600" in message and "0.006577" in message
    assert "assign the result of your kl_divergence(p, q)" in message
    swapped = _message(a01.check_kl_numbers, {"kl_A": 0.006577, "kl_B": 0.0}, *_REPLICA)
    assert "kl_B" in swapped


# --- wording: both arguments whenever a direction of the KL is named -----------------------------

_PART1_TEXTS = [
    nt.ASSIGNMENTS_DIR / "a01_kl_divergence" / "a01_kl_divergence.ipynb",
    nt.ASSIGNMENTS_DIR / "a02_distillation_loss" / "a02_distillation_loss.ipynb",
    *sorted(nt.LECTURES_DIR.glob("l01_*.ipynb")),
    *sorted(nt.LECTURES_DIR.glob("l02_*.ipynb")),
]


def _lines(path):
    import nbformat

    if path.suffix == ".ipynb":
        return [line for cell in nbformat.read(str(path), as_version=4).cells for line in cell.source.split("\n")]
    return path.read_text(encoding="utf-8").split("\n")


@pytest.mark.parametrize("path", _PART1_TEXTS + [nt.REPO_ROOT / "kdcourse" / "checks" / f for f in ("a01.py", "a02.py")],
                         ids=lambda p: p.name)
def test_directions_of_the_kl_are_written_with_both_arguments(path):
    import re

    for line in _lines(path):
        if re.search(r"\b(forward|reverse)\b", line, flags=re.IGNORECASE):
            assert re.search(r"KL\$?\(|\\\|", line), f"{path.name}: names a direction without the arguments: {line!r}"
        if "(z - v)/C" in line or "(z − v)/C" in line:
            assert "example" in line, f"{path.name}: the (z − v)/C limit holds per example: {line!r}"
