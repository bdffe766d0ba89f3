"""Find instructor-only text (solutions, hidden tests, mark schemes) in files meant for students.

Two scans, for two kinds of file:

* a **release** notebook is made by nbgrader from the source alone: :func:`secret_lines` and
  :func:`find_leaks` compare whole stripped lines (a short secret quoted inside a sentence of the student
  version is no leak) and flag every marker word;
* a **feedback** page also shows whatever the student printed, so a secret can stand anywhere in a line:
  :func:`feedback_secrets`, :func:`page_lines` and :func:`find_contained_leaks` compare by containment,
  after normalising whitespace and invisible characters, the text and the attribute values of the page.
"""

from __future__ import annotations

import re
from pathlib import Path

from kdcourse.notebooks import MARKERS, block_kind_of_lines, read_notebook

MIN_LINE = 12  # shorter lines ("return x", "else:") are too common to mean anything


def secret_lines(source_notebook: Path, kinds=("solution", "hidden test", "mark scheme")) -> dict[str, str]:
    """Lines of ``source_notebook`` that only occur inside instructor-only blocks: ``{line: kind}``.

    Inside a solution block, a paragraph that starts with "Mark scheme" and everything after it count
    as mark scheme, not solution.
    """
    nb = read_notebook(source_notebook)
    inside: dict[str, str] = {}
    outside: set[str] = set()
    for cell in nb.cells:
        for raw, current in block_kind_of_lines(cell.source):
            line = raw.strip()
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
    return "\n".join(cell.source for cell in read_notebook(path).cells)


def html_text(html: str) -> str:
    """Visible text of an HTML page (tags dropped, entities decoded); feedback scans use :func:`page_lines`."""
    import html as html_module

    return html_module.unescape(re.sub(r"<[^>]+>", "", html))


# --- feedback pages -------------------------------------------------------------------------------------

#: A secret line shorter than this (whitespace-normalised) is too common to mean anything in a page that
#: also shows the student's own code and output.
MIN_FEEDBACK_SECRET = 20
#: The instructor-only kinds a feedback page must not contain. Solutions are not among them: a student who
#: wrote the right line, or the model answer, sees their own work.
FEEDBACK_SECRET_KINDS = ("hidden test", "mark scheme")


def normalise_text(text: str) -> str:
    """``text`` in NFKC form, without invisible format characters (zero-width spaces and joiners, bidi
    controls), every run of whitespace one space, stripped: what two texts must share to read the same."""
    import unicodedata

    text = unicodedata.normalize("NFKC", str(text))
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    return " ".join(text.split())


def feedback_secrets(source_notebook: Path, min_length: int = MIN_FEEDBACK_SECRET) -> dict[str, str]:
    """The instructor-only lines of ``source_notebook`` that no feedback page may contain: ``{line: kind}``,
    each line whitespace-normalised (:func:`normalise_text`) and at least ``min_length`` characters.

    Kinds: ``"hidden test"`` (hidden-test blocks) and ``"mark scheme"`` (mark-scheme blocks and the
    "Mark scheme" paragraph of a written answer). Solutions and model answers are not among them: a
    student's page shows the student's own answers, and a student who wrote the model answer reads their
    own words. A line that also stands outside every instructor-only block (students see it) is no secret.
    """
    nb = read_notebook(source_notebook)
    inside: dict[str, str] = {}
    outside: set[str] = set()
    for cell in nb.cells:
        for raw, current in block_kind_of_lines(cell.source):
            line = normalise_text(raw)
            if len(line) < min_length:
                continue
            if current is None:
                outside.add(line)
            elif current == "solution":
                continue
            else:
                inside.setdefault(line, current)
    return {line: kind for line, kind in inside.items() if line not in outside}


def page_lines(html: str) -> list[str]:
    """The text of an HTML page for leak scans, line by line and normalised: its text (tags dropped,
    entities decoded, so a line split by highlighting spans reads whole) and, one per line, the value of
    every attribute (text a student can hide in ``title`` or ``alt``)."""
    from html.parser import HTMLParser

    texts: list[str] = []
    attributes: list[str] = []

    class _Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            attributes.extend(value for _, value in attrs if value)

        def handle_startendtag(self, tag, attrs):
            self.handle_starttag(tag, attrs)

        def handle_data(self, data):
            texts.append(data)

    parser = _Collect(convert_charrefs=True)
    parser.feed(str(html))
    parser.close()
    lines = "".join(texts).splitlines() + [line for value in attributes for line in value.splitlines()]
    return [normal for normal in (normalise_text(line) for line in lines) if normal]


def find_contained_leaks(lines: list[str], secrets: dict[str, str]) -> list[str]:
    """Descriptions of every secret (normalised, from :func:`feedback_secrets`) that some line of
    ``lines`` (normalised, from :func:`page_lines`) contains, whatever stands before or after it."""
    text = "\n".join(lines)
    return [f"{kind} line {line!r}" for line, kind in secrets.items() if line in text]


def marker_counts(text: str) -> dict[str, int]:
    """How often each of :data:`~kdcourse.notebooks.MARKERS` occurs in ``text`` (normalised)."""
    normal = normalise_text(text)
    return {marker: normal.count(marker) for marker in MARKERS if marker in normal}
