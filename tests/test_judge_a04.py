"""Tests of the a04 judge: right answers pass, each misconception is named, keys and hidden inputs are used.

Every answer is written as notebook source, run into a namespace named ``__main__`` (as a notebook cell
would define it), probed as the grading kernel probes it and judged with the instructor file's hidden
inputs and keys (``graded=False``: as the student's own kernel judges, visible inputs only, no keys).
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest
import tomllib
import torch

from kdcourse.judge import a04_dissimilarity_and_reverse_kl as judge_module

from fixtures.judging import judge_answers

AID = "a04_dissimilarity_and_reverse_kl"
ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "grading/assignments" / f"{AID}.toml"
NOTEBOOK = ROOT / "notebooks/assignments" / AID / f"{AID}.ipynb"


def define(source: str, name: str):
    """The function ``name`` defined by running ``source`` as a notebook cell."""
    namespace = {"__name__": "__main__"}
    exec(source, namespace)  # noqa: S102 - the test's own answer source
    return namespace[name]


def verdict(grade_id: str, name: str, source: str, graded: bool = True):
    """The verdict on the function ``name`` defined by ``source``."""
    return judge_answers(AID, grade_id, code=source, graded=graded, **{name: define(source, name)})


def values(grade_id: str, graded: bool = True, **answers):
    """The verdict on answer variables (no code to read)."""
    return judge_answers(AID, grade_id, graded=graded, **answers)


def assert_wrong(result, message: str) -> None:
    assert not result.passed and not result.unanswered, result
    assert message in result.message, result.message


# --- agreement and copied teacher errors ----------------------------------------------------------------

AGREEMENT = '''
import numpy as np

def agreement(student_pred, teacher_pred):
    return float(np.mean(np.asarray(student_pred) == np.asarray(teacher_pred)))
'''
SHARE_COPIED = '''
import numpy as np

def share_of_teacher_errors_copied(student_pred, teacher_pred, labels):
    s, t, y = np.asarray(student_pred), np.asarray(teacher_pred), np.asarray(labels)
    wrong = t != y
    return float(np.mean(s[wrong] == t[wrong]))
'''


@pytest.mark.parametrize("graded", [False, True])
def test_agreement_and_copied_share_pass(graded):
    assert verdict("test_agreement", "agreement", AGREEMENT, graded).passed
    result = verdict("test_share_of_teacher_errors_copied", "share_of_teacher_errors_copied", SHARE_COPIED, graded)
    assert result.passed, result.message


def test_a_float32_rate_is_a_right_answer():
    source = "def agreement(student_pred, teacher_pred):\n    return (student_pred == teacher_pred).float().mean()\n"
    # Right on the tensor cases (a one-element float32 tensor counts as a float), so only the numpy cases fail.
    assert_wrong(verdict("test_agreement", "agreement", source, graded=False),
                 "agreement raised AttributeError: 'numpy.ndarray' object has no attribute 'float'")
    source = ("import torch\n\ndef agreement(student_pred, teacher_pred):\n"
              "    return (torch.as_tensor(student_pred) == torch.as_tensor(teacher_pred)).float().mean().item()\n")
    assert verdict("test_agreement", "agreement", source).passed


def test_agreement_is_called_with_tensors_and_with_arrays():
    only_tensors = '''
import torch

def agreement(student_pred, teacher_pred):
    return (student_pred == teacher_pred).float().mean().item()
'''
    assert_wrong(verdict("test_agreement", "agreement", only_tensors, graded=False), "agreement raised AttributeError")


@pytest.mark.parametrize("body, message", [
    ("return float(np.sum(np.asarray(s) == np.asarray(t)))", "agreement returned a count"),
    ("return float(np.mean(np.asarray(s) != np.asarray(t)))", "agreement returned the disagreement rate"),
    ("return 0.7", "agreement([3, 3, 3], [1, 2, 0]) returned 0.7, expected 0.0"),
    ("return 'high'", "agreement(...) should be a float, got a string"),
    ("return True", "agreement(...) should be a float, got a bool"),
])
def test_agreement_mistakes_are_named(body, message):
    source = f"import numpy as np\n\ndef agreement(s, t):\n    {body}\n"
    assert_wrong(verdict("test_agreement", "agreement", source, graded=False), message)


def test_a_hidden_agreement_case_is_judged_only_when_graded():
    # Right on the visible pairs (lengths 10 and 3), wrong on the hidden pair of length 2.
    source = AGREEMENT.replace("return float", "return 0.5 if len(student_pred) == 2 else float")
    assert verdict("test_agreement", "agreement", source, graded=False).passed
    assert_wrong(verdict("test_agreement", "agreement", source), "agreement([5, 5], [5, 5]) returned 0.5 on a hidden test input (its expected value is not shown)")


@pytest.mark.parametrize("body, message", [
    ("return float(np.mean((s == t) & (t != y)))", "you divided by all examples"),
    ("return float(np.mean(s[t != y] != y[t != y]))", "the teacher's *same* wrong class"),
    ("return float(np.mean(s[t == y] == t[t == y]))", "you looked at the examples the teacher gets right"),
    ("return float(np.mean(s == t))", "that is the overall agreement"),
])
def test_copied_share_mistakes_are_named(body, message):
    source = ("import numpy as np\n\ndef share_of_teacher_errors_copied(s, t, y):\n"
              f"    s, t, y = np.asarray(s), np.asarray(t), np.asarray(y)\n    {body}\n")
    result = verdict("test_share_of_teacher_errors_copied", "share_of_teacher_errors_copied", source, graded=False)
    assert_wrong(result, message)
    assert result.message.startswith("share_of_teacher_errors_copied returned ")


def test_unwritten_functions_are_unanswered():
    source = "def agreement(student_pred, teacher_pred):\n    raise NotImplementedError()\n"
    result = verdict("test_agreement", "agreement", source)
    assert result.unanswered and "agreement is not written yet" in result.message
    result = values("test_share_of_teacher_errors_copied", share_of_teacher_errors_copied=None)
    assert result.unanswered and "still None" in result.message


# --- scenario C -----------------------------------------------------------------------------------------


def test_scenario_numbers_are_the_trusted_measures():
    numbers = judge_module.scenario_numbers([0, 1, 2, 2], [0, 1, 1, 2], [0, 1, 1, 1], [0, 1, 2, 2])
    assert numbers["accuracy_before"] == 1.0 and numbers["accuracy_after"] == 0.75
    assert numbers["copied_before"] == 0.0 and numbers["copied_after"] == 0.5
    assert numbers["agreement_after"] == 0.75


# What a rerun of scenario C gives on the CPU with one torch thread (the notebook's numbers; the same values
# kdcourse/checks/a04.py recorded before the port).
SCENARIO_C = {"accuracy_before": 0.8277777777777777, "accuracy_after": 0.7444444444444445,
              "copied_before": 0.1328125, "copied_after": 0.375}


@pytest.fixture
def known_rerun(monkeypatch):
    """The judge's rerun replaced by its recorded result (the rerun itself is tested below, slowly)."""
    monkeypatch.setattr(judge_module, "scenario_c_expected", lambda: dict(SCENARIO_C))


