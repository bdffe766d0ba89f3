"""The test cells' one call: ``check("test_entropy", entropy=entropy)``.

A test cell never decides anything. It collects the answers it names (:mod:`kdcourse.answers.probes`)
as plain data (:mod:`kdcourse.answers.plain`), and the functions the plan marks ``from_namespace``
(an earlier answer, called on this test's inputs so that its mistakes are carried forward) from the
notebook's variables.

* **When graded** (``KDCOURSE_GRADING=1``, set by the grader in its sandbox) it publishes them as one
  display output of type :data:`ANSWERS_MIME`, and that is all: the test inputs come from
  ``KDCOURSE_ANSWER_PLAN``, and the trusted judge, outside the kernel, reads the published answers and
  writes the verdict into the notebook.
* **In a student's JupyterLab** the same judge runs right here on the visible tests, so a wrong answer
  is answered at once with a message that names the mistake (``WrongAnswer``), and an exercise not yet
  written says what to implement (``NotImplementedError``). No security is needed on the student's own
  machine; the grader never trusts what this kernel says about itself.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .probes import MISSING, run_probe

__all__ = ["ANSWERS_MIME", "WrongAnswer", "Checker", "grading_mode"]

#: The MIME type of a published answer record.
ANSWERS_MIME = "application/vnd.kdcourse.answers+json"
GRADING_ENV = "KDCOURSE_GRADING"
PLAN_ENV = "KDCOURSE_ANSWER_PLAN"
RECORD_FORMAT = 1


class WrongAnswer(AssertionError):
    """A test found an answer wrong; the message says what is wrong."""


def grading_mode() -> bool:
    """True inside a grading kernel (the grader sets ``KDCOURSE_GRADING=1``)."""
    return os.environ.get(GRADING_ENV) == "1"


def _publish(record: dict, summary: str) -> None:
    try:
        from IPython.display import display
    except ImportError:  # plain Python: nothing to publish to
        return
    display({ANSWERS_MIME: record, "text/plain": summary}, raw=True)


def _executed_code() -> list[str]:
    """The sources of the cells this kernel has run (for the judge's checks of the code itself)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return []
    shell = get_ipython()
    history = shell.user_ns.get("In", []) if shell is not None else []
    return [source for source in history if isinstance(source, str) and source.strip()]


def _notebook_namespace() -> dict:
    """The notebook's variables, for answers a test collects without the cell naming them."""
    try:
        from IPython import get_ipython
    except ImportError:
        return {}
    shell = get_ipython()
    return shell.user_ns if shell is not None else {}


class Checker:
    """The ``check`` function of one assignment's test cells.

    Parameters
    ----------
    assignment : str
        The assignment id, e.g. ``"a01_kl_divergence"``.

    Examples
    --------
    In the notebook's setup cell ``check = Checker("a01_kl_divergence")``; in a test cell
    ``check("test_entropy", entropy=entropy)``.
    """

    def __init__(self, assignment: str):
        self.assignment = assignment
        self._plan: dict | None = None

    def plan(self) -> dict:
        """``grade_id -> answer name -> probe``: from the grader when graded, else the visible tests."""
        if self._plan is None:
            if grading_mode():
                self._plan = json.loads(os.environ.get(PLAN_ENV, "{}")).get(self.assignment, {})
            else:
                from kdcourse.judge import plan_for

                self._plan = plan_for(self.assignment)
        return self._plan

    def collect(self, grade_id: str, answers: dict[str, Any]) -> dict:
        """The answer record of one test: each planned answer probed, as plain data."""
        probes = self.plan().get(grade_id)
        if probes is None:
            return {"format": RECORD_FORMAT, "assignment": self.assignment, "item": grade_id,
                    "error": f"this assignment has no test {grade_id!r}"}
        namespace = _notebook_namespace()
        collected = {name: run_probe(probe, answers.get(name, namespace.get(name, MISSING) if probe.get("from_namespace")
                                                         else MISSING))
                     for name, probe in probes.items()}
        return {"format": RECORD_FORMAT, "assignment": self.assignment, "item": grade_id, "answers": collected}

    def __call__(self, grade_id: str, **answers: Any) -> None:
        record = self.collect(grade_id, answers)
        if grading_mode():
            _publish(record, f"answers for {grade_id} recorded")
            return
        from kdcourse.judge import judge_record

        verdict = judge_record(self.assignment, grade_id, record, code=_executed_code())
        if verdict.passed:
            print(verdict.message)
            return
        error = NotImplementedError(verdict.message) if verdict.unanswered else WrongAnswer(verdict.message)
        raise error from None
