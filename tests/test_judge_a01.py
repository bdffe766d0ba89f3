"""The judge of a01 in the test process (no kernel): every misconception of the instructor file gets the
message that names it, correct answers pass, trivial and forged answers fail."""

from __future__ import annotations

import numpy as np
import pytest

from kdcourse.notebooks import read_notebook, solution_cells, strip_markers

from fixtures.judging import course, judge_answers

AID = "a01_kl_divergence"
SPEC = course().spec(AID)
FUNCTION_TESTS = {"entropy": "test_entropy", "cross_entropy": "test_cross_entropy",
                  "kl_divergence": "test_kl_divergence"}


def _solution_source() -> str:
    """The three function cells of the instructor's solution, as one source text."""
    cells = solution_cells(read_notebook(course().source_notebook(AID)))
    return "import numpy as np\n" + "\n".join(strip_markers(cells[name].source) for name in FUNCTION_TESTS)


def _namespace(source: str) -> dict:
    namespace = {"__name__": "__main__"}
    try:
        exec(compile(source, "<student>", "exec"), namespace)
    except ImportError:  # a misconception that imports what the grading sandbox hides
        pass
    return namespace


def _functions(source: str) -> dict:
    ns = _namespace(source)
    return {name: ns[name] for name in FUNCTION_TESTS if name in ns}


SOLUTION = _solution_source()


@pytest.mark.parametrize("name", sorted(FUNCTION_TESTS))
def test_the_solution_passes(name):
    functions = _functions(SOLUTION)
    verdict = judge_answers(AID, FUNCTION_TESTS[name], code=SOLUTION, **{name: functions[name]})
    assert verdict.passed, verdict.message


FUNCTION_MISCONCEPTIONS = [m for m in SPEC.misconceptions if set(m.replace) <= set(FUNCTION_TESTS)]


@pytest.mark.parametrize("misconception", FUNCTION_MISCONCEPTIONS, ids=lambda m: m.name)
def test_each_function_misconception_gets_its_message(misconception):
    source = SOLUTION + "\n" + "\n".join(misconception.replace.values())
    functions = _functions(source)
    (cell,) = misconception.replace
    verdict = judge_answers(AID, FUNCTION_TESTS[cell], code=source, **{cell: functions.get(cell)})
    assert not verdict.passed
    assert misconception.expected_messages[0] in verdict.message, verdict.message


def test_every_function_misconception_is_covered():
    names = {m.name for m in FUNCTION_MISCONCEPTIONS}
    assert {"kl_swapped_arguments", "kl_log_base_2", "kl_per_class_terms", "kl_mean_over_classes",
            "kl_nan_from_zero_log_zero", "kl_is_cross_entropy", "kl_delegates_to_scipy"} <= names


@pytest.mark.parametrize("constant", [0.0, 0.5, float(np.log(3))])
@pytest.mark.parametrize("name", sorted(FUNCTION_TESTS))
def test_constant_answers_fail(name, constant):
    verdict = judge_answers(AID, FUNCTION_TESTS[name], graded=False, **{name: lambda *args: constant})
    assert not verdict.passed


def test_objects_that_claim_to_equal_everything_are_refused():
    class AlwaysEqual(float):
        def __eq__(self, other):
            return True

    verdict = judge_answers(AID, "test_entropy", entropy=lambda p: AlwaysEqual(0.0))
    assert not verdict.passed and "float or a numpy array" in verdict.message


def test_an_unanswered_function_says_what_to_write():
    def stub(p):
        raise NotImplementedError()

    verdict = judge_answers(AID, "test_entropy", entropy=stub)
    assert verdict.unanswered and "entropy is not written yet" in verdict.message


def test_hidden_inputs_are_judged_only_when_grading():
    from kdcourse.judge.a01_kl_divergence import P, Q, kl_terms

    def visible_only(p, q):  # right on the visible inputs, wrong on anything else
        p, q = np.asarray(p), np.asarray(q)
        seen = {(tuple(np.ravel(P)), tuple(np.ravel(Q)))}
        if (tuple(np.ravel(p)), tuple(np.ravel(q))) in seen or np.array_equal(p, q):
            return kl_terms(p, q).sum(-1)
        return np.zeros(p.shape[:-1]) + 0.5 if p.ndim > 1 else 0.5

    assert not judge_answers(AID, "test_kl_divergence", kl_divergence=visible_only).passed


@pytest.mark.parametrize("answers, passed, words", [
    ({"kl_A": 0.006577, "kl_B": 0.069315, "kl_C": 0.085123, "best_replica": "A"}, True, "checks passed"),
    ({"kl_A": 0.006577, "kl_B": 0.069315, "kl_C": 0.085123, "best_replica": "B"}, False, "B matches the top class"),
    ({"kl_A": None, "kl_B": 0.069315, "kl_C": 0.085123, "best_replica": "A"}, False, "kl_A is still None"),
    ({"kl_A": 0.1, "kl_B": 0.069315, "kl_C": 0.085123, "best_replica": "A"}, False, "which is 0.006577 nats"),
    ({"kl_A": 0.006577, "kl_B": 0.069315, "kl_C": 0.085123, "best_replica": "E"}, False, "one of"),
    ({"kl_A": True, "kl_B": 0.069315, "kl_C": 0.085123, "best_replica": "A"}, False, "should be a number"),
])
def test_replica_question(answers, passed, words):
    verdict = judge_answers(AID, "test_replica", **answers)
    assert verdict.passed is passed and words in verdict.message, verdict.message


