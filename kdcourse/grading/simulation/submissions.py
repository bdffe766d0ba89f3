"""Build simulated submissions from the source and release notebooks, and place them in ``submitted/``.

* blank -- the release notebook as a student receives it;
* solution -- the release notebook with every solution cell filled from the source notebook (the text
  between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` kept, the marker lines dropped; a written
  answer keeps its model answer but not the instructor's "Mark scheme" paragraph that follows it);
* misconception -- the solution with the cells named in the instructor file's ``replace`` table swapped
  for the wrong-but-plausible source given there.
"""

from __future__ import annotations

import copy
import datetime as dt
import shutil
from pathlib import Path

from kdcourse.notebooks import model_answer, notebook_bytes, read_notebook, solution_cells, strip_markers

from ..course import AssignmentSpec, Course, CourseError, Misconception, Submission, check_student_id, format_timestamp

__all__ = ["FIXED_TIMESTAMP", "blank_notebook", "solution_notebook", "misconception_notebook", "submit_files",
           "notebook_files"]

#: The submission time of every simulated student (grading twice gives the same late penalties).
FIXED_TIMESTAMP = format_timestamp(dt.datetime(2025, 1, 15, 12, 0, tzinfo=dt.timezone.utc))


def blank_notebook(course: Course, assignment: str):
    """What a student receives (the release notebook); requires ``kdcourse release`` to have run."""
    path = course.release_notebook(assignment)
    if not path.is_file():
        raise CourseError(f"{path} is missing: run `kdcourse release {assignment}` first")
    return read_notebook(path)


def solution_notebook(course: Course, assignment: str):
    """The release notebook with each solution cell filled from the source's solution text."""
    nb = blank_notebook(course, assignment)
    source = solution_cells(read_notebook(course.source_notebook(assignment)))
    for grade_id, cell in solution_cells(nb).items():
        if grade_id not in source:
            raise CourseError(f"{assignment}: solution cell {grade_id!r} of the release is not in the source")
        text = strip_markers(source[grade_id].source)
        cell.source = model_answer(text) if cell.cell_type == "markdown" else text
    return nb


def misconception_notebook(course: Course, spec: AssignmentSpec, misconception: Misconception, base=None):
    """The solution with ``misconception.replace`` applied (``grade_id -> new source``)."""
    nb = copy.deepcopy(base) if base is not None else solution_notebook(course, spec.assignment_id)
    cells = solution_cells(nb)
    for grade_id, new_source in misconception.replace.items():
        if grade_id not in cells:
            raise CourseError(
                f"{spec.assignment_id}.toml misconception {misconception.name!r}: {grade_id!r} is not the "
                f"grade_id of a solution cell (solution cells: {', '.join(sorted(cells))})")
        cells[grade_id].source = new_source.strip("\n") + "\n"
    return nb


def submit_files(course: Course, submission: Submission, files: dict[str, bytes],
                 timestamp: str | None = FIXED_TIMESTAMP) -> Path:
    """Write ``files`` (name -> bytes) as the submission's ``submitted/`` folder, replacing what was there."""
    check_student_id(submission.student)
    folder = course.folder("submitted", submission)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    if timestamp is not None:
        (folder / "timestamp.txt").write_text(timestamp + "\n", encoding="utf-8")
    return folder


def notebook_files(nb, assignment: str) -> dict[str, bytes]:
    """``{"<assignment>.ipynb": bytes}``: a one-notebook submission."""
    return {f"{assignment}.ipynb": notebook_bytes(nb)}
