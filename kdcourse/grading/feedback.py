"""``kdcourse feedback``: HTML feedback per student, checked one page at a time before a student sees it.

nbgrader writes the pages (``generate_feedback``) with kdcourse's preprocessors:
:class:`~kdcourse.grading.sanitize.ProtectStudentMarkers` keeps marker words a student wrote from opening
blocks, ``ClearHiddenTests`` and ``ClearMarkScheme`` take the instructor-only blocks out,
:class:`~kdcourse.grading.sanitize.SanitizeStudentContent` makes what the student's cells printed or
displayed inert, and the grading kernels print tracebacks in ``Minimal`` mode. nbgrader is run once per
assignment; a page it cannot make fails only that student. Whatever a student prints, each page is then
checked on its own:

* **instructor-only text** -- no line of the page may contain a hidden-test line or a mark-scheme line
  (:func:`~kdcourse.grading.leaks.feedback_secrets`: lines of at least 20 characters, whitespace-normalised,
  compared by containment, in the page's text and attribute values). Solutions are not checked: a student
  who wrote the right line, or the model answer, sees their own work;
* **marker words** (``BEGIN HIDDEN TESTS`` ...) count only beyond what the student's own cells and outputs
  contain, so a student who prints them harms nobody (their page is kept);
* **active content** in the page body (``<script>``, frames, objects, forms, ``<meta>``, event handlers,
  ``javascript:`` URLs, fixed or absolute positioning): none may be left (it would mean the sanitiser is
  not in the feedback preprocessors).

A page that fails is replaced by a short notice (``feedback withheld: ... ask your instructor``) and
reported with the student and the reasons; the other students' pages are written. A student whose page
nbgrader could not make gets the notice too. Files in a feedback folder that are not a notebook's page
(copied by nbgrader from the autograded folder) are removed.
"""

from __future__ import annotations

import html as html_module
from dataclasses import dataclass, field
from pathlib import Path

from .adapter.api import checked, make_api
from .course import Course, Submission
from .leaks import feedback_secrets, find_contained_leaks, marker_counts, page_lines

__all__ = ["Withheld", "FeedbackReport", "feedback", "check_feedback_page", "student_marker_counts",
           "active_content", "withheld_notice"]

#: Tags that have no business in the body of a feedback page.
_ACTIVE_TAGS = {"script", "iframe", "frame", "frameset", "object", "embed", "applet", "form", "meta", "base",
                "link", "style", "template", "portal"}
_URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "data", "poster", "background"}
_KEPT_FILES = {"timestamp.txt"}


@dataclass(frozen=True)
class Withheld:
    """A feedback page replaced by a notice: whose, where, and why (for the instructor, not the student)."""

    submission: Submission
    path: Path
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.submission.student}/{self.submission.assignment}: " + "; ".join(self.reasons)


@dataclass
class FeedbackReport:
    """What ``kdcourse feedback`` wrote: ``written`` pages and ``withheld`` ones (now a notice each).

    Iterating over the report (or ``len``) goes over ``written``, as the list the command used to return.
    """

    written: list[Path] = field(default_factory=list)
    withheld: list[Withheld] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)

    def __iter__(self):
        return iter(self.written)

    def __len__(self) -> int:
        return len(self.written)


def withheld_notice(student_reason: str) -> str:
    """The page a student gets instead of feedback that failed a check: no content of theirs, no secret."""
    reason = html_module.escape(student_reason)
    return ("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\" />\n<title>Feedback withheld</title>\n"
            f"</head>\n<body>\n<p>Feedback withheld: {reason}. Please ask your instructor.</p>\n</body>\n</html>\n")


def student_marker_counts(notebook) -> dict[str, int]:
    """Marker words in what the student controls in an autograded notebook: every cell's outputs and the
    source of every cell that is not locked (nbgrader restores locked and test cells from the gradebook)."""
    counts: dict[str, int] = {}

    def add(text) -> None:
        text = "".join(text) if isinstance(text, list) else str(text)
        found = marker_counts(text)
        decoded = marker_counts("\n".join(page_lines(text))) if "<" in text or "&" in text else {}
        for marker in set(found) | set(decoded):
            counts[marker] = counts.get(marker, 0) + max(found.get(marker, 0), decoded.get(marker, 0))

    for cell in notebook.get("cells", []):
        meta = (cell.get("metadata", {}) or {}).get("nbgrader", {}) or {}
        instructor_cell = bool(meta.get("locked")) or (bool(meta.get("grade")) and not meta.get("solution"))
        if not instructor_cell:
            add(cell.get("source", ""))
        for output in cell.get("outputs", []) or []:
            if "text" in output:
                add(output["text"])
            add(output.get("ename", ""))
            add(output.get("evalue", ""))
            for line in output.get("traceback", []) or []:
                add(line)
            for value in (output.get("data", {}) or {}).values():
                add(value if isinstance(value, (str, list)) else "")
    return counts


