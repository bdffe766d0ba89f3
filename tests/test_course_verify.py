"""``kdcourse verify`` on the real course: every assignment's solution scores full marks, the blank
release scores zero, and each declared misconception submission gets its expected score and message."""

from __future__ import annotations

import pytest

from kdcourse.grading.course import Course
from kdcourse.grading.verify import verify

pytestmark = pytest.mark.timeout(3000)


def test_every_assignment_grades_as_declared(tmp_path):
    course = Course.from_repo()
    lines: list[str] = []
    checks, problems = verify(course, jobs=2, workdir=tmp_path, log=lines.append)
    report = "\n".join(lines)
    print(report)
    assert problems == [], report
    graded = {c.student.assignment for c in checks}
    assert graded == set(course.assignments())
    kinds = {c.student.kind for c in checks}
    assert {"solution", "blank", "misconception"} <= kinds
    surprises = [f"{c.student.assignment}/{c.student.student}: {c.problems}" for c in checks if not c.ok]
    assert surprises == [], report
