"""Helpers shared by the notebook tests, the benchmarks and the grading tools.

* :func:`list_notebooks` finds the lecture notebooks and the assignment source notebooks;
* :func:`execute_notebook` runs one in a fresh kernel with a timeout and reports the wall time;
* :func:`load_assignment_config` / :func:`assignment_configs` read ``grading/assignments/<aid>.toml``;
* :func:`nbgrader_cells`, :func:`notebook_points` and :func:`solution_text` read the nbgrader metadata;
* :func:`cell_errors` lists the errors an executed notebook recorded.
"""

from __future__ import annotations

import copy
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
LECTURES_DIR = NOTEBOOKS_DIR / "lectures"
ASSIGNMENTS_DIR = NOTEBOOKS_DIR / "assignments"
GRADING_DIR = REPO_ROOT / "grading"
ASSIGNMENT_CONFIG_DIR = GRADING_DIR / "assignments"

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"


def list_lectures(root: Path | None = None) -> list[Path]:
    """Lecture notebooks ``notebooks/lectures/*.ipynb``, sorted by name."""
    base = Path(root) / "notebooks" / "lectures" if root else LECTURES_DIR
    return sorted(p for p in base.glob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def list_assignments(root: Path | None = None) -> list[Path]:
    """Assignment source notebooks ``notebooks/assignments/<aid>/<aid>.ipynb``, sorted by name."""
    base = Path(root) / "notebooks" / "assignments" if root else ASSIGNMENTS_DIR
    return sorted(
        p for p in base.glob("*/*.ipynb") if ".ipynb_checkpoints" not in p.parts and p.stem == p.parent.name
    )


def list_notebooks(root: Path | None = None) -> list[Path]:
    """Every lecture and assignment source notebook."""
    return list_lectures(root) + list_assignments(root)


def notebook_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a notebook kernel: headless plots, no progress bars, one torch thread,
    and the venv's ``bin/`` first on ``PATH`` (nbgrader shells out to ``alembic``)."""
    env = dict(os.environ)
    env.setdefault("MPLBACKEND", "Agg")
    env.setdefault("KDCOURSE_PROGRESS", "0")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if extra:
        env.update(extra)
    return env


@dataclass
class ExecutionResult:
    """An executed notebook, its wall time (kernel start included) and the errors its cells raised."""

    notebook: Any
    seconds: float
    errors: list[dict[str, str]]


def execute_notebook(
    path: str | Path,
    timeout: float = 600,
    cwd: str | Path | None = None,
    allow_errors: bool = False,
    kernel_name: str = "python3",
    env: dict[str, str] | None = None,
    notebook: Any | None = None,
) -> ExecutionResult:
    """Run a notebook top to bottom in a fresh kernel.

    ``timeout`` is the per-cell hang guard in seconds. With ``allow_errors=False`` the first error
    raises ``nbclient.exceptions.CellExecutionError``; with ``True`` execution continues and the
    errors are listed in the result. ``notebook`` (a NotebookNode) is run instead of reading
    ``path``; ``path`` then only names the working directory (``cwd`` defaults to its folder).
    """
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = copy.deepcopy(notebook) if notebook is not None else nbformat.read(str(path), as_version=4)
    workdir = Path(cwd) if cwd else path.parent
    client = NotebookClient(
        nb,
        timeout=timeout,
        startup_timeout=max(60, int(timeout)),
        iopub_timeout=60,
        kernel_name=kernel_name,
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(workdir)}},
    )
    start = time.perf_counter()
    client.execute(env=notebook_env(env))  # keyword arguments reach the kernel manager
    seconds = time.perf_counter() - start
    return ExecutionResult(nb, seconds, cell_errors(nb))


def cell_errors(nb: Any) -> list[dict[str, str]]:
    """``[{"cell": index, "grade_id": ..., "ename": ..., "evalue": ...}]`` for every error output."""
    errors = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                errors.append(
                    {
                        "cell": index,
                        "grade_id": cell.metadata.get("nbgrader", {}).get("grade_id", ""),
                        "ename": output.get("ename", ""),
                        "evalue": output.get("evalue", ""),
                    }
                )
    return errors


