"""Read scores out of the gradebook, per submission and per question, and test-cell messages out of the
autograded notebooks."""

from __future__ import annotations

from dataclasses import dataclass, field

import nbformat

from .course import Course


@dataclass
class SubmissionScores:
    assignment: str
    student: str
    score: float            # total (manual score where given, else autograded)
    max_score: float
    auto_score: float       # autograded part only
    auto_max: float
    needs_manual_grade: bool
    questions: dict[str, float] = field(default_factory=dict)  # "<notebook>:<grade_id>" -> score
    question_max: dict[str, float] = field(default_factory=dict)


def read_scores(course: Course, assignments=None) -> list[SubmissionScores]:
    """One entry per submission in the gradebook, sorted by assignment then student."""
    from nbgrader.api import Gradebook

    rows = []
    with Gradebook(course.db_url, course.course_id) as gb:
        for assignment in sorted(gb.assignments, key=lambda a: a.name):
            if assignments and assignment.name not in assignments:
                continue
            for submission in sorted(assignment.submissions, key=lambda s: s.student.id):
                row = SubmissionScores(assignment.name, submission.student.id, 0.0, 0.0, 0.0, 0.0, False)
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
                rows.append(row)
    return rows


def cell_messages(course: Course, assignment: str, student: str) -> dict[str, str]:
    """``grade_id -> text`` of everything the graded cells printed or raised in the autograded notebook."""
    messages: dict[str, str] = {}
    folder = course.folder("autograded", student, assignment)
    for path in sorted(folder.glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        for cell in nb.cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if not meta.get("grade") or cell.cell_type != "code":
                continue
            parts = []
            for output in cell.get("outputs", []):
                if output.get("output_type") == "stream":
                    parts.append(output.get("text", ""))
                elif output.get("output_type") == "error":
                    parts.append(f"{output.get('ename', '')}: {output.get('evalue', '')}")
                elif "data" in output:
                    parts.append(str(output["data"].get("text/plain", "")))
            messages[meta["grade_id"]] = "\n".join(parts)
    return messages
