"""The nbgrader configuration of every kdcourse grading command, and of plain ``nbgrader`` commands.

``grading/nbgrader_config.py`` calls :func:`configure` too, so ``nbgrader autograde`` in the course runs
with the same rules as ``kdcourse autograde``:

* sources stay in ``notebooks/assignments`` (``CourseDirectory.source_directory`` points there);
* every kernel runs in the sandbox (:class:`~kdcourse.grading.adapter.execute.SandboxedExecute`) and every
  test cell's verdict comes from the trusted judge (:class:`~kdcourse.grading.adapter.judging.JudgeAnswers`),
  never from what the kernel printed or raised;
* cell timeout, kernel start timeout and a raised IOPub timeout, so CPU contention or a long C-level call
  fails one cell, not the whole submission;
* tracebacks in ``Minimal`` mode; in feedback, ``ClearHiddenTests`` and ``ClearMarkScheme``, and the
  student's own content sanitised (:mod:`kdcourse.grading.sanitize`);
* deleted grade cells are restored (``OverwriteCells.add_missing_cells``);
* output of a cell limited to a few hundred lines; instructor files never copied into a release;
* release stubs that name their exercise (:class:`~kdcourse.grading.stubs.NamedStubs`).

:func:`recording_config` is the configuration of the instructor's side of a cluster run: nbgrader's own
gradebook steps (:func:`recording_preprocessors`) on notebooks a worker already ran and judged; no kernel.
"""

from __future__ import annotations

from traitlets.config import Config

from ..course import Course, relative_or_absolute
from ..settings import DEFAULT_TIMEOUTS, Timeouts

__all__ = ["KERNEL_ARGUMENTS", "IGNORED_FILES", "configure", "course_config", "recording_config",
           "recording_preprocessors", "release_preprocessors"]

#: Files nbgrader never copies from a source folder (instructor-only files among them).
IGNORED_FILES = (".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.toml", "*.bak", ".DS_Store")

KERNEL_ARGUMENTS = [
    "--HistoryManager.hist_file=:memory:",
    # tracebacks without source lines
    "--InteractiveShell.xmode=Minimal",
]


def configure(c: Config, course: Course, timeouts: Timeouts = DEFAULT_TIMEOUTS, *,
              unsafe_no_sandbox: bool = False) -> Config:
    """Apply kdcourse's grading rules for ``course`` to an nbgrader ``Config`` in place and return it.

    Parameters
    ----------
    c : traitlets.config.Config
    course : Course
        Gives the course id, the root, where the sources and the instructor files are.
    timeouts : Timeouts
    unsafe_no_sandbox : bool
        Run kernels without the sandbox (only where it cannot start; the report says so).
    """
    from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import (
        ClearHiddenTests,
        ClearMarkScheme,
        GetGrades,
        IgnorePattern,
        LimitOutput,
    )

    from ..sanitize import ProtectStudentMarkers, SanitizeStudentContent
    from .execute import SandboxedExecute
    from .judging import JudgeAnswers

    c.CourseDirectory.course_id = course.course_id
    c.CourseDirectory.root = str(course.root)
    c.CourseDirectory.source_directory = relative_or_absolute(course.source_dir, course.root)
    c.CourseDirectory.db_url = course.db_url
    c.CourseFiles.spec_dir = str(course.spec_dir)
    c.CourseFiles.source_dir = str(course.source_dir)
    c.CourseFiles.settings_file = str(course.settings_file or "")
    c.Exchange.root = str(course.root / "exchange")

    c.SandboxedExecute.timeout = int(timeouts.cell)
    c.SandboxedExecute.startup_timeout = int(timeouts.startup)
    c.SandboxedExecute.iopub_timeout = int(timeouts.iopub)
    # a kernel still busy in C code after the IOPub wait fails that cell (timeout error), not the notebook
    c.SandboxedExecute.raise_on_iopub_timeout = False
    c.SandboxedExecute.interrupt_on_timeout = True
    c.SandboxedExecute.extra_arguments = list(KERNEL_ARGUMENTS)
    c.SandboxedExecute.unsafe_no_sandbox = bool(unsafe_no_sandbox)

    c.OverwriteCells.add_missing_cells = True
    c.LimitOutput.max_lines = 300
    c.LimitOutput.max_traceback = 40

    c.Autograde.autograde_preprocessors = [
        SandboxedExecute, JudgeAnswers, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
        *recording_preprocessors(),
    ]
    # what a student put into a page (outputs, markdown) is neutralised; their marker words cannot break it
    c.GenerateFeedback.preprocessors = [GetGrades, ProtectStudentMarkers, ClearHiddenTests, ClearMarkScheme,
                                        SanitizeStudentContent, CSSHTMLHeaderPreprocessor]
    # release stubs name the exercise they stand for
    c.GenerateAssignment.preprocessors = release_preprocessors()
    # instructor-only files never travel into the student release
    c.CourseDirectory.ignore = list(IGNORED_FILES)
    return c


