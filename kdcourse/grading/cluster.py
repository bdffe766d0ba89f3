"""Grading on a Dask cluster: connect to a scheduler, submit one task per submission, collect the results.

``kdcourse autograde --scheduler tcp://HOST:PORT`` (and ``verify`` and ``demo``) grade through
:class:`ClusterGrader` instead of the local pool (:func:`kdcourse.grading.workers.run_tasks`):

1. :func:`connect` reaches the scheduler, waits for a worker, prints the dashboard link, and asks every
   worker whether it can grade (:func:`kdcourse.grading.remote.worker_report`: the same kdcourse code and
   nbgrader as here, the sandbox, child processes allowed, a local directory no sandbox sees); an unfit
   worker stops the run before anything is graded, with the fix;
2. :meth:`ClusterGrader.run` sends the run's :class:`~kdcourse.grading.bundle.CourseBundle` once (a task
   whose result the grading tasks read) and one task per submission (:func:`kdcourse.grading.remote.grade`)
   carrying its staged files, at most a window of them in flight;
3. as each task finishes, this process -- never a worker -- records it
   (:class:`~kdcourse.grading.returned.ReturnedWriter`) and hands a
   :class:`~kdcourse.grading.workers.TaskResult` to the caller, as the local pool does.

Faults are Dask's to handle: a worker that dies or is killed mid-task loses its tasks to the scheduler,
which runs them on another worker (after ``distributed.scheduler.allowed-failures`` losses, 3 by default,
the task fails with ``KilledWorker``); a task that raises is retried ``RETRIES`` times
(``client.submit(..., retries=RETRIES, pure=False)``). Every submission is one future with one result, and
it is recorded once: a second result for a submission already recorded is ignored. A task that fails on
every try is recorded as ungradable and flagged with the reason, as locally.
"""

from __future__ import annotations

import time
import uuid
from collections import deque

from .course import Course, CourseError, Submission
from .settings import Timeouts
from .staging import STAGING_DIR
from .workers import TaskResult

__all__ = ["RETRIES", "ClusterGrader", "connect"]

#: How many times Dask re-runs a grading task that raised (a worker unfit to grade, a full disk).
RETRIES = 2
CONNECT_TIMEOUT_S = 30
#: How long to wait for a first worker, and how long the run waits with no worker before giving up.
WORKER_TIMEOUT_S = 120
NO_WORKER_TIMEOUT_S = 600
#: How long to wait for a finished task's result to be fetched (its worker may have died meanwhile).
RESULT_TIMEOUT_S = 600
_POLL_S = 5.0


def _require_dask():
    try:
        import distributed
    except ImportError:
        raise CourseError('--scheduler needs Dask: pip install -e ".[cluster]"') from None
    return distributed


def connect(address: str, log=print, unsafe_no_sandbox: bool = False,
            worker_timeout: float = WORKER_TIMEOUT_S) -> ClusterGrader:
    """Connect to the Dask scheduler at ``address`` and check its workers.

    Raises
    ------
    CourseError
        Dask is not installed, the scheduler cannot be reached within 30 s, no worker joins within
        ``worker_timeout`` seconds, or a worker cannot grade (each reason with its fix).
    """
    distributed = _require_dask()
    if not isinstance(address, str) or "://" not in address:
        raise CourseError(f"--scheduler {address!r}: give the scheduler's address, e.g. tcp://HOST:8786")
    try:
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as error:
        raise CourseError(f"cannot reach the Dask scheduler at {address} ({type(error).__name__}: {error}); "
                          "start one with `dask scheduler` (see the README, Grading on a cluster)") from None
    except ValueError as error:
        raise CourseError(f"--scheduler {address!r} is not a scheduler address ({error}); give e.g. "
                          "tcp://HOST:8786") from None
    try:
        try:
            client.wait_for_workers(1, timeout=worker_timeout)
        except TimeoutError:
            raise CourseError(f"no Dask worker joined {address} within {worker_timeout:g} s: start workers with "
                              f"`DASK_DISTRIBUTED__WORKER__DAEMON=False dask worker {address}`") from None
        if not _private_address(address):
            log(f"warning: {address} is a plain TCP address off this machine: whoever can reach the scheduler can "
                "read the answer keys sent to the workers and send results; use a private network, an SSH "
                "tunnel or Dask's TLS (tls://)")
        grader = ClusterGrader(client, log)
        grader.check_workers(unsafe_no_sandbox)
        return grader
    except BaseException:
        client.close()
        raise


