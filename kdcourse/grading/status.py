"""What happens to a submission that cannot be graded normally -- the documented policy -- and the one
place each submission's status is kept.

=====================================  ===============================================================
case                                   what the grader does
=====================================  ===============================================================
notebook renamed (one unexpected       graded under the expected name; a note says so; not flagged
``.ipynb`` in place of the expected)
notebook missing                       that notebook scores 0, the submission is **flagged**
notebook not valid JSON / nbformat     that notebook scores 0, the submission is **flagged**
kernel died (``os._exit``, crash),     every graded cell of the submission scores 0 and is marked
kernel unresponsive, nbgrader error,   "needs manual grade" (**flagged**); the reason is reported
the gradebook stayed locked
submission over its wall-clock limit   the grading process and its kernel are killed; scored and
                                       flagged as above
a cell over the cell time limit        only that cell fails (kernel interrupted); the rest is graded
a sandbox limit hit (memory,           graded on what the answers deserve and **flagged** with the
processes, CPU time, disk, output)     limit in words ("used more than 2 GiB of memory")
code that reaches for the grading      graded on what the answers deserve (the judge is outside the
machinery (IPython hooks, rebinding    kernel) and **flagged** with the cell and what it does
``check``, monkeypatching modules)
deleted or edited locked/test cells,   restored from the gradebook and graded normally
changed ``points``
=====================================  ===============================================================

"Flagged" means: the status store says ``flagged`` with the reasons, the export's ``status`` and
``reasons`` columns show them, the notebook is flagged in the gradebook (the formgrader shows the
flag), and for an ungradable submission its cells are marked "needs manual grade". The student's files
in ``submitted/`` are never changed; after fixing the cause, re-grade one student with
``kdcourse autograde ASSIGNMENT --student S``. Manual grades entered meanwhile are kept.

The status store is a table (``kdcourse_status``) in the gradebook's own database, so it travels with
the gradebook (SQLite or PostgreSQL) and is keyed like it, by :class:`~kdcourse.grading.course.Submission`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field

from .course import OfSubmission, Submission

__all__ = ["Status", "failure_reason", "clean_words", "StatusStore", "flag_submission", "STATUS_TABLE"]

STATUS_TABLE = "kdcourse_status"

#: What a failed nbgrader call's log shows, and the reason in words. Only exception names are matched and
#: no text is taken from the log: nbgrader's log quotes the notebook (a cell's grade_id, say), which the
#: student wrote.
_REASONS = (
    (re.compile(r"DeadKernelError|Kernel died|kernel died", re.I),
     "the kernel died while running the notebook (os._exit, a crash or running out of memory)"),
    (re.compile(r"UnresponsiveKernelError"), "the kernel stopped responding and could not be interrupted"),
    (re.compile(r"CellTimeoutError|Timeout waiting"),
     "a cell overran its time limit and the kernel could not be interrupted"),
    (re.compile(r"database is locked"), "the gradebook database stayed locked by another grader"),
    (re.compile(r"NotJSONError|JSONDecodeError"), "the notebook is not valid JSON"),
    (re.compile(r"SandboxUnavailable"), "the grading sandbox could not start (see `kdcourse doctor`)"),
)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]+")


def clean_words(text: str, limit: int = 400) -> str:
    """``text`` as safe words for a terminal, a CSV file or a web page: control and direction-changing
    characters become spaces, runs of white space one space, and it is cut at ``limit`` characters."""
    words = " ".join(_CONTROL.sub(" ", str(text)).split())
    return words if len(words) <= limit else words[: limit - 1] + "…"


def failure_reason(log: str) -> str:
    """A one-line reason for a failed nbgrader call, from its log (the exception's kind, never its text)."""
    for pattern, reason in _REASONS:
        if pattern.search(log or ""):
            return reason
    kinds = re.findall(r"\b([A-Z][A-Za-z]*(?:Error|Exception))\b", log or "")
    return "nbgrader failed" + (f" ({kinds[-1]}); see its log" if kinds else "; see its log")


@dataclass
class Status(OfSubmission):
    """The grading status of one submission.

    Attributes
    ----------
    submission : Submission
    status : str
        ``"graded"``, or ``"flagged"`` when a person should look at it (see the policy above).
    reasons : list of str
        Why it is flagged, in words.
    notes : list of str
        Handled, for information (a renamed notebook, an interrupted cell).
    seconds : float
        Wall time of grading it.
    sandboxed : bool
        Whether its kernels ran in the sandbox.
    """

    submission: Submission
    status: str = "graded"
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    sandboxed: bool = True

    def flag(self, *reasons: str) -> None:
        """Flag for review, adding ``reasons`` (each once, as :func:`clean_words`)."""
        self.status = "flagged"
        for reason in map(clean_words, reasons):
            if reason not in self.reasons:
                self.reasons.append(reason)

    def note(self, *notes: str) -> None:
        """Add ``notes`` (each once, as :func:`clean_words`)."""
        for note in map(clean_words, notes):
            if note not in self.notes:
                self.notes.append(note)


def _table(metadata):
    from sqlalchemy import Boolean, Column, Float, String, Table, Text

    return Table(STATUS_TABLE, metadata,
                 Column("assignment", String(128), primary_key=True),
                 Column("student", String(128), primary_key=True),
                 Column("status", String(16), nullable=False),
                 Column("reasons", Text, nullable=False),
                 Column("notes", Text, nullable=False),
                 Column("seconds", Float, nullable=False),
                 Column("sandboxed", Boolean, nullable=False),
                 Column("graded_at", String(40), nullable=False))


def _create_once(table, engine) -> None:
    """Create ``table`` unless it exists; another grader creating it at the same moment is no error."""
    from sqlalchemy import inspect
    from sqlalchemy.exc import DBAPIError

    try:
        table.create(engine, checkfirst=True)
    except DBAPIError:  # PostgreSQL: "duplicate key ... pg_type"; SQLite: "table ... already exists"
        if not inspect(engine).has_table(table.name):
            raise


class StatusStore:
    """The status of every graded submission, in the gradebook database (table :data:`STATUS_TABLE`).

    Parameters
    ----------
    engine : sqlalchemy.Engine
        The gradebook's engine (``Gradebook(...).engine``), opened first so nbgrader creates its tables.
    """

    def __init__(self, engine):
        from sqlalchemy import MetaData

        self.engine = engine
        self.table = _table(MetaData())
        _create_once(self.table, engine)

    def write(self, status: Status) -> None:
        """Insert or replace the row of ``status.submission``."""
        row = {"assignment": status.assignment, "student": status.student, "status": status.status,
               "reasons": json.dumps(status.reasons, ensure_ascii=False),
               "notes": json.dumps(status.notes, ensure_ascii=False), "seconds": round(status.seconds, 2),
               "sandboxed": bool(status.sandboxed),
               "graded_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        key = (self.table.c.assignment == status.assignment) & (self.table.c.student == status.student)
        with self.engine.begin() as connection:
            connection.execute(self.table.delete().where(key))
            connection.execute(self.table.insert().values(**row))

    def read(self) -> dict[Submission, Status]:
        """Every stored status, keyed by submission."""
        with self.engine.connect() as connection:
            rows = connection.execute(self.table.select()).mappings().all()
        return {Submission(r["assignment"], r["student"]): Status(
            Submission(r["assignment"], r["student"]), r["status"], json.loads(r["reasons"]), json.loads(r["notes"]),
            float(r["seconds"]), bool(r["sandboxed"])) for r in rows}


def flag_submission(gb, submission: Submission, zero_notebooks: list[str] | None = None) -> None:
    """Flag a submission in an open nbgrader ``Gradebook`` (the formgrader shows the flag).

    Parameters
    ----------
    gb : nbgrader.api.Gradebook
    submission : Submission
    zero_notebooks : list of str, optional
        Notebook ids whose graded cells score 0 and are marked "needs manual grade" (an ungradable
        notebook). Manual scores already entered are kept (nbgrader prefers them). Default: none;
        ``["*"]``: every notebook of the submission.
    """
    gb.update_or_create_student(submission.student)
    graded = gb.update_or_create_submission(submission.assignment, submission.student)
    zero = set(zero_notebooks or [])
    for notebook in graded.notebooks:
        notebook.flagged = True
        if "*" in zero or notebook.name in zero:
            for grade in notebook.grades:
                grade.auto_score = 0.0
                grade.needs_manual_grade = True
    gb.db.commit()
