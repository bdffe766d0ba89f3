"""Grading settings: time limits, and each assignment's sandbox (resource limits, hidden modules).

Sandbox limits start from :class:`kdcourse.sandbox.Limits`' defaults (2 GiB of memory, 1024
processes and threads, 600 s of CPU time, 1 GiB of disk, 16 MiB of output per notebook), are changed
for the whole course in the ``[sandbox]`` table of ``grading/course.toml``, and for one assignment in
the ``[sandbox]`` table of its instructor file::

    [sandbox]
    memory_mib = 4096        # memory of the whole kernel (cgroup), and address space of each process
    max_processes = 256      # processes and threads at once
    cpu_seconds = 300        # CPU time of each process
    disk_mib = 512           # private /tmp and work folder, each
    output_mib = 8           # output of one notebook
    hidden_modules = ["scipy", "kdcourse.divergences"]   # also not importable (added to the course's)

The grading tools (``kdcourse.grading``) and the judge (``kdcourse.judge``) are never importable in a
grading kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

from .course import Course, CourseError

__all__ = ["Timeouts", "DEFAULT_TIMEOUTS", "DEMO_TIMEOUTS", "SandboxSettings", "ALWAYS_HIDDEN", "sandbox_settings"]

#: Never importable by a kernel that runs a student's code.
ALWAYS_HIDDEN = ("kdcourse.grading", "kdcourse.judge")
_MIB = 1024 * 1024
_LIMIT_KEYS = {"memory_mib": ("memory_bytes", _MIB), "max_processes": ("max_processes", 1),
               "cpu_seconds": ("cpu_seconds", 1), "disk_mib": ("disk_bytes", _MIB),
               "output_mib": ("output_bytes", _MIB)}


@dataclass(frozen=True)
class Timeouts:
    """Seconds. ``cell``: per cell before the kernel is interrupted; ``iopub``: how long to wait for a
    cell's output to finish after its reply (or after an interrupt that a C-level call delays);
    ``startup``: kernel start; ``submission``: wall-clock limit of one student's assignment, after which
    the grading process and its kernel are killed and the submission is flagged."""

    cell: int = 120
    iopub: int = 60
    startup: int = 120
    submission: int = 900


DEFAULT_TIMEOUTS = Timeouts()
#: ``kdcourse demo``'s limits: short enough that its hanging submissions do not hold the demo up.
DEMO_TIMEOUTS = Timeouts(cell=60, iopub=60, startup=120, submission=600)


@dataclass(frozen=True)
class SandboxSettings:
    """What the sandbox of one assignment's grading kernels allows: limits and hidden modules."""

    limits: object  # kdcourse.sandbox.Limits
    hidden_modules: tuple[str, ...]


def _apply(table: dict, values: dict, hidden: list[str], origin: str) -> None:
    for key, value in table.items():
        if key == "hidden_modules":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise CourseError(f"{origin}: [sandbox] hidden_modules must be a list of module names")
            hidden.extend(value)
        elif key in _LIMIT_KEYS:
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise CourseError(f"{origin}: [sandbox] {key} must be a positive integer (got {value!r})")
            name, scale = _LIMIT_KEYS[key]
            values[name] = value * scale
        else:
            raise CourseError(f"{origin}: [sandbox] has an unknown key {key!r} "
                              f"(known: {', '.join([*_LIMIT_KEYS, 'hidden_modules'])})")


def sandbox_settings(course: Course, assignment: str) -> SandboxSettings:
    """The sandbox of ``assignment``: the defaults, then ``course.toml``'s ``[sandbox]``, then the assignment's."""
    from kdcourse.sandbox import Limits

    values: dict = {}
    hidden = list(ALWAYS_HIDDEN)
    _apply(course.settings().get("sandbox", {}), values, hidden, str(course.settings_file))
    _apply(course.spec(assignment).sandbox, values, hidden, f"{assignment}.toml")
    return SandboxSettings(Limits(**values), tuple(dict.fromkeys(hidden)))