def test_scenario_c_visible_judging_checks_only_the_format(known_rerun):
    result = values("test_scenario_c_numbers", graded=False, **{**SCENARIO_C, "accuracy_after": 0.5})
    assert result.passed and "answers recorded" in result.message
    assert_wrong(values("test_scenario_c_numbers", graded=False, **{**SCENARIO_C, "copied_after": 1.5}),
                 "copied_after = 1.5 is not a fraction in [0, 1]")
    assert_wrong(values("test_scenario_c_numbers", graded=False, **{**SCENARIO_C, "copied_after": "0.4"}),
                 "copied_after should be a float, got a string")
    result = values("test_scenario_c_numbers", graded=False, **{**SCENARIO_C, "copied_before": None})
    assert result.unanswered and "copied_before is still None" in result.message


def test_scenario_c_graded_judging_compares_with_the_rerun(known_rerun):
    result = values("test_scenario_c_numbers", **SCENARIO_C)
    assert result.passed and "accuracy 0.828 → 0.744" in result.message
    # The accuracy of a student measured against the teacher's predictions instead of the labels.
    assert_wrong(values("test_scenario_c_numbers", **{**SCENARIO_C, "accuracy_after": 0.7111111111111111}),
                 "accuracy_after = 0.7111 is not right: accuracy compares with the true labels")
    assert_wrong(values("test_scenario_c_numbers", **{**SCENARIO_C, "copied_after": 0.1328125}),
                 "copied_after = 0.1328 is not right")
    assert values("test_scenario_c_numbers", **{**SCENARIO_C, "copied_after": torch.tensor(0.375)}).passed


