"""Read scores out of the gradebook, per submission and per question, and the verdict messages out of
the autograded notebooks."""

from __future__ import annotations

from dataclasses import dataclass, field

from kdcourse.notebooks import cell_output_text, graded_cells, read_notebook

from .course import Course, OfSubmission, Submission

__all__ = ["SubmissionScores", "read_scores", "cell_messages"]


@dataclass
class SubmissionScores(OfSubmission):
    submission: Submission
    score: float            # total (manual score where given, else autograded)
    max_score: float
    auto_score: float       # autograded part only
    auto_max: float
    needs_manual_grade: bool
    questions: dict[str, float] = field(default_factory=dict)  # "<notebook>:<grade_id>" -> score
    question_max: dict[str, float] = field(default_factory=dict)
    comments: dict[str, str] = field(default_factory=dict)  # "<notebook>:<grade_id>" -> a grader's comment


def read_scores(course: Course, assignments=None, gb=None) -> list[SubmissionScores]:
    """One entry per submission in the gradebook, sorted by assignment then student.

    ``gb``: an open ``nbgrader.api.Gradebook`` to read from (default: open one for this call).
    """
    if gb is None:
        from .adapter.api import open_gradebook

        with open_gradebook(course) as opened:
            return read_scores(course, assignments, opened)
    rows = []
    for assignment in sorted(gb.assignments, key=lambda a: a.name):
        if assignments and assignment.name not in assignments:
            continue
        for submission in sorted(assignment.submissions, key=lambda s: s.student.id):
            row = SubmissionScores(Submission(assignment.name, submission.student.id), 0.0, 0.0, 0.0, 0.0, False)
            for notebook in sorted(submission.notebooks, key=lambda n: n.name):
                solutions = {c.name for c in notebook.notebook.solution_cells}
                for grade in sorted(notebook.grades, key=lambda g: g.name):
                    key = grade.name if len(submission.notebooks) == 1 else f"{notebook.name}:{grade.name}"
                    score = float(grade.score or 0.0)
                    row.questions[key] = score
                    row.question_max[key] = float(grade.max_score)
                    row.score += score
                    row.max_score += float(grade.max_score)
                    if grade.cell.cell_type == "code" and grade.name not in solutions:
                        row.auto_score += float(grade.auto_score or 0.0)
                        row.auto_max += float(grade.max_score)
                    row.needs_manual_grade |= bool(grade.needs_manual_grade)
                for comment in sorted(notebook.comments, key=lambda c: c.name):
                    if (comment.manual_comment or "").strip():
                        key = comment.name if len(submission.notebooks) == 1 else f"{notebook.name}:{comment.name}"
                        row.comments[key] = comment.manual_comment.strip()
            rows.append(row)
    return rows


def cell_messages(course: Course, submission: Submission) -> dict[str, str]:
    """``grade_id -> text`` of what each graded cell shows in the autograded notebook (the verdicts)."""
    messages: dict[str, str] = {}
    for path in sorted(course.folder("autograded", submission).glob("*.ipynb")):
        nb = read_notebook(path)
        for graded in graded_cells(nb):
            if graded.meta.get("grade") and graded.cell.cell_type == "code":
                messages[graded.grade_id] = cell_output_text(graded.cell)
    return messages
