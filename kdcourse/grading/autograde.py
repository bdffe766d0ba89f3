"""``kdcourse autograde``: grade a class in parallel, never losing a submission.

1. each submission is copied to the work area (:mod:`kdcourse.grading.staging`), never graded in place;
2. the copies are autograded by a pool of worker processes (:mod:`kdcourse.grading.workers`), each with
   one nbgrader API -- or, with ``scheduler``, by the workers of a Dask cluster
   (:mod:`kdcourse.grading.cluster`), whose results are recorded here; every kernel runs in the sandbox
   and every verdict comes from the trusted judge (:mod:`kdcourse.grading.adapter`);
3. this process -- which no kernel can reach -- holds the gradebook: it records each submission's
   status (:mod:`kdcourse.grading.status`), flags what cannot be graded or needs a look, and reports by
   student and reason. A gradebook error is reported for that submission; the run goes on.
"""

from __future__ import annotations

import os
import sys

from .course import Course, CourseError, Submission, redacted_url
from .settings import DEFAULT_TIMEOUTS, Timeouts
from .staging import STAGING_DIR, stage
from .status import Status, StatusStore, failure_reason, flag_submission
from .workers import TaskResult, run_tasks

__all__ = ["autograde", "default_jobs", "expected_notebooks", "require_sandbox"]


def expected_notebooks(gb, course: Course, assignment: str) -> list[str]:
    """Notebook file names of ``assignment`` as recorded in the (open) gradebook by ``release``."""
    from nbgrader.api import MissingEntry

    try:
        return [f"{nb.name}.ipynb" for nb in gb.find_assignment(assignment).notebooks]
    except MissingEntry:
        raise CourseError(f"{assignment} is not in the gradebook {redacted_url(course.db_url)}: "
                          f"run `kdcourse release {assignment}` first") from None


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def require_sandbox(unsafe_no_sandbox: bool) -> None:
    """Raise CourseError naming the fix when kernels cannot be sandboxed here (unless told to go without)."""
    if unsafe_no_sandbox:
        return
    from kdcourse.sandbox import sandbox_status

    status = sandbox_status()
    if not status.available:
        raise CourseError(f"the grading sandbox cannot start here: {status.reason}. "
                          "To grade without it anyway (student code then runs with your rights), pass "
                          "--unsafe-no-sandbox; the report will say so.")


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: workers may be forked while the bar is live
    disabled = not enabled or os.environ.get("KDCOURSE_PROGRESS", "1") == "0"
    return tqdm(total=total, desc="autograde", unit="submission", disable=disabled, file=sys.stderr,
                dynamic_ncols=True)


def ensure_students(gb, students) -> None:
    """Add the ``students`` missing from the open gradebook ``gb`` in one transaction, before grading.

    Graders working at once (on different assignments) would otherwise race to create the same student;
    a student another grader adds meanwhile is no error.
    """
    from nbgrader.api import InvalidEntry, Student
    from sqlalchemy.exc import IntegrityError

    missing = sorted(set(students) - {s.id for s in gb.students})
    if not missing:
        return
    try:
        gb.db.add_all([Student(id=student) for student in missing])
        gb.db.commit()
    except IntegrityError:
        gb.db.rollback()
        for student in missing:
            try:
                gb.update_or_create_student(student)
            except InvalidEntry:  # created by another grader between the look-up and the insert
                gb.db.rollback()


class _Recorder:
    """The one gradebook session of a run: statuses and flags, written as each submission finishes."""

    def __init__(self, course: Course, log, students=()):
        from .adapter.api import open_gradebook

        self.course, self.log = course, log
        self.gb = open_gradebook(course)
        self.store = StatusStore(self.gb.engine)
        self.unrecorded: list[str] = []
        ensure_students(self.gb, students)

    def close(self) -> None:
        self.gb.close()

    def record(self, status: Status, zero_notebooks: list[str] | None = None) -> None:
        try:
            if status.status == "flagged" or zero_notebooks:
                flag_submission(self.gb, status.submission, zero_notebooks)
            self.store.write(status)
        except Exception as error:  # noqa: BLE001 - a locked or broken gradebook costs this submission's record only
            self.gb.db.rollback()
            message = f"{status.submission}: could not record in the gradebook ({type(error).__name__}: {error})"
            self.unrecorded.append(message)
            self.log("ERROR " + message)


def _apply(status: Status, result: TaskResult, bad_notebooks: list[str]) -> list[str] | None:
    """Merge a worker's result into ``status``; return the notebooks to score 0 (or None)."""
    status.seconds += result.seconds
    status.note(*result.notes)
    if result.reasons:
        status.flag(*result.reasons)
    if not result.success:
        status.flag(result.failure or failure_reason(result.log))
        return ["*"]
    return bad_notebooks or None


