"""Time every lecture and assignment notebook (fresh kernel, kernel start included) against its budget.

Usage:  python benchmarks/bench_notebooks.py [--repeat N] [NAME_SUBSTRING ...]

Budgets come from grading/assignments/<aid>.toml (``budget_s``); a lecture uses 30 s, or the ``budget_s``
of its ``LECTURE_BUDGETS_S`` entry (lectures 2-4 run live experiments over seeds: 60 s; lecture 5: 90 s). The run
is sequential (one kernel at a time, in the sandbox, as the notebook tests run them) so the figures
are comparable with a 2-core machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from kdcourse import notebooks as nt
from kdcourse.execution import execute_notebook
from kdcourse.grading.course import Course
from kdcourse.paths import find_repo_root
from kdcourse.tables import format_table

DEFAULT_BUDGET_S = 30.0
LECTURE_BUDGETS_S = {"l02_temperature_and_distillation_loss": 60.0, "l03_teacher_student": 60.0, "l04_dissimilarity_and_reverse_kl": 60.0,
                     "l05_distilling_language_models": 90.0}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs per notebook (the median is reported)")
    parser.add_argument("names", nargs="*", help="only notebooks whose name contains one of these")
    args = parser.parse_args(argv)

    repo = find_repo_root()
    course = Course.from_repo(repo)
    budgets = {aid: course.spec(aid).budget_s for aid in course.assignments()}
    rows = []
    for path in nt.list_notebooks():
        if args.names and not any(name in path.name for name in args.names):
            continue
        budget = float(budgets.get(path.stem, LECTURE_BUDGETS_S.get(path.stem, DEFAULT_BUDGET_S)))
        times, errors = [], []
        for _ in range(args.repeat):
            result = execute_notebook(path, timeout=600, allow_errors=True)
            times.append(result.seconds)
            errors = result.errors
        median = statistics.median(times)
        rows.append((path.relative_to(repo), median, budget, errors))
        print(f"  ran {path.name}: {median:.1f} s", file=sys.stderr)

    over = 0
    table = []
    for name, seconds, budget, errors in rows:
        status = "errors: " + ", ".join(e["ename"] for e in errors) if errors else (
            "ok" if seconds <= budget else "OVER BUDGET")
        over += status != "ok"
        table.append([name, f"{seconds:.1f}", f"{budget:.0f}", status])
    print(format_table(["notebook", "time (s)", "budget (s)", "status"], table, align="lrrl"))
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
