"""Copy a submission into the grading work area, so grading never touches the student's files.

``submitted/<student>/<assignment>/`` is copied to ``staged/<student>/<assignment>/``; nbgrader grades
the copy. On the way, problems nbgrader would choke on are dealt with by the documented policy
(see ``kdcourse.grading.policy``):

* a notebook that is not valid JSON / nbformat is left out of the copy (nbgrader then scores it 0) and
  the submission is flagged with the reason;
* a missing notebook with exactly one unexpected ``.ipynb`` beside it is treated as renamed: the copy
  gets the expected name, and a note says so;
* a missing notebook otherwise is flagged (nbgrader scores it 0).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .course import Course

STAGING_DIR = "staged"


@dataclass
class StagedSubmission:
    student: str
    assignment: str
    folder: Path
    notes: list[str] = field(default_factory=list)     # handled, graded anyway (e.g. renamed)
    problems: list[str] = field(default_factory=list)  # scored 0 by policy and flagged for review


def check_notebook(path: Path) -> str | None:
    """None if ``path`` is a readable, valid notebook, else the reason it is not."""
    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as exc:  # nbformat raises several kinds (NotJSONError, ValueError, KeyError...)
        kind = "not valid JSON" if "JSON" in type(exc).__name__ + str(exc)[:80] else type(exc).__name__
        return f"{path.name} is not a valid notebook ({kind})"
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        return f"{path.name} does not follow the notebook format ({str(exc).splitlines()[0][:120]})"
    return None


def stage(course: Course, student: str, assignment: str, notebooks: list[str]) -> StagedSubmission:
    """Copy the submission to the work area and apply the renamed/invalid/missing notebook policy.

    ``notebooks``: the notebook names the assignment expects (e.g. ``["a01_kl_divergence.ipynb"]``).
    """
    source = course.folder("submitted", student, assignment)
    target = course.root / STAGING_DIR / student / assignment
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target, symlinks=False)
    staged = StagedSubmission(student, assignment, target)

    present = {p.name for p in target.glob("*.ipynb")}
    missing = [n for n in notebooks if n not in present]
    extra = sorted(present - set(notebooks))
    if len(missing) == 1 and len(extra) == 1:
        (target / extra[0]).rename(target / missing[0])
        staged.notes.append(f"notebook renamed: graded {extra[0]!r} as {missing[0]!r}")
        missing = []
    for name in missing:
        staged.problems.append(f"{name} is missing from the submission"
                               + (f" (found {', '.join(extra)})" if extra else ""))
    for name in notebooks:
        path = target / name
        if path.exists():
            reason = check_notebook(path)
            if reason:
                path.unlink()
                staged.problems.append(reason)
    return staged
