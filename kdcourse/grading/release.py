"""``kdcourse release``: generate the student version of each assignment and check it for leaks."""

from __future__ import annotations

from pathlib import Path

from .adapter.api import GradingError, checked, make_api
from .course import Course
from .leaks import find_leaks, notebook_text, secret_lines


def release(course: Course, assignments=None, api=None, log=print) -> list[Path]:
    """Run nbgrader's ``generate_assignment`` for each assignment (all by default).

    Returns the release notebooks. Raises GradingError if nbgrader fails or if a release notebook still
    contains a solution, a hidden test or a mark scheme.
    """
    api = api or make_api(course)
    written = []
    for aid in course.select(assignments):
        checked(api.generate_assignment(aid, force=True, create=True), f"releasing {aid}")
        notebook = course.release_notebook(aid)
        if not notebook.is_file():
            raise GradingError(f"releasing {aid}: nbgrader wrote no {notebook}")
        leaks = find_leaks(notebook_text(notebook), secret_lines(course.source_notebook(aid)))
        if leaks:
            raise GradingError(f"release of {aid} leaks instructor-only text: " + "; ".join(leaks[:5]))
        log(f"released {aid} -> {notebook.relative_to(course.root)}")
        written.append(notebook)
    return written
