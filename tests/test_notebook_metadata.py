"""Lint of the committed notebooks (cheap, no kernel): clean, well-formed nbgrader metadata.

* no outputs and no execution counts in any notebook;
* python3 kernelspec;
* every nbgrader cell carries the full schema-v3 metadata with a readable, unique ``grade_id``;
* solution markers are balanced and sit in solution cells; no hidden-test blocks (hidden inputs and
  answer keys live in the instructor file, out of every kernel's reach);
* every test cell is one ``check("<its grade_id>", ...)`` call, and the assignment's judge has exactly
  one item per test cell;
* no test cell ends with an expression (nbgrader would take its value as the score);
* the points of each assignment equal ``grading/assignments/<aid>.toml``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

from kdcourse import notebooks as nt
from kdcourse.grading.course import Course

COURSE = Course.from_repo()
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
    """True when the cell's last top-level statement is an expression other than a print() or check() call."""
    lines = [line for line in source.split("\n") if not line.lstrip().startswith("%")]
    tree = ast.parse("\n".join(lines))
    if not tree.body:
        return False
    last = tree.body[-1]
    if not isinstance(last, ast.Expr):
        return False
    call = last.value
    # print() and check() return None, which IPython does not display: no value for nbgrader to take
    return not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in ("print", "check"))


def test_expression_rule_can_fail():
    assert _last_statement_is_expression("check(x)\n1.0")
    assert _last_statement_is_expression("len(x)")
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
    for graded_cell in nt.graded_cells(nb):
        index, cell, meta = graded_cell.index, graded_cell.cell, graded_cell.meta
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
        assert nt.BEGIN_HIDDEN not in source, (
            f"{where}: hidden-test blocks run inside the student's kernel; put hidden inputs and keys in the toml")
        if nt.BEGIN_SOLUTION in source:
            assert meta["solution"], f"{where}: solution markers in a cell that is not a solution cell"
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
            assert _check_call_id(source) == grade_id, (
                f"{where}: a test cell is one check({grade_id!r}, name=name, ...) call")
        if not meta["grade"] and not meta["task"]:
            assert meta.get("points", 0) == 0, f"{where}: a non-graded cell carries points"
    assert graded > 0, f"{path.name} has no test cells"
    setup = [g.meta for g in nt.graded_cells(nb) if g.grade_id == "setup"]
    assert setup and setup[0]["locked"], f"{path.name}: needs a locked setup cell with grade_id 'setup'"


def _check_call_id(source: str) -> str | None:
    """The grade_id of a test cell that is exactly one ``check("<id>", name=name, ...)`` call, else None."""
    body = ast.parse(source).body
    if len(body) != 1 or not isinstance(body[0], ast.Expr) or not isinstance(body[0].value, ast.Call):
        return None
    call = body[0].value
    if not (isinstance(call.func, ast.Name) and call.func.id == "check" and len(call.args) == 1
            and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)):
        return None
    if not all(isinstance(k.value, ast.Name) and k.value.id == k.arg for k in call.keywords):
        return None
    return call.args[0].value


def test_check_call_rule_can_fail():
    assert _check_call_id('check("t", f=f)') == "t"
    assert _check_call_id('check("t", f=g)') is None
    assert _check_call_id('check("t", f=f)\nprint(1)') is None


@pytest.mark.parametrize("path", ASSIGNMENTS, ids=lambda p: p.stem)
def test_the_judge_has_one_item_per_test_cell(path: Path):
    from kdcourse.judge import load_items

    aid = path.parent.name
    items = load_items(aid, COURSE.spec(aid), COURSE.spec_dir)
    tests = {g.grade_id: g.cell for g in nt.graded_cells(_read(path)) if g.is_test}
    assert set(items) == set(tests), f"{aid}: judge items {sorted(items)} vs test cells {sorted(tests)}"
    for grade_id, cell in tests.items():
        call = ast.parse(cell.source).body[0].value
        # Answers that only carry an earlier mistake forward are taken from the notebook's namespace.
        assert {k.arg for k in call.keywords} == {a.name for a in items[grade_id].answers if a.required}, grade_id


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
    solution_ids = {g.grade_id for g in nt.graded_cells(nb) if g.meta["solution"]}
    for item in spec.misconceptions:
        assert item.description and item.expected_messages, item.name
        assert 0 <= item.expected_score < spec.auto_points, f"{item.name}: a misconception must lose points"
        assert set(item.replace) <= solution_ids, f"{item.name}: replaces unknown cells"
        for source in item.replace.values():
            ast.parse(source)
