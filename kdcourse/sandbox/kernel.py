"""A jupyter_client kernel manager whose kernels run inside the sandbox.

Use it wherever a grading kernel is started. nbclient::

    NotebookClient(nb, kernel_manager_class=SandboxedKernelManager, resources={"metadata": {"path": cwd}})

nbgrader 0.9.6: ``Execute.__init__`` does ``kwargs.setdefault("kernel_manager_class", AsyncKernelManager)``,
which overrides ``c.Execute.kernel_manager_class``; a subclass of ``Execute`` must pass ours::

    class SandboxedExecute(Execute):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("kernel_manager_class", SandboxedKernelManager)
            super().__init__(*args, **kwargs)

    c.Autograde.autograde_preprocessors = [SandboxedExecute, ...]   # in place of Execute
    c.SandboxedKernelManager.cpu_seconds = 600                        # the traits below are configurable
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import weakref
from typing import Any

from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, Float, Integer, List, Unicode, validate

from .bwrap import SandboxUnavailable, build_command
from .environment import clean_environment
from .folder import RunFolder
from .limits import Limits, explain_exit
from .memory import MemoryCgroup, memory_cgroup_for, memory_limit_plan
from .output import OutputDrain
from .processes import Cgroup, PidsCgroup, cgroup_for, process_limit_plan
from .sockets import CHANNELS, SocketPins, check_socket_path, pin_sockets, read_child_pid, sandbox_path
from .status import sandbox_status
from .view import DEFAULT_HIDDEN_MODULES, check_hidden_modules

_DEFAULTS = Limits()
#: Seconds a ``bwrap`` that closed its ``--info-fd`` without a pid gets to exit (it failed to make the sandbox).
EXIT_GRACE_SECONDS = 2.0


def _remove_cgroup(holder: list[Cgroup | None]) -> None:
    """Remove the cgroups of ``holder`` (the pids one, the memory one) and forget them."""
    for index, cgroup in enumerate(holder):
        if cgroup is not None:
            cgroup.remove()
            holder[index] = None


class SandboxedKernelManager(AsyncKernelManager):
    """An ``AsyncKernelManager`` that starts every kernel inside the bubblewrap sandbox.

    The kernel spec found on disk is never used: the kernel is always this interpreter (``sys.executable``)
    running ``ipykernel_launcher`` with jupyter_client's ``extra_arguments``, interrupted by message
    (``interrupt_request`` on the control channel). Its connection file sits in a per-kernel run folder (mode
    0700, read-only for the kernel, removed on cleanup). It is reached over ZMQ's ipc transport: the kernel binds
    in a tmpfs of its own sandbox, and this manager and its clients connect to the sockets it bound, held open
    on fixed descriptors (:mod:`kdcourse.sandbox.sockets`), so ``ip`` and the connection file name the kernel's
    side only. ``start_kernel`` returns once the kernel has bound its sockets (or has died). Use clients made
    by :meth:`client` or :meth:`blocking_client`. The environment jupyter_client hands over is cleaned
    (:func:`~kdcourse.sandbox.environment.clean_environment`), and the kernel starts in a private copy of the
    regular files of the ``cwd`` passed to ``start_kernel`` (an empty folder when none is passed). Its stdout
    and stderr are a pipe that this manager drains (:mod:`kdcourse.sandbox.output`), never the grader's own:
    whatever stdout/stderr are passed to ``start_kernel`` are not used. Its processes share a memory cgroup
    where one can be made (:mod:`kdcourse.sandbox.memory`) and a pids cgroup where one can be made.

    Raises
    ------
    SandboxUnavailable
        From ``start_kernel`` when the sandbox cannot run here and ``unsafe_no_sandbox`` is off.
    RuntimeError
        From ``start_kernel`` when a sandboxed kernel runs but has not bound its sockets within
        ``socket_timeout`` seconds (it is killed).
    """

    memory_bytes = Integer(_DEFAULTS.memory_bytes, min=1, config=True,
                           help="Memory of the whole kernel, its child processes and the files of its tmpfs "
                                "folders, in bytes (memory cgroup, where one can be made), and address space "
                                "of each of its processes (RLIMIT_AS).")
    max_processes = Integer(_DEFAULTS.max_processes, min=1, config=True,
                            help="Processes and threads a kernel may have at once (pids cgroup or RLIMIT_NPROC).")
    cpu_seconds = Integer(_DEFAULTS.cpu_seconds, min=1, config=True,
                          help="CPU time of each kernel process, in seconds (RLIMIT_CPU).")
    disk_bytes = Integer(_DEFAULTS.disk_bytes, min=1, config=True,
                         help="Size of the kernel's work folder with HOME, and of its /tmp, in bytes (tmpfs).")
    output_bytes = Integer(_DEFAULTS.output_bytes, min=1, config=True,
                           help="Largest notebook output in bytes; carried for the client, which enforces it.")
    hidden_modules = List(Unicode(), default_value=list(DEFAULT_HIDDEN_MODULES), config=True,
                          help="Dotted module names the kernel cannot import (kdcourse subpackages and "
                               "third-party top-level packages or modules).")
    socket_timeout = Float(60.0, min=1.0, config=True,
                           help="Seconds a sandboxed kernel may take from its start to binding its sockets.")
    unsafe_no_sandbox = Bool(False, config=True,
                             help="Run kernels WITHOUT the sandbox (same command, environment clean-up and "
                                  "rlimits; nothing else is protected). Logs a warning for every kernel.")

    @validate("hidden_modules")
    def _validate_hidden_modules(self, proposal: dict) -> list[str]:
        return list(check_hidden_modules(proposal["value"]))

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._folder: RunFolder | None = None
        self._cgroup: list[Cgroup | None] = [None, None]  # pids, memory
        self._output: OutputDrain | None = None
        self._process: subprocess.Popen | None = None
        self._exit_reason: str | None = None
        self._exit_known = False
        self._killed_by_manager = False
        self._sandbox_spec: KernelSpec | None = None
        self._finalizers: list[weakref.finalize] = []
        self._pins: SocketPins | None = None
        self._sandbox_pid: int | None = None

    # -- what is run ---------------------------------------------------------------------------------------

    @property
    def limits(self) -> Limits:
        """The :class:`~kdcourse.sandbox.Limits` of this manager's kernels (raises if a trait is invalid)."""
        return Limits(memory_bytes=self.memory_bytes, max_processes=self.max_processes,
                      cpu_seconds=self.cpu_seconds, disk_bytes=self.disk_bytes, output_bytes=self.output_bytes)

    @property
    def kernel_spec(self) -> KernelSpec:  # type: ignore[override]
        """A fixed spec: this interpreter with ipykernel, message interrupts (kernel specs on disk are ignored)."""
        if self._sandbox_spec is None:
            self._sandbox_spec = KernelSpec(
                argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                display_name="Python 3 (kdcourse sandbox)", language="python", interrupt_mode="message",
                env={}, metadata={},
            )
        return self._sandbox_spec

    @property
    def ipykernel(self) -> bool:
        return True

    @property
    def sandboxed(self) -> bool:
        """Whether kernels run inside the sandbox (``not unsafe_no_sandbox``)."""
        return not self.unsafe_no_sandbox

    # -- start -----------------------------------------------------------------------------------------------

    async def _async_pre_start_kernel(self, **kw: Any) -> tuple[list[str], dict[str, Any]]:
        _ = self.limits  # raises on invalid traits before anything is made
        if self._folder is None:
            if self.sandboxed:
                status = sandbox_status()
                if not status.available:
                    raise SandboxUnavailable(status.reason)
            self._make_folder()
        return await super()._async_pre_start_kernel(**kw)

    def _make_folder(self) -> None:
        """The run folder, and for a sandboxed kernel the descriptors of its sockets; ``ip`` as the kernel sees it."""
        folder = RunFolder(self.hidden_modules, ipc=True, sandboxed=self.sandboxed)
        self._folder = folder
        self._finalizers.append(weakref.finalize(self, folder.remove))
        self._finalizers.append(weakref.finalize(self, _remove_cgroup, self._cgroup))
        assert folder.ipc is not None
        self.transport = "ipc"
        self.ip = f"{folder.ipc}/kernel"
        self.connection_file = str(folder.path / "kernel.json")
        if self.sandboxed:
            if self._pins is None:
                self._pins = SocketPins()
                self._finalizers.append(weakref.finalize(self, self._pins.close))
        else:
            check_socket_path(f"{self.ip}-{len(CHANNELS)}")

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        folder = self._folder
        assert folder is not None, "pre_start_kernel makes the run folder"
        read_end, write_end = os.pipe() if self._pins is not None else (None, None)
        try:
            await self._launch(folder, kernel_cmd, write_end, kw)
            if read_end is not None and write_end is not None:
                os.close(write_end)  # bwrap holds the only other copy: its end of the pipe
                write_end = None
                await self._pin_sockets(read_end)
        except BaseException:  # a kernel that did not start leaves nothing behind
            self._abandon_start(folder)
            raise
        finally:
            for fd in (read_end, write_end):
                if fd is not None:
                    os.close(fd)

    async def _launch(self, folder: RunFolder, kernel_cmd: list[str], info_fd: int | None, kw: dict) -> None:
        """Start the sandboxed command through jupyter_client's provisioner; ``bwrap`` inherits ``info_fd``."""
        if info_fd is not None:
            kw["pass_fds"] = (*kw.get("pass_fds", ()), info_fd)
        command, env, cwd = self._sandbox_command(folder, kernel_cmd, kw.pop("cwd", None), kw.pop("env", None),
                                                  info_fd)
        self._exit_reason, self._exit_known, self._killed_by_manager = None, False, False
        self._process, self._sandbox_pid = None, None
        # never the grader's stdout/stderr (a host log file, in a grading worker): a pipe drained here
        output = OutputDrain()
        kw["stdout"] = kw["stderr"] = output.write_fd
        try:
            await super()._async_launch_kernel(command, env=env, cwd=cwd, **kw)
        except BaseException:
            output.close()
            raise
        output.start()
        self._output = output
        assert self.provisioner is not None
        self._process = getattr(self.provisioner, "process", None)

    async def _pin_sockets(self, info_fd: int) -> None:
        """Find the sandbox from ``bwrap``'s ``--info-fd`` and pin the kernel's sockets once it has bound them.

        A kernel that dies first is left for the client to report, as any kernel that dies at start.

        Raises
        ------
        RuntimeError
            If the kernel still runs after ``socket_timeout`` seconds without having bound every socket, or
            ``bwrap`` runs without having said which sandbox it made.
        """
        assert self._pins is not None and self._folder is not None and self._folder.ipc is not None
        self._sandbox_pid = await read_child_pid(info_fd, self.socket_timeout)
        if self._sandbox_pid is None:
            if await self._still_running_after(EXIT_GRACE_SECONDS):
                raise RuntimeError("bwrap runs but did not report the pid of its sandbox (--info-fd)")
            self._log_start_failure()
            return
        base = os.path.basename(self.ip)
        names = {channel: f"{base}-{getattr(self, channel + '_port')}" for channel in CHANNELS}
        folder = sandbox_path(self._sandbox_pid, self._folder.ipc)
        if not await pin_sockets(self._pins, folder, names, self._running, self.socket_timeout):
            self._pins.retire()
            if self._running():
                raise RuntimeError(f"the sandboxed kernel did not open its sockets within {self.socket_timeout:g} s"
                                   f"; its output so far: {self.kernel_output()[-2000:]!r}")
            self._log_start_failure()

    def _log_start_failure(self) -> None:
        """Log what a kernel that ended before binding its sockets wrote (no student code has run yet)."""
        if self._output is not None:
            self._output.wait(EXIT_GRACE_SECONDS)
        self.log.warning("sandboxed kernel %s ended before it opened its sockets (exit status %s); its output: %r",
                         self.kernel_id, self._process.poll() if self._process is not None else None,
                         self.kernel_output()[-4000:])

    def kernel_output(self) -> str:
        """The start of what the last kernel's processes wrote to their stdout and stderr (descriptors 1 and 2),
        at most :data:`~kdcourse.sandbox.output.KEEP_BYTES`; ``""`` before a kernel was started.

        What a kernel prints from Python reaches the notebook instead; this holds what ``bwrap``, the launcher
        and ipykernel say on their way up (and C-level output, which can be the student's: never trust it).
        """
        return self._output.text() if self._output is not None else ""

    def _running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    async def _still_running_after(self, seconds: float) -> bool:
        """Whether the kernel process still runs after up to ``seconds`` (a failing ``bwrap`` exits at once)."""
        deadline = time.monotonic() + seconds
        while self._running() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self._running()

    def _abandon_start(self, folder: RunFolder) -> None:
        """Kill a kernel that did not start properly and remove what was made for it."""
        if self._running():
            assert self._process is not None
            with contextlib.suppress(OSError):
                self._process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=10)
        _remove_cgroup(self._cgroup)
        if self._pins is not None:
            self._pins.retire()
        folder.remove()
        self._folder = None

    def _sandbox_command(self, folder: RunFolder, kernel_cmd: list[str], cwd: str | None,
                         env: dict[str, str] | None, info_fd: int | None) -> tuple[list[str], dict[str, str], str]:
        """Stage ``cwd``, make the pids cgroup; the sandboxed command, its environment and the host cwd."""
        if kernel_cmd[:1] != [sys.executable]:
            raise RuntimeError(f"unexpected kernel command {kernel_cmd[:1]} (expected {sys.executable})")
        limits = self.limits
        folder.stage(cwd, max_bytes=limits.disk_bytes)
        bwrap = None
        if self.sandboxed:
            bwrap = sandbox_status().bwrap
        else:
            self.log.warning("kernel %s runs WITHOUT the sandbox (unsafe_no_sandbox): student code can read and "
                             "write whatever the grader can", self.kernel_id)
        plan = process_limit_plan()
        _remove_cgroup(self._cgroup)
        self._cgroup[0] = cgroup_for(plan, limits.max_processes)
        self._cgroup[1] = memory_cgroup_for(memory_limit_plan(), limits.memory_bytes)
        pids, memory = self._cgroups()
        command, layout = build_command(kernel_cmd[1:], folder=folder, limits=limits, mode="kernel",
                                        bwrap=bwrap, nproc_rlimit=plan.uses_rlimit, cgroup=pids,
                                        memory_cgroup=memory, info_fd=info_fd)
        host_cwd = str(folder.path) if bwrap is not None else layout.work
        return command, clean_environment(env, layout), host_cwd

    # -- stop --------------------------------------------------------------------------------------------------

    async def _async_kill_kernel(self, restart: bool = False) -> None:
        self._record_exit()  # a kernel that died by itself keeps its own reason
        self._killed_by_manager = True
        await super()._async_kill_kernel(restart=restart)

    async def _async_send_kernel_sigterm(self, restart: bool = False) -> None:
        self._record_exit()
        self._killed_by_manager = True
        await super()._async_send_kernel_sigterm(restart=restart)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        self._record_exit()
        _remove_cgroup(self._cgroup)
        if self._pins is not None:  # the descriptors stay reserved for the next kernel (and for clients' URLs)
            self._pins.retire()
        if not restart and self._folder is not None:
            self._folder.remove()
            self._folder = None

    # -- how the grader reaches the kernel -----------------------------------------------------------------------

    def _make_url(self, channel: str) -> str:
        """Sandboxed: the descriptor that holds the socket of ``channel``; else jupyter_client's ``ip``-based URL."""
        if self._pins is not None:
            return self._pins.url(channel)
        return super()._make_url(channel)

    def cleanup_ipc_files(self) -> None:
        """Sandboxed, nothing: the sockets vanish with the sandbox's tmpfs, and ``ip`` means nothing on the host."""
        if self._pins is None:
            super().cleanup_ipc_files()

    def client(self, **kwargs: Any) -> Any:
        """A client (``client_class``) that reaches the kernel as this manager does."""
        return self._reach_like_me(super().client(**kwargs))

    def blocking_client(self) -> Any:
        """A blocking client that reaches the kernel as this manager does."""
        return self._reach_like_me(super().blocking_client())

    def _reach_like_me(self, client: Any) -> Any:
        # jupyter_client's clients build each channel's address with _make_url: theirs would use ``ip``, the
        # kernel's path inside its sandbox
        client._make_url = self._make_url
        return client

    def _cgroups(self) -> tuple[PidsCgroup | None, MemoryCgroup | None]:
        pids, memory = self._cgroup
        assert pids is None or isinstance(pids, PidsCgroup)
        assert memory is None or isinstance(memory, MemoryCgroup)
        return pids, memory

    def _record_exit(self) -> None:
        if self._exit_known or self._process is None or self._process.poll() is None:
            return
        pids, memory = self._cgroups()
        self._exit_reason = explain_exit(
            self._process.returncode, self.limits, sandboxed=self.sandboxed,
            process_limit_hit=pids.limit_hit() if pids is not None else False,
            memory_limit_hit=memory.limit_hit() if memory is not None else False,
            killed_by_manager=self._killed_by_manager,
        )
        self._exit_known = True

    def exit_reason(self) -> str | None:
        """Why the last kernel ended, in words, if it hit a limit or died of a signal; else ``None``.

        ``"used more than 2 GiB of memory"`` (the OOM killer ended the kernel or one of its processes at the
        limit of its memory cgroup, even if the kernel survived), ``"used more than 600 s of CPU time"``
        (SIGXCPU), ``"tried to start more than 1024 processes or threads"`` (the pids cgroup refused a fork,
        even if the kernel survived), ``"was killed (signal N)"``. A signal the manager itself sent while
        shutting the kernel down is not reported. A single allocation past ``RLIMIT_AS`` is a ``MemoryError``
        inside the kernel, which keeps running: see :func:`~kdcourse.sandbox.limit_messages`. ``None`` while
        the kernel runs.
        """
        self._record_exit()
        return self._exit_reason