def recording_preprocessors() -> list:
    """The last steps of autograding, which write the scores into the gradebook and run no code:
    ``SaveAutoGrades`` (each graded cell's score, from its outputs), ``AssignLatePenalties``,
    ``CheckCellMetadata``."""
    from nbgrader.preprocessors import AssignLatePenalties, CheckCellMetadata, SaveAutoGrades

    return [SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]


def release_preprocessors() -> list:
    """nbgrader's release preprocessors, with :class:`~kdcourse.grading.stubs.NamedStubs` for ClearSolutions."""
    from nbgrader.converters import GenerateAssignment
    from nbgrader.preprocessors import ClearSolutions

    from ..stubs import NamedStubs

    default = GenerateAssignment.class_traits()["preprocessors"].default()
    if ClearSolutions not in default:
        raise RuntimeError("this nbgrader's release does not clear solutions with ClearSolutions: "
                           "kdcourse cannot put its named stubs in its place")
    return [NamedStubs if p is ClearSolutions else p for p in default]


def course_config(course: Course, timeouts: Timeouts = DEFAULT_TIMEOUTS, *, submitted_directory: str = "submitted",
                  log_level: str = "WARN", unsafe_no_sandbox: bool = False) -> Config:
    """A complete nbgrader ``Config`` for ``course`` (:func:`configure` on a fresh one)."""
    c = Config()
    configure(c, course, timeouts, unsafe_no_sandbox=unsafe_no_sandbox)
    c.CourseDirectory.submitted_directory = submitted_directory
    c.NbGraderAPI.log_level = log_level
    return c


def recording_config(course: Course, submitted_directory: str, log_level: str = "WARN") -> Config:
    """nbgrader's ``autograde`` for notebooks that were executed and judged elsewhere (a cluster worker).

    Nothing runs: the outputs (the judge's verdicts) are kept, and only :func:`recording_preprocessors`
    score them, so the gradebook, the late penalties and ``autograded/`` end up as a local run leaves them.
    The returned notebook is still checked against this gradebook as a submission is (duplicate ids,
    kernelspec, every graded cell's source and points put back as released, cell metadata), so a worker
    cannot change what a cell is worth; no cell is added back (a notebook missing a graded cell is refused
    before, by :class:`~kdcourse.grading.returned.ReturnedWriter`). ``submitted_directory`` holds the
    returned notebooks.
    """
    from nbgrader.preprocessors import CheckCellMetadata, DeduplicateIds, OverwriteCells, OverwriteKernelspec

    c = course_config(course, submitted_directory=submitted_directory, log_level=log_level)
    c.Autograde.sanitize_preprocessors = [DeduplicateIds, OverwriteKernelspec, OverwriteCells, CheckCellMetadata]
    c.OverwriteCells.add_missing_cells = False
    c.Autograde.autograde_preprocessors = recording_preprocessors()
    return c
