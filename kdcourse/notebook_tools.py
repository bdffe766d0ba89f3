"""Helpers shared by the notebook tests and the notebook benchmark.

* :func:`list_notebooks` finds the lecture notebooks and the assignment source notebooks;
* :func:`execute_notebook` runs one in a fresh kernel with a timeout and reports the wall time;
* :func:`nbgrader_cells` and :func:`notebook_points` read the nbgrader metadata;
* :func:`cell_errors` lists the errors an executed notebook recorded.

Instructor files (``grading/assignments/<aid>.toml``), releases, simulated submissions and scores
belong to :mod:`kdcourse.grading` (``Course.spec``, ``release``, ``submissions``, ``scores``).
"""

from __future__ import annotations

import copy
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
LECTURES_DIR = NOTEBOOKS_DIR / "lectures"
ASSIGNMENTS_DIR = NOTEBOOKS_DIR / "assignments"

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
