"""Seconds per student to autograde one class three ways, on the same simulated class:

1. the nbgrader CLI, one ``nbgrader autograde ASSIGNMENT --student S`` per student (sequential);
2. ``kdcourse autograde --jobs 1`` (one process, nbgrader's Python API);
3. ``kdcourse autograde --jobs 2``.

Also reported for reference: one ``nbgrader autograde ASSIGNMENT`` call for the whole class. All runs use
the same hardened configuration (``kdcourse.grading.config.harden``) and grade from scratch.

Usage: python benchmarks/bench_autograde.py [--students 20] [--assignment ID] [--fixture]
(``--fixture`` uses the small numpy-only test assignment instead of a course assignment.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kdcourse.grading.autograde import autograde  # noqa: E402
from kdcourse.grading.course import Course  # noqa: E402
from kdcourse.grading.nbapi import ensure_tools_on_path  # noqa: E402
from kdcourse.grading.release import release  # noqa: E402
from kdcourse.grading.submissions import (misconception_notebook, notebook_bytes, solution_notebook,  # noqa: E402
                                          submit_files)
from kdcourse.grading.table import format_table  # noqa: E402
from kdcourse.grading.workers import kernel_environment  # noqa: E402

CONFIG = '''import sys
sys.path.insert(0, {repo!r})
from kdcourse.grading.config import harden
c = get_config()
c.CourseDirectory.course_id = "kdcourse"
c.CourseDirectory.root = {root!r}
c.CourseDirectory.source_directory = {source!r}
c.CourseDirectory.db_url = "sqlite:///" + {db!r}
harden(c)
'''


def make_class(base: Course, assignment: str, n: int, root: Path) -> tuple[Course, list[str]]:
    course = Course(root=root, source_dir=base.source_dir, spec_dir=base.spec_dir)
    release(course, [assignment], log=lambda *_: None)
    spec = course.spec(assignment)
    solution = solution_notebook(course, assignment)
    variants = [solution] + [misconception_notebook(course, spec, m, base=solution) for m in spec.misconceptions]
    students = [f"s{i:02d}" for i in range(n)]
    for i, student in enumerate(students):
        submit_files(course, student, assignment, {f"{assignment}.ipynb": notebook_bytes(variants[i % len(variants)])})
    (root / "nbgrader_config.py").write_text(CONFIG.format(
        repo=str(REPO), root=str(root), source=str(course.source_dir), db=str(course.db_path)), encoding="utf-8")
    return course, students


def reset(course: Course) -> None:
    """Forget earlier grading, keep the release and the submissions."""
    from nbgrader.api import Gradebook

    for folder in ("autograded", "staged"):
        shutil.rmtree(course.root / folder, ignore_errors=True)
    with Gradebook(course.db_url, course.course_id) as gb:
        for student in list(gb.students):
            gb.remove_student(student.id)


def run_cli(course: Course, assignment: str, students: list[str] | None) -> float:
    env = dict(os.environ, **kernel_environment())
    calls = [["--student", s] for s in students] if students else [[]]
    start = time.perf_counter()
    for extra in calls:
        subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "autograde", assignment, "--force",
                        *extra], cwd=course.root, env=env, check=True, capture_output=True, timeout=1800)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--assignment", default=None)
    parser.add_argument("--fixture", action="store_true", help="use the test fixture assignment")
    args = parser.parse_args()
    ensure_tools_on_path()
    os.environ.setdefault("KDCOURSE_PROGRESS", "0")
    if args.fixture:
        fixture = REPO / "tests" / "fixtures" / "course"
        base = Course(root=fixture / "grading", source_dir=fixture / "notebooks" / "assignments",
                      spec_dir=fixture / "grading" / "assignments")
    else:
        base = Course.from_repo(REPO)
    assignment = args.assignment or base.assignments()[0]
    with tempfile.TemporaryDirectory(prefix="kdcourse-bench-") as tmp:
        course, students = make_class(base, assignment, args.students, Path(tmp))
        n = len(students)
        timings = {}
        reset(course)
        timings["nbgrader CLI, one call per student"] = run_cli(course, assignment, students)
        reset(course)
        timings["nbgrader CLI, one call for the class"] = run_cli(course, assignment, None)
        for jobs in (1, 2):
            reset(course)
            start = time.perf_counter()
            outcomes = autograde(course, [assignment], jobs=jobs, progress=False, log=lambda *_: None)
            timings[f"kdcourse autograde --jobs {jobs}"] = time.perf_counter() - start
            assert all(o.status == "graded" for o in outcomes), [o for o in outcomes if o.status != "graded"]
    cli = timings["nbgrader CLI, one call per student"]
    jobs1 = timings["kdcourse autograde --jobs 1"]
    rows = [[name, f"{t:.1f}", f"{t / n:.2f}", f"{cli / t:.2f}", f"{jobs1 / t:.2f}"] for name, t in timings.items()]
    print(f"assignment {assignment}, {n} students, {os.cpu_count()} CPUs")
    print(format_table(["method", "total s", "s/student", "speed-up vs CLI per student", "speed-up vs --jobs 1"],
                       rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
