"""Grading a class larger than one machine, end to end: a real Dask scheduler and two workers on 127.0.0.1
(``kdcourse autograde --scheduler``, one worker killed mid-run) and a real PostgreSQL gradebook written by two
graders at once must give exactly the export of a local run into SQLite.

The class (>= 30 submissions of the fast fixture assignment): the solution, the blank release, every
declared misconception, every bad and hostile submission of :mod:`kdcourse.grading.simulation.badsubmissions`,
more copies of the reference ones, and one that tries to reach the scheduler and the instructor's files
from its kernel.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from kdcourse.grading.autograde import autograde
from kdcourse.grading.course import Course, Submission
from kdcourse.grading.export import export_rows
from kdcourse.grading.feedback import feedback
from kdcourse.grading.release import release
from kdcourse.grading.settings import Timeouts
from kdcourse.grading.simulation.classroom import SimulatedStudent, build_class, check_class
from kdcourse.notebooks import nbgrader_meta, notebook_bytes, read_notebook

from fixtures.dask_cluster import dask_cluster, worker_processing
from fixtures.grading_helpers import AID, fixture_course
from fixtures.ports import free_port
from fixtures.postgres import postgres_server

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(900)]

#: What the command line makes of ``--cell-timeout 8 --submission-timeout 150``.
CLI_TIMEOUTS = Timeouts(cell=8, iopub=60, startup=120, submission=150)
CLI_LIMITS = ["--cell-timeout", "8", "--submission-timeout", "150", "--no-progress"]
RUN_TIMEOUT_S = 480
EXTRA_COPIES = ("solution", "blank", "swapped_arguments", "log_base_2", "top_class_only", "solution") * 2

REACH_OUT = '''import os as _os, socket as _socket
try:
    _socket.create_connection(("127.0.0.1", {port}), timeout=3).close()
    print("SCHEDULER REACHED")
except OSError as _error:
    print("scheduler unreachable:", type(_error).__name__)
for _path in {paths!r}:
    print("VISIBLE" if _os.path.exists(_path) else "invisible", _path)
'''


@dataclass
class ClassSetup:
    base: Course               # sources and instructor files
    tmp: Path
    port: int                  # the scheduler's port (chosen before the class is built)
    submitted: Path            # the class's submitted/ folder, copied into every course
    students: list[SimulatedStudent]
    secret_paths: list[str]    # what the reach_out submission looks for


def _reach_out(solution_nb, port: int, paths: list[str]) -> bytes:
    for cell in solution_nb.cells:
        if cell.cell_type == "code" and nbgrader_meta(cell).get("solution"):
            cell.source = REACH_OUT.format(port=port, paths=paths) + cell.source
            break
    return notebook_bytes(solution_nb)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> ClassSetup:
    tmp = tmp_path_factory.mktemp("cluster")
    base = fixture_course(tmp / "files")
    template = base.with_root(tmp / "template")
    release(template, log=lambda *_: None)
    students = build_class(template, [AID], with_bad=[AID], stall_s=CLI_TIMEOUTS.cell + 6)
    by_name = {s.student: s for s in students}
    for i, kind in enumerate(EXTRA_COPIES):
        original = by_name[kind]
        copy = Submission(AID, f"extra_{i:02d}_{kind}")
        shutil.copytree(template.folder("submitted", original.submission), template.folder("submitted", copy))
        students.append(replace(original, submission=copy))
    port = free_port()
    secrets = [str(tmp), str(base.spec_dir), str(Path(__file__).resolve().parents[1] / "grading" / "assignments")]
    reach = Submission(AID, "reach_out")
    folder = template.folder("submitted", reach)
    shutil.copytree(template.folder("submitted", by_name["solution"].submission), folder)
    notebook = folder / f"{AID}.ipynb"
    notebook.write_bytes(_reach_out(read_notebook(notebook), port, secrets))
    return ClassSetup(base, tmp, port, template.root / "submitted", students, secrets)


def new_course(setup: ClassSetup, name: str) -> Course:
    """A released course with the class submitted, in its own root (gradebook by the environment's rule)."""
    course = setup.base.with_root(setup.tmp / name)
    release(course, log=lambda *_: None)
    shutil.copytree(setup.submitted, course.root / "submitted")
    return course


def kdcourse(course: Course, *args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "kdcourse"), "autograde", *args, *CLI_LIMITS,
            "--root", str(course.root), "--sources", str(course.source_dir), "--specs", str(course.spec_dir)]


def run_env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def finish(process: subprocess.Popen, timeout: float = RUN_TIMEOUT_S) -> str:
    """Wait for a grading command; kill its process group if it overruns."""
    try:
        out, _ = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 9)
            process.wait(timeout=30)
    return out


@pytest.fixture(scope="module")
def reference(setup):
    """The class graded by the local pool into SQLite: the export every other way must match."""
    course = new_course(setup, "local")
    statuses = autograde(course, jobs=2, timeouts=CLI_TIMEOUTS, progress=False, log=lambda *_: None)
    checks = check_class(course, setup.students, statuses)
    header, rows, _ = export_rows(course)
    return {"course": course, "rows": rows, "header": header, "checks": checks}