def test_multiple_choice_keys_are_applied_only_when_grading():
    assert judge_answers(AID, "test_guided", graded=False, best_guided="S4").passed  # format only
    verdict = judge_answers(AID, "test_guided", best_guided="S4")
    assert not verdict.passed and "S4 is the most over-confident student" in verdict.message
    assert judge_answers(AID, "test_guided", best_guided="S1").passed
    s2 = judge_answers(AID, "test_guided", best_guided="S2").message
    assert "0.461" in s2 and "−0.162" in s2 and "0.298" in s2  # the terms that make the total


def test_swapped_asymmetry_numbers_are_named():
    verdict = judge_answers(AID, "test_asymmetry", kl_pq=0.5656028064182972, kl_qp=0.44125682969170943)
    assert not verdict.passed and "kl_pq = 0.565603 should be KL(p‖q)" in verdict.message
    assert "you computed KL(q‖p), not KL(p‖q)" in verdict.message


def test_a_function_that_raises_is_named():
    verdict = judge_answers(AID, "test_entropy", entropy=lambda p: 1 / 0)
    assert not verdict.passed and "entropy raised ZeroDivisionError" in verdict.message


# --- errors carried forward --------------------------------------------------------------------------

SWAPPED = SOLUTION + '''
def kl_divergence(p, q):
    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    return cross_entropy(q, p) - entropy(q)
'''


def _numbers_with(kl, pairs):
    return {name: float(kl(np.array(p), np.array(q))) for name, (p, q) in pairs.items()}


REPLICA_PAIRS = {"kl_A": ([0.70, 0.20, 0.10], [0.65, 0.22, 0.13]), "kl_B": ([0.70, 0.20, 0.10], [0.70, 0.10, 0.20]),
                 "kl_C": ([0.70, 0.20, 0.10], [0.50, 0.30, 0.20])}
ASYMMETRY_PAIRS = {"kl_pq": ([0.85, 0.10, 0.05], [0.40, 0.30, 0.30]), "kl_qp": ([0.40, 0.30, 0.30], [0.85, 0.10, 0.05])}


#: What the grader passes on: test_kl_divergence was judged before the numeric questions, and failed.
KL_FAILED = {"test_kl_divergence": False}


def test_numbers_computed_with_a_wrong_kl_divergence_are_carried_forward():
    swapped = _functions(SWAPPED)["kl_divergence"]
    assert not judge_answers(AID, "test_kl_divergence", code=SWAPPED, kl_divergence=swapped).passed
    replica = judge_answers(AID, "test_replica", code=SWAPPED, best_replica="A", kl_divergence=swapped,
                            earlier=KL_FAILED, **_numbers_with(swapped, REPLICA_PAIRS))
    asymmetry = judge_answers(AID, "test_asymmetry", code=SWAPPED, kl_divergence=swapped, earlier=KL_FAILED,
                              **_numbers_with(swapped, ASYMMETRY_PAIRS))
    for verdict in (replica, asymmetry):
        assert verdict.passed, verdict.message
        assert "errors carried forward" in verdict.message


def test_without_the_function_the_same_wrong_numbers_fail():
    # The defence's counterpart: the numbers are wrong, and only the student's own function excuses them.
    swapped = _functions(SWAPPED)["kl_divergence"]
    right = _functions(SOLUTION)["kl_divergence"]
    verdict = judge_answers(AID, "test_asymmetry", code=SOLUTION, kl_divergence=right,
                            **_numbers_with(swapped, ASYMMETRY_PAIRS))
    assert not verdict.passed and "you computed KL(q‖p)" in verdict.message


def test_a_number_that_matches_neither_the_truth_nor_the_function_fails():
    swapped = _functions(SWAPPED)["kl_divergence"]
    numbers = _numbers_with(swapped, ASYMMETRY_PAIRS)
    numbers["kl_pq"] += 0.05
    verdict = judge_answers(AID, "test_asymmetry", code=SWAPPED, kl_divergence=swapped, earlier=KL_FAILED, **numbers)
    assert not verdict.passed and "kl_pq" in verdict.message


def test_right_numbers_pass_while_kl_divergence_is_still_blank():
    def blank(p, q):
        raise NotImplementedError

    right = _functions(SOLUTION)["kl_divergence"]
    verdict = judge_answers(AID, "test_asymmetry", code=SOLUTION, kl_divergence=blank,
                            **_numbers_with(right, ASYMMETRY_PAIRS))
    assert verdict.passed and "carried" not in verdict.message


def test_a_function_that_passed_its_test_cannot_excuse_made_up_numbers():
    # The attack: kl_divergence right on its own test's inputs, made up on the questions' pairs, and the
    # questions answered with the made-up numbers. It passes test_kl_divergence, so nothing is carried.
    right = _functions(SOLUTION)["kl_divergence"]
    def key(p, q):
        return np.asarray(p, dtype=float).tobytes(), np.asarray(q, dtype=float).tobytes()

    pairs = {key(p, q) for p, q in ASYMMETRY_PAIRS.values()}

    def forged(p, q):
        return 0.5 if key(p, q) in pairs else right(p, q)

    numbers = {name: 0.5 for name in ASYMMETRY_PAIRS}
    assert judge_answers(AID, "test_kl_divergence", code=SOLUTION, kl_divergence=forged).passed
    for earlier in ({"test_kl_divergence": True}, {}):
        verdict = judge_answers(AID, "test_asymmetry", code=SOLUTION, kl_divergence=forged, earlier=earlier,
                                **numbers)
        assert not verdict.passed, verdict.message
    # The same forgery is excused only where the function's own test failed (what carrying forward is for).
    assert judge_answers(AID, "test_asymmetry", code=SOLUTION, kl_divergence=forged, earlier=KL_FAILED,
                         **numbers).passed
