"""One place that creates nbgrader's Python API for a course and checks what it returns.

nbgrader's API never raises: every call returns ``{"success": bool, "log": str, "error": str}``.
:func:`checked` turns a failure into :class:`GradingError` carrying nbgrader's log.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .config import DEFAULT_TIMEOUTS, Timeouts, course_config
from .course import Course


class GradingError(RuntimeError):
    """An nbgrader step failed; the message includes nbgrader's own log."""


def ensure_tools_on_path() -> None:
    """nbgrader runs ``alembic`` as a subprocess: put this interpreter's ``bin/`` first on PATH."""
    bindir = str(Path(sys.executable).parent)
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if parts[:1] != [bindir]:
        os.environ["PATH"] = os.pathsep.join([bindir, *[p for p in parts if p != bindir]])


def make_api(course: Course, timeouts: Timeouts = DEFAULT_TIMEOUTS, *,
             submitted_directory: str = "submitted"):
    """An ``nbgrader.apps.NbGraderAPI`` for ``course`` with the hardened configuration."""
    ensure_tools_on_path()
    course.root.mkdir(parents=True, exist_ok=True)
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    config = course_config(course, timeouts, submitted_directory=submitted_directory)
    coursedir = CourseDirectory(config=config)
    return NbGraderAPI(coursedir=coursedir, config=config)


def checked(result: dict, what: str) -> str:
    """Return nbgrader's log of a successful call; raise GradingError with the log otherwise."""
    if not result.get("success"):
        details = "\n".join(x for x in (result.get("error"), result.get("log")) if x)
        raise GradingError(f"{what} failed:\n{details.strip()}")
    return result.get("log", "")