def autograde(course: Course, assignments=None, students=None, jobs: int | None = None,
              timeouts: Timeouts = DEFAULT_TIMEOUTS, progress: bool = True, log=print,
              unsafe_no_sandbox: bool = False, scheduler: str | None = None) -> list[Status]:
    """Autograde every submission of ``assignments`` (all) by ``students`` (all who submitted).

    ``scheduler``: the address of a Dask scheduler (``tcp://HOST:PORT``) whose workers grade, one task per
    submission; ``jobs`` is then not used. Default: ``jobs`` local grading processes.

    Returns one :class:`~kdcourse.grading.status.Status` per submission, also kept in the status store.

    Raises
    ------
    CourseError
        An unknown assignment or student, an assignment not released yet, no sandbox (see
        :func:`require_sandbox`; with ``scheduler``, on a worker), or a cluster that cannot grade.
    """
    from .adapter.api import ensure_tools_on_path, quiet_sqlalchemy

    if scheduler is None:
        require_sandbox(unsafe_no_sandbox)
    ensure_tools_on_path()
    quiet_sqlalchemy()
    jobs = jobs or default_jobs()
    chosen = course.submissions("submitted", assignments, students)
    if students:
        unknown = sorted(set(students) - {s.student for s in chosen})
        if unknown:
            raise CourseError(f"no submission from {', '.join(unknown)} in {course.root / 'submitted'}")
    if not chosen:
        log("nothing to grade: no submissions in " + str(course.root / "submitted"))
        return []
    cluster = None
    if scheduler is not None:
        from .cluster import connect

        cluster = connect(scheduler, log=log, unsafe_no_sandbox=unsafe_no_sandbox)
    try:
        recorder = _Recorder(course, log, students=[s.student for s in chosen])
        try:
            if cluster is None:
                def run(tasks, on_result):
                    run_tasks(course, tasks, jobs, timeouts, STAGING_DIR, on_result, unsafe_no_sandbox=unsafe_no_sandbox)
            else:
                def run(tasks, on_result):
                    cluster.run(course, tasks, timeouts, on_result, unsafe_no_sandbox=unsafe_no_sandbox)
            statuses = _grade(course, recorder, chosen, run, progress, log, unsafe_no_sandbox)
        finally:
            recorder.close()
    finally:
        if cluster is not None:
            cluster.close()
    if cluster is not None:
        log(cluster.summary())
    return statuses


def _grade(course, recorder, chosen, run, progress, log, unsafe_no_sandbox) -> list[Status]:
    """Stage ``chosen``, grade what nbgrader can open with ``run(tasks, on_result)``, record and report."""
    statuses: dict[Submission, Status] = {}
    bad: dict[Submission, list[str]] = {}
    tasks: list[Submission] = []
    notebooks = {aid: expected_notebooks(recorder.gb, course, aid) for aid in {s.assignment for s in chosen}}
    for submission in chosen:
        staged = stage(course, submission, notebooks[submission.assignment])
        status = statuses[submission] = Status(submission, sandboxed=not unsafe_no_sandbox)
        status.note(*staged.notes)
        if staged.problems:
            status.flag(*staged.problems)
        bad[submission] = staged.bad_notebooks
        if staged.has_notebooks(notebooks[submission.assignment]):
            tasks.append(submission)
        else:  # nothing nbgrader could open: score 0 and flag without starting a kernel
            recorder.record(status, zero_notebooks=["*"])
    bar = _progress(len(statuses), progress)
    bar.update(len(statuses) - len(tasks))

    def on_result(result: TaskResult):
        status = statuses[result.submission]
        recorder.record(status, _apply(status, result, bad[result.submission]))
        bar.update(1)
        flagged = sum(s.status == "flagged" for s in statuses.values())
        bar.set_postfix_str(f"flagged {flagged}")

    try:
        if tasks:
            run(tasks, on_result)
    finally:
        bar.close()
    ordered = [statuses[key] for key in sorted(statuses)]
    for status in ordered:
        if status.status == "flagged":
            log(f"flagged {status.submission}: {'; '.join(status.reasons)}")
        for note in status.notes:
            log(f"note {status.submission}: {note}")
    if unsafe_no_sandbox:
        log("WARNING: graded without the sandbox (--unsafe-no-sandbox); every submission is flagged for it")
    for message in recorder.unrecorded:
        log("NOT RECORDED " + message)
    return ordered
