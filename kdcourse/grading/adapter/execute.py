"""nbgrader's ``Execute`` step, run inside the sandbox, with what the judge needs sent into the kernel.

:class:`SandboxedExecute` replaces nbgrader's ``Execute`` in autograding. For each notebook it

* starts the kernel with :class:`kdcourse.sandbox.SandboxedKernelManager` under the assignment's limits
  and hidden modules (:func:`kdcourse.grading.settings.sandbox_settings`), so the student's code cannot
  reach the course, the gradebook, other students, the network or the grader's processes;
* gives the kernel :func:`kdcourse.execution.kernel_environment` plus ``KDCOURSE_GRADING=1`` and the
  answer plan (what each test collects, hidden inputs included; never an expected value or a key);
* stops keeping what the kernel sends (outputs, display updates, widget messages) once a notebook has sent
  more than the output limit, and says so (each test cell's answer record is still kept);
* reports a kernel that hit a limit (CPU time, processes) in the submission's findings.
"""

from __future__ import annotations

import json

from nbclient.util import run_sync
from nbformat.v4 import new_output
from nbgrader.preprocessors import Execute
from traitlets import Bool, Unicode
from traitlets.config import Configurable

from kdcourse.execution import kernel_environment

from ..course import Course, Submission
from ..settings import sandbox_settings
from . import findings

__all__ = ["CourseFiles", "SandboxedExecute", "MAX_RECORD_BYTES"]

#: Largest answer record kept once a notebook has passed its output limit.
MAX_RECORD_BYTES = 2 * 1024 * 1024


class CourseFiles(Configurable):
    """Where the course's instructor files live (configured once for every kdcourse preprocessor)."""

    spec_dir = Unicode("", help="Folder of the instructor files <assignment>.toml").tag(config=True)
    settings_file = Unicode("", help="The course-wide settings file (course.toml)").tag(config=True)
    source_dir = Unicode("", help="Folder of the assignment sources").tag(config=True)

    def course_files(self, root: str = ".") -> Course:
        """A :class:`Course` that knows the instructor files (the root is not used by the preprocessors)."""
        return Course(root=root, source_dir=self.source_dir or root, spec_dir=self.spec_dir,
                      settings_file=self.settings_file or None)


def _content_size(value, depth: int = 0) -> int:
    """About how many bytes a message's content holds (its strings' lengths), without copying it."""
    if isinstance(value, str | bytes):
        return len(value)
    if depth > 20:
        return 0
    if isinstance(value, dict):
        return sum(len(str(k)) + _content_size(v, depth + 1) for k, v in value.items())
    if isinstance(value, list | tuple):
        return sum(_content_size(v, depth + 1) for v in value)
    return 8


def _submission(resources: dict) -> Submission:
    return Submission(resources["nbgrader"]["assignment"], resources["nbgrader"]["student"])


