"""The kernel's half of grading: test cells collect answers as plain data; they decide nothing.

See :mod:`kdcourse.answers.checker` (the ``check`` call of the test cells), :mod:`kdcourse.answers.probes`
(how an answer is collected) and :mod:`kdcourse.answers.plain` (the data format). The other half, the
trusted judge, is :mod:`kdcourse.judge`; it is not importable in a grading kernel.
"""

from .checker import ANSWERS_MIME, Checker, WrongAnswer, grading_mode

__all__ = ["ANSWERS_MIME", "Checker", "WrongAnswer", "grading_mode"]
