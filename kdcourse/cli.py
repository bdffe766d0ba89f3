"""The ``kdcourse`` command line."""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
from collections.abc import Sequence

import kdcourse


def _version_of(module_name: str) -> str | None:
    try:
        module = importlib.import_module(module_name)
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return None
    return getattr(module, "__version__", "installed")


def _nbgrader_lab_extension() -> str:
    """Whether nbgrader's JupyterLab extension is installed (labextension folder present)."""
    try:
        from jupyter_core.paths import jupyter_path
    except Exception:  # noqa: BLE001
        return "unknown (Jupyter not installed)"

    for base in jupyter_path("labextensions"):
        if os.path.isdir(os.path.join(base, "@jupyter", "nbgrader")):
            return f"installed ({os.path.join(base, '@jupyter', 'nbgrader')})"
    return "not found"


def doctor() -> int:
    """Print versions, the device that training would use, and grading readiness."""
    rows = [("python", platform.python_version()), ("kdcourse", kdcourse.__version__)]
    for name in ("torch", "numpy", "scipy", "sklearn", "matplotlib", "ipywidgets", "jupyterlab", "nbgrader"):
        rows.append((name, _version_of(name) or "not installed"))
    rows.append(("nbgrader lab extension", _nbgrader_lab_extension()))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    try:
        print(kdcourse.describe_device())
    except ValueError as error:  # e.g. KDCOURSE_DEVICE names a device this machine lacks
        print(f"device: {error}")
        return 1
    return 0


GRADING_COMMANDS = ("release", "collect", "autograde", "feedback", "export", "verify", "demo")


def _grading_unavailable_reason() -> str | None:
    """None when the grading tools import; otherwise what is missing."""
    try:
        import kdcourse.grading.commands  # noqa: F401
    except ImportError as error:
        return f"{error.name or error} is not installed"
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kdcourse", description="Knowledge-distillation course: tools for students and instructors."
    )
    parser.add_argument("--version", action="version", version=f"kdcourse {kdcourse.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("doctor", help="show versions, the training device, and grading readiness")
    if _grading_unavailable_reason() is None:
        from kdcourse.grading.commands import add_commands

        add_commands(commands)
    else:
        for name in GRADING_COMMANDS:
            stub = commands.add_parser(name, help="(needs the grading extra: pip install 'kdcourse[grading]')")
            stub.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "doctor":
        return doctor()
    if args.command in GRADING_COMMANDS:
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
