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
import re
from pathlib import Path

import nbformat

from .course import AssignmentSpec, Course, CourseError, Misconception

_MARKER_RE = re.compile(r"^\s*(###|===)\s*(BEGIN|END)\s+(SOLUTION|HIDDEN TESTS|MARK SCHEME)\s*(###|===)?\s*$")
FIXED_TIMESTAMP = "2025-01-15 12:00:00.000000 UTC"


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def strip_markers(source: str) -> str:
    """``source`` without the BEGIN/END marker lines (the text between them is kept)."""
    return "\n".join(line for line in source.splitlines() if not _MARKER_RE.match(line)).strip("\n") + "\n"


_MARK_SCHEME_RE = re.compile(r"^\s*Mark scheme\b", re.IGNORECASE)


def model_answer(source: str) -> str:
    """A written answer as a student would hand it in: the text before its "Mark scheme" paragraph."""
    kept = []
    for line in source.splitlines():
        if _MARK_SCHEME_RE.match(line):
            break
        kept.append(line)
    return "\n".join(kept).strip("\n") + "\n"


def read_notebook(path: Path):
    return nbformat.read(str(path), as_version=4)


def solution_cells(notebook) -> dict[str, object]:
    """``grade_id -> cell`` of every solution cell."""
    return {nbgrader_meta(c)["grade_id"]: c for c in notebook.cells if nbgrader_meta(c).get("solution")}


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


def notebook_bytes(nb) -> bytes:
    return (nbformat.writes(nb) + "\n").encode("utf-8")


def submit_files(course: Course, student: str, assignment: str, files: dict[str, bytes],
                 timestamp: str | None = FIXED_TIMESTAMP) -> Path:
    """Write ``files`` (name -> bytes) as ``submitted/<student>/<assignment>/``, replacing what was there."""
    import shutil

    if not re.match(r"^[A-Za-z0-9_.-]+$", student) or student.startswith("."):
        raise CourseError(f"student id {student!r} must use only letters, digits, '_', '-', '.'")
    folder = course.folder("submitted", student, assignment)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    if timestamp is not None:
        (folder / "timestamp.txt").write_text(timestamp + "\n", encoding="utf-8")
    return folder


def submit_notebook(course: Course, student: str, assignment: str, nb, timestamp: str | None = FIXED_TIMESTAMP):
    return submit_files(course, student, assignment, {f"{assignment}.ipynb": notebook_bytes(nb)}, timestamp)


def now_timestamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
