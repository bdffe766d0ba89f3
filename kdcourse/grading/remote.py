"""What a grading task does on a Dask worker (:func:`grade`), and how a worker says it is fit to grade.

The worker grades exactly as a local run does -- the same staging has been applied, the same
:class:`~kdcourse.grading.workers.GradingProcess` (one nbgrader API per process, the submission watchdog),
every kernel in the bubblewrap sandbox with the assignment's limits, every verdict from the trusted judge
-- but in a private copy of the course (:func:`kdcourse.grading.bundle.unpack_bundle`) inside the Dask
worker's local directory, with a private, throw-away gradebook. A student's kernel sees none of it:
only its own throw-away working copy, no network (it cannot reach the scheduler), no other process.

Per Dask worker process and thread, one grading process is kept warm between tasks of the same bundle
(nbgrader's start-up cost is paid once, as in the local pool); it is forked from a forkserver, since a
Dask worker runs threads. A Dask worker must therefore be allowed child processes: start it with
``DASK_DISTRIBUTED__WORKER__DAEMON=False`` (or ``--no-nanny``). :func:`worker_report` says what a worker
lacks; a task on a worker unfit to grade raises :class:`WorkerUnfit`, which Dask retries.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import shutil
import tempfile
import threading
from pathlib import Path

from distributed.diagnostics.plugin import WorkerPlugin

from .bundle import CourseBundle, GradedResult, GradingJob, check_file_name, code_digest, unpack_bundle
from .course import Course
from .staging import STAGING_DIR

__all__ = ["WorkerUnfit", "RefuseUnfitWorkers", "grade", "bundle_value", "worker_report", "worker_problems"]

_LOCK = threading.Lock()
_COURSES: dict[str, Course] = {}  # bundle digest -> this process's private copy of the course
_GRADERS: dict[int, tuple[tuple, object]] = {}  # thread id -> (key, GradingProcess)
_CACHE: dict[str, object] = {}


class WorkerUnfit(RuntimeError):
    """This worker cannot grade (sandbox missing, other kdcourse code, no child processes allowed)."""


def worker_report(folder: Path | None = None) -> dict:
    """What this process offers for grading: code digest, nbgrader version, sandbox, child processes, and
    whether a sandbox could see its local directory ``folder`` (default: the Dask worker's)."""
    import multiprocessing
    import platform

    import nbgrader

    if "sandbox" not in _CACHE:
        from kdcourse.sandbox import sandbox_status

        status = sandbox_status()
        _CACHE["sandbox"] = (bool(status.available), str(status.reason or ""))
    available, reason = _CACHE["sandbox"]
    return {"host": platform.node(), "code_digest": code_digest(), "nbgrader": nbgrader.__version__,
            "sandbox": available, "sandbox_reason": reason,
            "daemonic": bool(multiprocessing.current_process().daemon),
            "folder": str(folder or _base_folder()), "folder_seen_by": _seen_by(folder or _base_folder())}


def _seen_by(folder: Path) -> str:
    """The read-only tree of every sandbox that holds ``folder`` ("" when a kernel cannot see it)."""
    import os

    from kdcourse.sandbox.view import is_within, readonly_trees

    real = os.path.realpath(folder)
    return next((tree for tree in readonly_trees() if is_within(real, tree)), "")


def worker_problems(report: dict, expected_digest: str, expected_nbgrader: str, unsafe_no_sandbox: bool) -> list[str]:
    """Why a worker with ``report`` (:func:`worker_report`) cannot grade, each with its fix (empty: it can)."""
    problems = []
    if report.get("code_digest") != expected_digest:
        problems.append("it runs other kdcourse code or other library versions than the instructor's (digest "
                        f"{str(report.get('code_digest'))[:12]} vs {expected_digest[:12]}): install the same "
                        "revision of the repository there, with the same Python, numpy, scipy and torch "
                        "(pip install -e \".[cluster]\")")
    if report.get("nbgrader") != expected_nbgrader:
        problems.append(f"it runs nbgrader {report.get('nbgrader')}, the instructor {expected_nbgrader}")
    if not unsafe_no_sandbox and not report.get("sandbox"):
        problems.append(f"the grading sandbox cannot start there ({report.get('sandbox_reason')}): "
                        "install bubblewrap on that machine")
    if report.get("folder_seen_by"):
        problems.append(f"its local directory {report.get('folder')} lies in {report.get('folder_seen_by')}, "
                        "which every sandbox sees: start it with --local-directory elsewhere (e.g. /tmp/dask)")
    if report.get("daemonic"):
        problems.append("it may not start grading processes (a daemonic Dask worker): start it with "
                        "DASK_DISTRIBUTED__WORKER__DAEMON=False dask worker ... (or with --no-nanny)")
    return problems


class RefuseUnfitWorkers(WorkerPlugin):
    """A worker plugin the instructor's client registers: a worker that joins the cluster unfit to grade
    (:func:`worker_problems`; e.g. restarted later with other code, or on a machine without bubblewrap)
    logs why and closes itself, with its nanny, instead of failing task after task. Workers already
    connected were checked before the run started."""

    name = "kdcourse-refuse-unfit-workers"

    def __init__(self, code_digest: str, nbgrader_version: str, unsafe_no_sandbox: bool):
        self.code_digest, self.nbgrader_version = code_digest, nbgrader_version
        self.unsafe_no_sandbox = unsafe_no_sandbox

    async def setup(self, worker) -> None:
        report = worker_report(Path(worker.local_directory))
        problems = worker_problems(report, self.code_digest, self.nbgrader_version, self.unsafe_no_sandbox)
        if problems:
            logging.getLogger("kdcourse").error("this Dask worker cannot grade, so it closes: %s", "; ".join(problems))
            asyncio.get_running_loop().call_soon(
                lambda: asyncio.ensure_future(worker.close(nanny=True, reason="kdcourse: unfit to grade")))


def bundle_value(bundle: CourseBundle) -> CourseBundle:
    """The bundle itself: a task whose result every grading task of the run reads (recomputed if lost)."""
    return bundle


def _base_folder() -> Path:
    try:
        from distributed import get_worker

        return Path(get_worker().local_directory)
    except (ImportError, ValueError):  # not in a Dask worker (a direct call)
        return Path(tempfile.gettempdir())


def _private_course(bundle: CourseBundle) -> Course:
    digest = bundle.digest
    with _LOCK:
        course = _COURSES.get(digest)
        if course is None:
            folder = Path(tempfile.mkdtemp(prefix=f"kdcourse-{digest[:12]}-", dir=_base_folder()))
            course = _COURSES[digest] = unpack_bundle(bundle, folder)
        return course


def _grading_process(course: Course, digest: str, job: GradingJob):
    from .workers import GradingProcess

    key = (digest, job.timeouts, job.unsafe_no_sandbox)
    thread = threading.get_ident()
    with _LOCK:
        kept = _GRADERS.get(thread)
    if kept is not None and kept[0] == key:
        return kept[1]
    if kept is not None:
        kept[1].close()
    process = GradingProcess(course, job.timeouts, STAGING_DIR, unsafe_no_sandbox=job.unsafe_no_sandbox,
                             start_method="forkserver")
    with _LOCK:
        _GRADERS[thread] = (key, process)
    return process


@atexit.register
def _close_all() -> None:
    with _LOCK:
        kept = list(_GRADERS.values())
        _GRADERS.clear()
    for _, process in kept:
        process.close()


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return ""


def grade(bundle: CourseBundle, job: GradingJob) -> GradedResult:
    """Grade one submission on this worker; return how it went and its autograded notebooks.

    Raises
    ------
    WorkerUnfit
        This worker cannot grade (see :func:`worker_problems`); Dask retries the task.
    ValueError
        The job names a file that is not a plain file name, or an assignment not in the bundle.
    """
    problems = worker_problems(worker_report(), bundle.code_digest, bundle.nbgrader, job.unsafe_no_sandbox)
    if problems:
        raise WorkerUnfit("this worker cannot grade: " + "; ".join(problems))
    submission = job.submission
    if submission.assignment not in bundle.assignments:
        raise ValueError(f"{submission.assignment} is not in the course bundle of this run")
    course = _private_course(bundle)
    staged = course.folder(STAGING_DIR, submission)
    autograded = course.folder("autograded", submission)
    for folder in (staged, autograded):
        shutil.rmtree(folder, ignore_errors=True)
    staged.mkdir(parents=True)
    for name, data in job.files.items():
        (staged / check_file_name(name)).write_bytes(data)
    try:
        result = _grading_process(course, bundle.digest, job).grade(submission)
        notebooks = {}
        if result.success:
            for name in bundle.notebooks(submission.assignment):
                path = autograded / name
                if path.is_file():
                    notebooks[name] = path.read_bytes()
    finally:
        for folder in (staged, autograded):
            shutil.rmtree(folder, ignore_errors=True)
    return GradedResult(result, notebooks, _worker_address())
