"""Make what students put into a feedback page inert, and keep nbgrader's page (CSS, MathJax, score header).

A feedback page is nbgrader's HTML template filled with one autograded notebook. Everything a student's
cells printed or displayed (text, HTML, SVG, markdown, JavaScript, widgets), the markdown and raw cells they
wrote and the metadata they could edit reach that page. Two nbgrader preprocessors run in
``GenerateFeedback``:

* :class:`ProtectStudentMarkers`, before ``ClearHiddenTests``: marker words a student wrote in their own
  cells (``BEGIN HIDDEN TESTS`` ...) get a no-break space, so nbgrader does not fail the page on them
  (:func:`protect_student_markers`);
* :class:`SanitizeStudentContent`, after ``ClearMarkScheme``: :func:`sanitize_notebook` rewrites the
  notebook so that nothing in it can act.

What :func:`sanitize_notebook` does:

* ``text/html`` output and raw cells go through the ``nh3`` sanitiser (the Rust ``ammonia`` crate):
  no ``<script>``, ``<style>``, ``<iframe>``/``<object>``/``<embed>``, ``<form>``, ``<meta>`` (refresh),
  no event-handler attributes, no ``class`` (the page's Bootstrap classes include fixed navbars), ``style``
  only with the properties of :data:`STYLE_PROPERTIES` (no ``position``, ``top``, ``margin``, ``transform``),
  links only ``http``, ``https``, ``mailto`` or in-page, images only inline ``data:image/png|jpeg|gif|webp``;
* markdown cells and ``text/markdown`` output are rendered with nbconvert's own renderer (so ``$...$``,
  ``$$...$$`` and LaTeX environments come out as nbconvert makes them for MathJax), sanitised, and handed
  to the template as one HTML block that its markdown filter passes through unchanged;
* ``image/svg+xml`` is sanitised with an SVG allow-list and kept only if the result is well-formed XML
  (the template shows it as an ``<img>``, where browsers run no script anyway);
* ``application/javascript``, widget views and state, mermaid and every other kind of output data are
  dropped (a plain-text note says so where nothing else is left); plain text, ``text/latex`` and png/jpeg
  images are kept as they are;
* output metadata is rebuilt (the template writes ``width``/``height`` unquoted: only numbers pass;
  ``isolated`` and ``filenames`` are dropped), cell tags with spaces (which would add page classes) and
  grade ids outside ``[A-Za-z0-9_-]`` are cleaned, and the notebook's ``widgets`` metadata is removed.

Code-cell sources, stream text and tracebacks need nothing: the template escapes them.

MathJax on nbgrader's page is loaded with its ``Safe`` extension (nbconvert's default URL), which disables
``javascript:`` in ``\\href`` and unsafe ``\\style`` in student TeX.
"""

from __future__ import annotations

import html as html_module
import xml.etree.ElementTree as ElementTree
from typing import Any

import nh3
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

__all__ = ["STYLE_PROPERTIES", "KEPT_MIME_TYPES", "sanitize_html", "sanitize_svg", "render_markdown",
           "markdown_block", "sanitize_notebook", "protect_student_markers", "ProtectStudentMarkers",
           "SanitizeStudentContent"]

#: CSS properties a student's ``style`` attribute keeps: colours and text, nothing that moves a box.
STYLE_PROPERTIES = frozenset({
    "color", "background-color", "font-weight", "font-style", "text-align", "text-decoration",
    "vertical-align", "white-space", "border", "border-collapse", "padding",
})
#: Output data kept (after sanitising); everything else is dropped.
KEPT_MIME_TYPES = ("text/plain", "text/html", "text/markdown", "text/latex", "image/svg+xml", "image/png",
                   "image/jpeg")
_IMAGE_DATA_PREFIXES = tuple(f"data:image/{kind};base64," for kind in ("png", "jpeg", "gif", "webp"))
_ID_PREFIX = "user-content-"
_REMOVED_WITH_CONTENT = {"script", "style", "template", "noscript", "iframe", "object", "embed", "noembed",
                         "noframes", "frameset", "frame", "applet", "textarea", "select", "xmp", "foreignObject"}
