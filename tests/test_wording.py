"""The course's wording rules, for every notebook, judge message and answer key (cheap, no kernel):

* whenever a direction of the KL is named ("forward", "reverse"), both of its arguments are written
  in the same sentence (some tools name the two the other way round);
* the (z − v)/N logit-matching limit of high temperature is stated per example;
* a written-answer cell shows no stub text outside its solution.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from kdcourse import notebooks as nt
from kdcourse.grading.course import Course

COURSE = Course.from_repo()
NOTEBOOKS = nt.list_notebooks()
JUDGES = sorted((Path(__file__).resolve().parents[1] / "kdcourse" / "judge").glob("a0*.py"))
DIRECTION_WORD = re.compile(r"\b(forward|reverse)\b", re.IGNORECASE)
KL_WITH_ARGUMENTS = re.compile(r"KL\}?\\?\(|KL\(|\\\|")


def unnamed_directions(text: str) -> list[str]:
    """Sentences that say forward or reverse (outside code spans) without a KL with its arguments."""
    text = re.sub(r"`[^`]*`", "", text)
    text = re.sub(r"\bcarried\s+forward\b", "carried on", text)  # grading's "errors carried forward"
    return [s for s in re.split(r"(?<=[.;:?!])\s+|\n\s*[*\d]", text) if DIRECTION_WORD.search(s)
            and not KL_WITH_ARGUMENTS.search(s.replace(r"\mathrm{KL}", "KL"))]


def test_the_rule_can_fail():
    assert unnamed_directions("Use the reverse direction here.") == ["Use the reverse direction here."]
    assert unnamed_directions("The reverse KL(p_s‖p_t) seeks a mode.") == []
    assert unnamed_directions("Call `fit('reverse')` to see it.") == []
    assert unnamed_directions("Errors are carried forward.") == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_prose_writes_both_arguments_of_each_named_direction(path):
    for cell in nt.read_notebook(path).cells:
        if cell.cell_type == "markdown":
            assert unnamed_directions(cell.source) == [], path.name
        for line in cell.source.split("\n"):
            if "(z - v)/" in line or "(z − v)/" in line:
                assert "example" in line, f"{path.name}: the (z − v)/N limit holds per example: {line!r}"


@pytest.mark.parametrize("path", JUDGES, ids=lambda p: p.stem)
def test_judge_messages_write_both_arguments_of_each_named_direction(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    strings = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    prose = [s for s in strings if " " in s]  # identifiers such as "reverse" are not prose
    assert [s for s in prose if unnamed_directions(s)] == []


@pytest.mark.parametrize("aid", COURSE.assignments())
def test_answer_key_messages_write_both_arguments_of_each_named_direction(aid):
    reasons = [reason for answers in COURSE.spec(aid).keys.values() for entry in answers.values()
               for reason in entry.get("why_wrong", {}).values()]
    assert [r for r in reasons if unnamed_directions(r)] == []


@pytest.mark.parametrize("path", nt.list_assignments(), ids=lambda p: p.stem)
def test_written_answer_cells_have_no_stub_outside_the_solution(path):
    for graded in nt.graded_cells(nt.read_notebook(path)):
        if graded.cell.cell_type == "markdown" and graded.meta.get("solution"):
            text = graded.cell.source
            outside = text.split(nt.BEGIN_SOLUTION)[0] + text.split(nt.END_SOLUTION)[-1]
            assert "YOUR ANSWER HERE" not in outside, graded.grade_id