def nbgrader_cells(nb: Any) -> Iterable[tuple[int, Any, dict]]:
    """``(index, cell, nbgrader metadata)`` for every cell that carries nbgrader metadata."""
    for index, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader")
        if meta is not None:
            yield index, cell, meta


def notebook_points(nb: Any) -> tuple[float, float]:
    """``(total points, manually graded points)`` of a source notebook's graded cells.

    Manually graded: markdown answer cells (grade and solution) and task cells.
    """
    total = manual = 0.0
    for _, cell, meta in nbgrader_cells(nb):
        if meta.get("grade") or meta.get("task"):
            points = float(meta.get("points", 0) or 0)
            total += points
            if meta.get("task") or (meta.get("solution") and cell.cell_type == "markdown"):
                manual += points
    return total, manual


def solution_text(source: str) -> str:
    """The solution version of a cell: the source with the solution markers dropped."""
    return "\n".join(
        line for line in source.split("\n") if BEGIN_SOLUTION not in line and END_SOLUTION not in line
    )


def autograde_score(nb: Any) -> tuple[float, dict[str, float]]:
    """Score an executed notebook the way nbgrader does for autograded cells.

    A graded code cell earns its points when it recorded no error, else 0 (test cells never end
    with an expression in this course, so nbgrader's "last value is the score" rule never applies).
    Returns the total and the score per ``grade_id``.
    """
    scores: dict[str, float] = {}
    for _, cell, meta in nbgrader_cells(nb):
        if cell.cell_type == "code" and meta.get("grade"):
            failed = any(
                o.get("output_type") == "error" or (o.get("output_type") == "stream" and o.get("name") == "stderr")
                for o in cell.get("outputs", [])
            )
            scores[meta["grade_id"]] = 0.0 if failed else float(meta.get("points", 0))
    return sum(scores.values()), scores


def cell_messages(nb: Any, grade_ids: Iterable[str] | None = None) -> str:
    """All text output (streams and error names/values) of the graded cells, joined."""
    wanted = set(grade_ids) if grade_ids is not None else None
    chunks = []
    for _, cell, meta in nbgrader_cells(nb):
        if cell.cell_type != "code" or (wanted is not None and meta.get("grade_id") not in wanted):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                chunks.append(output.get("text", ""))
            elif output.get("output_type") == "error":
                chunks.append(f"{output.get('ename', '')}: {output.get('evalue', '')}")
    return "\n".join(chunks)


def solution_notebook(source_nb: Any, replace: dict[str, str] | None = None) -> Any:
    """The source notebook with every solution filled in and, optionally, some cells replaced.

    ``replace`` maps a solution cell's ``grade_id`` to its new full source (a misconception
    submission). Hidden tests stay in place, as after nbgrader's autograde.
    """
    nb = copy.deepcopy(source_nb)
    replace = dict(replace or {})
    for _, cell, meta in nbgrader_cells(nb):
        grade_id = meta.get("grade_id")
        if grade_id in replace:
            cell.source = replace.pop(grade_id)
        elif meta.get("solution"):
            cell.source = solution_text(cell.source)
    if replace:
        raise KeyError(f"no solution cell with grade_id {sorted(replace)}")
    return nb


def load_assignment_config(assignment_id: str, root: Path | None = None) -> dict[str, Any]:
    """Read ``grading/assignments/<assignment_id>.toml`` (points, budget, misconceptions)."""
    base = Path(root) / "grading" / "assignments" if root else ASSIGNMENT_CONFIG_DIR
    path = base / f"{assignment_id}.toml"
    if not path.exists():
        raise FileNotFoundError(f"no instructor file for assignment {assignment_id!r}: expected {path}")
    with open(path, "rb") as handle:
        config = tomllib.load(handle)
    config.setdefault("misconception", [])
    config["assignment_id"] = assignment_id
    return config


def assignment_configs(root: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every ``grading/assignments/*.toml``, keyed by assignment id."""
    base = Path(root) / "grading" / "assignments" if root else ASSIGNMENT_CONFIG_DIR
    return {p.stem: load_assignment_config(p.stem, root) for p in sorted(base.glob("*.toml"))}
