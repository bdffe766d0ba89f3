"""A small pool of grading processes, each with one nbgrader API, and a watchdog.

Each worker imports nbgrader once and then autogrades one (assignment, student) at a time, so the
per-command start-up cost of the ``nbgrader`` CLI is paid once per worker. A task that runs past its
wall-clock limit gets its worker and that worker's kernel killed (the kernel runs in its own session, so
the whole process tree is collected); a replacement worker is started and the pool carries on.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path

from .config import Timeouts
from .course import Course

LOG_TAIL = 20_000


def kernel_environment() -> dict[str, str]:
    """Environment for grading kernels: one thread per math library, no progress bars, CPU, Agg."""
    import kdcourse

    package_parent = str(Path(kdcourse.__file__).resolve().parent.parent)
    pythonpath = [package_parent] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = {
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
        "NUMEXPR_NUM_THREADS": "1", "TORCH_NUM_THREADS": "1",
        "KDCOURSE_PROGRESS": "0", "TQDM_DISABLE": "1", "MPLBACKEND": "Agg",
        "PYTHONHASHSEED": "0", "PYTHONPATH": os.pathsep.join(dict.fromkeys(pythonpath)),
        "KDCOURSE_DEVICE": os.environ.get("KDCOURSE_DEVICE", "cpu"),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    return env


def quiet_sqlalchemy() -> None:
    """nbgrader 0.9.6 triggers harmless SAWarnings with SQLAlchemy 2.x; keep them off the terminal."""
    import warnings

    warnings.filterwarnings("ignore", message=r".*not in session.*")
    warnings.filterwarnings("ignore", module=r"nbgrader\.api")


def _worker_main(conn, course: Course, timeouts: Timeouts, submitted_directory: str) -> None:
    os.environ.update(kernel_environment())
    quiet_sqlalchemy()
    # kernels inherit the worker's stdout/stderr: send their chatter to a log file, not the terminal
    log_dir = course.root / submitted_directory
    log_dir.mkdir(parents=True, exist_ok=True)
    log_fd = os.open(log_dir / f"worker-{os.getpid()}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    from .nbapi import make_api

    api = make_api(course, timeouts, submitted_directory=submitted_directory)
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        assignment, student = task
        try:
            result = api.autograde(assignment, student, force=True, create=True)
        except BaseException:  # nbgrader normally returns; never let the worker die silently
            result = {"success": False, "error": traceback.format_exc(), "log": ""}
        text = "\n".join(x for x in (result.get("error"), result.get("log")) if x)
        conn.send((assignment, student, bool(result.get("success")), text[-LOG_TAIL:]))


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
    assignment: str
    student: str
    success: bool
    log: str
    seconds: float


class _Worker:
    def __init__(self, ctx, course, timeouts, submitted_directory):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, course, timeouts, submitted_directory),
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


def run_tasks(course: Course, tasks: list[tuple[str, str]], jobs: int, timeouts: Timeouts,
              submitted_directory: str, on_result=None) -> list[TaskResult]:
    """Autograde ``tasks`` ((assignment, student) pairs) with ``jobs`` worker processes.

    ``on_result(TaskResult)`` is called in this process as each task finishes. A task over
    ``timeouts.submission`` seconds, or whose worker dies, finishes with ``success=False`` and a log
    saying why.
    """
    ctx = _context()
    pending = list(tasks)
    results: list[TaskResult] = []
    workers = [_Worker(ctx, course, timeouts, submitted_directory) for _ in range(max(1, min(jobs, len(tasks))))]

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
                        assignment, student, success, log = worker.conn.recv()
                        outcome = TaskResult(assignment, student, success, log, elapsed)
                    except (EOFError, OSError):
                        outcome = None
                if outcome is None and (worker.process.sentinel in ready or not worker.process.is_alive()):
                    outcome = TaskResult(*worker.task, False,
                                         "the grading process died unexpectedly (exit code "
                                         f"{worker.process.exitcode})", elapsed)
                    worker.kill()
                    workers[i] = worker = _Worker(ctx, course, timeouts, submitted_directory)
                elif outcome is None and elapsed > timeouts.submission:
                    outcome = TaskResult(*worker.task, False,
                                         f"SubmissionTimeout: grading took longer than {timeouts.submission} s;"
                                         " the kernel was killed", elapsed)
                    worker.kill()
                    workers[i] = worker = _Worker(ctx, course, timeouts, submitted_directory)
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
