"""An assignment as the gradebook defines it -- its notebooks, graded cells and locked sources -- as plain
data, and back into another gradebook.

``kdcourse release`` records every graded, solution, task and locked cell of an assignment in the
gradebook; autograding restores deleted or edited cells from there and scores against it. A cluster worker
grades in a private gradebook that holds a copy of this definition (read here from the instructor's
gradebook, never rebuilt from the sources), so it restores and scores exactly as a local run would.

The cells of each kind are kept in the order the gradebook lists them: nbgrader puts a deleted cell back
after the cell that precedes it in that order.
"""

from __future__ import annotations

from typing import Any

__all__ = ["read_definition", "write_definition"]


def read_definition(gb, assignment: str) -> dict[str, Any]:
    """The definition of ``assignment`` in an open nbgrader ``Gradebook``, as JSON-ready plain data.

    Returns
    -------
    dict
        ``{"duedate": ISO text or None, "notebooks": [{"name", "kernelspec", "grade_cells",
        "solution_cells", "task_cells", "source_cells"}, ...]}``; each cell a dict of its columns.

    Raises
    ------
    nbgrader.api.MissingEntry
        ``assignment`` is not in the gradebook.
    """
    found = gb.find_assignment(assignment)
    notebooks = []
    for notebook in found.notebooks:
        notebooks.append({
            "name": notebook.name,
            "kernelspec": notebook.kernelspec,
            "grade_cells": [{"name": c.name, "max_score": float(c.max_score), "cell_type": c.cell_type}
                            for c in notebook.grade_cells],
            "solution_cells": [{"name": c.name} for c in notebook.solution_cells],
            "task_cells": [{"name": c.name, "max_score": float(c.max_score), "cell_type": c.cell_type}
                           for c in notebook.task_cells],
            "source_cells": [{"name": c.name, "cell_type": c.cell_type, "locked": bool(c.locked),
                              "source": c.source, "checksum": c.checksum} for c in notebook.source_cells],
        })
    return {"duedate": found.duedate.isoformat() if found.duedate else None, "notebooks": notebooks}


def write_definition(gb, assignment: str, definition: dict[str, Any]) -> None:
    """Create ``assignment`` in an open (normally empty) ``Gradebook`` from :func:`read_definition`'s data."""
    import datetime as dt

    from nbgrader.api import (
        Assignment,
        GradeCell,
        Notebook,
        SolutionCell,
        SourceCell,
        TaskCell,
    )

    duedate = dt.datetime.fromisoformat(definition["duedate"]) if definition.get("duedate") else None
    row = Assignment(name=assignment, duedate=duedate, course_id=gb.course_id)
    gb.db.add(row)
    for entry in definition["notebooks"]:
        notebook = Notebook(name=entry["name"], assignment=row, kernelspec=entry.get("kernelspec"))
        gb.db.add(notebook)
        for cell in entry["grade_cells"]:
            gb.db.add(GradeCell(notebook=notebook, **cell))
        for cell in entry["solution_cells"]:
            gb.db.add(SolutionCell(notebook=notebook, **cell))
        for cell in entry["task_cells"]:
            gb.db.add(TaskCell(notebook=notebook, **cell))
        for cell in entry["source_cells"]:
            gb.db.add(SourceCell(notebook=notebook, **cell))
    gb.db.commit()
