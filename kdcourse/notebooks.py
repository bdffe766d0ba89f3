"""What kdcourse knows about notebook files and nbgrader's marks in them, in one place.

* the instructor-only marks: ``### BEGIN SOLUTION`` … ``### END SOLUTION``, hidden-test and mark-scheme
  blocks, and the "Mark scheme" paragraph that follows a written answer's model answer;
* nbgrader's cell metadata (``cell.metadata.nbgrader``): graded, solution, locked and task cells, points;
* the model answer a student would hand in for a solution cell;
* the text a cell's outputs show (streams, errors, rich data), for messages and leak scans;
* where the repository keeps its lecture and assignment notebooks.

Nothing here starts a kernel (see :mod:`kdcourse.execution`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BEGIN_SOLUTION", "END_SOLUTION", "BEGIN_HIDDEN", "END_HIDDEN", "MARKERS", "BLOCK_KINDS",
    "GradedCell", "read_notebook", "write_notebook", "notebook_bytes", "nbgrader_meta", "graded_cells",
    "solution_cells", "notebook_points", "is_marker_line", "strip_markers", "model_answer",
    "starts_mark_scheme", "block_kind_of_lines", "output_texts", "cell_output_text", "cell_errors",
    "list_lectures", "assignment_sources", "list_assignments", "list_notebooks",
]

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
#: Marker words that must never reach a student (release notebooks, feedback).
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS",
           "BEGIN MARK SCHEME", "END MARK SCHEME")
#: The instructor-only block kinds and the words that open and close them.
BLOCK_KINDS = {
    "solution": ("BEGIN SOLUTION", "END SOLUTION"),
    "hidden test": ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS"),
    "mark scheme": ("BEGIN MARK SCHEME", "END MARK SCHEME"),
}

_ASSIGNMENT_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_MARKER_LINE = re.compile(r"^\s*(###|===)\s*(BEGIN|END)\s+(SOLUTION|HIDDEN TESTS|MARK SCHEME)\s*(###|===)?\s*$")
_MARK_SCHEME_PARAGRAPH = re.compile(r"^\s*Mark scheme\b", re.IGNORECASE)


# --- files -----------------------------------------------------------------------------------------


def read_notebook(path: str | Path) -> Any:
    """Read a notebook (nbformat 4) from ``path``."""
    import nbformat

    return nbformat.read(str(path), as_version=4)


def notebook_bytes(nb: Any) -> bytes:
    """The notebook as the UTF-8 bytes of its JSON file (with the final newline Jupyter writes)."""
    import nbformat

    return (nbformat.writes(nb) + "\n").encode("utf-8")


def write_notebook(nb: Any, path: str | Path) -> Path:
    """Write ``nb`` to ``path`` and return the path."""
    path = Path(path)
    path.write_bytes(notebook_bytes(nb))
    return path


# --- nbgrader cell metadata --------------------------------------------------------------------


def nbgrader_meta(cell: Any) -> dict:
    """The cell's ``metadata.nbgrader`` dict (empty for a plain cell)."""
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


@dataclass(frozen=True)
class GradedCell:
    """A cell with nbgrader metadata: its index, the cell and the metadata dict."""

    index: int
    cell: Any
    meta: dict

    @property
    def grade_id(self) -> str:
        return self.meta.get("grade_id", "")

    @property
    def is_test(self) -> bool:
        """An autograded test cell: a graded code cell that is not a solution."""
        return bool(self.meta.get("grade")) and not self.meta.get("solution") and self.cell.cell_type == "code"

    @property
    def is_written_answer(self) -> bool:
        """A manually graded answer: a graded markdown solution cell, or a task cell."""
        return bool(self.meta.get("task")) or (bool(self.meta.get("grade")) and bool(self.meta.get("solution"))
                                               and self.cell.cell_type == "markdown")

    @property
    def points(self) -> float:
        return float(self.meta.get("points", 0) or 0)


def graded_cells(nb: Any) -> Iterator[GradedCell]:
    """Every cell that carries nbgrader metadata, in order."""
    for index, cell in enumerate(nb.cells):
        meta = nbgrader_meta(cell)
        if meta:
            yield GradedCell(index, cell, meta)


def solution_cells(nb: Any) -> dict[str, Any]:
    """``grade_id -> cell`` of every solution cell."""
    return {g.grade_id: g.cell for g in graded_cells(nb) if g.meta.get("solution")}


