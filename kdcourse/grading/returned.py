"""The instructor's side of a cluster run: what a worker sent back goes into the course as a local run
leaves it.

A worker returns the autograded notebooks (already executed in its sandbox and judged by the trusted
judge). :class:`ReturnedWriter` places them in ``returned/<student>/<assignment>/`` beside the staged
``timestamp.txt`` and runs nbgrader's ``autograde`` on them with the recording configuration
(:func:`~kdcourse.grading.adapter.config.recording_config`): no kernel, no judge, only nbgrader's own steps
that write the gradebook -- the student and the submission with its time, each graded cell's score from
its outputs (manual grades kept), the late penalty -- and ``autograded/``. So the gradebook, the feedback
and the export are those of a local run, and the instructor's process is the only one that writes the
gradebook. A submission the cluster could not grade gets its submission record (with its time) and no
autograded folder, as a failed local run leaves it; the caller then flags it.

Only expected notebook names are accepted, each at most :data:`MAX_NOTEBOOK_BYTES`.
"""

from __future__ import annotations

import shutil

from .course import Course, Submission
from .staging import STAGING_DIR
from .status import failure_reason

__all__ = ["RETURNED_DIR", "MAX_NOTEBOOK_BYTES", "ReturnedWriter", "graded_cells_problem"]

#: Where returned notebooks wait to be recorded, ``<root>/returned/<student>/<assignment>/``.
RETURNED_DIR = "returned"
#: The largest notebook accepted from a worker. The sandbox caps a notebook's output (16 MiB by default),
#: but JSON writes a control character in 6 bytes (``\u0001``), so its text can take six times that, on top
#: of the submitted notebook itself: the cap leaves room for both, so that no notebook a local run grades
#: is refused here.
MAX_NOTEBOOK_BYTES = 256 * 1024 * 1024


def graded_cells_problem(data: bytes, expected: set[str]) -> str:
    """Why the notebook ``data`` does not hold each graded cell id of ``expected`` exactly once ("" if it does)."""
    import nbformat

    from kdcourse.notebooks import graded_cells

    try:
        nb = nbformat.reads(data.decode("utf-8"), as_version=4)
        ids = [cell.grade_id for cell in graded_cells(nb) if cell.meta.get("grade")]
    except Exception:  # noqa: BLE001 - any unreadable notebook is refused the same way
        return "a notebook that cannot be read"
    if sorted(ids) != sorted(expected):
        missing, extra = sorted(expected - set(ids)), sorted(set(ids) - expected)
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        return ("graded cells other than the assignment's (missing: " + (", ".join(missing) or "none")
                + "; not in the assignment: " + (", ".join(extra) or "none")
                + "; repeated: " + (", ".join(repeated) or "none") + ")")
    return ""


class ReturnedWriter:
    """Records returned results in ``course`` (one nbgrader API that runs no kernel)."""

    def __init__(self, course: Course):
        from .adapter.api import make_api

        self.course = course
        self.api = make_api(course, submitted_directory=RETURNED_DIR, record_only=True)

    def write(self, submission: Submission, notebooks: dict[str, bytes], graded: dict[str, set[str]]) -> str:
        """Record ``notebooks`` (``file name -> bytes``) of ``submission``; "" on success, else the reason.

        ``graded``: ``notebook file name -> graded cell ids`` of the assignment in the gradebook. A file of
        another name is refused, and a returned notebook must hold each of its graded cells exactly once
        (a worker cannot drop a graded cell, or add one).
        """
        unexpected = sorted(set(notebooks) - set(graded))
        if unexpected:
            return f"the cluster worker returned unexpected files ({', '.join(map(repr, unexpected))[:200]})"
        too_large = [name for name, data in notebooks.items() if len(data) > MAX_NOTEBOOK_BYTES]
        if too_large:
            return f"the cluster worker returned a notebook over {MAX_NOTEBOOK_BYTES // 2**20} MiB"
        if not notebooks:
            return "the cluster worker returned no autograded notebook"
        for name, data in sorted(notebooks.items()):
            problem = graded_cells_problem(data, graded[name])
            if problem:
                return f"the cluster worker returned {name} with {problem}"
        folder = self.course.folder(RETURNED_DIR, submission)
        shutil.rmtree(folder, ignore_errors=True)
        try:
            folder.mkdir(parents=True)
            return self._record(submission, notebooks, folder)
        except OSError as error:  # a full disk, say: this submission is not recorded, the run goes on
            return f"writing the returned notebooks failed ({type(error).__name__}: {error.strerror or error})"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            for empty in (folder.parent, folder.parent.parent):  # returned/<student>, returned/
                try:
                    empty.rmdir()
                except OSError:  # not empty: another submission is being recorded there
                    break

    def _record(self, submission: Submission, notebooks: dict[str, bytes], folder) -> str:
        """Write ``notebooks`` into ``folder`` with the staged time and run the recording autograde."""
        for name, data in notebooks.items():
            (folder / name).write_bytes(data)
        timestamp = self.course.folder(STAGING_DIR, submission) / "timestamp.txt"
        if timestamp.is_file():
            shutil.copyfile(timestamp, folder / "timestamp.txt")
        try:
            result = self.api.autograde(submission.assignment, submission.student, force=True, create=True)
        except Exception as error:  # noqa: BLE001 - nbgrader normally returns; one submission's record only
            return f"recording the returned notebooks failed ({type(error).__name__})"
        if not result.get("success"):
            log = "\n".join(x for x in (result.get("error"), result.get("log")) if x)
            return "recording the returned notebooks failed: " + failure_reason(log)
        return ""

    def write_unreturned(self, gb, submission: Submission) -> None:
        """For a submission the cluster could not grade: its record (with its submission time) in the open
        gradebook ``gb`` and no autograded folder, as a failed local run leaves them."""
        from nbgrader.coursedir import CourseDirectory

        shutil.rmtree(self.course.folder("autograded", submission), ignore_errors=True)
        staged = self.course.folder(STAGING_DIR, submission)
        try:
            timestamp = CourseDirectory().get_existing_timestamp(str(staged)) if staged.is_dir() else None
        except (ValueError, SystemExit):  # an unreadable time: the record without one, as nbgrader would fail
            timestamp = None
        gb.update_or_create_student(submission.student)
        if timestamp is not None:
            gb.update_or_create_submission(submission.assignment, submission.student, timestamp=timestamp)
        else:
            gb.update_or_create_submission(submission.assignment, submission.student)
