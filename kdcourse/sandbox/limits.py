"""The resource limits of one sandboxed kernel, and the words used to report each of them.

Standard library only: the grading code, the kernel manager and ``kdcourse doctor`` share these.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, fields

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


def format_bytes(n: int) -> str:
    """Say a byte count in binary units: ``format_bytes(2 * GiB) == '2 GiB'``, ``'1.5 MiB'``, ``'512 bytes'``."""
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size:
            value = n / size
            text = f"{value:.0f}" if value == int(value) else f"{value:.1f}"
            return f"{text} {unit}"
    return f"{n} bytes"


def _check_positive_int(value: object, name: str) -> None:
    """Raise ``TypeError`` unless ``value`` is an int, ``ValueError`` unless it is positive."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int (got {type(value).__name__}: {value!r})")
    if value <= 0:
        raise ValueError(f"{name} must be positive (got {value})")


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed kernel (or of one :func:`~kdcourse.sandbox.run_sandboxed` command).

    Parameters
    ----------
    memory_bytes : int, default 2 GiB
        Memory of the whole sandbox, in bytes, where a memory cgroup can be made (see
        :func:`~kdcourse.sandbox.sandbox_status`, ``memory_limit``): all its processes together, with the
        pages of its tmpfs folders and the kernel memory they cause; at the limit the OOM killer ends the
        largest of its processes (the kernel or a child) and the exit reason says so. Also, everywhere, the
        address space of each process (``RLIMIT_AS``): ``import torch`` alone reserves about 640 MB of address
        space; torch, numpy and matplotlib together about 0.8 GB (resident, about 0.3 GB). One allocation past
        it is a ``MemoryError`` inside the kernel, which keeps running.
    max_processes : int, default 1024
        Processes *and threads* the sandbox may have at once: a per-kernel ``pids`` cgroup when one is
        writable, else ``RLIMIT_NPROC`` set inside the sandbox's user namespace (see
        :func:`~kdcourse.sandbox.sandbox_status`).
    cpu_seconds : int, default 600
        CPU time of each process, in seconds (``RLIMIT_CPU``): ``SIGXCPU`` at the limit, ``SIGKILL`` 2 s
        later if the kernel ignores ``SIGXCPU``.
    disk_bytes : int, default 1 GiB
        Size in bytes of each private writable folder (tmpfs): the work folder together with ``HOME``, and
        ``/tmp``, separately; also the largest file that can be written (``RLIMIT_FSIZE``). ``/dev/shm`` gets
        ``min(disk_bytes, 256 MiB)``. tmpfs pages live in the host's memory: they count against
        ``memory_bytes`` where a memory cgroup is used, and against nothing otherwise.
    output_bytes : int, default 16 MiB
        Largest output, in bytes, that the grading client accepts from one notebook. The sandbox only
        carries this number; the client side enforces it.

    Raises
    ------
    TypeError
        If a limit is not an int.
    ValueError
        If a limit is not positive.
    """

    memory_bytes: int = 2 * GiB
    max_processes: int = 1024
    cpu_seconds: int = 600
    disk_bytes: int = 1 * GiB
    output_bytes: int = 16 * MiB

    def __post_init__(self) -> None:
        for field in fields(self):
            _check_positive_int(getattr(self, field.name), field.name)

    @property
    def shm_bytes(self) -> int:
        """Size in bytes of the sandbox's ``/dev/shm``: ``min(disk_bytes, 256 MiB)``."""
        return min(self.disk_bytes, 256 * MiB)

    def describe(self) -> str:
        """Each limit in words, e.g. ``'2 GiB of memory, 1024 processes and threads, ...'``."""
        return (
            f"{format_bytes(self.memory_bytes)} of memory (per sandbox with a memory cgroup, and address "
            "space per process), "
            f"{self.max_processes} processes and threads, "
            f"{self.cpu_seconds} s of CPU time per process, "
            f"{format_bytes(self.disk_bytes)} of disk in the work folder and in /tmp each, "
            f"{format_bytes(self.output_bytes)} of output"
        )


def limit_messages(limits: Limits) -> dict[str, str]:
    """What to tell a student whose kernel hit each limit, keyed by the :class:`Limits` field name.

    Examples
    --------
    >>> limit_messages(Limits())["memory_bytes"]
    'used more than 2 GiB of memory'
    """
    return {
        "memory_bytes": f"used more than {format_bytes(limits.memory_bytes)} of memory",
        "max_processes": f"tried to start more than {limits.max_processes} processes or threads",
        "cpu_seconds": f"used more than {limits.cpu_seconds} s of CPU time",
        "disk_bytes": f"wrote more than {format_bytes(limits.disk_bytes)} to disk",
        "output_bytes": f"printed more than {format_bytes(limits.output_bytes)} of output",
    }


def signal_of(returncode: int | None, *, sandboxed: bool) -> int | None:
    """The signal that ended a process, from its exit status, or ``None`` if it exited by itself.

    ``subprocess`` reports a signal as ``-N``. A sandboxed command is the child of ``bwrap``, which exits
    with ``128 + N`` when its command died of signal ``N`` (a command can also ``exit(128 + N)`` by itself:
    that only disguises its own death).
    """
    if returncode is None:
        return None
    if returncode < 0:
        return -returncode
    if sandboxed and 128 < returncode < 128 + signal.NSIG:
        return returncode - 128
    return None


def explain_exit(
    returncode: int | None,
    limits: Limits,
    *,
    sandboxed: bool,
    process_limit_hit: bool = False,
    memory_limit_hit: bool = False,
    killed_by_manager: bool = False,
) -> str | None:
    """Why a sandboxed process ended, in words, when it hit a limit or died of a signal; else ``None``.

    Parameters
    ----------
    returncode : int or None
        Exit status as ``subprocess`` reports it (``None``: still running).
    limits : Limits
        The limits it ran under (for the numbers in the message).
    sandboxed : bool
        Whether ``returncode`` is ``bwrap``'s (``128 + N`` for signal ``N``) rather than the command's own.
    process_limit_hit : bool
        Whether the pids cgroup counted a refused fork (``pids.events``).
    memory_limit_hit : bool
        Whether the OOM killer ended a process of the sandbox's memory cgroup at its limit (``oom_kill``); the
        signal it sent (``SIGKILL``) is then not reported on its own.
    killed_by_manager : bool
        Whether the grader itself killed it (shutdown of a kernel that did not stop): that signal is not
        reported.
    """
    messages = limit_messages(limits)
    if memory_limit_hit:
        return messages["memory_bytes"]
    if process_limit_hit:
        return messages["max_processes"]
    signum = signal_of(returncode, sandboxed=sandboxed)
    if signum is None:
        return None
    if signum == getattr(signal, "SIGXCPU", 24):
        return messages["cpu_seconds"]
    if signum == getattr(signal, "SIGXFSZ", 25):
        return messages["disk_bytes"]
    if killed_by_manager and signum in (getattr(signal, "SIGKILL", 9), signal.SIGTERM):
        return None
    return f"was killed (signal {signum})"
