"""How the processes and threads of a sandbox are counted and capped: a pids cgroup, else ``RLIMIT_NPROC``.

``RLIMIT_NPROC`` is not enforced for root, even inside a user namespace (the kernel exempts the root user and
processes with ``CAP_SYS_RESOURCE``/``CAP_SYS_ADMIN``). So:

* when a writable ``pids`` cgroup is available (a v1 ``pids`` hierarchy, or cgroup2 with the ``pids``
  controller) each sandbox gets its own cgroup with ``pids.max``; a tiny trusted ``/bin/sh`` wrapper joins
  it and then ``exec``\\ s ``bwrap``, so everything in the sandbox is counted from its first instruction;
  ``pids.events`` tells afterwards whether a fork was refused; the cgroup is removed when the sandbox is gone;
* otherwise, for a grader that is not root, the launcher sets ``RLIMIT_NPROC`` inside the sandbox, after the
  user namespace exists, so that only the sandbox's own processes count;
* otherwise (root without a writable pids cgroup) the limit is not enforced, and :func:`process_limit_plan`
  says so.
"""

from __future__ import annotations

import functools
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass

#: Name prefix of the cgroups made here: ``kdcourse-sandbox-<grader pid>-<random>``.
CGROUP_PREFIX = "kdcourse-sandbox-"

#: Processes that the sandbox machinery itself adds to a sandbox's cgroup (outer ``bwrap`` and its init).
OVERHEAD_PROCESSES = 2

CGROUP = "cgroup pids"
RLIMIT = "RLIMIT_NPROC"


@dataclass(frozen=True)
class ProcessLimitPlan:
    """How this machine limits a sandbox's processes.

    Attributes
    ----------
    mechanism : str
        ``"cgroup pids"``, ``"RLIMIT_NPROC"`` or ``"not enforced (<why>)"``.
    cgroup_parent : str or None
        Folder under which per-sandbox cgroups are made, when ``mechanism == "cgroup pids"``.
    """

    mechanism: str
    cgroup_parent: str | None = None

    @property
    def uses_cgroup(self) -> bool:
        return self.mechanism == CGROUP

    @property
    def uses_rlimit(self) -> bool:
        return self.mechanism == RLIMIT


def _mountinfo() -> list[tuple[str, str, str, str]]:
    """``(root, mount point, fs type, super options)`` of each mount of this process."""
    rows = []
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(fields) >= 5 and len(tail) >= 3:
                rows.append((fields[3], fields[4], tail[0], tail[2]))
    return rows


