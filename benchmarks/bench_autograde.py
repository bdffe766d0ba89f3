"""Seconds per submission to autograde one simulated class, several ways, side by side in one run:

1. ``kdcourse autograde --jobs 1 --unsafe-no-sandbox`` (kernels without the sandbox; the judge still decides);
2. ``kdcourse autograde --jobs 1`` (every kernel in the bubblewrap sandbox): the sandbox's overhead is 2 / 1;
3. ``kdcourse autograde --jobs 2`` (sandboxed);
4. with ``--cli``: the nbgrader CLI, one ``nbgrader autograde ASSIGNMENT --student S`` per student, with the
   course's ``nbgrader_config.py`` (sandboxed, judged): the cost of one process per student;
5. with ``--cluster``: the same class through Dask (``kdcourse autograde --scheduler``): a
   ``distributed.LocalCluster`` of 2 single-threaded worker processes in this process, and a real
   ``dask scheduler`` with 1 and with 2 ``dask worker`` processes on 127.0.0.1 (started as the README says),
   each next to the local pool's ``--jobs 2``; the cluster's start-up is not timed, its connection and the
   course bundle are; the last column is the time the instructor's side spent recording each returned
   result (it records them one at a time);
6. with ``--baseline DIR``: ``kdcourse autograde --jobs 1`` of another checkout of kdcourse (e.g. an earlier
   version: ``git worktree add /tmp/kdcourse-before <rev>``) on its own version of the same assignment, in a
   subprocess that imports that checkout's package.

Every round runs every variant once, in an order that rotates from round to round; the table gives the
median over rounds and the median of the per-round ratios to variant 1 (slow drifts of the machine's load
cancel in a ratio). The class: the solution and one submission per declared misconception, repeated to
``--students`` submissions.

Usage: python benchmarks/bench_autograde.py [--students 12] [--rounds 2] [--assignment ID] [--fixture]
       [--cli] [--cluster] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kdcourse.execution import kernel_environment  # noqa: E402
from kdcourse.grading.adapter.api import ensure_tools_on_path, open_gradebook  # noqa: E402
from kdcourse.grading.autograde import autograde  # noqa: E402
from kdcourse.grading.course import Course, Submission  # noqa: E402
from kdcourse.grading.release import release  # noqa: E402
from kdcourse.grading.simulation.submissions import (  # noqa: E402
    misconception_notebook,
    notebook_files,
    solution_notebook,
    submit_files,
)
from kdcourse.tables import format_table  # noqa: E402

CONFIG = '''import sys
sys.path.insert(0, {repo!r})
from kdcourse.grading.adapter.config import configure
from kdcourse.grading.course import Course
c = get_config()
configure(c, Course(root={root!r}, source_dir={source!r}, spec_dir={specs!r}, settings_file={settings!r}))
'''

# Runs in a subprocess with another checkout first on sys.path (the kdcourse 0.1 grading API).
BASELINE = textwrap.dedent('''
    import sys, time, shutil
    from pathlib import Path
    from kdcourse.grading.course import Course
    from kdcourse.grading.release import release
    from kdcourse.grading.autograde import autograde
    from kdcourse.grading import submissions as s
    repo, root, assignment, n = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    course = Course(root=root, source_dir=repo / "notebooks" / "assignments", spec_dir=repo / "grading" / "assignments")
    if not (root / "gradebook.db").exists():
        release(course, [assignment], log=lambda *_: None)
        spec = course.spec(assignment)
        solution = s.solution_notebook(course, assignment)
        variants = [solution] + [s.misconception_notebook(course, spec, m, base=solution) for m in spec.misconceptions]
        for i in range(n):
            s.submit_files(course, f"s{i:02d}", assignment, {assignment + ".ipynb": s.notebook_bytes(variants[i % len(variants)])})
    for folder in ("autograded", "staged"):
        shutil.rmtree(root / folder, ignore_errors=True)
    start = time.perf_counter()
    autograde(course, [assignment], jobs=1, progress=False, log=lambda *_: None)
    print(time.perf_counter() - start)
''')


def make_class(base: Course, assignment: str, n: int, root: Path) -> tuple[Course, list[str]]:
    course = base.with_root(root)
    release(course, [assignment], log=lambda *_: None)
    spec = course.spec(assignment)
    solution = solution_notebook(course, assignment)
    variants = [solution] + [misconception_notebook(course, spec, m, base=solution) for m in spec.misconceptions]
    students = [f"s{i:02d}" for i in range(n)]
    for i, student in enumerate(students):
        submit_files(course, Submission(assignment, student), notebook_files(variants[i % len(variants)], assignment))
    (root / "nbgrader_config.py").write_text(CONFIG.format(
        repo=str(REPO), root=str(root), source=str(course.source_dir), specs=str(course.spec_dir),
        settings=str(course.settings_file) if course.settings_file else None), encoding="utf-8")
    return course, students


def reset(course: Course) -> None:
    """Forget earlier grading, keep the release and the submissions."""
    for folder in ("autograded", "staged"):
        shutil.rmtree(course.root / folder, ignore_errors=True)
    with open_gradebook(course) as gb:
        for student in list(gb.students):
            gb.remove_student(student.id)


#: Seconds the instructor's side spent recording each returned result, per cluster variant and round
#: (from the run's ``ClusterGrader.summary`` line).
RECORDING: dict[str, list[float]] = {}
_SUMMARY = re.compile(r"^cluster: \d+ result\(s\) recorded .* \((?P<each>[\d.]+) s each\)$")


def run_kdcourse(course: Course, assignment: str, jobs: int, sandbox: bool, scheduler: str | None = None) -> float:
    def log(line: str) -> None:
        match = _SUMMARY.match(str(line))
        if match:
            RECORDING.setdefault(scheduler, []).append(float(match["each"]))

    start = time.perf_counter()
    statuses = autograde(course, [assignment], jobs=jobs, progress=False, log=log,
                         unsafe_no_sandbox=not sandbox, scheduler=scheduler)
    seconds = time.perf_counter() - start
    failed = [s for s in statuses if s.status != "graded" and not (not sandbox and len(s.reasons) == 1)]
    assert not failed, failed
    return seconds


def start_clusters(stack: contextlib.ExitStack, folder: Path) -> dict[str, str]:
    """A LocalCluster (2 worker processes, 1 thread each) and real schedulers with 1 and 2 workers:
    ``name -> scheduler address``, all stopped when ``stack`` closes."""
    import dask
    from distributed import LocalCluster

    sys.path.insert(0, str(REPO / "tests"))
    from fixtures.dask_cluster import dask_cluster
    from fixtures.ports import free_port

    stack.enter_context(dask.config.set({"distributed.worker.daemon": False,
                                         "distributed.scheduler.worker-saturation": 1.0}))
    local = stack.enter_context(LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                             dashboard_address=None, local_directory=str(folder / "local")))
    addresses = {"LocalCluster, 2 workers": local.scheduler_address}
    for n in (1, 2):
        cluster = stack.enter_context(dask_cluster(folder / f"real{n}", free_port(),
                                                   workers=tuple(f"w{i}" for i in range(1, n + 1))))
        addresses[f"dask scheduler, {n} worker{'s' if n > 1 else ''}"] = cluster.address
    return addresses


def run_cli(course: Course, assignment: str, students: list[str]) -> float:
    env = dict(os.environ, **kernel_environment())
    start = time.perf_counter()
    for student in students:
        subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "autograde", assignment, "--force",
                        "--student", student], cwd=course.root, env=env, check=True, capture_output=True,
                       timeout=1800)
    return time.perf_counter() - start


def run_baseline(checkout: Path, root: Path, assignment: str, n: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(checkout), KDCOURSE_PROGRESS="0")
    # run from the other checkout: `python -c` puts the working folder first on sys.path
    result = subprocess.run([sys.executable, "-c", BASELINE, str(checkout), str(root), assignment, str(n)],
                            env=env, capture_output=True, text=True, timeout=3600, cwd=checkout)
    if result.returncode != 0:
        raise RuntimeError(f"the baseline checkout {checkout} failed to grade:\n{result.stderr[-3000:]}")
    return float(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--assignment", default=None)
    parser.add_argument("--fixture", action="store_true", help="use the test fixture assignment")
    parser.add_argument("--cli", action="store_true", help="also time one nbgrader CLI call per student")
    parser.add_argument("--cluster", action="store_true", help="also grade through Dask (LocalCluster, 1 and 2 workers)")
    parser.add_argument("--baseline", type=Path, default=None, help="another kdcourse checkout to time alike")
    args = parser.parse_args()
    ensure_tools_on_path()
    os.environ.setdefault("KDCOURSE_PROGRESS", "0")
    if args.fixture:
        fixture = REPO / "tests" / "fixtures" / "course"
        base = Course(root=fixture / "grading", source_dir=fixture / "notebooks" / "assignments",
                      spec_dir=fixture / "grading" / "assignments")
    else:
        base = Course.from_repo(REPO)
    assignment = args.assignment or base.assignments()[0]
    with tempfile.TemporaryDirectory(prefix="kdcourse-bench-") as tmp, contextlib.ExitStack() as clusters:
        course, students = make_class(base, assignment, args.students, Path(tmp) / "course")
        variants = {
            "kdcourse --jobs 1, no sandbox": lambda: run_kdcourse(course, assignment, 1, sandbox=False),
            "kdcourse --jobs 1, sandboxed": lambda: run_kdcourse(course, assignment, 1, sandbox=True),
            "kdcourse --jobs 2, sandboxed": lambda: run_kdcourse(course, assignment, 2, sandbox=True),
        }
        if args.cli:
            variants["nbgrader CLI per student, sandboxed"] = lambda: run_cli(course, assignment, students)
        addresses: dict[str, str] = {}
        if args.cluster:
            for name, address in start_clusters(clusters, Path(tmp) / "dask").items():
                addresses[name] = address
                variants[name] = lambda address=address: run_kdcourse(course, assignment, 2, sandbox=True,
                                                                      scheduler=address)
        if args.baseline:
            baseline_root = Path(tmp) / "baseline"
            variants[f"baseline {args.baseline.name} --jobs 1"] = lambda: run_baseline(
                args.baseline.resolve(), baseline_root, assignment, len(students))
        names = list(variants)
        times = {name: [] for name in names}
        for round_index in range(args.rounds):
            order = names[round_index % len(names):] + names[:round_index % len(names)]
            for name in order:
                reset(course)
                times[name].append(variants[name]())
    reference = names[0]
    n = len(students)
    rows = []
    for name in names:
        ratios = [t / r for t, r in zip(times[name], times[reference])]
        recording = RECORDING.get(addresses.get(name, ""), [])
        rows.append([name, f"{statistics.median(times[name]):.1f}", f"{statistics.median(times[name]) / n:.2f}",
                     f"{statistics.median(ratios):.2f}", f"{min(ratios):.2f}-{max(ratios):.2f}",
                     f"{statistics.median(recording):.3f}" if recording else "-"])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"assignment {assignment}, {n} submissions, {args.rounds} round(s), {os.cpu_count()} CPUs, "
          f"load {load:.1f} at the end")
    print(format_table(["method", "total s", "s/submission", f"ratio to '{reference}'", "range",
                        "recording s/result"], rows, align="lrrrrr"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
