"""Run a plain command in the same sandbox as a kernel (for tests and ``kdcourse doctor``)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping, Sequence

from .bwrap import build_command
from .environment import clean_environment
from .folder import RunFolder
from .limits import Limits, explain_exit
from .memory import memory_cgroup_for, memory_limit_plan
from .processes import cgroup_for, process_limit_plan
from .view import DEFAULT_HIDDEN_MODULES


class SandboxResult(subprocess.CompletedProcess):
    """A :class:`subprocess.CompletedProcess` with what the sandbox saw.

    Attributes
    ----------
    exit_reason : str or None
        Why the command ended, in words, when it hit a limit or died of a signal (see
        :func:`~kdcourse.sandbox.limits.explain_exit`).
    process_limit_hit : bool
        Whether the pids cgroup refused a fork or thread (``pids.events``); ``False`` without a cgroup.
    memory_limit_hit : bool
        Whether the OOM killer ended a process of the memory cgroup at its limit; ``False`` without a cgroup.
    sandboxed : bool
        ``False`` when run with ``unsafe_no_sandbox``.
    """

    def __init__(self, args, returncode, stdout, stderr, *, exit_reason: str | None, process_limit_hit: bool,
                 sandboxed: bool, memory_limit_hit: bool = False) -> None:
        super().__init__(args, returncode, stdout, stderr)
        self.exit_reason = exit_reason
        self.process_limit_hit = process_limit_hit
        self.memory_limit_hit = memory_limit_hit
        self.sandboxed = sandboxed


def run_in_folder(argv: Sequence[str], *, bwrap: str | None, limits: Limits, hidden_modules: Iterable[str],
                  cwd_files: Mapping[str, bytes] | None, env: Mapping[str, str] | None,
                  timeout: float | None, input: bytes | None = None) -> SandboxResult:
    """:func:`run_sandboxed` with the ``bwrap`` to use given (``None``: unsandboxed); no availability check."""
    plan = process_limit_plan()
    folder = RunFolder(hidden_modules)
    cgroup = memory = None
    try:
        folder.stage(files=cwd_files, max_bytes=limits.disk_bytes)
        cgroup = cgroup_for(plan, limits.max_processes)
        memory = memory_cgroup_for(memory_limit_plan(), limits.memory_bytes)
        command, layout = build_command(list(argv), folder=folder, limits=limits, mode="exec", bwrap=bwrap,
                                        nproc_rlimit=plan.uses_rlimit, cgroup=cgroup, memory_cgroup=memory)
        # stdout and stderr are always pipes of this process (captured): the command gets no host file
        completed = subprocess.run(
            command, env=clean_environment(env, layout), cwd=str(folder.path) if bwrap else layout.work,
            input=input, stdin=None if input is not None else subprocess.DEVNULL, capture_output=True,
            timeout=timeout, start_new_session=True, check=False,
        )
        hit = cgroup.limit_hit() if cgroup is not None else False
        memory_hit = memory.limit_hit() if memory is not None else False
        reason = explain_exit(completed.returncode, limits, sandboxed=bwrap is not None, process_limit_hit=hit,
                              memory_limit_hit=memory_hit)
        return SandboxResult(completed.args, completed.returncode, completed.stdout, completed.stderr,
                             exit_reason=reason, process_limit_hit=hit, memory_limit_hit=memory_hit,
                             sandboxed=bwrap is not None)
    finally:
        for group in (cgroup, memory):
            if group is not None:
                group.remove()
        folder.remove()


def run_sandboxed(
    argv: list[str],
    *,
    limits: Limits = Limits(),
    hidden_modules: Iterable[str] = DEFAULT_HIDDEN_MODULES,
    cwd_files: dict[str, bytes] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = 60,
    input: bytes | None = None,
    unsafe_no_sandbox: bool = False,
) -> SandboxResult:
    """Run ``argv`` in the sandbox that kernels get, and wait for it.

    Parameters
    ----------
    argv : list of str
        The command, looked up on the sandbox's ``PATH`` (the venv's ``bin``, then the system's). Use
        ``sys.executable`` for this interpreter.
    limits : Limits
        Resource limits.
    hidden_modules : iterable of str
        Dotted module names the command cannot import (default ``kdcourse.grading``, ``kdcourse.judge``).
    cwd_files : dict of str to bytes, optional
        Files put in the command's private working folder (name -> content).
    env : mapping, optional
        Environment to start from (default ``os.environ``); cleaned as for a kernel.
    timeout : float or None
        Seconds of wall-clock time, after which the sandbox is killed and ``subprocess.TimeoutExpired``
        raised.
    input : bytes, optional
        Data for the command's standard input.
    unsafe_no_sandbox : bool
        Run the same launcher and environment clean-up without the sandbox (only rlimits apply).

    Returns
    -------
    SandboxResult
        ``returncode`` is ``bwrap``'s: ``128 + N`` when the command died of signal ``N``; ``exit_reason`` says
        it in words. ``stdout`` and ``stderr`` are bytes.

    Raises
    ------
    SandboxUnavailable
        If the sandbox cannot run here (the message names the fix).
    """
    from .status import SandboxUnavailable, sandbox_status

    bwrap = None
    if not unsafe_no_sandbox:
        status = sandbox_status()
        if not status.available:
            raise SandboxUnavailable(status.reason)
        bwrap = status.bwrap
    return run_in_folder(argv, bwrap=bwrap, limits=limits, hidden_modules=hidden_modules, cwd_files=cwd_files,
                         env=env, timeout=timeout, input=input)
