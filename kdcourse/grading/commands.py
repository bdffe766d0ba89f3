"""The instructor subcommands of the ``kdcourse`` command line (argument parsing and exit codes).

Building the parser imports nothing heavy; each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .course import Course, CourseError
from .settings import DEFAULT_TIMEOUTS, DEMO_TIMEOUTS, Timeouts

__all__ = ["COMMANDS", "add_commands", "run"]

#: The grading subcommands, in the order an instructor uses them.
COMMANDS = ("release", "collect", "autograde", "feedback", "export", "verify", "demo")


def _course_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("course folders (defaults: this repository)")
    group.add_argument("--root", type=Path, help="nbgrader course root (default: grading/)")
    group.add_argument("--sources", type=Path, help="assignment sources (default: notebooks/assignments/)")
    group.add_argument("--specs", type=Path, help="instructor files <id>.toml (default: grading/assignments/)")


def _grading_options(parser: argparse.ArgumentParser, defaults: Timeouts) -> None:
    parser.add_argument("--jobs", type=int, default=None,
                        help="parallel grading workers on this machine (default: CPU cores; not used with --scheduler)")
    parser.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                        help="grade on the workers of this Dask scheduler, one task per submission; the gradebook "
                             "is written here (README: Grading on a cluster)")
    parser.add_argument("--cell-timeout", type=int, default=defaults.cell,
                        help=f"seconds per cell before the kernel is interrupted (default {defaults.cell})")
    parser.add_argument("--submission-timeout", type=int, default=defaults.submission,
                        help=f"seconds per submission before it is killed and flagged (default {defaults.submission})")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="run student code WITHOUT the sandbox, with your rights (only where the sandbox "
                             "cannot start; every submission is flagged for it)")


def add_commands(commands) -> None:
    """Add the grading subcommands to an ``argparse`` subparsers object."""
    p = commands.add_parser("release", help="generate the student version of assignments (all by default)")
    p.add_argument("assignments", nargs="*", metavar="ASSIGNMENT")
    _course_options(p)

    p = commands.add_parser("collect", help="place a folder or zip of submissions into submitted/")
    p.add_argument("path", type=Path, metavar="PATH")
    _course_options(p)

    p = commands.add_parser("autograde", help="grade submissions in parallel, sandboxed (all assignments and students)")
    p.add_argument("assignment", nargs="?", metavar="ASSIGNMENT")
    p.add_argument("--student", action="append", default=None, metavar="S", help="only this student (repeatable)")
    _grading_options(p, DEFAULT_TIMEOUTS)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _course_options(p)

    p = commands.add_parser("feedback", help="HTML feedback for every autograded submission")
    p.add_argument("assignments", nargs="*", metavar="ASSIGNMENT")
    _course_options(p)

    p = commands.add_parser("export", help="grades.csv (per-question columns) and grades.png")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: <root>/export)")
    _course_options(p)

    p = commands.add_parser("verify", help="check solution, blank and misconception scores of each assignment")
    p.add_argument("assignments", nargs="*", metavar="ASSIGNMENT")
    _grading_options(p, DEFAULT_TIMEOUTS)
    p.add_argument("--keep", action="store_true", help="keep the throw-away course folder")
    _course_options(p)

    p = commands.add_parser("demo", help="grade a simulated class end to end in a fresh folder")
    p.add_argument("--out", type=Path, default=None, help="fresh folder for the demo (default: a new temp folder)")
    p.add_argument("--bad-on", choices=("first", "all", "none"), default="first",
                   help="assignments that get the bad and hostile submissions (default: first)")
    _grading_options(p, DEMO_TIMEOUTS)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _course_options(p)


def _course(args) -> Course:
    if args.root and args.sources and args.specs:
        return Course(root=args.root, source_dir=args.sources, spec_dir=args.specs,
                      settings_file=args.specs.parent / "course.toml")
    repo = Course.from_repo()
    return Course(root=args.root or repo.root, source_dir=args.sources or repo.source_dir,
                  spec_dir=args.specs or repo.spec_dir, settings_file=repo.settings_file)


def _timeouts(args, defaults: Timeouts) -> Timeouts:
    return Timeouts(cell=args.cell_timeout, iopub=max(defaults.iopub, args.cell_timeout // 2),
                    startup=defaults.startup, submission=args.submission_timeout)


def _run(args) -> int:
    course = _course(args)
    if args.command == "release":
        from .release import release

        release(course, args.assignments)
    elif args.command == "collect":
        from .collect import collect

        report = collect(course, args.path)
        print(f"collect: {len(report.placed)} placed, {len(report.refused)} refused, {len(report.ignored)} ignored")
        return 1 if report.refused else 0
    elif args.command == "autograde":
        from .autograde import autograde

        statuses = autograde(course, [args.assignment] if args.assignment else None, args.student,
                             jobs=args.jobs, timeouts=_timeouts(args, DEFAULT_TIMEOUTS),
                             progress=not args.no_progress, unsafe_no_sandbox=args.unsafe_no_sandbox,
                             scheduler=args.scheduler)
        flagged = sum(s.status == "flagged" for s in statuses)
        print(f"autograde: {len(statuses)} submission(s), {flagged} flagged for review")
    elif args.command == "feedback":
        from .feedback import feedback

        report = feedback(course, args.assignments)
        for withheld in report.withheld:
            print(f"WITHHELD {withheld.submission}: {'; '.join(withheld.reasons)}")
        print(f"feedback: {len(report.written)} written, {len(report.withheld)} withheld")
        return 1 if report.withheld else 0
    elif args.command == "export":
        from .export import export

        export(course, args.out)
    elif args.command == "verify":
        from .simulation.verify import verify

        checks, problems = verify(course, args.assignments, jobs=args.jobs, timeouts=_timeouts(args, DEFAULT_TIMEOUTS),
                                  keep=args.keep, unsafe_no_sandbox=args.unsafe_no_sandbox, scheduler=args.scheduler)
        return 0 if all(c.ok for c in checks) and not problems else 1
    elif args.command == "demo":
        from .simulation.demo import demo

        ok = demo(course, args.out, jobs=args.jobs, timeouts=_timeouts(args, DEMO_TIMEOUTS), bad_on=args.bad_on,
                  progress=not args.no_progress, unsafe_no_sandbox=args.unsafe_no_sandbox,
                  scheduler=args.scheduler)
        return 0 if ok else 1
    return 0


def run(args) -> int:
    """Run one grading subcommand; returns the exit code (1: surprises/refusals, 2: usage or course error)."""
    from .adapter.api import GradingError

    try:
        return _run(args)
    except CourseError as exc:
        print(f"kdcourse {args.command}: {exc}", file=sys.stderr)
        return 2
    except GradingError as exc:  # one clear line, then nbgrader's details
        print(f"kdcourse {args.command}: {exc}", file=sys.stderr)
        return 1
