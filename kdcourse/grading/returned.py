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

__all__ = ["RETURNED_DIR", "MAX_NOTEBOOK_BYTES", "ReturnedWriter"]

#: Where returned notebooks wait to be recorded, ``<root>/returned/<student>/<assignment>/``.
RETURNED_DIR = "returned"
#: The largest notebook accepted from a worker (its outputs are capped well below this by the sandbox).
MAX_NOTEBOOK_BYTES = 64 * 1024 * 1024


class ReturnedWriter:
    """Records returned results in ``course`` (one nbgrader API that runs no kernel)."""

    def __init__(self, course: Course):
        from .adapter.api import make_api

        self.course = course
        self.api = make_api(course, submitted_directory=RETURNED_DIR, record_only=True)

    def write(self, submission: Submission, notebooks: dict[str, bytes], expected: list[str]) -> str:
        """Record ``notebooks`` (``file name -> bytes``) of ``submission``; "" on success, else the reason.

        ``expected``: the assignment's notebook file names; any other name is refused.
        """
        unexpected = sorted(set(notebooks) - set(expected))
        if unexpected:
            return f"the cluster worker returned unexpected files ({', '.join(map(repr, unexpected))[:200]})"
        too_large = [name for name, data in notebooks.items() if len(data) > MAX_NOTEBOOK_BYTES]
        if too_large:
            return f"the cluster worker returned a notebook over {MAX_NOTEBOOK_BYTES // 2**20} MiB"
        if not notebooks:
            return "the cluster worker returned no autograded notebook"
        folder = self.course.folder(RETURNED_DIR, submission)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        try:
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
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            for empty in (folder.parent, folder.parent.parent):  # returned/<student>, returned/
                try:
                    empty.rmdir()
                except OSError:  # not empty: another submission is being recorded there
                    break

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
