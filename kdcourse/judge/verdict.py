"""What the judge concludes about one test: passed or not, and the message that says why."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Verdict", "Wrong", "Unanswered"]


class Wrong(Exception):
    """Raised inside a judge: the answer is wrong; the message names the mistake."""


class Unanswered(Exception):
    """Raised inside a judge: the exercise has not been answered yet; the message says what to do."""


@dataclass(frozen=True)
class Verdict:
    """The judge's decision on one test.

    Attributes
    ----------
    passed : bool
        Whether the test earns its points.
    message : str
        What the student reads: why the answer is wrong, or what passed.
    unanswered : bool
        The exercise was not attempted (shown as ``NotImplementedError``, scored 0).
    review : str
        Non-empty when a person should look at the submission (the judge could not decide).
    """

    passed: bool
    message: str
    unanswered: bool = False
    review: str = ""
