"""A small pool of grading processes, each with one nbgrader API, and a watchdog.

Each worker imports nbgrader once and then autogrades one submission at a time, so the per-command
start-up cost of the ``nbgrader`` CLI is paid once per worker. The watchdog lives in the parent process,
which no kernel can see or signal (every kernel runs in its own PID namespace). A task that runs past
its wall-clock limit gets its worker and that worker's sandboxed kernel killed (the whole process tree
is collected); a replacement worker is started and the pool carries on. A grading process whose parent
dies is killed by the kernel (Linux), and its sandboxed kernel with it.

:func:`run_tasks` runs the pool on this machine; :class:`GradingProcess` is one such worker kept for many
submissions, graded one at a time under the same watchdog (what a Dask worker of
:mod:`kdcourse.grading.remote` uses).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import wait

from kdcourse.execution import kernel_environment

from .course import Course, Submission
from .settings import Timeouts

__all__ = ["TaskResult", "GradingProcess", "run_tasks"]

LOG_TAIL = 20_000


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (``PR_SET_PDEATHSIG``); elsewhere do nothing."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - no prctl in this libc
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _worker_main(conn, course: Course, timeouts: Timeouts, submitted_directory: str, unsafe_no_sandbox: bool) -> None:
    _die_with_parent()
    os.environ.update(kernel_environment())
    # kernels inherit the worker's stdout/stderr: send their chatter to a log file, not the terminal
    log_dir = course.root / submitted_directory
    log_dir.mkdir(parents=True, exist_ok=True)
    log_fd = os.open(log_dir / f"worker-{os.getpid()}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    from .adapter import findings
    from .adapter.api import make_api

    api = make_api(course, timeouts, submitted_directory=submitted_directory, unsafe_no_sandbox=unsafe_no_sandbox)
    while True:
        try:
            submission = conn.recv()
        except EOFError:
            return
        if submission is None:
            return
        try:
            result = api.autograde(submission.assignment, submission.student, force=True, create=True)
        except BaseException:  # noqa: BLE001 - nbgrader normally returns; never let the worker die silently
            result = {"success": False, "error": traceback.format_exc(), "log": ""}
        found = findings.take(submission)
        text = "\n".join(x for x in (result.get("error"), result.get("log")) if x)
        conn.send((submission, bool(result.get("success")), text[-LOG_TAIL:], found.reasons, found.notes))


def _kill_tree(pid: int) -> None:
    import psutil

    try:
        parent = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    family = parent.children(recursive=True) + [parent]
    for proc in family:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=10)


@dataclass
class TaskResult:
    """How grading one submission went, as the worker reported it (or as the watchdog saw it)."""

    submission: Submission
    success: bool
    log: str
    seconds: float
    reasons: list[str] = field(default_factory=list)  # findings that flag it (limits hit, tampering, ...)
    notes: list[str] = field(default_factory=list)
    failure: str = ""  # why the watchdog ended it (the log is then not read for a reason)


class _Worker:
    def __init__(self, ctx, course, timeouts, submitted_directory, unsafe_no_sandbox):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main,
                                   args=(child, course, timeouts, submitted_directory, unsafe_no_sandbox),
                                   daemon=True)
        self.process.start()
        child.close()
        self.task = None
        self.started = 0.0
        self.killed = False

    def give(self, task):
        self.task = task
        self.started = time.monotonic()
        self.conn.send(task)

    def stop(self):
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.process.join(timeout=10)
        if self.process.is_alive():
            _kill_tree(self.process.pid)
        self.conn.close()

    def kill(self):
        self.killed = True
        _kill_tree(self.process.pid)
        self.process.join(timeout=10)
        self.conn.close()

    def poll(self, ready, limit: float) -> TaskResult | None:
        """The result of the task given, once it finished, its process died or it ran past ``limit`` seconds
        (then the process and its kernel are killed, and ``killed`` is set); None while it runs.

        ``ready``: what :func:`multiprocessing.connection.wait` returned (this worker's connection and
        sentinel, when they are ready).
        """
        elapsed = time.monotonic() - self.started
        if self.conn in ready:
            try:
                submission, success, log, reasons, notes = self.conn.recv()
                return TaskResult(submission, success, log, elapsed, reasons, notes)
            except (EOFError, OSError):
                pass
        if self.process.sentinel in ready or not self.process.is_alive():
            failure = f"the grading process died unexpectedly (exit code {self.process.exitcode})"
        elif elapsed > limit:
            failure = f"grading took longer than {limit} s; the kernel was killed"
        else:
            return None
        task = self.task
        self.kill()
        return TaskResult(task, False, failure, elapsed, failure=failure)


def _context(start_method: str | None = None):
    """``start_method``'s multiprocessing context; by default fork (Linux) or spawn (elsewhere)."""
    if start_method is None:
        methods = mp.get_all_start_methods()
        start_method = "fork" if "fork" in methods and sys.platform != "darwin" else "spawn"
    ctx = mp.get_context(start_method)
    if start_method == "forkserver":  # the server imports nbgrader once; every grading process is forked warm
        ctx.set_forkserver_preload(["kdcourse.grading.workers", "kdcourse.grading.adapter.api", "nbgrader.apps"])
    return ctx


