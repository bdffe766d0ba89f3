"""One place that creates nbgrader's Python API for a course and checks what it returns.

nbgrader's API never raises: every call returns ``{"success": bool, "log": str, "error": str}``.
:func:`checked` turns a failure into :class:`GradingError` carrying nbgrader's log.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..course import Course
from ..settings import DEFAULT_TIMEOUTS, Timeouts
from .config import course_config, recording_config

__all__ = ["GradingError", "ensure_tools_on_path", "make_api", "checked", "quiet_sqlalchemy", "open_gradebook"]


class GradingError(RuntimeError):
    """An nbgrader step failed; the message includes nbgrader's own log."""


def ensure_tools_on_path() -> None:
    """nbgrader runs ``alembic`` as a subprocess: put this interpreter's ``bin/`` first on PATH."""
    bindir = str(Path(sys.executable).parent)
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if parts[:1] != [bindir]:
        os.environ["PATH"] = os.pathsep.join([bindir, *[p for p in parts if p != bindir]])


def quiet_sqlalchemy() -> None:
    """nbgrader 0.9.6 triggers harmless SAWarnings with SQLAlchemy 2.x; keep them off the terminal."""
    import warnings

    warnings.filterwarnings("ignore", message=r".*not in session.*")
    warnings.filterwarnings("ignore", module=r"nbgrader\.api")


def open_gradebook(course: Course):
    """The course's nbgrader ``Gradebook`` (a context manager; close it), created if missing."""
    ensure_tools_on_path()
    quiet_sqlalchemy()
    from nbgrader.api import Gradebook

    course.root.mkdir(parents=True, exist_ok=True)
    return Gradebook(course.db_url, course.course_id)


def make_api(course: Course, timeouts: Timeouts = DEFAULT_TIMEOUTS, *, submitted_directory: str = "submitted",
             unsafe_no_sandbox: bool = False, record_only: bool = False):
    """An ``nbgrader.apps.NbGraderAPI`` for ``course`` with kdcourse's configuration.

    ``record_only``: its ``autograde`` runs no kernel and only records notebooks graded elsewhere
    (:func:`~kdcourse.grading.adapter.config.recording_config`).
    """
    ensure_tools_on_path()
    quiet_sqlalchemy()
    course.root.mkdir(parents=True, exist_ok=True)
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    if record_only:
        config = recording_config(course, submitted_directory)
    else:
        config = course_config(course, timeouts, submitted_directory=submitted_directory,
                               unsafe_no_sandbox=unsafe_no_sandbox)
    coursedir = CourseDirectory(config=config)
    return NbGraderAPI(coursedir=coursedir, config=config)


def checked(result: dict, what: str) -> str:
    """Return nbgrader's log of a successful call; raise GradingError with the log otherwise."""
    if not result.get("success"):
        details = "\n".join(x for x in (result.get("error"), result.get("log")) if x)
        raise GradingError(f"{what} failed:\n{details.strip()}")
    return result.get("log", "")
