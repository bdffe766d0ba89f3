"""``kdcourse verify``: the pre-release check of every assignment.

In a throw-away course folder: release, then autograde the solution (must get every autograded
point), the blank release (must get 0) and one submission per misconception of the instructor file
(must get its ``expected_score`` and show each of its ``expected_messages``); the points in the
notebook must add up to what the instructor file declares.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from .autograde import autograde
from .classroom import Check, SimulatedStudent, build_class, check_class
from .config import DEFAULT_TIMEOUTS, Timeouts
from .course import Course
from .release import release
from .scores import read_scores
from .table import check_rows, format_table


def points_problems(course: Course, assignments: list[str]) -> list[str]:
    """Mismatches between the gradebook's points and the instructor files."""
    problems = []
    for row in read_scores(course, assignments):
        if row.student != "solution":
            continue
        spec = course.spec(row.assignment)
        if abs(row.max_score - spec.points) > 1e-9:
            problems.append(f"{row.assignment}: the notebook has {row.max_score:g} points, "
                            f"{row.assignment}.toml declares {spec.points:g}")
        if abs(row.auto_max - spec.auto_points) > 1e-9:
            problems.append(f"{row.assignment}: {row.auto_max:g} autograded points in the notebook, "
                            f"{spec.auto_points:g} (points - manual_points) declared")
    return problems


def verify(course: Course, assignments=None, jobs: int | None = None, timeouts: Timeouts = DEFAULT_TIMEOUTS,
           workdir: Path | None = None, keep: bool = False, log=print) -> tuple[list[Check], list[str]]:
    """Run the check; returns the per-submission checks and the points problems."""
    aids = course.select(assignments)
    for aid in aids:
        course.spec(aid)  # a missing or malformed instructor file is reported before any grading
    root = Path(tempfile.mkdtemp(prefix="kdcourse-verify-", dir=workdir))
    scratch = Course(root=root, source_dir=course.source_dir, spec_dir=course.spec_dir, course_id=course.course_id)
    try:
        release(scratch, aids, log=lambda *_: None)
        students: list[SimulatedStudent] = build_class(scratch, aids)
        outcomes = autograde(scratch, aids, jobs=jobs, timeouts=timeouts, log=lambda *_: None)
        checks = check_class(scratch, students, outcomes)
        problems = points_problems(scratch, aids)
    finally:
        if keep:
            log(f"verification course kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    header, rows = check_rows(checks)
    log(format_table(header, rows))
    for p in problems:
        log("SURPRISE: " + p)
    bad = sum(not c.ok for c in checks) + len(problems)
    log(f"verify: {len(checks)} submission(s) checked, {bad} surprise(s)")
    return checks, problems
