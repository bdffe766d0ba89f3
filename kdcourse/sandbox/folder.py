"""The host-side run folder of one sandbox: the filtered package copy, stubs, generated ``/etc`` files, the
staged working files, matplotlib's font list and (for a kernel) its connection file.

Made with :func:`tempfile.mkdtemp` (mode 0700) and removed by :meth:`RunFolder.remove`. Inside the sandbox it
is bound read-only at the same path, so the connection file's path means the same thing on both sides. Nothing
of it is writable from the sandbox: a sandboxed kernel's ZMQ sockets live in a tmpfs of the sandbox itself
(:mod:`kdcourse.sandbox.sockets`); only a kernel run without the sandbox gets ``ipc/`` here.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from .environment import SANDBOX_USER, Layout
from .limits import format_bytes
from .sockets import socket_folder
from .view import (
    DEFAULT_HIDDEN_MODULES,
    PACKAGE,
    Mount,
    check_hidden_modules,
    copy_package,
    make_stubs,
    package_dir,
    split_hidden,
)

SANDBOX_UID = 1000
SANDBOX_GID = 1000


def matplotlib_font_lists() -> list[str]:
    """The grader's matplotlib font-list caches (``fontlist-v*.json``), found without importing matplotlib."""
    module = sys.modules.get("matplotlib")
    folders = []
    if module is not None and hasattr(module, "get_cachedir"):
        try:
            folders.append(module.get_cachedir())
        except Exception:  # noqa: BLE001 - a broken config only costs the cache
            pass
    if os.environ.get("MPLCONFIGDIR"):
        folders.append(os.environ["MPLCONFIGDIR"])
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folders.append(os.path.join(cache_home, "matplotlib"))
    for folder in folders:
        found = sorted(glob.glob(os.path.join(glob.escape(folder), "fontlist-v*.json")))
        if found:
            return found
    return []


class RunFolder:
    """The private host folder of one sandbox.

    Parameters
    ----------
    hidden_modules : iterable of str
        Dotted names hidden from the sandbox: ``kdcourse`` subpackages are left out of the package copy,
        third-party ones covered by stubs.
    ipc : bool
        Choose a folder for a kernel's ZMQ sockets (:attr:`ipc`).
    sandboxed : bool
        With ``ipc``: whether the kernel runs in the sandbox.

    Attributes
    ----------
    hidden : tuple of str
        The hidden module names (checked).
    ipc : str or None
        The folder of the kernel's sockets as the kernel sees it: sandboxed, a fresh path under
        ``/run/kdcourse`` where ``bwrap`` mounts a small tmpfs (nothing of it exists on the host); unsandboxed,
        ``ipc/`` in this folder.
    """

    def __init__(self, hidden_modules: Iterable[str] = DEFAULT_HIDDEN_MODULES, *, ipc: bool = False,
                 sandboxed: bool = True) -> None:
        self.path = Path(os.path.realpath(tempfile.mkdtemp(prefix="kdcourse-sandbox-")))
        try:
            self.hidden = check_hidden_modules(hidden_modules)
            inside, outside = split_hidden(self.hidden)
            self.package_source = package_dir()
            self.package_copy = self.path / "package" / self.package_source.name
            self.left_out = copy_package(self.package_source, self.package_copy, inside)
            # third-party modules wherever they lie; kdcourse's own hidden parts in any other copy of the
            # package (the one that is bound, package_source, is the filtered copy)
            own = [str(self.package_source), str(self.package_source.resolve())]
            self.stub_mounts: list[Mount] = make_stubs([*outside, *(".".join((PACKAGE, *parts)) for parts in inside)],
                                                       self.path / "stubs", skip=own)
            self.etc = self.path / "etc"
            self.etc.mkdir()
            self._write_etc()
            self.input = self.path / "input"
            self.input.mkdir()
            self.fonts = self.path / "fonts"
            self.fonts.mkdir()
            for font_list in matplotlib_font_lists():
                shutil.copyfile(font_list, self.fonts / os.path.basename(font_list))
            self.ipc: str | None = None
            if ipc:
                self.ipc = socket_folder() if sandboxed else self._host_ipc()
        except BaseException:
            self.remove()
            raise

    def _host_ipc(self) -> str:
        """Make ``ipc/`` (mode 0700), the socket folder of a kernel run without the sandbox."""
        folder = self.path / "ipc"
        folder.mkdir(mode=0o700)
        return str(folder)

    def _write_etc(self) -> None:
        home = f"/home/{SANDBOX_USER}"
        (self.etc / "passwd").write_text(
            f"root:x:0:0::/root:/bin/sh\n{SANDBOX_USER}:x:{SANDBOX_UID}:{SANDBOX_GID}::{home}:/bin/sh\n"
            "nobody:x:65534:65534::/nonexistent:/bin/false\n", encoding="ascii")
        (self.etc / "group").write_text(
            f"root:x:0:\n{SANDBOX_USER}:x:{SANDBOX_GID}:\nnogroup:x:65534:\n", encoding="ascii")
        (self.etc / "hosts").write_text("127.0.0.1 localhost\n::1 localhost\n", encoding="ascii")

    def etc_mounts(self) -> list[Mount]:
        """The generated ``/etc/passwd``, ``/etc/group`` and ``/etc/hosts``, read-only."""
        return [Mount("--ro-bind", f"/etc/{name}", str(self.etc / name)) for name in ("passwd", "group", "hosts")]

    def unsafe_layout(self) -> Layout:
        """Private folders inside the run folder, for a kernel run without the sandbox."""
        layout = Layout(home=str(self.path / "home"), work=str(self.path / "home" / "work"),
                        tmp=str(self.path / "tmp"))
        for folder in (layout.work, layout.tmp):
            os.makedirs(folder, mode=0o700, exist_ok=True)
        return layout

    def stage(self, cwd: str | os.PathLike | None = None, files: Mapping[str, bytes] | None = None,
              max_bytes: int | None = None) -> int:
        """Put the working files in ``input/``: the regular files of ``cwd`` (not recursively, no symlinks)
        and ``files`` (name -> content). Replaces what an earlier call staged. Returns the bytes staged.

        Raises
        ------
        ValueError
            If a name in ``files`` is not a plain file name, or the files exceed ``max_bytes``.
        """
        for entry in os.scandir(self.input):
            os.unlink(entry.path)
        total = 0
        if cwd is not None:
            for entry in os.scandir(cwd):
                if entry.is_file(follow_symlinks=False) and entry.name not in (files or {}):
                    total += entry.stat(follow_symlinks=False).st_size
                    self._check_size(total, max_bytes, cwd)
                    shutil.copy(entry.path, self.input / entry.name, follow_symlinks=False)
        for name, content in (files or {}).items():
            if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
                raise ValueError(f"cwd_files: {name!r} is not a plain file name")
            if not isinstance(content, (bytes, bytearray)):
                raise TypeError(f"cwd_files[{name!r}] must be bytes (got {type(content).__name__})")
            total += len(content)
            self._check_size(total, max_bytes, "cwd_files")
            (self.input / name).write_bytes(content)
        return total

    @staticmethod
    def _check_size(total: int, max_bytes: int | None, where: object) -> None:
        if max_bytes is not None and total > max_bytes:
            raise ValueError(f"the working files of {where} hold more than the disk limit of "
                             f"{format_bytes(max_bytes)}")

    def remove(self) -> None:
        """Delete the run folder (symlinks an unsandboxed kernel left in ``ipc/`` are removed, not followed)."""
        shutil.rmtree(self.path, ignore_errors=True)