class SandboxedExecute(Execute, CourseFiles):
    """nbgrader's ``Execute`` with every kernel in the sandbox and the answer plan in its environment."""

    unsafe_no_sandbox = Bool(False, help="Run kernels without the sandbox (says so in the report)").tag(config=True)
    # what widgets a kernel creates is of no use to grading, and would be kept in the grader's memory
    store_widget_state = Bool(False).tag(config=True)

    def __init__(self, *args, **kwargs):
        from kdcourse.sandbox import SandboxedKernelManager

        kwargs.setdefault("kernel_manager_class", SandboxedKernelManager)
        super().__init__(*args, **kwargs)
        self._output_bytes = 0
        self._output_capped = False

    def preprocess(self, nb, resources, km=None):
        self._output_bytes, self._output_capped = 0, False
        return super().preprocess(nb, resources, km=km)

    def _settings(self):
        return sandbox_settings(self.course_files(), _submission(self.resources).assignment)

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        settings = self._settings()
        limits = settings.limits
        km.memory_bytes, km.max_processes = limits.memory_bytes, limits.max_processes
        km.cpu_seconds, km.disk_bytes, km.output_bytes = limits.cpu_seconds, limits.disk_bytes, limits.output_bytes
        km.hidden_modules = list(settings.hidden_modules)
        km.unsafe_no_sandbox = self.unsafe_no_sandbox
        if self.unsafe_no_sandbox:
            findings.record_reason(_submission(self.resources),
                                   "graded WITHOUT the sandbox (--unsafe-no-sandbox): the student's code ran "
                                   "with the grader's rights")
        return km

    def _plan(self) -> str:
        from kdcourse.judge import plan_for

        submission = _submission(self.resources)
        course = self.course_files()
        spec = course.spec(submission.assignment)
        plan = plan_for(submission.assignment, spec, course.spec_dir)
        return json.dumps({submission.assignment: plan}, allow_nan=False)

    async def async_start_new_kernel(self, **kwargs):
        import os

        extra = {"KDCOURSE_GRADING": "1", "KDCOURSE_ANSWER_PLAN": self._plan()}
        kwargs.setdefault("env", {**os.environ, **kernel_environment(extra)})
        return await super().async_start_new_kernel(**kwargs)

    # nbclient binds the synchronous versions to its own coroutines: bind them to ours
    start_new_kernel = run_sync(async_start_new_kernel)

    def _is_answer_record(self, outs, msg, cell_index: int, size: int) -> bool:
        """The first answer record of a test cell, of a sane size: kept even past the output limit."""
        from kdcourse.answers import ANSWERS_MIME
        from kdcourse.notebooks import nbgrader_meta

        data = msg.get("content", {}).get("data") or {}
        if msg["msg_type"] != "display_data" or not isinstance(data, dict):
            return False
        meta = nbgrader_meta(self.nb.cells[cell_index])
        already = any(ANSWERS_MIME in (o.get("data") or {}) for o in outs)
        return (ANSWERS_MIME in data and meta.get("grade") and not meta.get("solution") and not already
                and size <= MAX_RECORD_BYTES)

    def handle_comm_msg(self, outs, msg, cell_index):
        """Ignore widget traffic: grading mimics no widget front end (nbclient's would crash on a malformed
        message, failing the submission, and keeps widget state in the grader's memory)."""
        return None

    def process_message(self, msg, cell, cell_index):
        """Count every message the kernel sends (outputs, display updates, widget traffic) against the output
        limit; past it, keep only each test cell's answer record."""
        if msg["msg_type"] in ("status", "execute_input", "clear_output"):
            return super().process_message(msg, cell, cell_index)
        limit = self.km.output_bytes if self.km is not None else None
        size = _content_size(msg.get("content", {}))
        self._output_bytes += size
        if limit is not None and self._output_bytes > limit and not self._is_answer_record(cell.outputs, msg, cell_index, size):
            if not self._output_capped:
                self._output_capped = True
                words = f"printed more than {limit // (1024 * 1024)} MiB of output; the rest was dropped"
                findings.record_reason(_submission(self.resources), words)
                cell.outputs.append(new_output("stream", name="stdout", text=f"[kdcourse: {words}]\n"))
            return None
        return super().process_message(msg, cell, cell_index)

    async def _async_cleanup_kernel(self):
        km = self.km
        try:
            await super()._async_cleanup_kernel()
        finally:
            reason = km.exit_reason() if km is not None and hasattr(km, "exit_reason") else None
            if reason:
                # a limit hit flags the submission; a kernel that died of something else while running is
                # already a failed submission, and one that crashes on its way out (after the last cell) is
                # only worth a note
                from kdcourse.sandbox import limit_messages

                record = findings.record_reason if reason in limit_messages(km.limits).values() else findings.record_note
                record(_submission(self.resources), f"the kernel {reason}")

    _cleanup_kernel = run_sync(_async_cleanup_kernel)
