"""How the processes and threads of a sandbox are counted and capped: a pids cgroup, else ``RLIMIT_NPROC``.

``RLIMIT_NPROC`` is not enforced for root, even inside a user namespace (the kernel exempts the root user and
processes with ``CAP_SYS_RESOURCE``/``CAP_SYS_ADMIN``). So:

* when a writable ``pids`` cgroup is available (a v1 ``pids`` hierarchy, or cgroup2 with the ``pids``
  controller) each sandbox gets its own cgroup with ``pids.max``; a tiny trusted ``/bin/sh`` wrapper joins
  it (and the sandbox's memory cgroup, :mod:`kdcourse.sandbox.memory`) and then ``exec``\\ s ``bwrap``, so
  everything in the sandbox is counted from its first instruction (:func:`join_cgroups`);
  ``pids.events`` tells afterwards whether a fork was refused; the cgroup is removed when the sandbox is gone;
* otherwise, for a grader that is not root, the launcher sets ``RLIMIT_NPROC`` inside the sandbox, after the
  user namespace exists, so that only the sandbox's own processes count;
* otherwise (root without a writable pids cgroup) the limit is not enforced, and :func:`process_limit_plan`
  says so.

:class:`Cgroup` (make, join, sweep, remove) serves both the pids and the memory cgroups.
"""

from __future__ import annotations

import functools
import os
import secrets
import signal
import sys
import time
from collections.abc import Collection, Sequence
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


def own_cgroups(controller: str) -> list[str]:
    """Folders of this process's own cgroup in each hierarchy that may have ``controller`` (v1 first, then
    cgroup2, whose controllers only a probe can tell)."""
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
        if controller in controllers.split(","):
            fstypes, found = ("cgroup",), version1
        elif controllers == "":
            fstypes, found = ("cgroup2",), version2
        else:
            continue
        for root, mount_point, fstype, options in mounts:
            if fstype not in fstypes or (fstype == "cgroup" and controller not in options.split(",")):
                continue
            if path == root or path.startswith(root.rstrip("/") + "/"):
                relative = path[len(root):].lstrip("/")
                found.append(os.path.join(mount_point, relative) if relative else mount_point)
                break
    return version1 + version2


def own_pids_cgroups() -> list[str]:
    """Folders of this process's own cgroup in each hierarchy that has the pids controller (v1 first)."""
    return own_cgroups("pids")


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


class Cgroup:
    """One sandbox's cgroup in one hierarchy: made with :meth:`make`, joined through :func:`join_cgroups`,
    ended by :meth:`remove`."""

    def __init__(self, path: str) -> None:
        self.path = path

    @classmethod
    def make(cls, parent: str, settings: dict[str, str], optional: Collection[str] = ()) -> Cgroup:
        """A fresh cgroup under ``parent`` with each file of ``settings`` written, in order (removed again if
        one cannot be written); a file named in ``optional`` is skipped where the new cgroup has none."""
        cls.sweep(parent)
        path = os.path.join(parent, f"{CGROUP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}")
        os.mkdir(path)
        try:
            for name, value in settings.items():
                if name in optional and not os.path.exists(os.path.join(path, name)):
                    continue
                with open(os.path.join(path, name), "w", encoding="ascii") as handle:
                    handle.write(value)
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

    @property
    def procs(self) -> str:
        """The ``cgroup.procs`` file, into which a process writes its pid to join."""
        return os.path.join(self.path, "cgroup.procs")

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` run by a ``/bin/sh`` that first moves itself into this cgroup (see :func:`join_cgroups`)."""
        return join_cgroups([self], argv)

    def read_counts(self, name: str) -> dict[str, int]:
        """The ``key value`` lines of file ``name`` (``pids.events``, ``memory.events``, ...); ``{}`` if unreadable."""
        counts = {}
        try:
            with open(os.path.join(self.path, name), encoding="ascii") as handle:
                for line in handle:
                    key, _, value = line.strip().partition(" ")
                    if value.strip().isdigit():
                        counts[key] = int(value)
        except OSError:
            pass
        return counts

    def pids(self) -> list[int]:
        """Processes still in the cgroup."""
        try:
            with open(self.procs, encoding="ascii") as handle:
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


#: The trusted wrapper that joins cgroups: ``$0`` names it, then ``cgroup.procs`` files up to ``--``, then argv.
JOIN_SCRIPT = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 126; shift; done; shift; exec "$@"'


def join_cgroups(cgroups: Sequence[Cgroup], argv: list[str]) -> list[str]:
    """``argv`` run by a ``/bin/sh`` that first moves itself into each of ``cgroups``, then ``exec``\\ s ``argv``
    (so that everything it starts is counted from its first instruction); ``argv`` itself without cgroups."""
    if not cgroups:
        return list(argv)
    return ["/bin/sh", "-c", JOIN_SCRIPT, "kdcourse-sandbox-join", *(cgroup.procs for cgroup in cgroups), "--",
            *argv]


class PidsCgroup(Cgroup):
    """One sandbox's pids cgroup."""

    @classmethod
    def create(cls, parent: str, max_tasks: int) -> PidsCgroup:
        """Make a cgroup under ``parent`` that allows ``max_tasks`` processes and threads (plus the sandbox's own)."""
        made = cls.make(parent, {"pids.max": str(max_tasks + OVERHEAD_PROCESSES)})
        assert isinstance(made, PidsCgroup)
        return made

    def limit_hit(self) -> bool:
        """Whether a fork or thread creation was refused because ``pids.max`` was reached."""
        return self.read_counts("pids.events").get("max", 0) > 0


def cgroup_for(plan: ProcessLimitPlan, max_processes: int) -> PidsCgroup | None:
    """A new pids cgroup when ``plan`` uses one, else ``None``."""
    if not plan.uses_cgroup or plan.cgroup_parent is None:
        return None
    return PidsCgroup.create(plan.cgroup_parent, max_processes)