def _private_address(address: str) -> bool:
    """True for a TLS address, or a TCP address of this machine (loopback); False for plain TCP elsewhere."""
    import ipaddress

    protocol, _, rest = address.partition("://")
    if protocol != "tcp":  # tls://, or a transport that does not leave the machine
        return True
    host = rest.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost
        return False


def _describe_failure(error: BaseException) -> str:
    """Why a grading task failed on every try, in words (no text of the student's)."""
    from concurrent.futures import CancelledError

    from distributed import KilledWorker

    if isinstance(error, CancelledError):
        return ("the cluster cancelled its task (the scheduler restarted, or this client lost it): it was not "
                "graded; grade it again")
    if isinstance(error, TimeoutError):
        return f"its result could not be fetched from the cluster within {RESULT_TIMEOUT_S} s (no worker held it)"
    if isinstance(error, KilledWorker):
        return ("the cluster lost the worker grading it on every try (KilledWorker: the worker died or was "
                "killed each time; the submission may crash its grader)")
    text = " ".join(str(error).split())[:300]
    return f"grading failed on the cluster on every try ({RETRIES + 1}): {type(error).__name__}: {text}"


class ClusterGrader:
    """A connection to a Dask cluster that grades submissions of a course (see the module docstring)."""

    def __init__(self, client, log=print):
        self.client, self.log = client, log
        self.recorded: set[Submission] = set()
        self.record_seconds = 0.0

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> ClusterGrader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def threads(self) -> int:
        """Threads (task slots) of all workers now connected."""
        workers = self.client.scheduler_info(n_workers=-1)["workers"]
        return sum(int(w.get("nthreads", 1)) for w in workers.values())

    def check_workers(self, unsafe_no_sandbox: bool = False) -> None:
        """Raise CourseError naming each worker that cannot grade and why; log the cluster and its dashboard."""
        import nbgrader

        from . import remote
        from .bundle import code_digest

        try:
            reports = self.client.run(remote.worker_report)
        except Exception as error:  # noqa: BLE001 - e.g. a worker without kdcourse: the fix, not a traceback
            raise CourseError(f"a worker could not run kdcourse's check ({type(error).__name__}: "
                              f"{' '.join(str(error).split())[:300]}): install the same revision of the repository "
                              "on every worker (pip install -e \".[cluster]\")") from None
        problems = []
        for address, report in sorted(reports.items()):
            for problem in remote.worker_problems(report, code_digest(), nbgrader.__version__, unsafe_no_sandbox):
                problems.append(f"worker {address} ({report.get('host')}): {problem}")
        if problems:
            raise CourseError("the cluster cannot grade:\n  " + "\n  ".join(problems))
        # a worker that joins later is checked as it joins, and leaves if it cannot grade
        self.client.register_plugin(remote.RefuseUnfitWorkers(code_digest(), nbgrader.__version__, unsafe_no_sandbox))
        info = self.client.scheduler_info(n_workers=-1)
        if "dashboard" in info.get("services", {}) and self._scheduler_has_bokeh():
            dashboard = self.client.dashboard_link
        else:
            dashboard = ('none (the scheduler was started without one, or without bokeh: '
                         'pip install -e ".[cluster]" where it runs)')
        self.log(f"Dask cluster {info.get('address', '')}: {len(reports)} worker(s), {self.threads()} "
                 f"thread(s); dashboard: {dashboard}")
        saturation = self._scheduler_saturation()
        if saturation is not None and saturation != 1.0:
            self.log(f"note: the scheduler hands each worker thread {saturation} task(s) at a time; grading tasks "
                     "are long, so a task can wait behind a slow one while another worker idles: start the "
                     "scheduler with DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION=1.0")

    def _scheduler_has_bokeh(self) -> bool:
        """Whether the scheduler's Python has bokeh, without which its dashboard port serves no dashboard."""
        try:
            return bool(self.client.run_on_scheduler(
                lambda: __import__("importlib.util").util.find_spec("bokeh") is not None))
        except Exception:  # noqa: BLE001 - only the printed link depends on it
            return False

    def _scheduler_saturation(self) -> float | None:
        """The scheduler's ``distributed.scheduler.worker-saturation`` (None if it cannot be read)."""
        try:
            value = self.client.run_on_scheduler(
                lambda: __import__("dask").config.get("distributed.scheduler.worker-saturation"))
            return float(value)
        except Exception:  # noqa: BLE001 - only a note depends on it
            return None

    def run(self, course: Course, tasks: list[Submission], timeouts: Timeouts, on_result=None,
            unsafe_no_sandbox: bool = False) -> list[TaskResult]:
        """Grade the staged ``tasks`` of ``course`` on the cluster; ``on_result(TaskResult)`` as each is recorded.

        The submissions must be staged (``staged/<student>/<assignment>``) and their assignments released.
        """
        from concurrent.futures import CancelledError

        from distributed import wait

        from . import remote
        from .adapter.api import open_gradebook
        from .bundle import course_bundle, grading_job
        from .returned import ReturnedWriter

        self.recorded, self.record_seconds = set(), 0.0
        assignments = sorted({s.assignment for s in tasks})
        with open_gradebook(course) as gb:
            bundle = course_bundle(course, gb, assignments)
        writer = ReturnedWriter(course)
        run = uuid.uuid4().hex[:12]
        bundle_future = self.client.submit(remote.bundle_value, bundle, key=f"kdcourse-bundle-{run}", pure=False,
                                           retries=RETRIES)
        queue = deque(tasks)
        running: dict = {}
        results: list[TaskResult] = []
        no_worker_since = None
        window = max(64, 4 * self.threads())
        try:
            while queue or running:
                while queue and len(running) < window:
                    submission = queue.popleft()
                    job = grading_job(course.folder(STAGING_DIR, submission), submission,
                                      bundle.notebooks(submission.assignment), timeouts, unsafe_no_sandbox)
                    future = self.client.submit(remote.grade, bundle_future, job, retries=RETRIES, pure=False,
                                                key=f"kdcourse-grade-{run}-{submission.assignment}-{submission.student}")
                    running[future] = submission
                try:
                    with self.client.as_current():
                        done, _ = wait(list(running), timeout=_POLL_S, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    done = set()
                except CancelledError:  # a task was cancelled (scheduler restart, lost client): record it, go on
                    done = {future for future in running if future.status in ("finished", "error", "cancelled")}
                if not done:
                    if self.client.scheduler_info(n_workers=-1)["workers"]:
                        no_worker_since = None
                    elif no_worker_since is None:
                        no_worker_since = time.monotonic()
                    elif time.monotonic() - no_worker_since > NO_WORKER_TIMEOUT_S:
                        reason = f"no Dask worker was connected for {NO_WORKER_TIMEOUT_S} s"
                        for future, submission in list(running.items()) + [(None, s) for s in queue]:
                            results.append(self._finish(writer, course, submission,
                                                        bundle.graded_cells(submission.assignment), None, reason,
                                                        on_result))
                            if future is not None:
                                future.cancel()
                        running.clear()
                        queue.clear()
                    continue
                for future in done:
                    submission = running.pop(future)
                    results.append(self._finish(writer, course, submission,
                                                bundle.graded_cells(submission.assignment), future, "", on_result))
                    future.release()
        finally:
            for future in running:
                future.cancel()
            bundle_future.release()
        return [r for r in results if r is not None]

    def summary(self) -> str:
        """One line on the last run: results recorded here, and the time this machine spent recording them."""
        n = len(self.recorded)
        return (f"cluster: {n} result(s) recorded in the gradebook here in {self.record_seconds:.1f} s "
                f"({self.record_seconds / max(1, n):.3f} s each)")

    def _finish(self, writer, course: Course, submission: Submission, graded: dict[str, set[str]], future,
                failure: str, on_result) -> TaskResult | None:
        """Record one task's outcome once; None when ``submission`` was already recorded.

        ``graded``: the assignment's ``notebook file name -> graded cell ids`` (what a worker may return).
        """
        if submission in self.recorded:
            self.log(f"note {submission}: a second result from the cluster was ignored (already recorded)")
            return None
        start = time.perf_counter()
        result = None
        returned = None
        if future is not None:
            try:
                returned = future.result(timeout=RESULT_TIMEOUT_S)
            except Exception as error:  # noqa: BLE001 - the task failed on every try: the reason, not a crash
                failure = _describe_failure(error)
        if returned is not None:
            result = returned.result
            if result.submission != submission:
                failure = f"the cluster worker returned the result of {result.submission} for {submission}"
                result = None
            elif result.success:
                problem = writer.write(submission, returned.notebooks, graded)
                if problem:
                    result = TaskResult(submission, False, problem, result.seconds, result.reasons, result.notes,
                                        failure=problem)
        if result is None:
            result = TaskResult(submission, False, failure, 0.0, failure=failure)
        if not result.success:
            from .adapter.api import open_gradebook

            try:
                with open_gradebook(course) as gb:
                    writer.write_unreturned(gb, submission)
            except Exception as error:  # noqa: BLE001 - the flag is still written by the caller's recorder
                self.log(f"ERROR {submission}: could not record its submission time ({type(error).__name__})")
        self.recorded.add(submission)
        self.record_seconds += time.perf_counter() - start
        if on_result is not None:
            on_result(result)
        return result

