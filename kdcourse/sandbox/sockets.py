"""Where a sandboxed kernel's ZMQ sockets live, and how the grader reaches them without a shared host folder.

The kernel binds its five ipc sockets in a small tmpfs of its own sandbox, ``/run/kdcourse/<random>`` (see
:func:`socket_folder`). That folder is a mount point on the sandbox's read-only root, so the kernel can write
into it (it must, to bind) but cannot move or replace it, and nothing it writes there reaches the host.

The grader gets there through ``/proc/<pid>/root`` of the sandbox's first process, whose pid ``bwrap`` reports
on ``--info-fd`` (:func:`read_child_pid`). Once the kernel has bound, the grader opens each socket with
``O_PATH | O_NOFOLLOW``, checks that it is a socket and keeps it on a descriptor of its own
(:class:`SocketPins`); ZMQ then connects to ``ipc:///proc/self/fd/<n>``. A connection, or a reconnection,
therefore always reaches the socket the kernel bound at start-up: the kernel can later rename it and put a
symlink in its place, but the grader never looks the name up again (an absolute symlink found through
``/proc/<pid>/root`` would be followed from the *grader's* root, onto any Unix socket of the host).

The descriptor numbers stay the same for the life of a kernel manager, so the URLs a client was given remain
valid across restarts. While no kernel has bound they point at ``/dev/null``: a connection is refused and ZMQ
retries.

Both sides' paths are short whatever the grader's ``TMPDIR`` (a Unix socket path holds at most 107 bytes):
about 40 characters inside the sandbox, ``/proc/self/fd/<n>`` outside. The sockets are pinned while the
kernel starts, before it runs any cell.

Standard library only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import stat
import time
from collections.abc import Callable, Mapping

from .limits import MiB

#: The parent, inside the sandbox, of every kernel's socket folder (made by ``bwrap`` on the read-only root).
SOCKET_ROOT = "/run/kdcourse"
#: Size of the socket tmpfs. Sockets take no space in it: this only bounds what a kernel can write there.
SOCKET_TMPFS_BYTES = 1 * MiB
#: The ZMQ channels of a Jupyter kernel.
CHANNELS = ("shell", "iopub", "stdin", "control", "hb")
#: Longest path of a Unix socket (``sun_path`` holds 108 bytes with the final NUL).
MAX_SOCKET_PATH = 107
#: Seconds between two looks for the kernel's sockets.
POLL_SECONDS = 0.02


def socket_folder() -> str:
    """A fresh socket folder inside the sandbox, ``/run/kdcourse/<16 hex digits>``.

    The random part keeps a recycled pid from leading the grader into another kernel's sandbox.
    """
    return f"{SOCKET_ROOT}/{secrets.token_hex(8)}"


def check_socket_path(path: str) -> None:
    """Refuse a socket path longer than a Unix socket address can hold.

    Raises
    ------
    ValueError
        If ``path`` has more than :data:`MAX_SOCKET_PATH` bytes.
    """
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise ValueError(f"the ZMQ socket path {path!r} is longer than {MAX_SOCKET_PATH} bytes: use a shorter "
                         "TMPDIR")


def _open_null() -> int:
    return os.open(os.devnull, os.O_PATH | os.O_CLOEXEC)


class SocketPins:
    """One descriptor per ZMQ channel, each holding the socket a kernel bound, or ``/dev/null`` between kernels.

    The descriptors are opened once (not inherited by child processes) and only re-pointed with ``dup2``
    afterwards, until :meth:`close`.
    """

    def __init__(self) -> None:
        self.fds: dict[str, int] = {}
        for channel in CHANNELS:
            self.fds[channel] = _open_null()

    def url(self, channel: str) -> str:
        """The ZMQ address at which the grader reaches ``channel``."""
        return f"ipc:///proc/self/fd/{self.fds[channel]}"

    def pin(self, channel: str, fd: int) -> None:
        """Point ``channel`` at the open file ``fd`` (the caller still owns ``fd``)."""
        os.dup2(fd, self.fds[channel], inheritable=False)

    def pinned(self) -> dict[str, bool]:
        """For each channel, whether it holds a socket (rather than ``/dev/null``)."""
        return {channel: stat.S_ISSOCK(os.fstat(fd).st_mode) for channel, fd in self.fds.items()}

    def retire(self) -> None:
        """Point every channel at ``/dev/null``, letting go of the last kernel's sockets (and its tmpfs)."""
        if not self.fds:
            return
        null = _open_null()
        try:
            for fd in self.fds.values():
                os.dup2(null, fd, inheritable=False)
        finally:
            os.close(null)

    def close(self) -> None:
        """Close the descriptors; the URLs must not be used afterwards."""
        fds, self.fds = self.fds, {}
        for fd in fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)


