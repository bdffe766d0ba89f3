"""``kdcourse verify`` on the fixture course: passes as declared, and reports a wrong declaration."""

from __future__ import annotations

import pytest

from kdcourse.grading.simulation.verify import verify

from fixtures.grading_helpers import AID, TEST_TIMEOUTS, fixture_course

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(400)]


def test_verify_passes_and_catches_a_wrong_expected_score(tmp_path):
    course = fixture_course(tmp_path)
    spec_path = course.spec_dir / f"{AID}.toml"
    # one declaration made wrong on purpose: log base 2 is declared to keep the KL points
    text = spec_path.read_text(encoding="utf-8")
    head, tail = text.split('name = "log_base_2"', 1)
    spec_path.write_text(head + 'name = "log_base_2"' + tail.replace("expected_score = 2.0", "expected_score = 5.0", 1),
                         encoding="utf-8")
    lines = []
    checks, problems = verify(course, jobs=2, timeouts=TEST_TIMEOUTS, workdir=tmp_path, log=lines.append)
    by_student = {c.student.student: c for c in checks}
    assert set(by_student) == {"solution", "blank", "swapped_arguments", "log_base_2", "top_class_only"}
    assert problems == []
    assert not by_student["log_base_2"].ok
    assert "expected 5" in by_student["log_base_2"].problems[0]
    assert all(c.ok for name, c in by_student.items() if name != "log_base_2")
    assert "SURPRISE" in "\n".join(lines)
