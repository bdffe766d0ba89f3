"""How the memory of a sandbox is capped: a memory cgroup for the whole sandbox where one can be made, and
``RLIMIT_AS`` on every process in any case.

``RLIMIT_AS`` (set by the launcher) bounds each process's address space, not the sandbox: a kernel that forks
four children can use four times ``memory_bytes``, and the pages of its tmpfs folders (work folder, ``HOME``,
``/tmp``, ``/dev/shm``, the socket folder) count against no process at all. So, where this process can make a
child cgroup with the memory controller (a writable v1 ``memory`` hierarchy, or cgroup2 whose parent enables
``memory`` for its children), each sandbox gets its own with the limit ``memory_bytes``:

* v1: ``memory.limit_in_bytes`` and, when swap is accounted, ``memory.memsw.limit_in_bytes`` at the same value
  (memory plus swap: swap cannot widen the limit); the OOM kills are counted in ``memory.oom_control``
  (``oom_kill``);
* cgroup2: ``memory.max``, ``memory.swap.max = 0``; the OOM kills are counted in ``memory.events``.

The memory charged to a cgroup is its processes' anonymous memory, the page cache and tmpfs pages they write
(tmpfs pages are charged to whoever first writes them, and stay charged while the file exists) and the kernel
memory they cause (inodes, dentries, page tables, socket buffers). At the limit the kernel first reclaims page
cache; when nothing more can be reclaimed, the OOM killer ends the largest process *of that cgroup* (the kernel
or one of its children), never one of the grader's. The same ``/bin/sh`` wrapper that joins the pids cgroup
joins this one (:func:`~kdcourse.sandbox.processes.join_cgroups`) before ``bwrap`` starts; the cgroup is
removed when the sandbox is gone.

Standard library only.
"""

from __future__ import annotations

import functools
import os
import secrets
import sys
from dataclasses import dataclass

from .processes import CGROUP_PREFIX, Cgroup, own_cgroups

CGROUP = "cgroup memory"
RLIMIT = "RLIMIT_AS per process"


@dataclass(frozen=True)
class MemoryLimitPlan:
    """How this machine limits a sandbox's memory.

    Attributes
    ----------
    mechanism : str
        ``"cgroup memory"`` (a memory cgroup per sandbox, ``RLIMIT_AS`` as well) or ``"RLIMIT_AS per process"``.
    cgroup_parent : str or None
        Folder under which per-sandbox memory cgroups are made, when ``mechanism == "cgroup memory"``.
    version : int or None
        1 or 2: the cgroup version of ``cgroup_parent``.
    """

    mechanism: str
    cgroup_parent: str | None = None
    version: int | None = None

    @property
    def uses_cgroup(self) -> bool:
        return self.mechanism == CGROUP


def _version_of(folder: str) -> int:
    """2 when ``folder`` is in a cgroup2 hierarchy (it has ``cgroup.controllers``), else 1."""
    return 2 if os.path.exists(os.path.join(folder, "cgroup.controllers")) else 1


#: The swap files: absent where the kernel does not account swap (then no swap can widen the limit either).
SWAP_FILES = ("memory.memsw.limit_in_bytes", "memory.swap.max")


def limit_settings(version: int, limit_bytes: int) -> dict[str, str]:
    """The files to write, in order, to cap a new cgroup of ``version`` at ``limit_bytes``, swap included."""
    if version == 2:
        return {"memory.max": str(limit_bytes), "memory.swap.max": "0"}
    # v1 memsw is memory plus swap, and may not be set below memory.limit_in_bytes: it comes second
    return {"memory.limit_in_bytes": str(limit_bytes), "memory.memsw.limit_in_bytes": str(limit_bytes)}


def _probe(parent: str) -> int | None:
    """The cgroup version, when a child cgroup with a memory limit can be made (and removed) under ``parent``."""
    probe = os.path.join(parent, f"{CGROUP_PREFIX}probe-{os.getpid()}-{secrets.token_hex(3)}")
    try:
        os.mkdir(probe)
    except OSError:
        return None
    try:
        version = _version_of(probe)
        # cgroup2 shows memory.max only when the parent enables the controller for its children; that is not
        # switched on here, it would change the machine for every process
        for name, value in limit_settings(version, 1 << 30).items():
            if name in SWAP_FILES and not os.path.exists(os.path.join(probe, name)):
                continue
            with open(os.path.join(probe, name), "w", encoding="ascii") as handle:
                handle.write(value)
        return version
    except OSError:
        return None
    finally:
        try:
            os.rmdir(probe)
        except OSError:
            pass


def choose_memory_limit(cgroup_parent: str | None, version: int | None = None,
                        platform: str = sys.platform) -> MemoryLimitPlan:
    """The mechanism for a machine with a usable memory cgroup folder ``cgroup_parent`` (or ``None``)."""
    if platform.startswith("linux") and cgroup_parent is not None:
        return MemoryLimitPlan(CGROUP, cgroup_parent, version or _version_of(cgroup_parent))
    return MemoryLimitPlan(RLIMIT)


@functools.lru_cache(maxsize=1)
def memory_limit_plan() -> MemoryLimitPlan:
    """How memory is limited on this machine (probed once per process)."""
    if sys.platform.startswith("linux"):
        for folder in own_cgroups("memory"):
            version = _probe(folder)
            if version is not None:
                return choose_memory_limit(folder, version)
    return choose_memory_limit(None)


class MemoryCgroup(Cgroup):
    """One sandbox's memory cgroup."""

    version: int = 1

    @classmethod
    def create(cls, parent: str, limit_bytes: int, version: int) -> MemoryCgroup:
        """Make a cgroup under ``parent`` whose processes and tmpfs pages together may use ``limit_bytes``."""
        made = cls.make(parent, limit_settings(version, limit_bytes), optional=SWAP_FILES)
        assert isinstance(made, MemoryCgroup)
        made.version = version
        return made

    def oom_kills(self) -> int:
        """How many processes of the cgroup the OOM killer ended because the cgroup was at its limit."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        return self.read_counts(name).get("oom_kill", 0)

    def limit_hit(self) -> bool:
        """Whether the cgroup ran out of memory: a process of it was killed at the limit."""
        return self.oom_kills() > 0


def memory_cgroup_for(plan: MemoryLimitPlan, limit_bytes: int) -> MemoryCgroup | None:
    """A new memory cgroup when ``plan`` uses one, else ``None``."""
    if not plan.uses_cgroup or plan.cgroup_parent is None:
        return None
    return MemoryCgroup.create(plan.cgroup_parent, limit_bytes, plan.version or 1)
