"""The hardened nbgrader configuration used by every kdcourse grading command.

Also applied by ``grading/nbgrader_config.py``, so plain ``nbgrader`` commands run with the same rules.
What it sets, and why (see the notes in the docstrings of :func:`harden`):

* sources stay in ``notebooks/assignments`` (``CourseDirectory.source_directory`` points there);
* cell timeout, kernel start timeout and a raised IOPub timeout so that CPU contention or a long C-level
  call fails one cell, not the whole submission;
* tracebacks in ``Minimal`` mode, ``ClearHiddenTests`` and ``ClearMarkScheme`` in feedback, so hidden
  tests and mark schemes never leak;
* deleted grade cells are restored (``OverwriteCells.add_missing_cells``);
* stderr in a test cell does not cost points (:class:`kdcourse.grading.preprocessors.StderrAsStdout`);
* output of a cell limited to a few hundred lines (a 100,000-line print keeps the notebook small).
"""

from __future__ import annotations

from dataclasses import dataclass

from traitlets.config import Config

from .course import Course, relative_or_absolute


@dataclass(frozen=True)
class Timeouts:
    """Seconds. ``cell``: per cell before the kernel is interrupted; ``iopub``: how long to wait for a
    cell's output to finish after its reply (or after an interrupt that a C-level call delays);
    ``startup``: kernel start; ``submission``: wall-clock limit of one student's assignment, after which
    the worker and its kernel are killed and the submission is reported as ungradable."""

    cell: int = 120
    iopub: int = 60
    startup: int = 120
    submission: int = 900


DEFAULT_TIMEOUTS = Timeouts()

KERNEL_ARGUMENTS = [
    "--HistoryManager.hist_file=:memory:",
    # tracebacks without source lines: a failing hidden test shows its message, not its code
    "--InteractiveShell.xmode=Minimal",
]


def harden(c: Config, timeouts: Timeouts = DEFAULT_TIMEOUTS) -> Config:
    """Apply kdcourse's grading rules to an nbgrader ``Config`` in place and return it."""
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearHiddenTests, ClearMarkScheme,
                                        Execute, GetGrades, IgnorePattern, LimitOutput, SaveAutoGrades)
    from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor

    from .preprocessors import StderrAsStdout

    c.Execute.timeout = int(timeouts.cell)
    c.Execute.startup_timeout = int(timeouts.startup)
    c.Execute.iopub_timeout = int(timeouts.iopub)
    # a kernel still busy in C code after the IOPub wait fails that cell (timeout error), not the notebook
    c.Execute.raise_on_iopub_timeout = False
    c.Execute.interrupt_on_timeout = True
    c.Execute.extra_arguments = list(KERNEL_ARGUMENTS)

    c.OverwriteCells.add_missing_cells = True
    c.LimitOutput.max_lines = 300
    c.LimitOutput.max_traceback = 40

    c.Autograde.autograde_preprocessors = [
        Execute, StderrAsStdout, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
        SaveAutoGrades, AssignLatePenalties, CheckCellMetadata,
    ]
    c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, ClearMarkScheme, CSSHTMLHeaderPreprocessor]
    # instructor-only files never travel into the student release
    c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.toml",
                                "*.bak", ".DS_Store"]
    return c


def course_config(course: Course, timeouts: Timeouts = DEFAULT_TIMEOUTS, *,
                  submitted_directory: str = "submitted", log_level: str = "WARN") -> Config:
    """A complete nbgrader ``Config`` for ``course``: its paths plus :func:`harden`."""
    c = Config()
    c.CourseDirectory.course_id = course.course_id
    c.CourseDirectory.root = str(course.root)
    c.CourseDirectory.source_directory = relative_or_absolute(course.source_dir, course.root)
    c.CourseDirectory.submitted_directory = submitted_directory
    c.CourseDirectory.db_url = course.db_url
    c.NbGraderAPI.log_level = log_level
    c.Exchange.root = str(course.root / ".exchange")
    return harden(c, timeouts)