def active_content(html: str) -> list[str]:
    """What in the ``<body>`` of a page could run or cover the page: script-like tags, event handlers,
    ``javascript:``/``vbscript:``/``data:text/html`` URLs, fixed/absolute/sticky positioning.

    A check of the sanitiser's result (with Python's HTML parser), not a sanitiser.
    """
    from html.parser import HTMLParser

    found: list[str] = []

    def positioned(css: str) -> bool:
        compact = "".join(css.lower().split())
        return any(f"position:{kind}" in compact for kind in ("fixed", "absolute", "sticky"))

    class _Scan(HTMLParser):
        in_body = False
        in_style = False

        def handle_starttag(self, tag, attrs):
            if tag == "body":
                self.in_body = True
                return
            if not self.in_body:
                return
            if tag in _ACTIVE_TAGS:
                found.append(f"<{tag}> element")
                self.in_style = tag == "style"
            for name, value in attrs:
                value = value or ""
                if name.startswith("on"):
                    found.append(f"{name}= handler on <{tag}>")
                elif name in _URL_ATTRIBUTES:
                    url = "".join(c for c in value if c > " ").lower()
                    if url.startswith(("javascript:", "vbscript:", "data:text/html")):
                        found.append(f"{url.split(':', 1)[0]}: URL in <{tag} {name}>")
                elif name == "style" and positioned(value):
                    found.append(f"positioned style on <{tag}>")
                elif name == "http-equiv":
                    found.append(f"http-equiv on <{tag}>")

        def handle_startendtag(self, tag, attrs):
            self.handle_starttag(tag, attrs)

        def handle_endtag(self, tag):
            if tag == "style":
                self.in_style = False

        def handle_data(self, data):
            if self.in_style and positioned(data):
                found.append("positioned rule in a <style> element")

    scanner = _Scan(convert_charrefs=True)
    scanner.feed(str(html))
    scanner.close()
    return list(dict.fromkeys(found))


def check_feedback_page(html: str, secrets: dict[str, str], allowed_markers: dict[str, int] | None = None
                        ) -> list[tuple[str, str]]:
    """Problems of one feedback page: ``[(reason for the instructor, reason for the student)]``, empty if
    the page may go out.

    Parameters
    ----------
    html : str
        The page nbgrader wrote.
    secrets : dict
        ``{normalised line: kind}`` from :func:`~kdcourse.grading.leaks.feedback_secrets`.
    allowed_markers : dict, optional
        Marker words the student's own content contains (:func:`student_marker_counts`); more of them in
        the page means instructor-only blocks were not cleared.
    """
    problems = []
    lines = page_lines(html)
    for leak in find_contained_leaks(lines, secrets):
        problems.append((f"contains a {leak[:160]}", "it contained instructor-only text"))
    allowed = allowed_markers or {}
    for marker, count in marker_counts("\n".join(lines)).items():
        if count > allowed.get(marker, 0):
            problems.append((f"marker {marker!r} {count} time(s), the student's own content has it "
                             f"{allowed.get(marker, 0)} time(s)", "it contained instructor-only text"))
    for item in active_content(html):
        problems.append((f"active content left in the page: {item}", "it contained content that could not be "
                                                                    "shown safely"))
    return problems


def _notebook_pages(course: Course, submission: Submission) -> list[Path]:
    """The pages nbgrader makes for a submission: one ``<notebook>.html`` per autograded notebook."""
    autograded = course.folder("autograded", submission)
    return [course.folder("feedback", submission) / f"{nb.stem}.html" for nb in sorted(autograded.glob("*.ipynb"))]


def _read_autograded(path: Path):
    from kdcourse.notebooks import read_notebook

    try:
        return read_notebook(path)
    except Exception:  # noqa: BLE001 - an unreadable notebook allows no marker words, nothing else changes
        return {"cells": []}


def feedback(course: Course, assignments=None, api=None, log=print) -> FeedbackReport:
    """Generate and check the feedback of every autograded submission of ``assignments`` (all by default).

    Returns a :class:`FeedbackReport`. Raises GradingError only when nbgrader fails for a whole assignment
    (no page made at all); a problem with one student's page withholds that page alone.
    """
    api = api or make_api(course)
    report = FeedbackReport()
    for aid in course.select(assignments):
        submissions = course.submissions("autograded", [aid])
        if not submissions:
            log(f"{aid}: nothing autograded yet, no feedback written")
            continue
        result = api.generate_feedback(aid, force=True)
        made = [s for s in submissions if any(p.is_file() for p in _notebook_pages(course, s))]
        if not result.get("success") and not made:
            checked(result, f"feedback for {aid}")
        if not result.get("success"):
            log(f"{aid}: nbgrader could not make every page; see its log:\n{(result.get('log') or '').strip()}")
        secrets = feedback_secrets(course.source_notebook(aid))
        written = withheld = 0
        for submission in submissions:
            folder = course.folder("feedback", submission)
            pages = _notebook_pages(course, submission)
            if folder.is_dir():
                for path in sorted(folder.rglob("*")):
                    if path.is_file() and path not in pages and path.name not in _KEPT_FILES:
                        path.unlink()
                        report.removed.append(path)
                        log(f"removed {path.relative_to(course.root)}: not a feedback page")
            for page in pages:
                if page.is_file():
                    problems = check_feedback_page(
                        page.read_text(encoding="utf-8", errors="replace"), secrets,
                        student_marker_counts(_read_autograded(course.folder("autograded", submission)
                                                               / f"{page.stem}.ipynb")))
                else:
                    problems = [("nbgrader could not make this page (see its log)", "it could not be generated")]
                if not problems:
                    report.written.append(page)
                    written += 1
                    continue
                page.parent.mkdir(parents=True, exist_ok=True)
                page.write_text(withheld_notice(problems[0][1]), encoding="utf-8")
                entry = Withheld(submission, page, tuple(dict.fromkeys(reason for reason, _ in problems)))
                report.withheld.append(entry)
                withheld += 1
                log(f"WITHHELD {entry}")
        log(f"{aid}: feedback for {written} student page(s) in {course.root / 'feedback'}"
            + (f", {withheld} withheld" if withheld else ""))
    return report