class GradingProcess:
    """One grading process with one nbgrader API, kept to grade many submissions one at a time.

    Each :meth:`grade` runs under the watchdog of :func:`run_tasks`: past ``timeouts.submission`` seconds,
    or when the process dies, the process and its kernel are killed, the result says why
    (``success=False``), and the next call starts a new process.

    Parameters
    ----------
    course : Course
        The course the process grades in (its root holds ``submitted_directory``).
    timeouts : Timeouts
    submitted_directory : str
        The folder of the root that nbgrader reads submissions from.
    unsafe_no_sandbox : bool
    start_method : str, optional
        The multiprocessing start method: ``"forkserver"`` where the caller runs threads (a Dask worker).
    """

    def __init__(self, course: Course, timeouts: Timeouts, submitted_directory: str,
                 unsafe_no_sandbox: bool = False, start_method: str | None = None):
        self.timeouts = timeouts
        self._args = (course, timeouts, submitted_directory, unsafe_no_sandbox)
        self._ctx = _context(start_method)
        self._worker: _Worker | None = None

    def grade(self, submission: Submission) -> TaskResult:
        """Autograde ``submission`` (its files already in the submitted directory) and say how it went."""
        if self._worker is not None and not self._worker.process.is_alive():
            self._worker.kill()  # died while idle
            self._worker = None
        if self._worker is None:
            self._worker = _Worker(self._ctx, *self._args)
        worker = self._worker
        worker.give(submission)
        outcome = None
        while outcome is None:
            ready = wait([worker.conn, worker.process.sentinel], timeout=1.0)
            outcome = worker.poll(ready, self.timeouts.submission)
        worker.task = None
        if worker.killed:
            self._worker = None
        return outcome

    def close(self) -> None:
        """Stop the process (killed if it does not stop within 10 s)."""
        if self._worker is not None:
            self._worker.stop()
            self._worker = None


def run_tasks(course: Course, tasks: list[Submission], jobs: int, timeouts: Timeouts,
              submitted_directory: str, on_result=None, unsafe_no_sandbox: bool = False) -> list[TaskResult]:
    """Autograde ``tasks`` (submissions) with ``jobs`` worker processes.

    ``on_result(TaskResult)`` is called in this process as each task finishes. A task over
    ``timeouts.submission`` seconds, or whose worker dies, finishes with ``success=False`` and a log
    saying why.
    """
    ctx = _context()
    pending = list(tasks)
    results: list[TaskResult] = []
    def new_worker():
        return _Worker(ctx, course, timeouts, submitted_directory, unsafe_no_sandbox)

    workers = [new_worker() for _ in range(max(1, min(jobs, len(tasks))))]

    def finish(result: TaskResult):
        results.append(result)
        if on_result is not None:
            on_result(result)

    try:
        for worker in workers:
            if pending:
                worker.give(pending.pop(0))
        while any(w.task is not None for w in workers):
            busy = [w for w in workers if w.task is not None]
            ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=1.0)
            for i, worker in enumerate(workers):
                if worker.task is None:
                    continue
                outcome = worker.poll(ready, timeouts.submission)
                if outcome is None:
                    continue
                worker.task = None
                if worker.killed:
                    workers[i] = worker = new_worker()
                finish(outcome)
                if pending:
                    worker.give(pending.pop(0))
    finally:
        for worker in workers:
            if worker.task is not None:
                worker.kill()
            else:
                worker.stop()
    return results
