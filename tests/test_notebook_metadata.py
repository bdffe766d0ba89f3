"""Lint of the committed notebooks (cheap, no kernel): clean, well-formed nbgrader metadata.

* no outputs and no execution counts in any notebook;
* python3 kernelspec;
* every nbgrader cell carries the full schema-v3 metadata with a readable, unique ``grade_id``;
* solution and hidden-test markers are balanced and sit in the right kind of cell;
* no test cell ends with an expression (nbgrader would take its value as the score);
* the points of each assignment equal ``grading/assignments/<aid>.toml``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

from kdcourse import notebook_tools as nt
from kdcourse.grading.course import Course

COURSE = Course.from_repo(nt.REPO_ROOT)
NOTEBOOKS = nt.list_notebooks()
ASSIGNMENTS = nt.list_assignments()
SCHEMA_KEYS = {"schema_version", "grade", "locked", "solution", "task", "points", "grade_id"}
GRADE_ID = re.compile(r"^[A-Za-z0-9_-]+$")


def _read(path: Path):
    return nbformat.read(str(path), as_version=4)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean(path: Path):
    nb = _read(path)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernelspec must be python3"
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.get("outputs") == [], f"{path.name} cell {index} has outputs"
            assert cell.get("execution_count") is None, f"{path.name} cell {index} has an execution count"


def _last_statement_is_expression(source: str) -> bool:
    """True when the cell's last top-level statement is an expression other than a print() call."""
    lines = [line for line in source.split("\n") if not line.lstrip().startswith("%")]
    tree = ast.parse("\n".join(lines))
    if not tree.body:
        return False
    last = tree.body[-1]
    if not isinstance(last, ast.Expr):
        return False
    call = last.value
    return not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "print")


def test_expression_rule_can_fail():
    assert _last_statement_is_expression("check(x)\n1.0")
    assert _last_statement_is_expression("x = 1\nx")
    assert not _last_statement_is_expression("check(x)\nprint('ok')")
    assert not _last_statement_is_expression("y = check(x)")


def _marker_balance(source: str, begin: str, end: str) -> bool:
    depth = 0
    for line in source.split("\n"):
        if begin in line:
            depth += 1
            if depth > 1:
                return False
        elif end in line:
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


@pytest.mark.parametrize("path", ASSIGNMENTS, ids=lambda p: p.stem)
def test_nbgrader_metadata(path: Path):
    nb = _read(path)
    seen: set[str] = set()
    graded = 0
    for index, cell, meta in nt.nbgrader_cells(nb):
        where = f"{path.name} cell {index}"
        assert set(meta) >= SCHEMA_KEYS, f"{where}: nbgrader metadata lacks {sorted(SCHEMA_KEYS - set(meta))}"
        assert meta["schema_version"] == 3, f"{where}: schema_version must be 3"
        grade_id = meta["grade_id"]
        assert GRADE_ID.match(grade_id), f"{where}: grade_id {grade_id!r} must match [A-Za-z0-9_-]+"
        assert not re.match(r"^cell-[0-9a-f]+$", grade_id), f"{where}: grade_id {grade_id!r} is not readable"
        assert grade_id not in seen, f"{where}: duplicate grade_id {grade_id!r}"
        seen.add(grade_id)
        source = cell.source
        assert _marker_balance(source, nt.BEGIN_SOLUTION, nt.END_SOLUTION), f"{where}: unbalanced solution markers"
        assert _marker_balance(source, nt.BEGIN_HIDDEN, nt.END_HIDDEN), f"{where}: unbalanced hidden-test markers"
        if nt.BEGIN_SOLUTION in source:
            assert meta["solution"], f"{where}: solution markers in a cell that is not a solution cell"
        if nt.BEGIN_HIDDEN in source:
            assert meta["grade"] and not meta["solution"], f"{where}: hidden tests outside a test cell"
        if meta["solution"]:
            assert nt.BEGIN_SOLUTION in source, f"{where}: solution cell {grade_id!r} has no solution markers"
            assert not meta["locked"], f"{where}: a solution cell must not be locked"
        if meta["grade"] and not meta["solution"]:
            graded += 1
            assert cell.cell_type == "code" and meta["locked"], f"{where}: test cells are locked code cells"
            assert meta["points"] > 0, f"{where}: test cell {grade_id!r} has no points"
            assert not _last_statement_is_expression(source), (
                f"{where}: test cell {grade_id!r} ends with an expression; nbgrader would use its value as the score"
            )
        if not meta["grade"] and not meta["task"]:
            assert meta.get("points", 0) == 0, f"{where}: a non-graded cell carries points"
    assert graded > 0, f"{path.name} has no test cells"
    setup = [m for _, c, m in nt.nbgrader_cells(nb) if m["grade_id"] == "setup"]
    assert setup and setup[0]["locked"], f"{path.name}: needs a locked setup cell with grade_id 'setup'"


@pytest.mark.parametrize("path", ASSIGNMENTS, ids=lambda p: p.stem)
def test_points_match_instructor_file(path: Path):
    spec = COURSE.spec(path.parent.name)
    assert spec.notebook == path.name
    total, manual = nt.notebook_points(_read(path))
    assert total == spec.points, f"{path.name}: cells give {total} points, the toml declares {spec.points}"
    assert manual == spec.manual_points, (
        f"{path.name}: manually graded cells give {manual} points, the toml declares {spec.manual_points}"
    )
    assert 0 < spec.budget_s <= 30


@pytest.mark.parametrize("path", ASSIGNMENTS, ids=lambda p: p.stem)
def test_misconceptions_are_well_formed(path: Path):
    spec = COURSE.spec(path.parent.name)
    nb = _read(path)
    solution_ids = {m["grade_id"] for _, _, m in nt.nbgrader_cells(nb) if m["solution"]}
    for item in spec.misconceptions:
        assert item.description and item.expected_messages, item.name
        assert 0 <= item.expected_score < spec.auto_points, f"{item.name}: a misconception must lose points"
        assert set(item.replace) <= solution_ids, f"{item.name}: replaces unknown cells"
        for source in item.replace.values():
            ast.parse(source)
