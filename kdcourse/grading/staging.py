"""Copy a submission into the grading work area, so grading never touches the student's files.

``submitted/<student>/<assignment>/`` is copied to ``staged/<student>/<assignment>/``; nbgrader grades
the copy. Only regular notebook files (and ``timestamp.txt``) are copied; symbolic links and other
files are left behind. On the way, problems nbgrader would choke on are dealt with by the documented
policy (see :mod:`kdcourse.grading.status`):

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

from .course import Course, Submission

__all__ = ["STAGING_DIR", "StagedSubmission", "check_notebook", "stage"]

STAGING_DIR = "staged"


@dataclass
class StagedSubmission:
    submission: Submission
    folder: Path
    notes: list[str] = field(default_factory=list)     # handled, graded anyway (e.g. renamed)
    problems: list[str] = field(default_factory=list)  # scored 0 by policy and flagged for review
    bad_notebooks: list[str] = field(default_factory=list)  # notebook ids scored 0

    def has_notebooks(self, notebooks: list[str]) -> bool:
        return any((self.folder / name).exists() for name in notebooks)


def check_notebook(path: Path) -> str | None:
    """None if ``path`` is a readable, valid notebook, else the reason it is not."""
    import nbformat

    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as exc:  # noqa: BLE001 - nbformat raises several kinds (NotJSONError, ValueError, KeyError...)
        kind = "not valid JSON" if "JSON" in type(exc).__name__ + str(exc)[:80] else type(exc).__name__
        return f"{path.name} is not a valid notebook ({kind})"
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        return f"{path.name} does not follow the notebook format ({str(exc).splitlines()[0][:120]})"
    return None


def _copy_plain_files(source: Path, target: Path) -> None:
    target.mkdir(parents=True)
    for path in sorted(source.iterdir()) if source.is_dir() else ():
        if path.is_symlink() or not path.is_file():
            continue
        if path.suffix == ".ipynb" or path.name == "timestamp.txt":
            shutil.copyfile(path, target / path.name)


def stage(course: Course, submission: Submission, notebooks: list[str]) -> StagedSubmission:
    """Copy the submission to the work area and apply the renamed/invalid/missing notebook policy.

    ``notebooks``: the notebook file names the assignment expects (e.g. ``["a01_kl_divergence.ipynb"]``).
    """
    target = course.folder(STAGING_DIR, submission)
    if target.exists():
        shutil.rmtree(target)
    _copy_plain_files(course.folder("submitted", submission), target)
    staged = StagedSubmission(submission, target)

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
        staged.bad_notebooks.append(name[:-len(".ipynb")])
    for name in notebooks:
        path = target / name
        if path.exists():
            reason = check_notebook(path)
            if reason:
                path.unlink()
                staged.problems.append(reason)
                staged.bad_notebooks.append(name[:-len(".ipynb")])
    return staged
