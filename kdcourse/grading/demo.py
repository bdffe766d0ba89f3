"""``kdcourse demo``: a whole class through the grading pipeline, in a fresh folder.

Release every assignment, build a simulated class (the solution, the blank release, one student per
misconception, and every bad or hostile submission on the first assignment), autograde it in
parallel, write the feedback and the export, and print the class table.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from .autograde import autograde
from .classroom import build_class, check_class
from .config import Timeouts
from .course import Course, CourseError
from .export import export
from .feedback import feedback
from .release import release
from .table import check_rows, format_table

DEMO_TIMEOUTS = Timeouts(cell=60, iopub=60, startup=120, submission=600)


def demo(course: Course, out: Path | None = None, jobs: int | None = None, timeouts: Timeouts = DEMO_TIMEOUTS,
         bad_on: str = "first", progress: bool = True, log=print) -> bool:
    """Run the demo in ``out`` (a new temporary folder by default); True when everything is as expected."""
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="kdcourse-demo-"))
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise CourseError(f"{out} is not empty: the demo needs a fresh folder")
    demo_course = Course(root=out, source_dir=course.source_dir, spec_dir=course.spec_dir,
                         course_id=course.course_id)
    start = time.monotonic()
    aids = demo_course.select(None)
    log(f"demo course in {out} (gradebook {demo_course.db_path.name}); assignments: {', '.join(aids)}")
    release(demo_course, aids, log=log)
    with_bad = {"first": aids[:1], "all": aids, "none": []}[bad_on]
    students = build_class(demo_course, aids, with_bad=with_bad, stall_s=timeouts.cell + 10)
    log(f"simulated class: {len(students)} submission(s)")
    outcomes = autograde(demo_course, aids, jobs=jobs, timeouts=timeouts, progress=progress, log=log)
    feedback(demo_course, aids, log=log)
    csv_path, png_path = export(demo_course, log=log)
    checks = check_class(demo_course, students, outcomes)
    header, rows = check_rows(checks)
    log("")
    log(format_table(header, rows))
    surprises = sum(not c.ok for c in checks)
    log(f"\n{len(checks)} submissions graded in {time.monotonic() - start:.0f} s; {surprises} surprise(s). "
        f"Grades: {csv_path}  Histogram: {png_path}  Feedback: {out / 'feedback'}")
    return surprises == 0
