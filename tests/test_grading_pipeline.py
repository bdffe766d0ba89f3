"""End to end on the fixture course: one parallel autograde run of a class with every bad and hostile
submission serves all the tests of this file (the run is shared, session-scoped)."""

from __future__ import annotations

import csv
import json

import nbformat
import pytest

from fixtures.grading_helpers import AID, TEST_TIMEOUTS, fixture_course, tree_digest
from kdcourse.grading import badsubmissions
from kdcourse.grading.autograde import autograde
from kdcourse.grading.classroom import build_class, check_class
from kdcourse.grading.export import export
from kdcourse.grading.feedback import feedback
from kdcourse.grading.leaks import find_leaks, notebook_text, secret_lines
from kdcourse.grading.policy import REPORT_NAME
from kdcourse.grading.release import release
from kdcourse.grading.scores import read_scores

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="session")
def graded_class(tmp_path_factory):
    course = fixture_course(tmp_path_factory.mktemp("course"))
    release(course, log=lambda *_: None)
    students = build_class(course, [AID], with_bad=[AID], stall_s=TEST_TIMEOUTS.cell + 6)
    before = tree_digest(course.root / "submitted")
    outcomes = autograde(course, jobs=2, timeouts=TEST_TIMEOUTS, progress=False, log=lambda *_: None)
    checks = {c.student.student: c for c in check_class(course, students, outcomes)}
    return {"course": course, "checks": checks, "before": before,
            "outcomes": {o.student: o for o in outcomes}}


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


def test_ungradable_submissions_are_reported_with_a_reason(graded_class):
    outcomes = graded_class["outcomes"]
    assert "kernel died" in " ".join(outcomes["os_exit"].reasons)
    assert "not valid JSON" in " ".join(outcomes["invalid_json"].reasons)
    assert "missing" in " ".join(outcomes["missing_notebook"].reasons)
    assert "renamed" in " ".join(outcomes["renamed_notebook"].notes)
    report = json.loads((graded_class["course"].root / REPORT_NAME).read_text(encoding="utf-8"))
    assert report[f"{AID}/os_exit"]["status"] == "flagged"
    assert report[f"{AID}/solution"]["status"] == "graded"


def test_submitted_files_are_byte_identical_after_grading(graded_class):
    assert tree_digest(graded_class["course"].root / "submitted") == graded_class["before"]


def test_flooded_output_is_truncated(graded_class):
    course = graded_class["course"]
    path = course.folder("autograded", "flood_output", AID) / f"{AID}.ipynb"
    assert path.stat().st_size < 200_000


def test_stderr_of_a_correct_answer_is_kept_as_text(graded_class):
    course = graded_class["course"]
    nb = nbformat.read(str(course.folder("autograded", "stderr_warning", AID) / f"{AID}.ipynb"), as_version=4)
    texts = [o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
             if o.get("output_type") == "stream"]
    assert any("[stderr]" in t and "harmless message" in t for t in texts)


def test_release_has_no_solution_hidden_test_or_mark_scheme(graded_class):
    course = graded_class["course"]
    text = course.release_notebook(AID).read_text(encoding="utf-8")
    assert find_leaks(notebook_text(course.release_notebook(AID)), secret_lines(course.source_notebook(AID))) == []
    for marker in ("HIDDEN_MARKER_KL", "MARK_SCHEME_MARKER", "safe_p = np.where"):
        assert marker not in text


def test_feedback_shows_messages_but_no_hidden_tests(graded_class):
    course = graded_class["course"]
    files = feedback(course, log=lambda *_: None)
    assert len(files) >= 10
    for path in files:
        html = path.read_text(encoding="utf-8")
        for secret in ("HIDDEN_MARKER", "MARK_SCHEME_MARKER", "BEGIN HIDDEN TESTS", "0.009488775666198386"):
            assert secret not in html, f"{secret} in {path}"
    swapped = course.root / "feedback" / "swapped_arguments" / AID / f"{AID}.html"
    assert "arguments are swapped" in swapped.read_text(encoding="utf-8")
    log2 = course.root / "feedback" / "log_base_2" / AID / f"{AID}.html"
    assert "log base 2" in log2.read_text(encoding="utf-8")  # a hidden test's message, not its code


def test_export_agrees_with_gradebook(graded_class):
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
    flagged = {r["student"] for r in rows if r["status"] == "flagged"}
    assert flagged == {"os_exit", "invalid_json", "missing_notebook"}


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
