"""The parts of cluster grading that need no cluster: which gradebook a course uses, what a task may carry,
when a worker is refused, and an assignment's definition copied from one gradebook into another."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdcourse.grading.bundle import check_file_name, course_bundle, grading_job, unpack_bundle
from kdcourse.grading.course import Course, CourseError, Submission, embedded_db_url, redacted_url
from kdcourse.grading.remote import worker_problems
from kdcourse.grading.settings import DEFAULT_TIMEOUTS

from fixtures.grading_helpers import AID, fixture_course


def test_the_gradebook_url_rule(tmp_path, monkeypatch):
    settings = tmp_path / "course.toml"
    settings.write_text('[gradebook]\nurl = "postgresql+psycopg://grader@db.example/course"\n')
    course = Course(root=tmp_path / "root", source_dir=tmp_path, spec_dir=tmp_path, settings_file=settings)
    monkeypatch.delenv("KDCOURSE_DB_URL", raising=False)
    assert course.db_url == "postgresql+psycopg://grader@db.example/course"  # the settings file
    monkeypatch.setenv("KDCOURSE_DB_URL", "postgresql+psycopg://other@host/db")
    assert course.db_url == "postgresql+psycopg://other@host/db"  # the environment wins over the file
    private = course.with_root(tmp_path / "scratch", gradebook_url=embedded_db_url(tmp_path / "scratch"))
    assert private.db_url == f"sqlite:///{tmp_path / 'scratch' / 'gradebook.db'}?timeout=60"  # wins over both
    settings.write_text("")
    monkeypatch.delenv("KDCOURSE_DB_URL")
    assert course.db_url == embedded_db_url(tmp_path / "root")  # the embedded default


@pytest.mark.parametrize("table", ['[gradebook]\nurl = 3\n', '[gradebook]\nurl = "x"\npassword = "y"\n',
                                   'gradebook = "sqlite://"\n'])
def test_a_malformed_gradebook_table_is_named(tmp_path, monkeypatch, table):
    monkeypatch.delenv("KDCOURSE_DB_URL", raising=False)
    settings = tmp_path / "course.toml"
    settings.write_text(table)
    course = Course(root=tmp_path, source_dir=tmp_path, spec_dir=tmp_path, settings_file=settings)
    with pytest.raises(CourseError, match=r"\[gradebook\]"):
        _ = course.db_url


def test_a_password_never_shows_in_a_message():
    assert redacted_url("postgresql+psycopg://grader:s3cret@db/course") == "postgresql+psycopg://grader:***@db/course"
    assert "s3cret" not in redacted_url("postgresql+psycopg://grader:s3cret@db/course")


@pytest.mark.parametrize("name", ["../gradebook.db", "/etc/passwd", "a/b.ipynb", "..", ".", "", ".hidden", 7])
def test_a_task_names_only_plain_files(name):
    with pytest.raises(ValueError, match="not a plain file name"):
        check_file_name(name)
    assert check_file_name("f01_fixture.ipynb") == "f01_fixture.ipynb"


GOOD_REPORT = {"code_digest": "abc", "nbgrader": "0.9.6", "sandbox": True, "sandbox_reason": "",
               "daemonic": False, "folder": "/tmp/dask/w1", "folder_seen_by": ""}


@pytest.mark.parametrize("change, words", [
    ({"code_digest": "other"}, "other kdcourse code"),
    ({"nbgrader": "0.9.5"}, "nbgrader 0.9.5"),
    ({"sandbox": False, "sandbox_reason": "no bwrap"}, "install bubblewrap"),
    ({"daemonic": True}, "DASK_DISTRIBUTED__WORKER__DAEMON=False"),
    ({"folder_seen_by": "/usr"}, "which every sandbox sees"),
])
def test_an_unfit_worker_is_refused_with_its_fix(change, words):
    assert worker_problems(GOOD_REPORT, "abc", "0.9.6", unsafe_no_sandbox=False) == []
    problems = worker_problems({**GOOD_REPORT, **change}, "abc", "0.9.6", unsafe_no_sandbox=False)
    assert len(problems) == 1 and words in problems[0]


def test_a_bundle_carries_no_solution_and_no_database(tmp_path, monkeypatch):
    """The definition read from the instructor's gradebook is written into a worker's private one unchanged;
    no notebook source travels, and the worker's copy ignores ``KDCOURSE_DB_URL``."""
    from kdcourse.grading.adapter.api import open_gradebook
    from kdcourse.grading.definitions import read_definition
    from kdcourse.grading.release import release

    course = fixture_course(tmp_path / "course")
    release(course, log=lambda *_: None)
    with open_gradebook(course) as gb:
        bundle = course_bundle(course, gb, [AID])
        original = read_definition(gb, AID)
    assert set(bundle.specs) == {f"{AID}.toml"} | ({f"{course.spec(AID).judge}.py"} & set(bundle.specs))
    assert not any(name.endswith(".ipynb") for files in bundle.sources.values() for name in files)
    monkeypatch.setenv("KDCOURSE_DB_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    private = unpack_bundle(bundle, tmp_path / "worker")
    assert private.db_url.startswith("sqlite:///" + str(tmp_path / "worker"))
    with open_gradebook(private) as gb:
        assert read_definition(gb, AID) == original
    job = grading_job(course.root / "release" / AID, Submission(AID, "s"), bundle.notebooks(AID), DEFAULT_TIMEOUTS,
                      False)
    assert set(job.files) == {f"{AID}.ipynb"}


def test_a_bundle_refuses_an_assignment_not_released(tmp_path):
    from kdcourse.grading.adapter.api import open_gradebook

    course = fixture_course(tmp_path / "course")
    with open_gradebook(course) as gb, pytest.raises(CourseError, match="kdcourse release"):
        course_bundle(course, gb, [AID])


@pytest.mark.parametrize("address", ["localhost:8786", "", None])
def test_a_scheduler_address_without_a_protocol_is_refused_before_connecting(address):
    from kdcourse.grading.cluster import connect

    with pytest.raises(CourseError, match=r"give the scheduler's address, e.g. tcp://HOST:8786"):
        connect(address, log=lambda *_: None)


class _FailedFuture:
    """A Dask future whose task failed on every try with ``error``."""

    def __init__(self, error: BaseException):
        self.error = error

    def result(self, timeout=None):
        raise self.error


def test_a_task_lost_on_every_try_is_recorded_once_with_its_reason(tmp_path):
    """A task that killed its worker each time (Dask's KilledWorker) becomes a failed result naming why,
    and a second result for the same submission is ignored: nothing is recorded twice."""
    from distributed import KilledWorker

    from kdcourse.grading.cluster import ClusterGrader
    from kdcourse.grading.release import release
    from kdcourse.grading.returned import ReturnedWriter

    course = fixture_course(tmp_path / "course")
    release(course, log=lambda *_: None)
    submission = Submission(AID, "crasher")
    seen, logged = [], []
    grader = ClusterGrader(client=None, log=logged.append)
    writer = ReturnedWriter(course)
    graded = {f"{AID}.ipynb": set()}  # no result comes back: the graded cells are not looked at
    killed = _FailedFuture(KilledWorker("kdcourse-grade-x", "tcp://127.0.0.1:1", 3))
    first = grader._finish(writer, course, submission, graded, killed, "", seen.append)
    assert not first.success and "lost the worker grading it on every try" in first.failure
    again = grader._finish(writer, course, submission, graded, killed, "", seen.append)
    assert again is None and seen == [first]
    assert any("second result" in line for line in logged)
    raised = grader._finish(writer, course, Submission(AID, "other"), graded,
                            _FailedFuture(OSError("disk full")), "", seen.append)
    assert "on every try (3): OSError: disk full" in raised.failure
    from concurrent.futures import CancelledError

    cancelled = grader._finish(writer, course, Submission(AID, "third"), graded,
                               _FailedFuture(CancelledError()), "", seen.append)
    assert "cancelled its task" in cancelled.failure and "grade it again" in cancelled.failure


def test_a_returned_notebook_must_hold_each_graded_cell_once(tmp_path):
    """What a worker sends back is refused when it drops, adds or repeats a graded cell; and a cell's points
    are put back as released when the notebook is recorded (a returned notebook cannot raise them)."""
    import copy

    from kdcourse.grading.release import release
    from kdcourse.grading.returned import graded_cells_problem
    from kdcourse.notebooks import graded_cells, notebook_bytes, read_notebook

    course = fixture_course(tmp_path / "course")
    release(course, log=lambda *_: None)
    nb = read_notebook(course.release_notebook(AID))
    ids = {cell.grade_id for cell in graded_cells(nb) if cell.meta.get("grade")}
    assert graded_cells_problem(notebook_bytes(nb), ids) == ""
    first = next(i for i, cell in enumerate(nb.cells) if cell.get("metadata", {}).get("nbgrader", {}).get("grade"))
    dropped = copy.deepcopy(nb)
    name = dropped.cells.pop(first).metadata.nbgrader.grade_id
    assert f"missing: {name}" in graded_cells_problem(notebook_bytes(dropped), ids)
    repeated = copy.deepcopy(nb)
    repeated.cells.append(copy.deepcopy(nb.cells[first]))
    assert f"repeated: {name}" in graded_cells_problem(notebook_bytes(repeated), ids)
    assert "cannot be read" in graded_cells_problem(b"{not json", ids)


def test_recording_puts_back_released_points_and_adds_no_cell():
    from kdcourse.grading.adapter.config import recording_config

    course = Course(root=Path("/tmp/r"), source_dir=Path("/tmp/s"), spec_dir=Path("/tmp/p"))
    config = recording_config(course, "returned")
    names = [p.__name__ for p in config.Autograde.sanitize_preprocessors]
    assert names == ["DeduplicateIds", "OverwriteKernelspec", "OverwriteCells", "CheckCellMetadata"]
    assert config.OverwriteCells.add_missing_cells is False
    assert [p.__name__ for p in config.Autograde.autograde_preprocessors] == [
        "SaveAutoGrades", "AssignLatePenalties", "CheckCellMetadata"]


def test_a_returned_notebook_cannot_raise_what_a_cell_is_worth(tmp_path):
    """A (rogue) worker returns the notebook with every graded cell worth 1000 points: it is recorded at the
    released points (nbgrader's OverwriteCells puts them back from the gradebook before scoring)."""
    from kdcourse.grading.adapter.api import open_gradebook
    from kdcourse.grading.release import release
    from kdcourse.grading.returned import ReturnedWriter
    from kdcourse.grading.scores import read_scores
    from kdcourse.grading.simulation.submissions import solution_notebook
    from kdcourse.grading.staging import STAGING_DIR
    from kdcourse.notebooks import notebook_bytes, notebook_points

    course = fixture_course(tmp_path / "course")
    release(course, log=lambda *_: None)
    nb = solution_notebook(course, AID)
    released_total = notebook_points(nb)[0]
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
            cell.metadata.nbgrader.points = 1000
    submission = Submission(AID, "rogue")
    staged = course.folder(STAGING_DIR, submission)
    staged.mkdir(parents=True)
    (staged / "timestamp.txt").write_text("2025-01-15 12:00:00.000000 UTC\n")
    with open_gradebook(course) as gb:
        graded = {f"{AID}.ipynb": {c.name for c in gb.find_notebook(AID, AID).grade_cells}}
    problem = ReturnedWriter(course).write(submission, {f"{AID}.ipynb": notebook_bytes(nb)}, graded)
    assert problem == ""
    (row,) = [r for r in read_scores(course) if r.student == "rogue"]
    assert row.max_score == released_total and row.score <= released_total
    assert max(row.questions.values()) < 1000