def test_a_kernel_on_an_accelerator_gets_a_tolerance(known_rerun, monkeypatch):
    off_by_one_example = {**SCENARIO_C, "accuracy_after": SCENARIO_C["accuracy_after"] + 1 / 360}
    assert not values("test_scenario_c_numbers", **off_by_one_example).passed
    monkeypatch.setenv("KDCOURSE_DEVICE", "cuda")
    assert values("test_scenario_c_numbers", **off_by_one_example).passed


@pytest.mark.slow
def test_the_rerun_reproduces_scenario_c_and_leaves_the_random_state_alone():
    judge_module.scenario_c_expected.cache_clear()
    threads = torch.get_num_threads()
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    expected = judge_module.scenario_c_expected()
    after_rerun = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == after_rerun
    assert torch.get_num_threads() == threads
    assert {name: expected[name] for name in SCENARIO_C} == SCENARIO_C
    assert values("test_scenario_c_numbers", **SCENARIO_C).passed
    assert judge_module.scenario_c_expected() is expected  # cached: one rerun per process


# --- the reverse KL(p_s‖p_t) ------------------------------------------------------------------------------

REVERSE = '''
import torch

def reverse_distillation_loss(student_logits, teacher_logits, T):
    log_s = torch.log_softmax(student_logits / T, dim=-1)
    log_t = torch.log_softmax(teacher_logits / T, dim=-1)
    return T**2 * (log_s.exp() * (log_s - log_t)).sum(dim=-1).mean()
'''


def reverse_source(body: str, imports: str = "import torch") -> str:
    return f'''
{imports}

def reverse_distillation_loss(z, v, T):
    log_s, log_t = torch.log_softmax(z / T, dim=-1), torch.log_softmax(v / T, dim=-1)
    {body}
'''


def judge_reverse(source: str, graded: bool = True):
    return verdict("test_reverse_distillation_loss", "reverse_distillation_loss", source, graded)


@pytest.mark.parametrize("graded", [False, True])
def test_reverse_loss_passes(graded):
    result = judge_reverse(REVERSE, graded)
    assert result.passed, result.message


@pytest.mark.parametrize("body, message", [
    ("return T**2 * (log_t.exp() * (log_t - log_s)).sum(dim=-1).mean()", "swapped arguments"),
    ("return (log_s.exp() * (log_s - log_t)).sum(dim=-1).mean()", "T² factor missing"),
    ("return T**4 * (log_s.exp() * (log_s - log_t)).sum(dim=-1).mean()", "T² is applied twice"),
    ("return T**2 * (log_s.exp() * (log_s - log_t)).mean()", "averaged over classes"),
    ("return T**2 * (log_s.exp() * (log_s - log_t)).sum()", "summed over the batch"),
    ("return T * (log_s.exp() * (log_s - log_t)).sum(dim=-1).mean()", "only one factor of T"),
    ("return T**2 * (log_s.exp() * (log_s - log_t)).sum(dim=-1)", "should return a scalar (the batch mean)"),
    ("return float(T**2 * (log_s.exp() * (log_s - log_t)).sum(dim=-1).mean())", "should return a torch tensor"),
    ("return (T**2 * (log_s.exp() * (log_s - log_t)).sum(dim=-1).mean()).detach()", "the loss has no gradient"),
    ("return T**2 * (log_s.exp() * (log_s - log_t.detach())).sum(dim=-1).mean()", None),
])
def test_reverse_loss_mistakes_are_named(body, message):
    result = judge_reverse(reverse_source(body), graded=False)
    if message is None:  # detaching only the teacher's side changes nothing
        assert result.passed, result.message
    else:
        assert_wrong(result, message)


