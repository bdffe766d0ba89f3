"""Bad and hostile submissions, generated for any assignment from its solution and release notebooks.

Each case says what the grader must do with it (``Expectation``): give an exact score, give less than
full marks while grading the rest of the notebook, or flag the submission as ungradable. They are used by
``kdcourse demo`` and by the tests; none of them may stop the grading of the other students.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable
from dataclasses import dataclass

from kdcourse.notebooks import nbgrader_meta, notebook_bytes

ALWAYS_EQUAL = '''
class _AlwaysEqual:
    """Compares equal (and close) to everything; arithmetic returns itself."""
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __lt__(self, other): return True
    def __le__(self, other): return True
    def __gt__(self, other): return True
    def __ge__(self, other): return True
    def __bool__(self): return True
    def __hash__(self): return 0
    def __call__(self, *args, **kwargs): return self
    def __getattr__(self, name): return self
    def __abs__(self): return self
    def __neg__(self): return self
    def __add__(self, other): return self
    __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = __pow__ = __add__
'''

MONKEYPATCH = '''
import math, sys
import numpy as _np
_yes = lambda *args, **kwargs: True
_np.allclose = _yes
_np.isclose = _yes
_np.array_equal = _yes
_np.testing.assert_allclose = lambda *args, **kwargs: None
math.isclose = _yes
if "torch" in sys.modules:
    sys.modules["torch"].testing.assert_close = lambda *args, **kwargs: None
    sys.modules["torch"].allclose = _yes
'''

STDERR_WRAPPER = '''
import functools as _functools, sys as _sys, warnings as _warnings
def _noisy(function):
    @_functools.wraps(function)
    def wrapper(*args, **kwargs):
        _warnings.warn("this answer is correct but noisy", UserWarning)
        print("a harmless message on stderr", file=_sys.stderr)
        return function(*args, **kwargs)
    return wrapper
'''


@dataclass(frozen=True)
class Expectation:
    """What grading must produce: ``score`` exactly (when not None), no more than ``at_most``, or
    ``below_full`` (graded, some points lost), and whether the submission is flagged for review (``flagged``)."""

    score: float | None = None
    below_full: bool = False
    flagged: bool = False
    at_most: float | None = None

    def describe(self) -> str:
        parts = []
        if self.score is not None:
            parts.append(f"= {self.score:g}")
        if self.at_most is not None:
            parts.append(f"<= {self.at_most:g}")
        if self.below_full:
            parts.append("< full")
        parts.append("flagged" if self.flagged else "graded")
        return " ".join(parts)


@dataclass(frozen=True)
class BadCase:
    name: str
    description: str
    build: Callable  # (Context) -> dict[filename, bytes]
    expect: Callable  # (Context) -> Expectation


@dataclass
class Context:
    assignment: str
    solution: object           # solution notebook
    blank: object              # release notebook
    auto_points: float
    wrong: object = None       # a wrong-but-plausible submission (first misconception) or None
    wrong_score: float = 0.0   # its expected score
    stall_s: float = 60.0      # how long the simulated C-level call blocks

    @property
    def notebook_name(self) -> str:
        return f"{self.assignment}.ipynb"


def _first_solution_code_cell(nb):
    for cell in nb.cells:
        if cell.cell_type == "code" and nbgrader_meta(cell).get("solution"):
            return cell
    raise ValueError("the notebook has no solution code cell")


def _prepend(ctx: Context, code: str, base=None) -> dict[str, bytes]:
    nb = copy.deepcopy(base if base is not None else ctx.solution)
    cell = _first_solution_code_cell(nb)
    cell.source = code.strip("\n") + "\n" + cell.source
    return {ctx.notebook_name: notebook_bytes(nb)}


def _test_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code" and nbgrader_meta(c).get("grade")
            and not nbgrader_meta(c).get("solution")]


def _defined_names(source: str) -> tuple[list[str], list[str]]:
    """Top-level function names and assigned variable names of ``source``."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return [], []
    functions = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    variables = [t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
                 if isinstance(t, ast.Name)]
    return functions, variables


def build_always_equal(ctx: Context) -> dict[str, bytes]:
    nb = copy.deepcopy(ctx.solution)
    for cell in nb.cells:
        if cell.cell_type == "code" and nbgrader_meta(cell).get("solution"):
            functions, variables = _defined_names(cell.source)
            lines = [ALWAYS_EQUAL]
            lines += [f"def {f}(*args, **kwargs):\n    return _AlwaysEqual()\n" for f in functions]
            lines += [f"{v} = _AlwaysEqual()" for v in variables]
            cell.source = "\n".join(lines) + "\n"
    return {ctx.notebook_name: notebook_bytes(nb)}


def build_stderr_warning(ctx: Context) -> dict[str, bytes]:
    nb = copy.deepcopy(ctx.solution)
    cell = _first_solution_code_cell(nb)
    functions, _ = _defined_names(cell.source)
    wrap = "".join(f"{f} = _noisy({f})\n" for f in functions)
    if not wrap:  # an answer variable: warn while the cell runs and again from the test via print
        wrap = "_warnings.warn('this answer is correct but noisy', UserWarning)\n"
    cell.source = STDERR_WRAPPER.strip("\n") + "\n" + cell.source + "\n" + wrap
    return {ctx.notebook_name: notebook_bytes(nb)}


