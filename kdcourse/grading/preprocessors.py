"""nbgrader preprocessors added by kdcourse.

``StderrAsStdout`` runs right after execution during autograding. nbgrader scores a test cell 0 as soon
as anything reaches stderr (``nbgrader.utils.determine_grade``), so a correct answer whose library call
emits a ``UserWarning`` or a progress bar would lose its points. Our test cells signal failure only by
raising (``WrongAnswer``/``AssertionError``), so stderr text in a graded test cell is informational: it
is kept, marked ``[stderr]``, and moved to stdout where it no longer decides the score.
"""

from __future__ import annotations

from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader import utils


class StderrAsStdout(NbGraderPreprocessor):
    """Turn stderr stream outputs of autograded test cells into stdout outputs (text kept)."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "stream" and output.get("name") == "stderr":
                    output["name"] = "stdout"
                    text = output.get("text", "")
                    if isinstance(text, list):
                        text = "".join(text)
                    output["text"] = "".join(f"[stderr] {line}" for line in text.splitlines(keepends=True))
        return cell, resources
