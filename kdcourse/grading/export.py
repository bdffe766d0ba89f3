"""``kdcourse export``: grades as CSV (one row per student and assignment, one column per question, and
the comments graders wrote in the formgrader) and a PNG histogram of the scores of each assignment."""

from __future__ import annotations

import csv
from pathlib import Path

from .course import Course
from .scores import SubmissionScores, read_scores
from .status import StatusStore

FIXED_COLUMNS = ["assignment", "student", "score", "max_score", "auto_score", "auto_max_score", "status",
                 "needs_manual_grade", "reasons", "comments"]


def export_rows(course: Course, assignments=None) -> tuple[list[str], list[dict], list[SubmissionScores]]:
    """The CSV header, the rows (question columns are ``q:<grade_id>``) and the scores they came from.

    Scores come from the gradebook and statuses from the status store in the same database, joined on
    the submission; one gradebook session serves both.
    """
    from .adapter.api import open_gradebook

    with open_gradebook(course) as gb:
        scores = read_scores(course, assignments, gb)
        statuses = StatusStore(gb.engine).read()
    questions = []
    for row in scores:
        for key in row.questions:
            if f"q:{key}" not in questions:
                questions.append(f"q:{key}")
    rows = []
    for s in scores:
        status = statuses.get(s.submission)
        row = {"assignment": s.assignment, "student": s.student, "score": _num(s.score),
               "max_score": _num(s.max_score), "auto_score": _num(s.auto_score),
               "auto_max_score": _num(s.auto_max), "status": status.status if status else "not autograded",
               "needs_manual_grade": str(s.needs_manual_grade).lower(),
               "reasons": "; ".join(status.reasons) if status else "", "comments": comments_cell(s.comments)}
        row.update({f"q:{k}": _num(v) for k, v in s.questions.items()})
        rows.append(row)
    return FIXED_COLUMNS + questions, rows, scores


def comments_cell(comments: dict[str, str]) -> str:
    """The graders' comments of one submission in one cell: ``<grade_id>: <comment>``, joined by `` | ``."""
    return " | ".join(f"{key}: {' '.join(text.split())}" for key, text in comments.items())


def _num(x: float) -> str:
    return f"{x:g}"


def spreadsheet_safe(value: object) -> str:
    """A CSV cell no spreadsheet runs as a formula: text starting with ``= + - @``, a tab or a carriage
    return gets a leading apostrophe (numbers are left as they are)."""
    text = str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        try:
            float(text)
        except ValueError:
            return "'" + text
    return text


def write_csv(path: Path, header: list[str], rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=[spreadsheet_safe(h) for h in header], restval="")
        writer.writeheader()
        writer.writerows({spreadsheet_safe(k): spreadsheet_safe(v) for k, v in row.items()} for row in rows)
    return path


def plot_histograms(scores: list[SubmissionScores], path: Path) -> Path:
    """One histogram per assignment of the total score in percent of the maximum."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    by_assignment: dict[str, list[float]] = {}
    for s in scores:
        by_assignment.setdefault(s.assignment, []).append(100.0 * s.score / s.max_score if s.max_score else 0.0)
    n = max(1, len(by_assignment))
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 3.2), squeeze=False)
    for ax, (aid, values) in zip(axes[0], sorted(by_assignment.items())):
        ax.hist(values, bins=[i * 10 for i in range(11)], color="tab:blue", edgecolor="white")
        ax.set_title(f"{aid} (n={len(values)})")
        ax.set_xlabel("score (% of maximum)")
        ax.set_ylabel("students")
    if not by_assignment:
        axes[0][0].set_title("no graded submissions")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def export(course: Course, out_dir: Path | None = None, assignments=None, log=print) -> tuple[Path, Path]:
    """Write ``grades.csv`` and ``grades.png`` into ``out_dir`` (default ``<root>/export``)."""
    out_dir = Path(out_dir or course.root / "export")
    header, rows, scores = export_rows(course, assignments)
    csv_path = write_csv(out_dir / "grades.csv", header, rows)
    png_path = plot_histograms(scores, out_dir / "grades.png")
    log(f"exported {len(rows)} row(s) to {csv_path} and the histogram to {png_path}")
    return csv_path, png_path