_SVG_TAGS = {"svg", "g", "path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "text", "tspan",
             "defs", "clipPath", "use", "title", "desc", "linearGradient", "radialGradient", "stop", "symbol",
             "marker"}
_SVG_ATTRIBUTES = {"id", "d", "x", "y", "dx", "dy", "width", "height", "viewBox", "preserveAspectRatio",
                   "transform", "clip-path", "style", "fill", "fill-opacity", "fill-rule", "stroke",
                   "stroke-width", "stroke-opacity", "stroke-linecap", "stroke-linejoin", "stroke-dasharray",
                   "stroke-miterlimit", "opacity", "href", "version", "points", "cx", "cy", "r", "rx", "ry",
                   "x1", "x2", "y1", "y2", "offset", "stop-color", "stop-opacity", "font-size", "font-family",
                   "font-weight", "text-anchor", "dominant-baseline", "clipPathUnits", "gradientUnits",
                   "gradientTransform", "markerWidth", "markerHeight", "refX", "refY", "orient"}
_SVG_STYLE_PROPERTIES = {"fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-opacity",
                         "stroke-linecap", "stroke-linejoin", "stroke-dasharray", "stroke-miterlimit",
                         "opacity", "font-size", "font-family", "font-weight", "font-style", "text-anchor",
                         "color", "stop-color", "stop-opacity"}
_SAFE_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def _html_attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    """Images only from inline data, in-page ids and fragment links moved out of the page's own ids."""
    if tag == "img" and attribute == "src":
        return value if value.strip().lower().startswith(_IMAGE_DATA_PREFIXES) else None
    if attribute == "id":
        return _ID_PREFIX + value
    if attribute == "href":
        stripped = value.strip()
        if stripped.lower().startswith("data:"):
            return None
        if stripped.startswith("#"):
            return "#" + _ID_PREFIX + stripped[1:]
    return value


