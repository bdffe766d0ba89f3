"""What grading noticed about a submission besides its scores, handed from nbgrader's preprocessors
(which run inside an nbgrader call) to the kdcourse grader that made the call, in the same process.

A *reason* flags the submission for a person to review ("used more than 2 GiB of memory", "cell 5:
rebinds check, which the test cells use", "graded without the sandbox"); a *note* is only reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..course import Submission

__all__ = ["Findings", "record_reason", "record_note", "take"]


@dataclass
class Findings:
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


_FOUND: dict[Submission, Findings] = {}


def record_reason(submission: Submission, reason: str) -> None:
    """Flag ``submission`` for review, saying why (each reason once)."""
    found = _FOUND.setdefault(submission, Findings())
    if reason not in found.reasons:
        found.reasons.append(reason)


def record_note(submission: Submission, note: str) -> None:
    """Report something about ``submission`` that does not need a review (each note once)."""
    found = _FOUND.setdefault(submission, Findings())
    if note not in found.notes:
        found.notes.append(note)


def take(submission: Submission) -> Findings:
    """The findings recorded for ``submission`` since the last call (then forgotten)."""
    return _FOUND.pop(submission, Findings())
