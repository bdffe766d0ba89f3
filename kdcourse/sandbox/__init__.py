"""The operating-system boundary around student code: every grading kernel runs inside bubblewrap.

A sandboxed kernel sees the Python environment read-only, a filtered read-only copy of ``kdcourse`` (without
``hidden_modules``), a private size-limited work folder, ``HOME`` and ``/tmp``, no network, its own PID
namespace, and runs under memory, process, CPU-time and disk limits (:class:`Limits`). No host folder is
writable from the sandbox. It talks to the grader over ZMQ's ipc transport, through sockets it binds in a 1 MiB
tmpfs of its own, which the grader holds open from outside (:mod:`kdcourse.sandbox.sockets`).

Public API::

    Limits, limit_messages                      # limits.py
    find_bwrap, sandbox_status, SandboxStatus, SandboxUnavailable
    run_sandboxed, SandboxResult                # command.py
    SandboxedKernelManager                      # kernel.py (imports jupyter_client on first use)

Modules: ``limits`` (limits and their words), ``view`` (what the sandbox sees, package filtering),
``environment`` (environment variables), ``folder`` (the host-side run folder), ``processes`` (pids cgroup or
``RLIMIT_NPROC``), ``bwrap`` (finding bwrap, the one command-line builder), ``status``, ``command``,
``sockets`` (where a kernel's sockets live and how the grader reaches them), ``launcher`` (runs inside the
sandbox; standard library only) and ``kernel``.

Known limits of this boundary: memory is capped per process (``RLIMIT_AS``), not for the sandbox as a whole,
and the tmpfs folders (up to ``2 * disk_bytes`` plus ``/dev/shm`` and the 1 MiB socket folder) live in the
host's memory; their size does not bound how many empty files and folders they hold (the kernel's default
inode count of a tmpfs, which ``bwrap`` cannot lower), whose kernel memory no limit here counts; CPU time is per
process; there is no seccomp filter; the kernel's stdout/stderr are the grader's (``RLIMIT_FSIZE`` caps a log
file).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .bwrap import find_bwrap
from .command import SandboxResult, run_sandboxed
from .limits import Limits, explain_exit, limit_messages
from .status import SandboxStatus, SandboxUnavailable, sandbox_status
from .view import DEFAULT_HIDDEN_MODULES

if TYPE_CHECKING:
    from .kernel import SandboxedKernelManager

__all__ = [
    "DEFAULT_HIDDEN_MODULES",
    "Limits",
    "SandboxResult",
    "SandboxStatus",
    "SandboxUnavailable",
    "SandboxedKernelManager",
    "explain_exit",
    "find_bwrap",
    "limit_messages",
    "run_sandboxed",
    "sandbox_status",
]


def __getattr__(name: str) -> Any:
    """Import the kernel manager (and jupyter_client, traitlets) only when it is asked for (PEP 562)."""
    if name == "SandboxedKernelManager":
        from .kernel import SandboxedKernelManager

        return SandboxedKernelManager
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