def sanitize_html(html: str) -> str:
    """``html`` (a fragment a student produced) with every active or page-changing part removed.

    Kept: nh3's default tags (text, headings, lists, tables, links, images, ``details``) without
    ``class``; ``style`` with :data:`STYLE_PROPERTIES` only; ``id`` on headings (prefixed, so the
    page's anchors cannot be taken over). Removed with their content: scripts, styles, frames, objects,
    forms' fields and templates. Removed: event handlers, ``javascript:``/``data:`` links, remote images,
    ``<meta>``, ``<base>``, ``<link>``, ``<form>``, comments.
    """
    tags = set(nh3.ALLOWED_TAGS) - {"map", "area"}
    attributes = {tag: set(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items()}
    attributes["*"] = {"title", "lang", "dir", "style"}
    for level in range(1, 7):
        attributes.setdefault(f"h{level}", set()).add("id")
    return nh3.clean(
        str(html), tags=tags, clean_content_tags=set(_REMOVED_WITH_CONTENT), attributes=attributes,
        attribute_filter=_html_attribute_filter, url_schemes={"http", "https", "mailto", "data"},
        filter_style_properties=set(STYLE_PROPERTIES), strip_comments=True, link_rel="noopener noreferrer",
        allowed_classes={"a": {"anchor-link"}})


def _svg_attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "href":
        return value if value.strip().startswith("#") else None
    return value


def sanitize_svg(svg: str) -> str | None:
    """``svg`` through an SVG allow-list (no script, ``foreignObject``, handlers, external references or
    box-moving styles), or None when what is left is not a well-formed SVG document."""
    text = str(svg).replace("xlink:href=", "href=")  # SVG 2 spelling; the sanitiser keeps only "#..." values
    cleaned = nh3.clean(
        text, tags=set(_SVG_TAGS), clean_content_tags=set(_REMOVED_WITH_CONTENT), attributes={"*": set(_SVG_ATTRIBUTES)},
        attribute_filter=_svg_attribute_filter, url_schemes=set(), filter_style_properties=set(_SVG_STYLE_PROPERTIES),
        strip_comments=True, link_rel=None,
        set_tag_attribute_values={"svg": {"xmlns": "http://www.w3.org/2000/svg"}})
    cleaned = cleaned.replace("&nbsp;", "&#160;").strip()  # HTML's one named entity that XML lacks
    try:
        root = ElementTree.fromstring(cleaned)
    except ElementTree.ParseError:
        return None
    return cleaned if root.tag == "{http://www.w3.org/2000/svg}svg" else None


def render_markdown(source: str, attachments: dict | None = None) -> str:
    """Markdown rendered to HTML as nbconvert's HTML exporter renders it (maths kept for MathJax, attached
    images inlined), then sanitised with :func:`sanitize_html`. Markdown that cannot be rendered (for
    example a missing attachment) is shown as escaped text."""
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    try:
        rendered = MarkdownWithMath(renderer=IPythonRenderer(escape=False, attachments=dict(attachments or {}))
                                    ).render(str(source))
    except Exception:  # noqa: BLE001 - whatever the student wrote, show it as text rather than fail
        rendered = f"<pre>{html_module.escape(str(source))}</pre>"
    return sanitize_html(rendered)


def markdown_block(safe_html: str) -> str:
    """``safe_html`` as markdown that the template's ``markdown2html`` passes through unchanged: one HTML
    block on one line (a newline is written as ``&#10;``, the same character to a browser)."""
    return "<div>" + safe_html.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "&#10;") + "</div>"


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _image_metadata(metadata: Any, mime: str) -> dict:
    """Width and height (positive numbers), ``unconfined`` (bool) and ``alt`` (text) of an image, looked up
    as the template does (per type, then at the top), and nothing else."""
    metadata = metadata if isinstance(metadata, dict) else {}
    per_type = metadata.get(mime) if isinstance(metadata.get(mime), dict) else {}
    kept = {}
    for key, valid in (("width", _number), ("height", _number), ("unconfined", lambda v: isinstance(v, bool)),
                       ("alt", lambda v: isinstance(v, str))):
        value = per_type.get(key, metadata.get(key))
        if valid(value):
            kept[key] = value
    return kept


def _sanitize_output(output: Any, where: str, notes: list[str]) -> None:
    """Sanitise one rich output in place: its data by kind (:data:`KEPT_MIME_TYPES`), its metadata rebuilt."""
    if output.get("output_type") not in ("display_data", "execute_result", "update_display_data"):
        return  # streams and errors: the template escapes their text
    clean: dict[str, Any] = {}
    dropped = []
    for mime, value in (output.get("data", {}) or {}).items():
        text = _text(value) if isinstance(value, (str, list)) else None
        if mime not in KEPT_MIME_TYPES or text is None:
            dropped.append(mime)
        elif mime == "text/html":
            clean[mime] = sanitize_html(text)
        elif mime == "text/markdown":
            clean[mime] = markdown_block(render_markdown(text))
        elif mime == "image/svg+xml":
            svg = sanitize_svg(text)
            if svg is None:
                dropped.append(mime)
            else:
                clean[mime] = svg
        else:  # plain text and LaTeX (escaped by the template), png and jpeg (base64 in a quoted attribute)
            clean[mime] = text
    if dropped:
        notes.append(f"{where}: dropped {', '.join(sorted(dropped))}")
        if not clean:
            clean["text/plain"] = f"[{', '.join(sorted(dropped))} output left out of the feedback page]"
    output["data"] = clean
    output["metadata"] = {mime: _image_metadata(output.get("metadata"), mime)
                          for mime in ("image/png", "image/jpeg") if mime in clean}


def _safe_id(value: Any) -> str:
    text = str(value)
    return "".join(c if c in _SAFE_ID_CHARS else "_" for c in text) or "_"