def notebook_points(nb: Any) -> tuple[float, float]:
    """``(total points, manually graded points)`` of a notebook's graded and task cells."""
    total = manual = 0.0
    for graded in graded_cells(nb):
        if graded.meta.get("grade") or graded.meta.get("task"):
            total += graded.points
            if graded.is_written_answer:
                manual += graded.points
    return total, manual


# --- instructor-only marks ---------------------------------------------------------------------------


def is_marker_line(line: str) -> bool:
    """True for a BEGIN/END line of a solution, hidden-test or mark-scheme block."""
    return bool(_MARKER_LINE.match(line))


def strip_markers(source: str) -> str:
    """``source`` without its BEGIN/END marker lines (the text between them is kept)."""
    return "\n".join(line for line in source.splitlines() if not is_marker_line(line)).strip("\n") + "\n"


def starts_mark_scheme(line: str) -> bool:
    """True for the first line of a written answer's "Mark scheme" paragraph."""
    return bool(_MARK_SCHEME_PARAGRAPH.match(line))


def model_answer(source: str) -> str:
    """A written answer as a student would hand it in: the text before its "Mark scheme" paragraph."""
    kept = []
    for line in source.splitlines():
        if starts_mark_scheme(line):
            break
        kept.append(line)
    return "\n".join(kept).strip("\n") + "\n"


def block_kind_of_lines(source: str) -> Iterator[tuple[str, str | None]]:
    """``(line, kind)`` for every line of ``source`` that is not a marker; ``kind`` is the instructor-only
    block the line sits in (``"solution"``, ``"hidden test"``, ``"mark scheme"``) or ``None``.

    Inside a solution block, the "Mark scheme" paragraph and what follows it count as mark scheme.
    """
    current = None
    for raw in source.splitlines():
        opened = [kind for kind, (start, _) in BLOCK_KINDS.items() if start in raw]
        closed = [kind for kind, (_, end) in BLOCK_KINDS.items() if end in raw]
        if opened:
            current = opened[0]
            continue
        if closed:
            current = None
            continue
        if current == "solution" and starts_mark_scheme(raw):
            current = "mark scheme"
        yield raw, current


# --- outputs -------------------------------------------------------------------------------------------


def output_texts(output: Any) -> list[str]:
    """The texts one output shows: a stream's text, an error's name and value, rich data's plain text."""
    kind = output.get("output_type")
    if kind == "stream":
        text = output.get("text", "")
        return ["".join(text) if isinstance(text, list) else text]
    if kind == "error":
        return [f"{output.get('ename', '')}: {output.get('evalue', '')}"]
    data = output.get("data", {}) or {}
    texts = []
    for mime in ("text/plain", "text/markdown", "text/html"):
        value = data.get(mime)
        if value:
            texts.append("".join(value) if isinstance(value, list) else str(value))
    return texts


def cell_output_text(cell: Any) -> str:
    """Everything a code cell's outputs show, one output after another."""
    return "\n".join(text for output in cell.get("outputs", []) for text in output_texts(output))


def cell_errors(nb: Any) -> list[dict[str, Any]]:
    """``[{"cell": index, "grade_id": ..., "ename": ..., "evalue": ...}]`` for every error output."""
    errors = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                errors.append({"cell": index, "grade_id": nbgrader_meta(cell).get("grade_id", ""),
                               "ename": output.get("ename", ""), "evalue": output.get("evalue", "")})
    return errors


# --- where the repository keeps its notebooks ------------------------------------------------------


def _repo(root: Path | None) -> Path:
    from kdcourse.paths import find_repo_root

    return Path(root) if root is not None else find_repo_root()


def list_lectures(root: Path | None = None) -> list[Path]:
    """Lecture notebooks ``notebooks/lectures/*.ipynb`` of the repository at ``root``, sorted."""
    base = _repo(root) / "notebooks" / "lectures"
    return sorted(p for p in base.glob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def assignment_sources(source_dir: Path) -> list[Path]:
    """The assignment source notebooks ``<source_dir>/<aid>/<aid>.ipynb``, sorted: the one rule that says
    which folders are assignments (an id of letters, digits, ``_`` and ``-``, named like its notebook)."""
    return sorted(p for p in Path(source_dir).glob("*/*.ipynb")
                  if p.stem == p.parent.name and _ASSIGNMENT_ID.match(p.stem))


def list_assignments(root: Path | None = None) -> list[Path]:
    """Assignment sources ``notebooks/assignments/<aid>/<aid>.ipynb`` of the repository, sorted."""
    return assignment_sources(_repo(root) / "notebooks" / "assignments")


def list_notebooks(root: Path | None = None) -> list[Path]:
    """Every lecture and assignment source notebook."""
    return list_lectures(root) + list_assignments(root)
