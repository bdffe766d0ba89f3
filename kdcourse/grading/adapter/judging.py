"""The trusted judge as an nbgrader preprocessor: verdicts are reached outside the student's kernel.

:class:`JudgeAnswers` runs right after :class:`~kdcourse.grading.adapter.execute.SandboxedExecute`, in
the grader's process. For every autograded test cell it reads the one answer record the cell published
(``application/vnd.kdcourse.answers+json``), judges it with :mod:`kdcourse.judge` against the instructor
file (answer keys, hidden inputs) and the submission's code, and **replaces the cell's outputs** with
the verdict: a line saying what passed, or an error whose message names the mistake. Whatever the
kernel printed or raised in a test cell is thrown away, so nbgrader's ``SaveAutoGrades`` scores exactly
what the judge decided. A missing or malformed record scores 0 and says what was missing.

It also reports, as findings of the submission (see :mod:`~kdcourse.grading.adapter.findings`):
student-editable cells that reach for the grading machinery (:func:`kdcourse.judge.static.tampering`),
limits the kernel hit (memory, disk, processes, time), and tests the judge could not decide.
"""

from __future__ import annotations

from nbformat.v4 import new_output
from nbgrader.preprocessors import NbGraderPreprocessor

from kdcourse.answers import ANSWERS_MIME
from kdcourse.notebooks import cell_output_text, graded_cells, nbgrader_meta

from ..course import Submission
from ..settings import sandbox_settings
from . import findings
from .execute import CourseFiles

__all__ = ["JudgeAnswers", "verdict_outputs", "limit_hits"]

#: Words in an error output that show which limit a cell ran into.
_LIMIT_SIGNS = {
    "memory_bytes": ("MemoryError", "can't allocate memory", "Cannot allocate memory", "out of memory"),
    "disk_bytes": ("No space left on device", "File too large", "Disk quota exceeded"),
    "max_processes": ("can't start new thread", "Resource temporarily unavailable", "BlockingIOError"),
}


def verdict_outputs(verdict) -> list:
    """The outputs a judged test cell shows: a pass line, or an error naming the mistake."""
    if verdict.passed:
        return [new_output("stream", name="stdout", text=f"✓ {verdict.message}\n")]
    ename = "NotImplementedError" if verdict.unanswered else "WrongAnswer"
    return [new_output("error", ename=ename, evalue=verdict.message, traceback=[f"{ename}: {verdict.message}"])]


def _records(cell) -> list:
    return [output["data"][ANSWERS_MIME] for output in cell.get("outputs", [])
            if output.get("output_type") in ("display_data", "execute_result")
            and ANSWERS_MIME in (output.get("data") or {})]


def limit_hits(nb, messages: dict[str, str]) -> list[str]:
    """The limits the notebook's errors show it ran into, in words.

    ``messages`` is :func:`kdcourse.sandbox.limit_messages` (limit field name -> words).
    """
    hits = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        text = "\n".join(f"{o.get('ename', '')}: {o.get('evalue', '')}" for o in errors)
        for limit, signs in _LIMIT_SIGNS.items():
            if any(sign in text for sign in signs) and messages.get(limit) not in hits:
                hits.append(messages[limit])
    return hits


class JudgeAnswers(NbGraderPreprocessor, CourseFiles):
    """Replace every autograded test cell's outputs with the trusted judge's verdict."""

    def preprocess(self, nb, resources):
        from kdcourse.judge import judge_record, load_items
        from kdcourse.judge.static import NotebookCode, tampering
        from kdcourse.sandbox import limit_messages

        submission = Submission(resources["nbgrader"]["assignment"], resources["nbgrader"]["student"])
        course = self.course_files()
        spec = course.spec(submission.assignment)
        items = load_items(submission.assignment, spec, course.spec_dir)
        # parsed once for the whole notebook: every test's checks and the tampering check share it
        code = NotebookCode([(i, cell.source) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"])
        editable = {i for i, cell in enumerate(nb.cells)
                    if cell.cell_type == "code" and not nbgrader_meta(cell).get("locked")}
        if code.too_large:
            findings.record_reason(submission, code.too_large)
        else:
            reached = tampering(code, editable=editable)
            if reached:
                findings.record_reason(submission,
                                       f"the code reaches for the grading machinery ({' | '.join(reached)})")
        limits = sandbox_settings(course, submission.assignment).limits
        for words in limit_hits(nb, limit_messages(limits)):
            findings.record_reason(submission, words)
        if "CellTimeoutError" in "\n".join(cell_output_text(c) for c in nb.cells if c.cell_type == "code"):
            findings.record_note(submission, "a cell ran past its time limit and was interrupted")
        earlier: dict[str, bool] = {}
        for graded in graded_cells(nb):
            if not graded.is_test:
                continue
            records = _records(graded.cell)
            record = records[0] if len(records) == 1 else ({"format": "several"} if records else None)
            verdict = judge_record(submission.assignment, graded.grade_id, record, code=code, spec=spec,
                                   spec_dir=course.spec_dir, earlier=earlier, items=items)
            earlier[graded.grade_id] = verdict.passed
            if verdict.review:
                findings.record_reason(submission, verdict.review)
            graded.cell.outputs = verdict_outputs(verdict)
        return nb, resources
