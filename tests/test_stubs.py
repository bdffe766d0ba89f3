"""Release stubs name their exercise: ``raise NotImplementedError("write the body of kl_divergence ...")``."""

from __future__ import annotations

import copy

import nbformat
import pytest

from kdcourse import notebooks as nt
from kdcourse.grading.adapter.config import course_config, release_preprocessors
from kdcourse.grading.course import Course
from kdcourse.grading.stubs import NamedStubs, stub_for

COURSE = Course.from_repo()


def cleared(source: str, cell_type: str = "code") -> str:
    cell = (nbformat.v4.new_code_cell if cell_type == "code" else nbformat.v4.new_markdown_cell)(source)
    cell.metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": "x", "locked": False,
                                 "schema_version": 3, "task": False, "points": 0}
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb, _ = NamedStubs().preprocess(nb, {})
    return nb.cells[0].source


def test_a_function_stub_names_the_function():
    source = "def kl_divergence(p, q):\n    '''KL.'''\n    ### BEGIN SOLUTION\n    return 0.0\n    ### END SOLUTION\n"
    stub = cleared(source)
    assert 'raise NotImplementedError("write the body of kl_divergence here, in place of this line")' in stub
    assert "return 0.0" not in stub
    exec_namespace: dict = {}
    exec(stub, exec_namespace)  # noqa: S102 - the test's own source
    with pytest.raises(NotImplementedError, match="write the body of kl_divergence"):
        exec_namespace["kl_divergence"](1, 2)


def test_a_value_stub_names_every_placeholder():
    source = 'kl_A = kl_B = None\nbest = None   # "A" or "B"\n### BEGIN SOLUTION\nkl_A = 1.0\n### END SOLUTION\n'
    assert 'raise NotImplementedError("set kl_A, kl_B and best here, in place of this line")' in cleared(source)


def test_a_cell_with_a_function_and_values_gets_one_stub_each():
    source = ("def entropy(sigma):\n    ### BEGIN SOLUTION\n    return 1.0\n    ### END SOLUTION\n\n\n"
              "h = None\n### BEGIN SOLUTION\nh = entropy(1.0)\n### END SOLUTION\n")
    stub = cleared(source)
    assert "write the body of entropy" in stub and 'set h here' in stub
    assert stub.count("raise NotImplementedError") == 2


def test_without_a_name_the_stub_still_says_what_to_do():
    assert stub_for(["x = 1"], "") == 'raise NotImplementedError("write your answer here, in place of this line")'


def test_written_answers_keep_the_text_stub():
    assert cleared("### BEGIN SOLUTION\nBecause.\n### END SOLUTION", "markdown") == "YOUR ANSWER HERE"


@pytest.mark.parametrize("aid", COURSE.assignments())
def test_every_stub_of_the_course_names_its_exercise(aid):
    nb = copy.deepcopy(nt.read_notebook(COURSE.source_notebook(aid)))
    nb, _ = NamedStubs().preprocess(nb, {})
    stubs = [line.strip() for cell in nb.cells if cell.cell_type == "code"
             for line in cell.source.split("\n") if "NotImplementedError" in line]
    assert stubs, aid
    assert not [s for s in stubs if "write your answer here" in s or s == "raise NotImplementedError()"], stubs


def test_the_course_releases_with_the_named_stubs():
    config = course_config(COURSE)
    assert NamedStubs in config.GenerateAssignment.preprocessors
    assert NamedStubs in release_preprocessors()
    assert not [p for p in config.GenerateAssignment.preprocessors if p.__name__ == "ClearSolutions"]
