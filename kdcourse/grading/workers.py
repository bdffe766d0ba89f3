"""A small pool of grading processes, each with one nbgrader API, and a watchdog.

Each worker imports nbgrader once and then autogrades one submission at a time, so the per-command
start-up cost of the ``nbgrader`` CLI is paid once per worker. The watchdog lives in the parent process,
which no kernel can see or signal (every kernel runs in its own PID namespace). A task that runs past
its wall-clock limit gets its worker and that worker's sandboxed kernel killed (the whole process tree
is collected); a replacement worker is started and the pool carries on.
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

__all__ = ["TaskResult", "run_tasks"]

LOG_TAIL = 20_000


def _worker_main(conn, course: Course, timeouts: Timeouts, submitted_directory: str, unsafe_no_sandbox: bool) -> None:
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
        _kill_tree(self.process.pid)
        self.process.join(timeout=10)
        self.conn.close()


def _context():
    methods = mp.get_all_start_methods()
    return mp.get_context("fork" if "fork" in methods and sys.platform != "darwin" else "spawn")


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
                elapsed = time.monotonic() - worker.started
                outcome = None
                if worker.conn in ready:
                    try:
                        submission, success, log, reasons, notes = worker.conn.recv()
                        outcome = TaskResult(submission, success, log, elapsed, reasons, notes)
                    except (EOFError, OSError):
                        outcome = None
                if outcome is None and (worker.process.sentinel in ready or not worker.process.is_alive()):
                    failure = f"the grading process died unexpectedly (exit code {worker.process.exitcode})"
                    outcome = TaskResult(worker.task, False, failure, elapsed, failure=failure)
                    worker.kill()
                    workers[i] = worker = new_worker()
                elif outcome is None and elapsed > timeouts.submission:
                    failure = f"grading took longer than {timeouts.submission} s; the kernel was killed"
                    outcome = TaskResult(worker.task, False, failure, elapsed, failure=failure)
                    worker.kill()
                    workers[i] = worker = new_worker()
                if outcome is not None:
                    worker.task = None
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
