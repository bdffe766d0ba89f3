"""Tests of the a05 judge: right answers pass, each misconception is named, hidden inputs and keys are used.

An answer is notebook source: it is run into a namespace named ``__main__`` (as a notebook cell defines it),
probed as the grading kernel probes it, sent through JSON and judged with the instructor file's hidden inputs
and keys (``graded=False``: as the student's own kernel judges, visible inputs only, no keys).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kdcourse.judge import a05_distilling_language_models as judge_module

from fixtures.judging import course, judge_answers

AID = "a05_distilling_language_models"
ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks/assignments" / AID / f"{AID}.ipynb"
SPEC = course().spec(AID)
IMPORTS = "import numpy as np\nimport torch\n"
TEST_OF = {
    "token_kd_loss": "test_token_kd_loss",
    "next_token_loss": "test_next_token_loss",
    "jsd_loss": "test_jsd_loss",
    "reverse_on_teacher_samples_answer": "test_reverse_on_teacher_samples",
    "two_temperatures_answer": "test_two_temperatures",
}
FUNCTIONS = ("token_kd_loss", "next_token_loss", "jsd_loss")


def _solution_cells() -> dict[str, str]:
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    cells = {}
    for cell in nb["cells"]:
        meta = cell["metadata"].get("nbgrader", {})
        if meta.get("solution") and cell["cell_type"] == "code":
            cells[meta["grade_id"]] = re.sub(r"^[ \t]*### (BEGIN|END) SOLUTION\n?", "", "".join(cell["source"]),
                                             flags=re.M)
    return cells


SOLUTION = _solution_cells()


def notebook_source(**replace: str) -> str:
    return IMPORTS + "\n".join(dict(SOLUTION, **replace).values())


def verdict(grade_id: str, source: str, graded: bool = True):
    ns = {"__name__": "__main__"}
    exec(compile(source, "<notebook>", "exec"), ns)  # noqa: S102 - the test's own answer source
    items = {item.grade_id: item for item in judge_module.ITEMS}
    names = [a.name for a in items[grade_id].answers]
    return judge_answers(AID, grade_id, code=source, graded=graded, **{n: ns[n] for n in names})


def one_function(name: str, body: str, graded: bool = True):
    return verdict(TEST_OF[name], notebook_source(**{name: body}), graded)


def assert_wrong(result, message: str) -> None:
    assert not result.passed and not result.unanswered, result
    assert message in result.message, result.message


def test_every_answer_cell_has_its_test():
    assert set(SOLUTION) == set(TEST_OF)
    assert {item.grade_id for item in judge_module.ITEMS} == set(TEST_OF.values())


@pytest.mark.parametrize("graded", [False, True])
@pytest.mark.parametrize("grade_id", list(TEST_OF.values()))
def test_the_solution_passes(grade_id, graded):
    result = verdict(grade_id, notebook_source(), graded)
    assert result.passed, result.message


MISCONCEPTIONS = [m for m in SPEC.misconceptions if len(m.replace) == 1]


@pytest.mark.parametrize("misconception", MISCONCEPTIONS, ids=[m.name for m in MISCONCEPTIONS])
def test_each_misconception_gets_its_message(misconception):
    ((cell, source),) = misconception.replace.items()
    result = verdict(TEST_OF[cell], notebook_source(**{cell: source}))
    for expected in misconception.expected_messages:
        assert_wrong(result, expected)


def test_the_misconceptions_the_unit_names_are_declared():
    names = {m.name for m in MISCONCEPTIONS}
    assert len(names) == len(SPEC.misconceptions)
    assert {"token_loss_counts_padding", "token_loss_mean_over_vocabulary", "token_loss_sequence_sum",
            "token_loss_softmax_over_sequence", "token_loss_teacher_not_detached", "next_token_not_shifted",
            "reverse_kl_on_teacher_samples", "loss_temperature_is_sampling_temperature"} <= names


@pytest.mark.parametrize("constant", [0.0, 1.0])
@pytest.mark.parametrize("name", FUNCTIONS)
def test_constant_answers_fail(name, constant):
    args = {"token_kd_loss": "student_logits, teacher_logits, mask, T", "next_token_loss": "logits, tokens, mask",
            "jsd_loss": "student_logits, teacher_logits, mask, beta"}[name]
    body = f"def {name}({args}):\n    return torch.tensor({constant}, dtype=torch.float64, requires_grad=True)\n"
    assert_wrong(one_function(name, body), f"{name}(")  # a constant 0 JSD is named as the end-point mistake


@pytest.mark.parametrize("name", FUNCTIONS)
def test_an_unwritten_function_is_unanswered(name):
    result = one_function(name, f"def {name}(*args):\n    raise NotImplementedError('implement {name}')\n")
    assert result.unanswered and not result.passed, result


def test_the_course_library_may_not_do_the_exercise():
    body = ("from kdcourse.token_losses import token_distillation_loss\n"
            "def token_kd_loss(student_logits, teacher_logits, mask, T):\n"
            "    return token_distillation_loss(student_logits, teacher_logits, mask, temperature=T)\n")
    assert_wrong(one_function("token_kd_loss", body), "token_kd_loss calls")


def test_hidden_inputs_are_judged_only_when_graded():
    # right on the visible batch of 2 sequences, wrong on the hidden batch of 3
    body = ("def next_token_loss(logits, tokens, mask):\n"
            "    log_p = torch.log_softmax(logits[:, :-1], dim=-1)\n"
            "    nll = -log_p.gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)\n"
            "    loss = (nll * mask[:, 1:]).sum() / mask[:, 1:].sum()\n"
            "    return loss if logits.shape[0] == 2 else 2 * loss\n")
    assert one_function("next_token_loss", body, graded=False).passed
    assert_wrong(one_function("next_token_loss", body), "returned")


def test_a_choice_answer_is_checked_against_the_key_only_when_graded():
    wrong = notebook_source(reverse_on_teacher_samples_answer='reverse_on_teacher_samples = "c"\n')
    assert_wrong(verdict("test_reverse_on_teacher_samples", wrong), "unbiased for averages under the teacher")
    assert verdict("test_reverse_on_teacher_samples", wrong, graded=False).passed  # the key never leaves the grader
