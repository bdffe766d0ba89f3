"""A simulated class: submissions built from the sources, each with what grading must give it.

Used by ``kdcourse verify`` (solution, blank, one student per misconception) and ``kdcourse demo``
(the same plus the bad and hostile submissions of :mod:`kdcourse.grading.badsubmissions`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..course import Course, OfSubmission, Submission
from ..scores import SubmissionScores, cell_messages, read_scores
from . import badsubmissions as bad
from .submissions import blank_notebook, misconception_notebook, notebook_files, solution_notebook, submit_files

__all__ = ["SimulatedStudent", "Check", "build_class", "check_class", "check_table"]


@dataclass
class SimulatedStudent(OfSubmission):
    submission: Submission
    kind: str                          # "solution", "blank", "misconception", "bad"
    expect: bad.Expectation
    messages: tuple[str, ...] = ()     # substrings expected in the graded cells' outputs
    description: str = ""


@dataclass
class Check:
    student: SimulatedStudent
    auto_score: float | None
    auto_max: float
    status: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def build_class(course: Course, assignments: list[str], with_bad: list[str] = (), stall_s: float = 60.0
                ) -> list[SimulatedStudent]:
    """Write the simulated submissions into ``submitted/`` and return what each must score.

    ``with_bad``: assignments that also get every bad/hostile submission.
    """
    students = []
    for aid in assignments:
        spec = course.spec(aid)
        solution = solution_notebook(course, aid)
        blank = blank_notebook(course, aid)
        submit_files(course, Submission(aid, "solution"), notebook_files(solution, aid))
        students.append(SimulatedStudent(Submission(aid, "solution"), "solution",
                                         bad.Expectation(score=spec.auto_points), description="the instructor's solution"))
        submit_files(course, Submission(aid, "blank"), notebook_files(blank, aid))
        students.append(SimulatedStudent(Submission(aid, "blank"), "blank", bad.Expectation(score=0.0),
                                         description="the release, untouched"))
        wrong, wrong_score = None, 0.0
        for m in spec.misconceptions:
            nb = misconception_notebook(course, spec, m, base=solution)
            if wrong is None:
                wrong, wrong_score = nb, m.expected_score
            submit_files(course, Submission(aid, m.name), notebook_files(nb, aid))
            students.append(SimulatedStudent(Submission(aid, m.name), "misconception",
                                             bad.Expectation(score=m.expected_score),
                                             messages=m.expected_messages, description=m.description))
        if aid in with_bad:
            ctx = bad.Context(aid, solution, blank, spec.auto_points, wrong, wrong_score, stall_s)
            for case in bad.CASES:
                submit_files(course, Submission(aid, case.name), case.build(ctx))
                students.append(SimulatedStudent(Submission(aid, case.name), "bad", case.expect(ctx),
                                                 description=case.description))
    return students


def check_class(course: Course, students: list[SimulatedStudent], statuses) -> list[Check]:
    """Compare the gradebook and the autograded notebooks with what each student must get."""
    status = {s.submission: s for s in statuses}
    scores: dict[Submission, SubmissionScores] = {s.submission: s for s in read_scores(course)}
    checks = []
    for sim in students:
        row = scores.get(sim.submission)
        outcome = status.get(sim.submission)
        flagged = outcome is not None and outcome.status == "flagged"
        got = row.auto_score if row else None
        check = Check(sim, got, row.auto_max if row else 0.0, "flagged" if flagged else "graded")
        e = sim.expect
        if got is None:
            check.problems.append("not in the gradebook")
        else:
            if e.score is not None and abs(got - e.score) > 1e-9:
                check.problems.append(f"scored {got:g}, expected {e.score:g}")
            if e.at_most is not None and got > e.at_most + 1e-9:
                check.problems.append(f"scored {got:g}, expected at most {e.at_most:g}")
            if e.below_full and not got < row.auto_max:
                check.problems.append(f"scored {got:g}, expected less than {row.auto_max:g}")
        if flagged != e.flagged:
            reasons = "; ".join(outcome.reasons) if outcome else ""
            check.problems.append(("flagged: " + reasons) if flagged else "expected to be flagged")
        if sim.messages:
            text = "\n".join(cell_messages(course, sim.submission).values())
            missing = [m for m in sim.messages if m not in text]
            if missing:
                check.problems.append("message(s) not shown: " + ", ".join(repr(m) for m in missing))
        checks.append(check)
    return checks


def check_table(checks: list[Check]) -> str:
    """The class table: each simulated student, what grading had to give it, what it gave."""
    from kdcourse.tables import format_table

    header = ["assignment", "student", "kind", "expected", "autograded", "status", "check"]
    rows = []
    for c in checks:
        got = "-" if c.auto_score is None else f"{c.auto_score:g}/{c.auto_max:g}"
        rows.append([c.student.assignment, c.student.student, c.student.kind, c.student.expect.describe(), got,
                     c.status, "ok" if c.ok else "SURPRISE: " + "; ".join(c.problems)])
    return format_table(header, rows)
