"""Instructor tools on nbgrader's Python API: release, collect, autograde, feedback, export, verify, demo.

Everything runs in one process (plus a pool of grading workers), with the hardened configuration of
:mod:`kdcourse.grading.config`. The policy for submissions nbgrader cannot grade is documented in
:mod:`kdcourse.grading.policy`.
"""

from .course import AssignmentSpec, Course, CourseError, Misconception

__all__ = ["AssignmentSpec", "Course", "CourseError", "Misconception"]
