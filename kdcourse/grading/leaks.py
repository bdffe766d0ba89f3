"""Find instructor-only text (solutions, hidden tests, mark schemes) in files meant for students."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS",
           "BEGIN MARK SCHEME", "END MARK SCHEME")
_BLOCKS = {
    "solution": (re.compile(r"BEGIN SOLUTION"), re.compile(r"END SOLUTION")),
    "hidden test": (re.compile(r"BEGIN HIDDEN TESTS"), re.compile(r"END HIDDEN TESTS")),
    "mark scheme": (re.compile(r"BEGIN MARK SCHEME"), re.compile(r"END MARK SCHEME")),
}
_MARK_SCHEME_PARAGRAPH = re.compile(r"Mark scheme\b", re.IGNORECASE)
MIN_LINE = 12  # shorter lines ("return x", "else:") are too common to mean anything


def secret_lines(source_notebook: Path, kinds=("solution", "hidden test", "mark scheme")) -> dict[str, str]:
    """Lines of ``source_notebook`` that only occur inside instructor-only blocks: ``{line: kind}``.

    Inside a solution block, a paragraph that starts with "Mark scheme" and everything after it count
    as mark scheme, not solution.
    """
    nb = nbformat.read(str(source_notebook), as_version=4)
    inside: dict[str, str] = {}
    outside: set[str] = set()
    for cell in nb.cells:
        current = None
        for raw in cell.source.splitlines():
            line = raw.strip()
            opened = [k for k, (start, _) in _BLOCKS.items() if start.search(line)]
            closed = [k for k, (_, end) in _BLOCKS.items() if end.search(line)]
            if opened:
                current = opened[0]
                continue
            if closed:
                current = None
                continue
            if current == "solution" and _MARK_SCHEME_PARAGRAPH.match(line):
                current = "mark scheme"  # a written answer's mark scheme follows its model answer
            if len(line) < MIN_LINE:
                continue
            if current is None:
                outside.add(line)
            elif current in kinds:
                inside.setdefault(line, current)
    return {line: kind for line, kind in inside.items() if line not in outside}


def find_leaks(text: str, secrets: dict[str, str]) -> list[str]:
    """Descriptions of every marker in ``text`` and every secret that stands as a whole line of it.

    Lines are compared whole (stripped), so a short secret such as ``loss.backward()`` that the
    student version quotes inside a sentence is not mistaken for a leak.
    """
    found = [f"marker {m!r}" for m in MARKERS if m in text]
    lines = {raw.strip() for raw in text.splitlines()}
    found += [f"{kind} line {line!r}" for line, kind in secrets.items() if line in lines]
    return found


def notebook_text(path: Path) -> str:
    """The sources of every cell of a notebook, one after another, for leak scans."""
    nb = nbformat.read(str(path), as_version=4)
    return "\n".join(cell.source for cell in nb.cells)


def html_text(html: str) -> str:
    """Visible text of an HTML page (tags dropped, entities decoded) for leak scans."""
    import html as html_module

    return html_module.unescape(re.sub(r"<[^>]+>", "", html))
