"""``kdcourse feedback``: HTML feedback per student, checked for leaks of hidden tests and mark schemes.

Hidden tests are removed by ``ClearHiddenTests`` (configured in :mod:`kdcourse.grading.config`) and the
grading kernels print tracebacks in ``Minimal`` mode, so no hidden line appears in an error either.
"""

from __future__ import annotations

from pathlib import Path

from .course import Course
from .leaks import find_leaks, html_text, secret_lines
from .nbapi import GradingError, checked, make_api


def feedback(course: Course, assignments=None, api=None, log=print) -> list[Path]:
    """Generate feedback for every autograded submission; returns the HTML files written."""
    api = api or make_api(course)
    written = []
    for aid in course.select(assignments):
        if not any(course.folder("autograded", s, aid).is_dir() for s in course.students("autograded")):
            log(f"{aid}: nothing autograded yet, no feedback written")
            continue
        checked(api.generate_feedback(aid, force=True), f"feedback for {aid}")
        secrets = secret_lines(course.source_notebook(aid), kinds=("hidden test", "mark scheme"))
        files = sorted((course.root / "feedback").glob(f"*/{aid}/*.html"))
        for path in files:
            text = html_text(path.read_text(encoding="utf-8"))
            leaks = [leak for leak in find_leaks(text, secrets) if "SOLUTION" not in leak]
            if leaks:
                raise GradingError(f"{path} leaks instructor-only text: " + "; ".join(leaks[:5]))
        log(f"{aid}: feedback for {len(files)} student(s) in {course.root / 'feedback'}")
        written += files
    return written
