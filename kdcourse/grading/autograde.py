"""``kdcourse autograde``: grade a class in parallel, never losing a submission.

1. each submission is copied to the work area (``kdcourse.grading.staging``), never graded in place;
2. the copies are autograded by a pool of worker processes (``kdcourse.grading.workers``), each with one
   nbgrader API, one torch/BLAS thread per kernel and a watchdog;
3. what nbgrader could not grade is scored and flagged per ``kdcourse.grading.policy`` and reported by
   student and reason; the run always goes on with the other students.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from .config import DEFAULT_TIMEOUTS, Timeouts
from .course import Course, CourseError
from .policy import failure_reason, flag_in_gradebook, save_report
from .staging import STAGING_DIR, stage
from .workers import TaskResult, quiet_sqlalchemy, run_tasks


@dataclass
class Outcome:
    assignment: str
    student: str
    status: str = "graded"                           # "graded" or "flagged"
    reasons: list[str] = field(default_factory=list)  # why it is flagged
    notes: list[str] = field(default_factory=list)    # handled, for information
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"status": self.status, "reasons": self.reasons, "notes": self.notes,
                "seconds": round(self.seconds, 2)}


def expected_notebooks(course: Course, assignment: str) -> list[str]:
    """Notebook file names of ``assignment`` as recorded in the gradebook by ``release``."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(course.db_url, course.course_id) as gb:
        try:
            return [f"{nb.name}.ipynb" for nb in gb.find_assignment(assignment).notebooks]
        except MissingEntry:
            raise CourseError(f"{assignment} is not in the gradebook {course.db_path}: "
                              f"run `kdcourse release {assignment}` first") from None


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: workers may be forked while the bar is live
    disabled = not enabled or os.environ.get("KDCOURSE_PROGRESS", "1") == "0"
    return tqdm(total=total, desc="autograde", unit="submission", disable=disabled, file=sys.stderr,
                dynamic_ncols=True)


def autograde(course: Course, assignments=None, students=None, jobs: int | None = None,
              timeouts: Timeouts = DEFAULT_TIMEOUTS, progress: bool = True, log=print) -> list[Outcome]:
    """Autograde every submission of ``assignments`` (all) by ``students`` (all who submitted).

    Returns one :class:`Outcome` per submission; also merged into ``grading_report.json``.
    """
    from .nbapi import ensure_tools_on_path

    ensure_tools_on_path()
    quiet_sqlalchemy()
    jobs = jobs or default_jobs()
    tasks, outcomes = [], {}
    for aid in course.select(assignments):
        notebooks = expected_notebooks(course, aid)
        submitted = [s for s in course.students("submitted") if course.folder("submitted", s, aid).is_dir()]
        chosen = [s for s in submitted if not students or s in students]
        for student in chosen:
            staged = stage(course, student, aid, notebooks)
            outcome = Outcome(aid, student, notes=list(staged.notes), reasons=list(staged.problems))
            outcomes[(aid, student)] = outcome
            if any((staged.folder / n).exists() for n in notebooks):
                tasks.append((aid, student))
            else:  # nothing nbgrader could open: score 0 and flag without starting a kernel
                flag_in_gradebook(course, aid, student)
                outcome.status = "flagged"
    if students:
        known = {s for (_, s) in outcomes}
        unknown = [s for s in students if s not in known]
        if unknown:
            raise CourseError(f"no submission from {', '.join(unknown)} in {course.root / 'submitted'}")
    if not outcomes:
        log("nothing to grade: no submissions in " + str(course.root / "submitted"))
        return []

    bar = _progress(len(outcomes), progress)
    counts = {"done": len(outcomes) - len(tasks), "failed": sum(o.status == "flagged" for o in outcomes.values())}
    bar.update(counts["done"])

    def show():
        left = len(outcomes) - counts["done"]
        bar.set_postfix_str(f"done {counts['done'] - counts['failed']} failed {counts['failed']} left {left}")

    retry = []

    def on_result(result: TaskResult):
        outcome = outcomes[(result.assignment, result.student)]
        outcome.seconds += result.seconds
        if not result.success and "database is locked" in result.log and (result.assignment, result.student) not in retry:
            retry.append((result.assignment, result.student))
            return
        if not result.success:
            reason = failure_reason(result.log)
            outcome.reasons.append(reason)
            flag_in_gradebook(course, result.assignment, result.student)
        elif outcome.reasons:  # graded, but a notebook was missing or invalid: scored 0 by nbgrader
            bad = [n[:-len(".ipynb")] for n in expected_notebooks(course, result.assignment)
                   if not (course.root / STAGING_DIR / result.student / result.assignment / n).exists()]
            flag_in_gradebook(course, result.assignment, result.student, notebooks=bad)
        if outcome.reasons:
            outcome.status = "flagged"
            counts["failed"] += 1
        counts["done"] += 1
        bar.update(1)
        show()

    show()
    try:
        if tasks:
            run_tasks(course, tasks, jobs, timeouts, STAGING_DIR, on_result)
        if retry:
            run_tasks(course, retry, 1, timeouts, STAGING_DIR, on_result)
    finally:
        bar.close()
    ordered = [outcomes[key] for key in sorted(outcomes)]
    save_report(course.root, {f"{o.assignment}/{o.student}": o.as_dict() for o in ordered})
    for o in ordered:
        if o.status == "flagged":
            log(f"flagged {o.assignment}/{o.student}: {'; '.join(o.reasons)}")
        for note in o.notes:
            log(f"note {o.assignment}/{o.student}: {note}")
    return ordered
