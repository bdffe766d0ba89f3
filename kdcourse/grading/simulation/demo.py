"""``kdcourse demo``: a whole class through the grading pipeline, in a fresh folder.

Release every assignment, build a simulated class (the solution, the blank release, one student per
misconception, and every bad or hostile submission on the first assignment), autograde it in
parallel, write the feedback and the export, and print the class table.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ..autograde import autograde
from ..course import Course, CourseError, embedded_db_url
from ..export import export
from ..feedback import feedback
from ..release import release
from ..settings import DEMO_TIMEOUTS, Timeouts
from .classroom import build_class, check_class, check_table

__all__ = ["DEMO_TIMEOUTS", "demo"]


def demo(course: Course, out: Path | None = None, jobs: int | None = None, timeouts: Timeouts = DEMO_TIMEOUTS,
         bad_on: str = "first", progress: bool = True, log=print, unsafe_no_sandbox: bool = False,
         scheduler: str | None = None) -> bool:
    """Run the demo in ``out`` (a new temporary folder by default); True when everything is as expected.

    The demo course has its own SQLite gradebook in ``out``, whatever database the course is configured with.
    ``scheduler``: grade on that Dask cluster (see :func:`~kdcourse.grading.autograde.autograde`).
    """
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="kdcourse-demo-"))
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise CourseError(f"{out} is not empty: the demo needs a fresh folder")
    demo_course = course.with_root(out, gradebook_url=embedded_db_url(out))
    start = time.monotonic()
    aids = demo_course.select(None)
    log(f"demo course in {out} (gradebook {demo_course.db_path.name}); assignments: {', '.join(aids)}")
    release(demo_course, aids, log=log)
    with_bad = {"first": aids[:1], "all": aids, "none": []}[bad_on]
    students = build_class(demo_course, aids, with_bad=with_bad, stall_s=timeouts.cell + 10)
    log(f"simulated class: {len(students)} submission(s)")
    outcomes = autograde(demo_course, aids, jobs=jobs, timeouts=timeouts, progress=progress, log=log,
                         unsafe_no_sandbox=unsafe_no_sandbox, scheduler=scheduler)
    feedback(demo_course, aids, log=log)
    csv_path, png_path = export(demo_course, log=log)
    checks = check_class(demo_course, students, outcomes)
    log("")
    log(check_table(checks))
    surprises = sum(not c.ok for c in checks)
    log(f"\n{len(checks)} submissions graded in {time.monotonic() - start:.0f} s; {surprises} surprise(s). "
        f"Grades: {csv_path}  Histogram: {png_path}  Feedback: {out / 'feedback'}")
    return surprises == 0