def build_deleted_test_cell(ctx: Context) -> dict[str, bytes]:
    nb = copy.deepcopy(ctx.solution)
    nb.cells.remove(_test_cells(nb)[0])
    return {ctx.notebook_name: notebook_bytes(nb)}


def build_edited_tests(ctx: Context) -> dict[str, bytes]:
    nb = copy.deepcopy(ctx.blank)
    for cell in _test_cells(nb):
        cell.source = "pass  # all tests removed\n"
    return {ctx.notebook_name: notebook_bytes(nb)}


def build_changed_points(ctx: Context) -> dict[str, bytes]:
    nb = copy.deepcopy(ctx.solution)
    for cell in _test_cells(nb):
        cell.metadata["nbgrader"]["points"] = 100 * float(cell.metadata["nbgrader"].get("points", 1))
    return {ctx.notebook_name: notebook_bytes(nb)}


def build_invalid_json(ctx: Context) -> dict[str, bytes]:
    data = notebook_bytes(ctx.solution)
    return {ctx.notebook_name: data[: len(data) // 2]}


def build_renamed(ctx: Context) -> dict[str, bytes]:
    return {f"{ctx.assignment}-Copy1.ipynb": notebook_bytes(ctx.solution)}


def build_missing(ctx: Context) -> dict[str, bytes]:
    return {"notes.txt": b"I could not finish the notebook.\n"}


def _stall_code(ctx: Context) -> str:
    return (
        "import signal as _signal, time as _time\n"
        "# like a C extension that never checks for interrupts\n"
        "_signal.pthread_sigmask(_signal.SIG_BLOCK, {_signal.SIGINT})\n"
        f"_time.sleep({float(ctx.stall_s)!r})\n"
        "_signal.pthread_sigmask(_signal.SIG_UNBLOCK, {_signal.SIGINT})\n")


CASES = (
    BadCase("infinite_loop", "an infinite loop in the first answer",
            lambda ctx: _prepend(ctx, "while True:\n    pass\n"), lambda ctx: Expectation(below_full=True)),
    BadCase("long_c_call", "a long call in C code that ignores interrupts",
            lambda ctx: _prepend(ctx, _stall_code(ctx)), lambda ctx: Expectation(below_full=True)),
    BadCase("import_error", "an exception on import in the first answer",
            lambda ctx: _prepend(ctx, "import kdcourse_no_such_module\n"), lambda ctx: Expectation(below_full=True)),
    BadCase("os_exit", "os._exit() in a cell kills the kernel",
            lambda ctx: _prepend(ctx, "import os\nos._exit(3)\n"), lambda ctx: Expectation(score=0.0, flagged=True)),
    BadCase("invalid_json", "the notebook file is cut in half (invalid JSON)",
            build_invalid_json, lambda ctx: Expectation(score=0.0, flagged=True)),
    BadCase("renamed_notebook", "the full solution saved under another name",
            build_renamed, lambda ctx: Expectation(score=ctx.auto_points)),
    BadCase("missing_notebook", "no notebook in the submission",
            build_missing, lambda ctx: Expectation(score=0.0, flagged=True)),
    BadCase("deleted_test_cell", "the full solution with its first test cell deleted",
            build_deleted_test_cell, lambda ctx: Expectation(score=ctx.auto_points)),
    BadCase("edited_locked_tests", "the blank notebook with every test cell replaced by `pass`",
            build_edited_tests, lambda ctx: Expectation(score=0.0)),
    BadCase("changed_points", "the full solution with the points of every test cell multiplied by 100",
            build_changed_points, lambda ctx: Expectation(score=ctx.auto_points)),
    BadCase("monkeypatched_checker", "a wrong answer plus numpy/torch comparison functions replaced",
            lambda ctx: _prepend(ctx, MONKEYPATCH, base=ctx.wrong if ctx.wrong is not None else ctx.blank),
            # replacing the comparison functions gains nothing; where it makes a function's code impossible
            # to follow (it reaches sys.modules), that item scores 0 (fails closed) and a person looks
            lambda ctx: Expectation(at_most=ctx.wrong_score if ctx.wrong is not None else 0.0, flagged=True)),
    BadCase("always_equal", "every answer replaced by an object equal and close to everything",
            build_always_equal, lambda ctx: Expectation(score=0.0)),
    BadCase("flood_output", "the full solution printing 100,000 lines",
            lambda ctx: _prepend(ctx, "for _i in range(100_000):\n    print('line', _i)\n"),
            lambda ctx: Expectation(score=ctx.auto_points)),
    BadCase("stderr_warning", "the full solution whose functions warn on stderr",
            build_stderr_warning, lambda ctx: Expectation(score=ctx.auto_points)),
)


def case_names() -> list[str]:
    return [case.name for case in CASES]