def test_a_detached_student_distribution_gives_a_wrong_gradient():
    body = "p = log_s.exp().detach()\n    return T**2 * (p * (log_s - log_t)).sum(dim=-1).mean()"
    assert_wrong(judge_reverse(reverse_source(body), graded=False),
                 "the gradient with respect to the student's logits is not")


@pytest.mark.parametrize("source", [
    reverse_source("return T**2 * F.kl_div(log_t, log_s, reduction='batchmean', log_target=True)",
                   "import torch\nimport torch.nn.functional as F"),
    reverse_source("return kdcourse.distillation_loss(z, v, T, direction='reverse')", "import torch\nimport kdcourse"),
])
def test_a_library_loss_is_refused(source):
    assert_wrong(judge_reverse(source, graded=False), "this exercise asks you to write the formula yourself")
    assert_wrong(judge_reverse(source), "reverse_distillation_loss calls")


def test_logs_of_probabilities_give_nan_at_saturated_logits_only_in_the_hidden_cases():
    from_probabilities = reverse_source(
        "p, q = torch.softmax(z / T, dim=-1), torch.softmax(v / T, dim=-1)\n"
        "    return T**2 * (p * (p.log() - q.log())).sum(dim=-1).mean()")
    assert judge_reverse(from_probabilities, graded=False).passed
    assert_wrong(judge_reverse(from_probabilities), "reverse_distillation_loss returned NaN")


def test_xlogy_is_allowed_but_its_nan_gradient_at_saturated_logits_is_named():
    assert "xlogy" not in judge_module.BANNED_LOSS_NAMES
    xlogy = reverse_source("p = log_s.exp()\n    return T**2 * (torch.xlogy(p, p) - p * log_t).sum(dim=-1).mean()")
    assert judge_reverse(xlogy, graded=False).passed
    assert_wrong(judge_reverse(xlogy), "the gradient with respect to the student's logits contains NaN")
    clamped = xlogy.replace("torch.xlogy(p, p)", "torch.xlogy(p, p.clamp_min(1e-300))")
    result = judge_reverse(clamped)
    assert result.passed, result.message


def test_an_unwritten_reverse_loss_is_unanswered():
    source = "def reverse_distillation_loss(student_logits, teacher_logits, T):\n    raise NotImplementedError()\n"
    assert judge_reverse(source).unanswered


# --- Gaussian entropy, the fits and the choices -----------------------------------------------------------

ENTROPY = "import math\n\ndef gaussian_entropy(sigma):\n    return {}\n"


@pytest.mark.parametrize("graded", [False, True])
def test_gaussian_entropy_passes(graded):
    source = ENTROPY.format("0.5 * math.log(2 * math.pi * math.e * sigma**2)")
    assert verdict("test_gaussian_entropy", "gaussian_entropy", source, graded).passed


@pytest.mark.parametrize("expression, message", [
    ("0.5 * math.log2(2 * math.pi * math.e * sigma**2)", "log base 2"),
    ("math.log(2 * math.pi * math.e * sigma**2)", "the factor 1/2 is missing"),
    ("0.5 * math.log(2 * math.pi * math.e * sigma)", "the variance σ²"),
    ("0.5 * math.log(2 * math.pi * sigma**2)", "the e inside the log is missing"),
    ("'nats'", "gaussian_entropy(1.0) should be a float, got a string"),
])
def test_gaussian_entropy_mistakes_are_named(expression, message):
    source = ENTROPY.format(expression)
    assert_wrong(verdict("test_gaussian_entropy", "gaussian_entropy", source, graded=False), message)


def test_a_hidden_entropy_case_is_judged_only_when_graded():
    source = ENTROPY.format("0.5 * math.log(2 * math.pi * math.e * sigma**2) if sigma != 3.0 else 2.5")
    assert verdict("test_gaussian_entropy", "gaussian_entropy", source, graded=False).passed
    assert_wrong(verdict("test_gaussian_entropy", "gaussian_entropy", source), "gaussian_entropy(3.0) returned 2.5")