async def read_child_pid(fd: int, timeout: float) -> int | None:
    """The ``child-pid`` that ``bwrap --info-fd`` writes to the pipe ``fd``, or ``None``.

    ``None`` when ``bwrap`` closed the pipe without it (it failed before making the sandbox) or wrote nothing
    within ``timeout`` seconds. ``fd`` is the read end; it is left open.
    """
    os.set_blocking(fd, False)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            await asyncio.sleep(POLL_SECONDS / 4)
            continue
        if not chunk:
            break
        data += chunk
    try:
        pid = json.loads(data)["child-pid"]
    except (ValueError, KeyError, TypeError):
        return None
    return pid if isinstance(pid, int) and pid > 0 else None


def sandbox_path(pid: int, path: str) -> str:
    """The host's way to ``path`` inside the sandbox whose first process is ``pid``."""
    return f"/proc/{pid}/root{path}"


def _open_folder(path: str) -> int | None:
    try:
        return os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None


def open_socket(folder_fd: int, name: str) -> int | None:
    """An ``O_PATH`` descriptor of the socket ``name`` in the folder ``folder_fd``, or ``None``.

    ``None`` while there is nothing at ``name``, or something other than a socket on the folder's own file
    system (a symlink is not followed).
    """
    try:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder_fd)
    except OSError:
        return None
    found = os.fstat(fd)
    if stat.S_ISSOCK(found.st_mode) and found.st_dev == os.fstat(folder_fd).st_dev:
        return fd
    os.close(fd)
    return None


def _pin_present(pins: SocketPins, folder_fd: int, missing: dict[str, str]) -> None:
    """Pin each missing channel whose socket is there now, and forget it from ``missing``."""
    for channel, name in list(missing.items()):
        fd = open_socket(folder_fd, name)
        if fd is not None:
            try:
                pins.pin(channel, fd)
            finally:
                os.close(fd)
            del missing[channel]


async def pin_sockets(pins: SocketPins, folder: str, names: Mapping[str, str], alive: Callable[[], bool],
                      timeout: float) -> bool:
    """Wait until the kernel has bound a socket for every channel in ``folder``, and pin each one.

    Parameters
    ----------
    pins : SocketPins
        Where to keep the sockets.
    folder : str
        The socket folder as the host reaches it (:func:`sandbox_path`).
    names : mapping of str to str
        Channel -> socket file name (``"shell"`` -> ``"kernel-1"``).
    alive : callable
        Whether the kernel still runs; the wait ends when it does not.
    timeout : float
        Seconds to wait.

    Returns
    -------
    bool
        Whether every channel was pinned.
    """
    missing = dict(names)
    deadline = time.monotonic() + timeout
    folder_fd = None
    try:
        while True:
            if folder_fd is None:
                folder_fd = _open_folder(folder)
            if folder_fd is not None:
                _pin_present(pins, folder_fd, missing)
            if not missing:
                return True
            if not alive() or time.monotonic() > deadline:
                return False
            await asyncio.sleep(POLL_SECONDS)
    finally:
        if folder_fd is not None:
            os.close(folder_fd)
