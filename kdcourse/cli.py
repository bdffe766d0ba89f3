"""The ``kdcourse`` command line.

``kdcourse --version``, ``--help`` and the parsing of every subcommand import nothing heavy (no torch,
nbgrader or scikit-learn); a subcommand imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
from collections.abc import Sequence

import kdcourse
from kdcourse.grading.commands import COMMANDS

__all__ = ["build_parser", "main", "doctor"]


def _version_of(module_name: str) -> str | None:
    if importlib.util.find_spec(module_name) is None:
        return None
    try:
        from importlib.metadata import version

        return version({"sklearn": "scikit-learn"}.get(module_name, module_name))
    except Exception:  # noqa: BLE001 - installed without metadata: say so rather than importing it
        return "installed"


def _nbgrader_lab_extension() -> str:
    """Whether nbgrader's JupyterLab extension is installed (labextension folder present)."""
    try:
        from jupyter_core.paths import jupyter_path
    except ImportError:
        return "unknown (Jupyter not installed)"
    for base in jupyter_path("labextensions"):
        if os.path.isdir(os.path.join(base, "@jupyter", "nbgrader")):
            return f"installed ({os.path.join(base, '@jupyter', 'nbgrader')})"
    return "not found"


def _sandbox_line() -> str:
    from kdcourse.sandbox import sandbox_status

    status = sandbox_status()
    if status.available:
        return (f"available (processes and threads limited by {status.process_limit}; "
                f"memory by {status.memory_limit})")
    return f"NOT available: {status.reason}"


def doctor() -> int:
    """Print versions, the device training would use, the grading sandbox, and grading readiness."""
    rows = [("python", platform.python_version()), ("kdcourse", kdcourse.__version__)]
    for name in ("torch", "numpy", "scipy", "sklearn", "matplotlib", "ipywidgets", "jupyterlab", "nbgrader"):
        rows.append((name, _version_of(name) or "not installed"))
    rows.append(("nbgrader lab extension", _nbgrader_lab_extension()))
    rows.append(("grading sandbox", _sandbox_line()))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    try:
        print(kdcourse.describe_device())
    except ValueError as error:  # e.g. KDCOURSE_DEVICE names a device this machine lacks
        print(f"device: {error}")
        return 1
    return 0


def _grading_unavailable_reason() -> str | None:
    """None when the grading tools can be imported; otherwise what is missing."""
    for module in ("nbgrader", "psutil", "nbformat"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed"
    return None


def build_parser() -> argparse.ArgumentParser:
    from kdcourse.grading.commands import add_commands

    parser = argparse.ArgumentParser(
        prog="kdcourse", description="Knowledge-distillation course: tools for students and instructors."
    )
    parser.add_argument("--version", action="version", version=f"kdcourse {kdcourse.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("doctor", help="show versions, the training device, the grading sandbox and readiness")
    _add_lab(commands)
    add_commands(commands)
    return parser


def _add_lab(commands) -> None:
    from pathlib import Path

    p = commands.add_parser("lab", help="start JupyterLab for students, instructors or lectures (127.0.0.1, token)")
    audience = p.add_mutually_exclusive_group(required=True)
    audience.add_argument("--student", dest="audience", action="store_const", const="student",
                          help="the blank assignments and the lectures, in a workspace of your own")
    audience.add_argument("--instructor", dest="audience", action="store_const", const="instructor",
                          help="the repository, with nbgrader's formgrader ready")
    audience.add_argument("--lectures", dest="audience", action="store_const", const="lectures",
                          help="the lecture notebooks")
    p.add_argument("--port", type=int, default=8888, help="port on 127.0.0.1 (default 8888)")
    p.add_argument("--root", type=Path, default=None,
                   help="the student workspace (default ~/kdcourse-student), the lectures folder, or for "
                        "--instructor a course repository (grading/ and notebooks/assignments/; default this one)")
    p.add_argument("--no-browser", action="store_true", help="do not open a web browser")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "doctor":
        return doctor()
    if args.command == "lab":
        from kdcourse.lab import run_lab

        return run_lab(args.audience, port=args.port, root=args.root, open_browser=not args.no_browser)
    if args.command in COMMANDS:
        reason = _grading_unavailable_reason()
        if reason is not None:
            print(f"kdcourse {args.command} needs the grading tools ({reason}): "
                  "pip install 'kdcourse[grading]'", file=sys.stderr)
            return 2
        from kdcourse.grading.commands import run

        return run(args)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
