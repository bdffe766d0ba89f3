"""The README's test command is what CI runs, and its lanes together run every test marker exactly once."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]


def readme_test_command() -> str:
    """The README's second fenced bash block: the command that sets up and runs the tests."""
    blocks = re.findall(r"```bash\n(.*?)\n```", (REPO / "README.md").read_text(encoding="utf-8"), re.S)
    return blocks[1].strip()


def lane_expressions(command: str) -> list[str]:
    """The ``-m`` expression of every pytest run in ``command``."""
    expressions = []
    for step in command.split("&&"):
        words = shlex.split(step)
        if "pytest" in words:
            expressions.append(words[words.index("-m", words.index("pytest") + 1) + 1])
    return expressions


def declared_markers() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return [line.split(":")[0].strip() for line in config["tool"]["pytest"]["ini_options"]["markers"]]


def selected(expression: str, markers: set[str]) -> bool:
    """Whether pytest's ``-m expression`` selects a test carrying ``markers`` (and/or/not/parentheses)."""
    python = re.sub(r"[A-Za-z_]\w*", lambda m: m[0] if m[0] in ("and", "or", "not") else str(m[0] in markers),
                    expression)
    return eval(python, {"__builtins__": {}})  # noqa: S307 - only True/False/and/or/not remain


def lanes_running(lanes: list[str], markers: set[str]) -> list[str]:
    """The lanes that run a test carrying ``markers``."""
    return [lane for lane in lanes if selected(lane, markers)]


def test_ci_runs_exactly_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert readme_test_command() in ci.splitlines()


def test_every_marker_and_unmarked_tests_run_in_exactly_one_lane():
    lanes = lane_expressions(readme_test_command())
    markers = declared_markers()
    assert {"kernel", "slow", "browser"} <= set(markers)
    for carried in [set(), *({marker} for marker in markers)]:
        runs = lanes_running(lanes, carried)
        assert len(runs) == 1, f"a test marked {sorted(carried) or 'with nothing'} runs in lanes {runs} of {lanes}"


def test_the_lane_check_sees_a_test_run_twice_or_never():
    old_lanes = ["not kernel and not slow", "kernel or slow", "browser"]  # browser tests also in the fast lane
    assert lanes_running(old_lanes, {"browser"}) == ["not kernel and not slow", "browser"]
    assert lanes_running(["kernel", "browser"], set()) == []
    assert lanes_running(["not (kernel or slow)"], {"slow"}) == []
