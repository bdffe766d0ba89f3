"""End to end on the fixture course: one parallel autograde run of a class with every bad submission
serves all the tests of this file (the run is shared, session-scoped)."""

from __future__ import annotations

import csv

import pytest

from kdcourse.grading.autograde import autograde
from kdcourse.grading.course import Submission
from kdcourse.grading.export import export
from kdcourse.grading.feedback import feedback
from kdcourse.grading.release import release
from kdcourse.grading.scores import read_scores
from kdcourse.grading.simulation import badsubmissions
from kdcourse.grading.simulation.classroom import build_class, check_class
from kdcourse.grading.status import StatusStore

from fixtures.grading_helpers import AID, TEST_TIMEOUTS, fixture_course, tree_digest

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(600)]


@pytest.fixture(scope="session")
def graded_class(tmp_path_factory):
    course = fixture_course(tmp_path_factory.mktemp("course"))
    release(course, log=lambda *_: None)
    students = build_class(course, [AID], with_bad=[AID], stall_s=TEST_TIMEOUTS.cell + 6)
    before = tree_digest(course.root / "submitted")
    statuses = autograde(course, jobs=2, timeouts=TEST_TIMEOUTS, progress=False, log=lambda *_: None)
    checks = {c.student.student: c for c in check_class(course, students, statuses)}
    return {"course": course, "checks": checks, "before": before, "statuses": {s.student: s for s in statuses}}


@pytest.mark.parametrize("student", ["solution", "blank", "swapped_arguments", "log_base_2", "top_class_only"])
def test_reference_submissions_score_as_declared(graded_class, student):
    check = graded_class["checks"][student]
    assert check.ok, check.problems


@pytest.mark.parametrize("case", badsubmissions.case_names())
def test_bad_submission_is_handled(graded_class, case):
    check = graded_class["checks"][case]
    assert check.ok, f"{case}: {check.problems}"


def test_exact_scores_of_the_hang_and_crash_cases(graded_class):
    # the first answer fails, the multiple-choice question (2 points) is still graded
    checks = graded_class["checks"]
    for case in ("infinite_loop", "long_c_call", "import_error"):
        assert checks[case].auto_score == 2.0, case
        assert checks[case].status == "graded", case


def test_ungradable_submissions_are_reported_with_a_reason_in_the_status_store(graded_class):
    from nbgrader.api import Gradebook

    statuses = graded_class["statuses"]
    assert "kernel died" in " ".join(statuses["os_exit"].reasons)
    assert "not valid JSON" in " ".join(statuses["invalid_json"].reasons)
    assert "missing" in " ".join(statuses["missing_notebook"].reasons)
    assert "renamed" in " ".join(statuses["renamed_notebook"].notes)
    course = graded_class["course"]
    with Gradebook(course.db_url, course.course_id) as gb:
        stored = StatusStore(gb.engine).read()
        assert stored[Submission(AID, "os_exit")].status == "flagged"
        assert stored[Submission(AID, "solution")].status == "graded"
        assert stored[Submission(AID, "os_exit")].reasons == statuses["os_exit"].reasons
        flagged = {nb.assignment.student.id for nb in gb.find_assignment(AID).notebooks[0].submissions if nb.flagged}
    assert {"os_exit", "invalid_json", "missing_notebook", "monkeypatched_checker"} <= flagged
    assert "solution" not in flagged


def test_submitted_files_are_byte_identical_after_grading(graded_class):
    assert tree_digest(graded_class["course"].root / "submitted") == graded_class["before"]


def test_flooded_output_is_truncated(graded_class):
    course = graded_class["course"]
    path = course.folder("autograded", Submission(AID, "flood_output")) / f"{AID}.ipynb"
    assert path.stat().st_size < 200_000


def test_feedback_shows_the_judges_messages(graded_class):
    course = graded_class["course"]
    files = feedback(course, log=lambda *_: None)
    assert len(files) >= 10
    swapped = course.root / "feedback" / "swapped_arguments" / AID / f"{AID}.html"
    assert "arguments are swapped" in swapped.read_text(encoding="utf-8")
    log2 = course.root / "feedback" / "log_base_2" / AID / f"{AID}.html"
    assert "log base 2" in log2.read_text(encoding="utf-8")  # judged on a hidden input, by the judge
    for path in files:
        html = path.read_text(encoding="utf-8")
        assert "application/vnd.kdcourse.answers+json" not in html  # the raw records never reach a student


def test_export_agrees_with_gradebook_and_status_store(graded_class):
    from nbgrader.api import Gradebook

    course = graded_class["course"]
    csv_path, png_path = export(course, log=lambda *_: None)
    assert png_path.stat().st_size > 1000
    with open(csv_path, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(graded_class["checks"])
    with Gradebook(course.db_url, course.course_id) as gb:
        for row in rows:
            submission = gb.find_submission(row["assignment"], row["student"])
            assert float(row["score"]) == pytest.approx(submission.score)
            assert float(row["max_score"]) == pytest.approx(submission.max_score)
            for grade in submission.notebooks[0].grades:
                assert float(row[f"q:{grade.name}"]) == pytest.approx(grade.score)
    flagged = {r["student"]: r["reasons"] for r in rows if r["status"] == "flagged"}
    assert set(flagged) == {"os_exit", "invalid_json", "missing_notebook", "monkeypatched_checker"}
    assert "grading machinery" in flagged["monkeypatched_checker"]


def test_a_graders_comment_is_exported_with_its_question(graded_class):
    from nbgrader.api import Gradebook

    course = graded_class["course"]
    with Gradebook(course.db_url, course.course_id) as gb:
        comment = gb.find_comment("explain_asymmetry", AID, AID, "solution")
        comment.manual_comment = "Right direction,\nbut say which argument is sampled."
        gb.db.commit()
    csv_path, _png = export(course, log=lambda *_: None)
    with open(csv_path, encoding="utf-8") as fh:
        rows = {row["student"]: row for row in csv.DictReader(fh)}
    assert rows["solution"]["comments"] == "explain_asymmetry: Right direction, but say which argument is sampled."
    assert rows["blank"]["comments"] == ""


def test_regrading_is_identical_and_keeps_manual_grades(graded_class):
    from nbgrader.api import Gradebook

    course = graded_class["course"]
    chosen = ["solution", "swapped_arguments", "os_exit"]
    with Gradebook(course.db_url, course.course_id) as gb:
        for student in chosen:
            grade = gb.find_grade("explain_asymmetry", AID, AID, student)
            grade.manual_score = 1.0
        gb.db.commit()
    first = {r.student: r for r in read_scores(course) if r.student in chosen}
    autograde(course, students=chosen, jobs=2, timeouts=TEST_TIMEOUTS, progress=False, log=lambda *_: None)
    second = {r.student: r for r in read_scores(course) if r.student in chosen}
    for student in chosen:
        assert second[student].questions == first[student].questions, student
        assert second[student].questions["explain_asymmetry"] == 1.0
    assert second["solution"].score == 6.0