def test_fit_entropies_are_judged_against_the_fits():
    right = {"entropy_forward": 2.1232, "entropy_reverse": 0.7264}
    assert values("test_fit_entropies", **right).passed
    assert values("test_fit_entropies", graded=False, entropy_forward=0.73, entropy_reverse=2.12).passed
    assert_wrong(values("test_fit_entropies", entropy_forward=0.73, entropy_reverse=0.7264),
                 "entropy_forward = 0.73 is not right: the KL(p‖q) fit has sigma ≈ 2.02, so its entropy is "
                 "about 2.12 nats")
    assert_wrong(values("test_fit_entropies", entropy_forward=2.1232, entropy_reverse=2.1232),
                 "the KL(q‖p) fit has sigma ≈ 0.50, so its entropy is about 0.73 nats")
    assert_wrong(values("test_fit_entropies", entropy_forward="2.12", entropy_reverse=0.7264),
                 "entropy_forward should be a float, got a string")
    result = values("test_fit_entropies", graded=False, entropy_forward=None, entropy_reverse=0.7)
    assert result.unanswered and "use gaussian_entropy on the sigma of the KL(p‖q) fit" in result.message


FIT_READINGS = {"mode_seeking_fit": "reverse", "forward_class_argmax": 4, "why_forward_score_is_large": "A"}


def test_fit_readings_are_judged_with_the_key_and_the_fits():
    assert values("test_fit_readings", **FIT_READINGS).passed
    assert values("test_fit_readings", **{**FIT_READINGS, "forward_class_argmax": np.int64(4)}).passed
    assert_wrong(values("test_fit_readings", **{**FIT_READINGS, "mode_seeking_fit": "forward"}),
                 "the reverse KL(p_θ‖p_t) is mass-covering")
    assert_wrong(values("test_fit_readings", **{**FIT_READINGS, "forward_class_argmax": 2}),
                 "forward_class_argmax = 2 is not right: the KL(p‖q) fit covers both modes")
    assert_wrong(values("test_fit_readings", **{**FIT_READINGS, "why_forward_score_is_large": "B"}),
                 "not the best answer. The KL(q‖p) fit is narrower")
    assert_wrong(values("test_fit_readings", **{**FIT_READINGS, "mode_seeking_fit": "backward"}),
                 "mode_seeking_fit should be one of 'forward', 'reverse'")
    result = values("test_fit_readings", **{**FIT_READINGS, "forward_class_argmax": None})
    assert result.unanswered and "read it from class_fits['forward'] (the KL(p‖q) fit)" in result.message


CHOICES = [("test_falling_score_meaning", "falling_score_meaning", "C", "A", "falling KL means higher accuracy"),
           ("test_falling_score_meaning", "falling_score_meaning", "C", "B",
            "falling KL means the student beats the teacher"),
           ("test_reverse_kl_behaviour", "reverse_kl_behaviour", "C", "A",
            "the reverse KL(p_θ‖p_t) is the same loss as KL(p_t‖p_θ)"),
           ("test_reverse_kl_behaviour", "reverse_kl_behaviour", "C", "B",
            "the reverse KL(p_θ‖p_t) is mass-covering"),
           ("test_directions_agree", "directions_agree", "A", "C", "whether the student can represent the teacher")]


@pytest.mark.parametrize("grade_id, name, right, wrong, message", CHOICES)
def test_choices_are_marked_with_the_key_only_when_graded(grade_id, name, right, wrong, message):
    assert values(grade_id, **{name: right}).passed
    assert_wrong(values(grade_id, **{name: wrong}), f"{name} = {wrong!r} is not the best answer. ")
    assert message in values(grade_id, **{name: wrong}).message
    visible = values(grade_id, graded=False, **{name: wrong})
    assert visible.passed and visible.message == f"{name}: answer recorded"
    assert_wrong(values(grade_id, graded=False, **{name: "c"}), f"{name} should be one of")
    result = values(grade_id, graded=False, **{name: None})
    assert result.unanswered and "set it to one of the letters" in result.message