def own_pids_cgroups() -> list[str]:
    """Folders of this process's own cgroup in each hierarchy that has the pids controller (v1 first)."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as handle:
            lines = [line.rstrip("\n").split(":", 2) for line in handle]
        mounts = _mountinfo()
    except OSError:
        return []
    version1, version2 = [], []
    for parts in lines:
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if "pids" in controllers.split(","):
            fstypes, found = ("cgroup",), version1
        elif controllers == "":
            fstypes, found = ("cgroup2",), version2
        else:
            continue
        for root, mount_point, fstype, options in mounts:
            if fstype not in fstypes or (fstype == "cgroup" and "pids" not in options.split(",")):
                continue
            if path == root or path.startswith(root.rstrip("/") + "/"):
                relative = path[len(root):].lstrip("/")
                found.append(os.path.join(mount_point, relative) if relative else mount_point)
                break
    return version1 + version2


def _probe(parent: str) -> bool:
    """Whether a child cgroup with ``pids.max`` can be made (and removed) under ``parent``."""
    probe = os.path.join(parent, f"{CGROUP_PREFIX}probe-{os.getpid()}-{secrets.token_hex(3)}")
    try:
        os.mkdir(probe)
    except OSError:
        return False
    try:
        # cgroup2 shows pids.max only when the parent enables the controller for its children (systemd:
        # Delegate=pids); that is not switched on here, it would change the machine for every process
        with open(os.path.join(probe, "pids.max"), "w", encoding="ascii") as handle:
            handle.write("100")
        return True
    except OSError:
        return False
    finally:
        try:
            os.rmdir(probe)
        except OSError:
            pass


def choose_process_limit(cgroup_parent: str | None, euid: int, platform: str = sys.platform) -> ProcessLimitPlan:
    """The mechanism for a machine with a writable pids cgroup folder ``cgroup_parent`` (or ``None``)."""
    if not platform.startswith("linux"):
        return ProcessLimitPlan("not enforced (not Linux)")
    if cgroup_parent is not None:
        return ProcessLimitPlan(CGROUP, cgroup_parent)
    if euid != 0:
        return ProcessLimitPlan(RLIMIT)
    return ProcessLimitPlan(
        "not enforced (the grader runs as root, for whom RLIMIT_NPROC does not count, and no pids cgroup is "
        "writable: run the grader as another user, or give it a pids cgroup)"
    )


@functools.lru_cache(maxsize=1)
def process_limit_plan() -> ProcessLimitPlan:
    """How processes are limited on this machine (probed once per process)."""
    parent = None
    if sys.platform.startswith("linux"):
        parent = next((folder for folder in own_pids_cgroups() if _probe(folder)), None)
    return choose_process_limit(parent, os.geteuid() if hasattr(os, "geteuid") else -1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PidsCgroup:
    """One sandbox's pids cgroup: made with :meth:`create`, joined through :meth:`wrap`, ended by :meth:`remove`."""

    def __init__(self, path: str) -> None:
        self.path = path

    @classmethod
    def create(cls, parent: str, max_tasks: int) -> PidsCgroup:
        """Make a cgroup under ``parent`` that allows ``max_tasks`` processes and threads (plus the sandbox's own)."""
        cls.sweep(parent)
        path = os.path.join(parent, f"{CGROUP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}")
        os.mkdir(path)
        try:
            with open(os.path.join(path, "pids.max"), "w", encoding="ascii") as handle:
                handle.write(str(max_tasks + OVERHEAD_PROCESSES))
        except OSError:
            os.rmdir(path)
            raise
        return cls(path)

    @staticmethod
    def sweep(parent: str) -> None:
        """Remove empty cgroups left behind by graders that died (their pid is gone)."""
        try:
            names = os.listdir(parent)
        except OSError:
            return
        for name in names:
            if not name.startswith(CGROUP_PREFIX) or name.startswith(CGROUP_PREFIX + "probe-"):
                continue
            owner = name[len(CGROUP_PREFIX):].split("-", 1)[0]
            if owner.isdigit() and int(owner) != os.getpid() and not _alive(int(owner)):
                try:
                    os.rmdir(os.path.join(parent, name))
                except OSError:
                    pass

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` run by a ``/bin/sh`` that first moves itself into this cgroup, then ``exec``\\ s ``argv``."""
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', os.path.join(self.path, "cgroup.procs"), *argv]

    def limit_hit(self) -> bool:
        """Whether a fork or thread creation was refused because ``pids.max`` was reached."""
        try:
            with open(os.path.join(self.path, "pids.events"), encoding="ascii") as handle:
                for line in handle:
                    key, _, value = line.partition(" ")
                    if key == "max" and value.strip().isdigit():
                        return int(value) > 0
        except OSError:
            pass
        return False

    def pids(self) -> list[int]:
        """Processes still in the cgroup."""
        try:
            with open(os.path.join(self.path, "cgroup.procs"), encoding="ascii") as handle:
                return [int(line) for line in handle if line.strip()]
        except OSError:
            return []

    def remove(self, timeout: float = 5.0) -> None:
        """Kill whatever is left in the cgroup and remove it; tolerate it being gone already."""
        deadline = time.monotonic() + timeout
        while True:
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.01)


def cgroup_for(plan: ProcessLimitPlan, max_processes: int) -> PidsCgroup | None:
    """A new pids cgroup when ``plan`` uses one, else ``None``."""
    if not plan.uses_cgroup or plan.cgroup_parent is None:
        return None
    return PidsCgroup.create(plan.cgroup_parent, max_processes)