def sanitize_notebook(nb: Any) -> list[str]:
    """Make the student content of ``nb`` (an autograded notebook, changed in place) inert.

    Returns a note for every output whose data were dropped (JavaScript, widgets, unknown kinds); the
    other changes (sanitised HTML, SVG and markdown, rebuilt metadata) are not listed.
    """
    notes: list[str] = []
    metadata = nb.get("metadata", {})
    if isinstance(metadata, dict) and "widgets" in metadata:
        del metadata["widgets"]
        notes.append("notebook: widget state removed")
    for index, cell in enumerate(nb.get("cells", [])):
        where = f"cell {index}"
        cell_meta = cell.setdefault("metadata", {})
        if "tags" in cell_meta:  # each tag becomes a class of the cell: "x navbar-fixed-top" would add two
            tags = cell_meta["tags"] if isinstance(cell_meta["tags"], list) else []
            cell_meta["tags"] = [t for t in tags if isinstance(t, str) and t and set(t) <= _SAFE_ID_CHARS]
        grading = cell_meta.get("nbgrader")
        if isinstance(grading, dict) and "grade_id" in grading:
            grading["grade_id"] = _safe_id(grading["grade_id"])
        kind = cell.get("cell_type")
        if kind == "markdown":
            cell["source"] = markdown_block(render_markdown(_text(cell.get("source", "")),
                                                            cell.get("attachments") or {}))
            cell.pop("attachments", None)
        elif kind == "raw":
            cell["source"] = sanitize_html(_text(cell.get("source", "")))
        elif kind == "code":
            count = cell.get("execution_count")
            if not isinstance(count, int) or isinstance(count, bool):
                cell["execution_count"] = None
            for output in cell.get("outputs", []):
                _sanitize_output(output, where, notes)
    return notes


def _student_cell(cell: Any) -> bool:
    """A cell whose source the student wrote: any cell but a locked one or a test cell (whose sources
    nbgrader restores from the gradebook when it autogrades)."""
    meta = (cell.get("metadata", {}) or {}).get("nbgrader", {}) or {}
    return not (meta.get("locked") or (meta.get("grade") and not meta.get("solution")))


def protect_student_markers(nb: Any) -> int:
    """Write the marker words (``BEGIN HIDDEN TESTS`` ...) in the sources of the student's own cells with a
    no-break space after their first word: they read the same, but nbgrader's ``ClearHiddenTests`` and
    ``ClearMarkScheme`` no longer take them for the start of a block (an unclosed one fails the page, a
    closed one removes the student's own text). Returns how many were rewritten."""
    from kdcourse.notebooks import MARKERS

    count = 0
    for cell in nb.get("cells", []):
        if not _student_cell(cell):
            continue
        source = _text(cell.get("source", ""))
        for marker in MARKERS:
            if marker in source:
                count += source.count(marker)
                source = source.replace(marker, marker.replace(" ", "\u00a0", 1))
        cell["source"] = source
    return count


class ProtectStudentMarkers(Preprocessor):
    """nbgrader/nbconvert preprocessor: :func:`protect_student_markers` on the notebook being exported.

    Put it in ``GenerateFeedback.preprocessors`` before ``ClearHiddenTests``.
    """

    enabled = Bool(True, help="Keep marker words students wrote from opening blocks (on unless turned off)"
                   ).tag(config=True)

    def preprocess(self, nb, resources):
        if protect_student_markers(nb):
            self.log.info("feedback: marker words in the student's own cells kept as text")
        return nb, resources


class SanitizeStudentContent(Preprocessor):
    """nbgrader/nbconvert preprocessor: :func:`sanitize_notebook` on the notebook being exported.

    Put it in ``GenerateFeedback.preprocessors`` after ``ClearHiddenTests`` and ``ClearMarkScheme`` and
    before ``CSSHTMLHeaderPreprocessor``.
    """

    enabled = Bool(True, help="Sanitise student content in the exported page (on unless turned off)").tag(config=True)

    def preprocess(self, nb, resources):
        notes = sanitize_notebook(nb)
        for note in notes:
            self.log.info("feedback: %s", note)
        return nb, resources