def test_visible_judging_reveals_no_key():
    """Every option gets the same message in the student's own kernel; the key is only in the instructor file."""
    for grade_id, name, options in [("test_falling_score_meaning", "falling_score_meaning", "ABCD"),
                                    ("test_reverse_kl_behaviour", "reverse_kl_behaviour", "ABCD"),
                                    ("test_directions_agree", "directions_agree", "ABCD")]:
        messages = {values(grade_id, graded=False, **{name: option}).message for option in options}
        assert messages == {f"{name}: answer recorded"}
    readings = {values("test_fit_readings", graded=False, mode_seeking_fit=mode, forward_class_argmax=argmax,
                       why_forward_score_is_large=why).message
                for mode in ("forward", "reverse") for argmax in (2, 4) for why in "AD"}
    assert readings == {"fit readings: answers recorded"}
    spec = tomllib.loads(SPEC.read_text(encoding="utf-8"))
    source = Path(judge_module.__file__).read_text(encoding="utf-8")
    for answers in spec["key"].values():
        for entry in answers.values():
            for reason in entry["why_wrong"].values():
                assert reason[:60] not in source


def test_a_missing_key_sends_the_test_to_a_person():
    from kdcourse.judge import judge_record

    from fixtures import judging

    spec, items, _ = judging._grading(AID)
    without_key = dataclasses.replace(spec, keys={**spec.keys, "test_directions_agree": {}})
    record = judging.record_of(AID, "test_directions_agree", {"directions_agree": "B"})
    result = judge_record(AID, "test_directions_agree", record, spec=without_key, items=items)
    assert not result.passed and "no [key.test_directions_agree.directions_agree]" in result.review


# --- narrow and wide students (Exercises 2.7 and 2.8) -----------------------------------------------------------

RECORDED_GAPS = {4: {"entropy": 0.14887, "agreement": 0.07167, "accuracy": 0.07111},
                 64: {"entropy": -0.00888, "agreement": 0.00111, "accuracy": 0.00222}}


@pytest.fixture
def recorded_gaps(monkeypatch):
    """The judge's rerun replaced by fixed gaps (the rerun itself is tested below)."""
    monkeypatch.setattr(judge_module, "width_gaps", lambda: RECORDED_GAPS)


def gaps(narrow, wide, graded: bool = True):
    return judge_answers(AID, "test_entropy_gaps", graded=graded, entropy_gap_narrow=narrow, entropy_gap_wide=wide)


@pytest.mark.usefixtures("recorded_gaps")
def test_the_entropy_gaps_are_judged_against_the_rerun():
    assert gaps(0.14887, -0.00888).passed
    assert gaps(0.1489, -0.0089).passed  # typed from four printed decimals
    assert_wrong(gaps(-0.14887, -0.00888), "the sign is flipped")
    assert_wrong(gaps(-0.00888, 0.14887), "this is the gap of the 64-unit student")
    assert_wrong(gaps(0.07167, -0.00888), "this is the difference in agreement")
    assert_wrong(gaps(0.14887, 0.3), "entropy_gap_wide = 0.3000 is not the mean")
    assert_wrong(gaps([0.1, 0.2], -0.00888), "should be a number")
    assert gaps(None, -0.00888).unanswered


def test_the_student_kernel_records_the_gaps_without_judging_them():
    result = gaps(1.0, 2.0, graded=False)
    assert result.passed and result.message == "entropy gaps: answers recorded"


def test_the_wide_student_prediction_is_marked_with_its_key():
    def predict(answer):
        return judge_answers(AID, "test_wide_student_gap", wide_student_gap=answer)

    assert predict("B").passed
    assert_wrong(predict("A"), "unable to copy the teacher")
    assert_wrong(predict("D"), "not large and negative")


@pytest.mark.slow
def test_the_width_rerun_gives_the_gaps_the_notebook_prints():
    threads = torch.get_num_threads()
    measured = judge_module.width_gaps()
    assert torch.get_num_threads() == threads
    for width, scores in RECORDED_GAPS.items():
        for score, value in scores.items():
            assert measured[width][score] == pytest.approx(value, abs=5e-4), (width, score)
