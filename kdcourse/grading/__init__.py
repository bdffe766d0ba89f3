"""Instructor tools on nbgrader's Python API: release, collect, autograde, feedback, export, verify, demo.

The layers, from the bottom up:

* :mod:`.course` (where a course lives, its instructor files, the :class:`~.course.Submission` key) and
  :mod:`.settings` (time limits, each assignment's sandbox);
* :mod:`.adapter` -- nbgrader's configuration and API, and the two preprocessors that run student code
  in the sandbox and reach every verdict outside it with the trusted judge (:mod:`kdcourse.judge`);
* the pipeline: :mod:`.release`, :mod:`.collect`, :mod:`.staging`, :mod:`.autograde` (with
  :mod:`.workers` and the status store and policy of :mod:`.status`), :mod:`.feedback`, :mod:`.scores`,
  :mod:`.export`, :mod:`.leaks`;
* :mod:`.simulation` -- a simulated class for ``kdcourse verify`` and ``kdcourse demo``;
* :mod:`.commands` -- the command line.

Importing this package is cheap: nothing heavy is imported until a command runs.
"""

from .course import AssignmentSpec, Course, CourseError, Misconception, Submission

__all__ = ["AssignmentSpec", "Course", "CourseError", "Misconception", "Submission"]
