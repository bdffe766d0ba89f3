"""The trusted half of grading: decides whether collected answers are right, outside the student's kernel.

A test cell in a student's kernel only collects answers (:mod:`kdcourse.answers`). This package, which
a grading kernel cannot import, turns the collected plain data into a :class:`Verdict` per test:

* each assignment has a judge module (``kdcourse.judge.<assignment>``, or the module its instructor
  file names) whose ``ITEMS`` describe its tests (:class:`~kdcourse.judge.items.Item`);
* :func:`plan_for` says what the kernel must collect: each answer's probe with its visible test inputs,
  plus the hidden ones from the instructor file when grading;
* :func:`judge_record` decides one test from the record the kernel published, the instructor's answer
  key, and the submission's code (checked as text, :mod:`kdcourse.judge.static`; parse it once per
  notebook with :class:`~kdcourse.judge.static.NotebookCode` and pass that to every test).

The same judge runs inside a student's own kernel on the visible tests, so what the student sees
while working and what the grader decides agree.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kdcourse.answers.plain import MalformedAnswer

from .items import Context, Item, decode_answers
from .static import NotebookCode, Uncheckable
from .verdict import Unanswered, Verdict, Wrong

__all__ = ["Verdict", "load_items", "plan_for", "judge_record", "RECORD_FORMAT"]

RECORD_FORMAT = 1


def _import(module_name: str, spec_dir: Path | None):
    """Import a judge module; a module file in the instructor files' folder wins over the package."""
    if spec_dir is not None:
        path = Path(spec_dir) / f"{module_name}.py"
        if path.is_file():
            spec = importlib.util.spec_from_file_location(f"kdcourse_judge_{module_name}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    return importlib.import_module(module_name)


def load_items(assignment: str, spec: Any = None, spec_dir: Path | None = None) -> dict[str, Item]:
    """``grade_id -> Item`` of an assignment's judge.

    Parameters
    ----------
    assignment : str
    spec : AssignmentSpec, optional
        Its instructor file; ``spec.judge`` names the module (default ``kdcourse.judge.<assignment>``).
    spec_dir : path, optional
        Where the instructor files live; a judge module file there is used first.
    """
    module_name = getattr(spec, "judge", "") or f"kdcourse.judge.{assignment}"
    module = _import(module_name, spec_dir)
    return {item.grade_id: item for item in module.ITEMS}


def plan_for(assignment: str, spec: Any = None, spec_dir: Path | None = None,
             items: Mapping[str, Item] | None = None) -> dict[str, dict[str, dict]]:
    """``grade_id -> answer name -> probe``: what the kernel collects for each test.

    Without ``spec`` only the visible inputs are planned (the student's own kernel); with it the hidden
    inputs of ``spec.cases`` follow the visible ones.
    """
    items = items if items is not None else load_items(assignment, spec, spec_dir)
    hidden = getattr(spec, "cases", {}) or {}
    return {grade_id: {a.name: a.plan(hidden.get(grade_id, {}).get(a.name)) for a in item.answers}
            for grade_id, item in items.items()}


def _malformed(reason: str) -> Verdict:
    return Verdict(False, f"the answers of this test could not be read ({reason}). Run the notebook from the "
                          "top (Kernel → Restart Kernel and Run All Cells) and submit it again.")


def judge_record(assignment: str, grade_id: str, record: Any, code: NotebookCode | Iterable[str] = (), spec: Any = None,
                 spec_dir: Path | None = None, earlier: Mapping[str, bool] | None = None,
                 items: Mapping[str, Item] | None = None) -> Verdict:
    """Decide one test from the record its cell published.

    Parameters
    ----------
    assignment, grade_id : str
        Which test.
    record : object
        The published record (plain data from the kernel; nothing in it is trusted), or ``None`` when
        the test cell published none.
    code : NotebookCode or iterable of str
        The submission's code, for the checks of what the answers call: a :class:`NotebookCode` built
        once for the notebook (the grader), or the cell sources (the student's kernel passes its history).
    spec : AssignmentSpec, optional
        The instructor file. With it the judge grades (hidden inputs, answer keys); without it only the
        visible tests run (the student's own kernel).
    spec_dir : path, optional
        Where a custom judge module may live.
    earlier : mapping, optional
        ``grade_id -> passed`` of the tests judged before, for carrying an earlier mistake forward.
    items : mapping, optional
        The assignment's items, when already loaded.

    Returns
    -------
    Verdict
    """
    items = items if items is not None else load_items(assignment, spec, spec_dir)
    item = items.get(grade_id)
    if item is None:
        return Verdict(False, f"the grader has no test named {grade_id!r}", review=f"no judge for {grade_id}")
    context = Context(assignment=assignment, grade_id=grade_id, full=spec is not None,
                      keys=(getattr(spec, "keys", {}) or {}).get(grade_id, {}),
                      code=code if isinstance(code, NotebookCode) else NotebookCode(code),
                      earlier=dict(earlier or {}))
    if record is None:
        return _missing_record(item, context)
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        return _malformed("unknown record format")
    if record.get("assignment") != assignment or record.get("item") != grade_id:
        return _malformed("the record belongs to another test")
    if "error" in record:
        return _malformed(f"this assignment has no test {grade_id!r}")
    plan = plan_for(assignment, spec, spec_dir, items)[grade_id]
    try:
        results = decode_answers(item, record.get("answers"), plan)
        if item.static is not None and not context.code.empty:
            item.static(context)
        message = item.judge(results, context)
    except Uncheckable as uncheckable:
        return _uncheckable(grade_id, uncheckable)
    except Wrong as wrong:
        return Verdict(False, str(wrong))
    except Unanswered as unanswered:
        return Verdict(False, str(unanswered), unanswered=True)
    except MalformedAnswer as malformed:
        return _malformed(str(malformed))
    except Exception as error:  # noqa: BLE001 - a judge that cannot decide asks a person, and never stops the run
        return Verdict(False, "the grader could not judge this test; your instructor will look at it",
                       review=f"the judge of {grade_id} failed: {type(error).__name__}: {error}")
    return Verdict(True, message or item.passed or f"{grade_id}: checks passed")


def _uncheckable(grade_id: str, uncheckable: Uncheckable) -> Verdict:
    """The code could not be checked: the test fails, and a person is asked to look."""
    return Verdict(False, str(uncheckable), review=f"the code of {grade_id} could not be checked: {uncheckable}")


def _missing_record(item: Item, context: Context) -> Verdict:
    """No answers were published: say why if the code shows it, else that the cell did not finish."""
    if item.static is not None and not context.code.empty:
        try:
            item.static(context)
        except Uncheckable as uncheckable:
            return _uncheckable(context.grade_id, uncheckable)
        except Wrong as wrong:
            return Verdict(False, str(wrong))
    return Verdict(False, "no answers were recorded for this test: the test cell stopped before its end "
                          "(an error above it, or in it, left an answer undefined). Run the notebook from the "
                          "top and fix the first error.")
