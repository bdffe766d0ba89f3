"""What happens to a submission that nbgrader cannot grade normally -- the documented policy.

=====================================  ===============================================================
case                                   what the grader does
=====================================  ===============================================================
notebook renamed (one unexpected       graded under the expected name; a note says so; not flagged
``.ipynb`` in place of the expected)
notebook missing                       that notebook scores 0, the submission is **flagged**
notebook not valid JSON / nbformat     that notebook scores 0, the submission is **flagged**
kernel died (``os._exit``, crash,      every graded cell of the submission scores 0 and is marked
out of memory), kernel unresponsive,   "needs manual grade" (**flagged**); the reason is reported
nbgrader error
submission over its wall-clock limit   the grading process and its kernel are killed; scored and
                                       flagged as above
a cell over the cell time limit        only that cell fails (kernel interrupted); the rest is graded
deleted or edited locked/test cells,   restored from the gradebook and graded normally
changed ``points``
=====================================  ===============================================================

"Flagged" means: the row in ``grading_report.json`` and in the export has status ``flagged`` with the
reason, and the gradebook marks the cells "needs manual grade", so the formgrader lists the submission.
The student's files in ``submitted/`` are never changed; after fixing the cause, re-grade one student
with ``kdcourse autograde ASSIGNMENT --student S``. Manual grades entered meanwhile are kept.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

REPORT_NAME = "grading_report.json"

_REASONS = (
    (re.compile(r"DeadKernelError|Kernel died|kernel died", re.I),
     "the kernel died while running the notebook (os._exit, a crash or running out of memory)"),
    (re.compile(r"UnresponsiveKernelError"), "the kernel stopped responding and could not be interrupted"),
    (re.compile(r"CellTimeoutError|Timeout waiting"),
     "a cell overran its time limit and the kernel could not be interrupted"),
    (re.compile(r"SubmissionTimeout: (.*)"), None),
    (re.compile(r"database is locked"), "the gradebook database was locked by another grader"),
    (re.compile(r"NotJSONError|JSONDecodeError"), "the notebook is not valid JSON"),
)


def failure_reason(log: str) -> str:
    """A one-line reason for an nbgrader failure, from its log."""
    for pattern, reason in _REASONS:
        match = pattern.search(log or "")
        if match:
            return reason or match.group(1).strip()
    lines = [line.strip() for line in (log or "").splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"(Error|Exception)\b", line)]
    return "nbgrader failed: " + ((errors or lines or ["no log"])[-1])[:200]


def flag_in_gradebook(course, assignment: str, student: str, notebooks: list[str] | None = None,
                      timestamp=None) -> None:
    """Score every graded cell of the submission 0 and mark it "needs manual grade".

    ``notebooks``: only these notebook ids (default: all notebooks of the assignment). Manual scores
    already entered are kept (nbgrader's score prefers the manual score).
    """
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, course.course_id) as gb:
        gb.update_or_create_student(student)
        kwargs = {"timestamp": timestamp} if timestamp else {}
        submission = gb.update_or_create_submission(assignment, student, **kwargs)
        for notebook in submission.notebooks:
            if notebooks is not None and notebook.name not in notebooks:
                continue
            for grade in notebook.grades:
                grade.auto_score = 0.0
                grade.needs_manual_grade = True
        gb.db.commit()


def load_report(root: Path) -> dict:
    path = Path(root) / REPORT_NAME
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {}


def save_report(root: Path, entries: dict) -> Path:
    """Merge ``entries`` ("<assignment>/<student>" -> dict) into the report file."""
    path = Path(root) / REPORT_NAME
    report = load_report(root)
    report.update(entries)
    path.write_text(json.dumps(dict(sorted(report.items())), indent=1, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    return path
