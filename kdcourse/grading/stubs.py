"""Release stubs that say what to write: ``raise NotImplementedError("write kl_divergence ...")``.

nbgrader replaces every solution region of a release by one stub, by default a bare
``raise NotImplementedError()``; a student who runs the cell learns only that something is missing.
:class:`NamedStubs` replaces a region with a stub that names its exercise:

* inside a function (the region is indented below a ``def name(...)`` line), the function:
  ``raise NotImplementedError("write the body of kl_divergence here, in place of this line")``;
* at the top level of a cell, the answer variables the cell sets to ``None`` above the region:
  ``raise NotImplementedError("set kl_A, kl_B, kl_C and best_replica here, in place of this line")``.

A written-answer (markdown) cell keeps nbgrader's text stub.
"""

from __future__ import annotations

import re

from nbgrader.preprocessors import ClearSolutions

__all__ = ["NamedStubs", "stub_for"]

_DEF = re.compile(r"^(?P<indent>\s*)(?:async\s+)?def\s+(?P<name>[A-Za-z_]\w*)\s*\(")
_PLACEHOLDERS = re.compile(r"^(?P<names>[A-Za-z_]\w*(?:\s*=\s*[A-Za-z_]\w*)*)\s*=\s*None\b")


def _joined(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def stub_for(lines_above: list[str], indent: str) -> str:
    """The stub line (without indentation) for a solution region starting after ``lines_above``.

    Parameters
    ----------
    lines_above : list of str
        The cell's lines before the region's ``### BEGIN SOLUTION`` line.
    indent : str
        The indentation of that line.
    """
    for line in reversed(lines_above):
        match = _DEF.match(line)
        if match and len(match.group("indent")) < len(indent):
            name = match.group("name")
            return f'raise NotImplementedError("write the body of {name} here, in place of this line")'
    if not indent:
        names: list[str] = []
        for line in lines_above:
            match = _PLACEHOLDERS.match(line)
            if match:
                names += [n.strip() for n in match.group("names").split("=") if n.strip() not in names]
        if names:
            return f'raise NotImplementedError("set {_joined(names)} here, in place of this line")'
    return 'raise NotImplementedError("write your answer here, in place of this line")'


class NamedStubs(ClearSolutions):
    """:class:`nbgrader.preprocessors.ClearSolutions` with stubs that name the exercise (see the module)."""

    def _replace_solution_region(self, cell, language: str) -> bool:
        if cell.cell_type != "code":
            return super()._replace_solution_region(cell, language)
        lines = cell.source.split("\n")
        new_lines: list[str] = []
        in_solution = replaced = False
        for line in lines:
            if self.begin_solution_delimeter in line:
                if in_solution:
                    raise RuntimeError("encountered nested begin solution statements")
                in_solution = replaced = True
                indent = re.match(r"\s*", line).group(0)
                new_lines.append(indent + "# YOUR CODE HERE")
                new_lines.append(indent + stub_for(new_lines, indent))
            elif self.end_solution_delimeter in line:
                in_solution = False
            elif not in_solution:
                new_lines.append(line)
        if in_solution:
            raise RuntimeError("no end solution statement found")
        cell.source = "\n".join(new_lines)
        return replaced