def test_the_class_is_large_and_graded_locally_as_declared(setup, reference):
    assert len(reference["rows"]) >= 30
    kinds = {s.kind for s in setup.students}
    assert kinds == {"solution", "blank", "misconception", "bad"}
    problems = {c.student.student: c.problems for c in reference["checks"] if not c.ok}
    assert not problems


def _recorded(course: Course) -> int:
    path = course.root / "gradebook.db"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path, timeout=5) as db:
            return db.execute("select count(*) from kdcourse_status").fetchone()[0]
    except sqlite3.OperationalError:  # the table is not there yet
        return 0


def _kill_mid_run(cluster, process: subprocess.Popen, course: Course, timeout: float) -> str:
    """Once a few results are recorded, SIGKILL worker w1 while it grades; return the key it was grading."""
    from distributed import Client

    deadline = time.monotonic() + timeout
    with Client(cluster.address, timeout=30, set_as_default=False) as client:
        while time.monotonic() < deadline and process.poll() is None:
            grading = [k for k in worker_processing(client, "w1") if k.startswith("kdcourse-grade-")]
            if grading and _recorded(course) >= 4:
                cluster.kill_worker("w1")
                return grading[0]
            time.sleep(0.2)
    return ""


def test_a_dask_cluster_grades_like_the_local_pool_even_when_a_worker_is_killed(setup, reference):
    course = new_course(setup, "cluster")
    with dask_cluster(setup.tmp / "dask", setup.port) as cluster:
        process = subprocess.Popen(kdcourse(course, "--scheduler", cluster.address), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, env=run_env(), start_new_session=True)
        try:
            killed = _kill_mid_run(cluster, process, course, timeout=RUN_TIMEOUT_S)
        finally:
            out = finish(process)
        with urllib.request.urlopen(cluster.dashboard, timeout=10) as page:  # the link printed is live
            assert page.status == 200
    assert process.returncode == 0, out
    assert killed, f"worker w1 was never seen grading:\n{out}"
    assert f"Dask cluster {cluster.address}: 2 worker(s), 2 thread(s); dashboard: {cluster.dashboard}" in out
    assert "second result" not in out
    header, rows, _ = export_rows(course)
    assert header == reference["header"]
    assert rows == reference["rows"], f"killed while grading {killed}"
    assert _recorded(course) == len(rows) == len(setup.students) + 1
    # the killed task was graded again elsewhere, once
    student = killed.split(f"-{AID}-", 1)[1]
    assert [r["student"] for r in rows].count(student) == 1
    # the worker grades in a private copy of the course: nothing of it is left in the instructor's root
    assert not (course.root / "returned").exists()

    # a kernel on a worker reached neither the scheduler nor any instructor or worker file
    reached = read_notebook(course.folder("autograded", Submission(AID, "reach_out")) / f"{AID}.ipynb")
    text = "\n".join(o.get("text", "") for c in reached.cells for o in c.get("outputs", []) if "text" in o)
    assert "scheduler unreachable" in text and "SCHEDULER REACHED" not in text
    assert "VISIBLE" not in text and text.count("invisible") == len(setup.secret_paths)


def test_a_postgresql_gradebook_written_by_two_graders_at_once_gives_the_sqlite_export(setup, reference,
                                                                                       monkeypatch):
    with postgres_server() as server:
        url = server.create_database("gradebook")
        monkeypatch.setenv("KDCOURSE_DB_URL", url)
        course = new_course(setup, "postgres")
        assert course.db_url == url
        names = sorted(p.name for p in (course.root / "submitted").iterdir())
        halves = [names[0::2], names[1::2]]
        processes = [subprocess.Popen(kdcourse(course, "--jobs", "1", *[f"--student={s}" for s in half]),
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      env={**run_env(), "KDCOURSE_DB_URL": url}, start_new_session=True)
                     for half in halves]
        outputs = [finish(p) for p in processes]
        for process, out in zip(processes, outputs):
            assert process.returncode == 0, out
        report = feedback(course, log=lambda *_: None)
        header, rows, _ = export_rows(course)
    assert not (course.root / "gradebook.db").exists()  # everything went to PostgreSQL
    assert len(report.written) >= len(rows) - 3  # all but the ungradable ones
    assert header == reference["header"]
    assert rows == reference["rows"]


def test_a_worker_unfit_to_grade_that_joins_closes_itself():
    """A daemonic worker (it may not start grading processes) joining after the run's check leaves the
    cluster on its own once the instructor's plugin is registered, instead of failing task after task."""
    import dask
    import nbgrader
    from distributed import Client, LocalCluster

    from kdcourse.grading.bundle import code_digest
    from kdcourse.grading.remote import RefuseUnfitWorkers

    with dask.config.set({"distributed.worker.daemon": True}), \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=False) as client:
        client.wait_for_workers(1, timeout=60)
        client.register_plugin(RefuseUnfitWorkers(code_digest(), nbgrader.__version__, unsafe_no_sandbox=False))
        deadline = time.monotonic() + 60
        while client.scheduler_info(n_workers=-1)["workers"] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not client.scheduler_info(n_workers=-1)["workers"], "the unfit worker is still in the cluster"
