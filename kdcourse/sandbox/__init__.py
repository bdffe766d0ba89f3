"""The operating-system boundary around student code: every grading kernel runs inside bubblewrap.

A sandboxed kernel sees the Python environment read-only, a filtered read-only copy of ``kdcourse`` (without
``hidden_modules``; a stub covers every other copy of a hidden module under the folders it sees), a private
size-limited work folder, ``HOME`` and ``/tmp``, no network, its own PID namespace, and runs under memory,
process, CPU-time and disk limits (:class:`Limits`). No host folder is writable from the sandbox, and it holds
no descriptor of a host file: its stdout and stderr are a pipe the grader drains (:mod:`kdcourse.sandbox.output`).
It talks to the grader over ZMQ's ipc transport, through sockets it binds in a 1 MiB tmpfs of its own, which the
grader holds open from outside (:mod:`kdcourse.sandbox.sockets`).

Public API::

    Limits, limit_messages                      # limits.py
    find_bwrap, sandbox_status, SandboxStatus, SandboxUnavailable
    run_sandboxed, SandboxResult                # command.py
    SandboxedKernelManager                      # kernel.py (imports jupyter_client on first use)

Modules: ``limits`` (limits and their words), ``view`` (what the sandbox sees, package filtering),
``environment`` (environment variables), ``folder`` (the host-side run folder), ``processes`` (pids cgroup or
``RLIMIT_NPROC``), ``memory`` (memory cgroup, and ``RLIMIT_AS``), ``bwrap`` (finding bwrap, the one
command-line builder), ``status``, ``command``, ``sockets`` (where a kernel's sockets live and how the grader
reaches them), ``output`` (the pipe of a kernel's stdout/stderr), ``launcher`` (runs inside the sandbox;
standard library only) and ``kernel``.

Known limits of this boundary: memory is capped for the sandbox as a whole (its processes, the pages of its
tmpfs folders and the kernel memory of their files) only where a memory cgroup can be made
(``SandboxStatus.memory_limit == "cgroup memory"``); elsewhere only per process (``RLIMIT_AS``), and the tmpfs
folders (up to ``2 * disk_bytes`` plus ``/dev/shm`` and the 1 MiB socket folder) and the empty files and
folders they can hold (the kernel's default inode count of a tmpfs, which ``bwrap`` cannot lower) then live in
the host's memory uncounted; CPU time is per process; there is no seccomp filter; a hidden module stays
importable from a copy that is neither a folder, a module file nor a ``.zip``/``.egg``/``.whl``/``.pyz``
archive (e.g. a zip archive under another name).
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
