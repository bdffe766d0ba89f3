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

from ..autograde import autograde
from ..course import Course, embedded_db_url
from ..release import release
from ..scores import read_scores
from ..settings import DEFAULT_TIMEOUTS, Timeouts
from .classroom import Check, SimulatedStudent, build_class, check_class, check_table

__all__ = ["verify", "points_problems"]


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
           workdir: Path | None = None, keep: bool = False, log=print,
           unsafe_no_sandbox: bool = False, scheduler: str | None = None) -> tuple[list[Check], list[str]]:
    """Run the check; returns the per-submission checks and the points problems.

    The throw-away course has its own SQLite gradebook, whatever database the course is configured with.
    ``scheduler``: grade on that Dask cluster (see :func:`~kdcourse.grading.autograde.autograde`).
    """
    aids = course.select(assignments)
    for aid in aids:
        course.spec(aid)  # a missing or malformed instructor file is reported before any grading
    root = Path(tempfile.mkdtemp(prefix="kdcourse-verify-", dir=workdir))
    scratch = course.with_root(root, gradebook_url=embedded_db_url(root))
    try:
        release(scratch, aids, log=lambda *_: None)
        students: list[SimulatedStudent] = build_class(scratch, aids)
        outcomes = autograde(scratch, aids, jobs=jobs, timeouts=timeouts, log=lambda *_: None, progress=False,
                             unsafe_no_sandbox=unsafe_no_sandbox, scheduler=scheduler)
        checks = check_class(scratch, students, outcomes)
        problems = points_problems(scratch, aids)
    finally:
        if keep:
            log(f"verification course kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    log(check_table(checks))
    for p in problems:
        log("SURPRISE: " + p)
    bad = sum(not c.ok for c in checks) + len(problems)
    log(f"verify: {len(checks)} submission(s) checked, {bad} surprise(s)")
    return checks, problems
