"""Where a kernel's standard output and error go: a pipe that the grader drains, never the grader's own files.

jupyter_client starts a kernel with the grader's stdout and stderr; a grading worker points those at a log
file of the host. A kernel that inherits them holds a descriptor to that host file: through
``/proc/self/fd/N`` it could read what earlier kernels wrote there, forge log lines, or fill it, after which
ipykernel's thread that forwards C-level output (it also echoes to the original descriptor) dies in every later
kernel of that worker.

So a kernel's descriptors 1 and 2 are the write end of a pipe (:class:`OutputDrain`). A daemon thread of the
grader reads it until every process of the sandbox has let go of it, keeps the first :data:`KEEP_BYTES` (what
``bwrap``, the launcher or ipykernel say when a kernel fails to start) and throws the rest away; reading on
keeps a writer in the sandbox from ever blocking. What Python code writes to ``sys.stdout``/``sys.stderr``
reaches the notebook over ZMQ as before; what C code writes to descriptors 1 and 2 is forwarded by ipykernel
too, and otherwise lost.

Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import threading

from .limits import KiB

#: Bytes of a kernel's own output that the grader keeps (the start of it); the rest is read and dropped.
KEEP_BYTES = 64 * KiB
#: Bytes read at once.
CHUNK_BYTES = 64 * KiB


class OutputDrain:
    """A pipe for a child process's stdout and stderr, drained by a daemon thread.

    Pass :attr:`write_fd` as the child's ``stdout`` and ``stderr``, then call :meth:`start` once the child
    exists (or :meth:`close` if it could not be started).

    Attributes
    ----------
    write_fd : int or None
        The write end, until :meth:`start` or :meth:`close` (not inheritable: ``subprocess`` duplicates it
        onto the child's descriptors 1 and 2).
    total : int
        Bytes read so far.
    """

    def __init__(self, keep: int = KEEP_BYTES) -> None:
        self._read_fd: int | None
        self._read_fd, self.write_fd = os.pipe()
        self.keep = keep
        self.total = 0
        self._kept = bytearray()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Let go of the write end (the child holds its own copies) and drain the pipe until end of file."""
        if self.write_fd is not None:
            os.close(self.write_fd)
            self.write_fd = None
        self._thread = threading.Thread(target=self._drain, name="kdcourse-sandbox-output", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        fd = self._read_fd
        assert fd is not None
        try:
            while True:
                try:
                    chunk = os.read(fd, CHUNK_BYTES)
                except OSError:
                    return
                if not chunk:
                    return
                self.total += len(chunk)
                room = self.keep - len(self._kept)
                if room > 0:
                    self._kept += chunk[:room]
        finally:
            self._read_fd = None
            os.close(fd)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every writer has gone (``True``) or ``timeout`` seconds have passed (``False``)."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def kept(self) -> bytes:
        """The first :attr:`keep` bytes of the output."""
        return bytes(self._kept)

    def text(self) -> str:
        """:meth:`kept` as text (undecodable bytes replaced)."""
        return self.kept().decode(errors="replace")

    def close(self) -> None:
        """Close both ends of a drain that was never started (a started one closes itself at end of file)."""
        if self._thread is not None:
            return
        for name in ("write_fd", "_read_fd"):
            fd = getattr(self, name)
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
                setattr(self, name, None)
