"""Checks that the assignments' locked test cells call.

Each failed check raises :class:`~kdcourse.checks.common.WrongAnswer` (an ``AssertionError``)
whose message says what is wrong, naming the misconception it recognised.
"""

from kdcourse.checks.common import WrongAnswer, as_float64_array, check_choice, close, require

__all__ = ["WrongAnswer", "require", "close", "check_choice", "as_float64_array"]
