"""``kdcourse feedback`` against hostile student content: what a student prints or displays cannot leak
hidden tests, mark schemes or model answers, cannot fail the class's feedback, and cannot run or cover the
page; MathJax formulas and ordinary plots survive.

Most tests render pages with nbgrader's own feedback template (HTMLExporter, no gradebook, no kernel);
one test (``slow``) runs ``nbgrader generate_feedback`` on a tiny course through :func:`feedback`.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from kdcourse.grading.feedback import (
    FeedbackReport,
    active_content,
    check_feedback_page,
    feedback,
    student_marker_counts,
)
from kdcourse.grading.leaks import feedback_secrets, find_leaks, html_text, normalise_text, secret_lines
from kdcourse.grading.sanitize import (
    ProtectStudentMarkers,
    SanitizeStudentContent,
    markdown_block,
    render_markdown,
    sanitize_html,
    sanitize_notebook,
    sanitize_svg,
)

pytestmark = pytest.mark.timeout(300)

AID = "t01_kl"
HIDDEN_1 = "assert abs(kl_divergence([0.5, 0.5], [0.9, 0.1]) - 0.5108256237659907) < 1e-12, 'hidden one'"
HIDDEN_2 = "assert abs(kl_divergence([0.2, 0.8], [0.6, 0.4]) - 0.3348077970207073) < 1e-12, 'hidden two'"
SOLUTION_LINE = "return float(np.sum(p * np.log(p / q)))"
MODEL_ANSWER = "The log-ratio is weighted by p, so swapping the arguments changes the weights."
MARK_SCHEME = "Mark scheme (1 point): the weighting by p must be named explicitly."
TASK_SCHEME = "MARK_SCHEME: any pair with different values, both computed and compared."
LECTURE = ("# KL divergence\n\n$$\\mathrm{KL}(p\\,\\|\\,q) = \\sum_k p_k \\ln \\frac{p_k}{q_k}$$\n\n"
           "It is zero iff $p = q$, and $p_k < q_k$ may hold for some $k$.\n\n"
           "\\begin{align} a &= b \\\\ c &= d \\end{align}\n")


def _meta(grade_id, grade=False, solution=False, locked=False, points=0, task=False):
    meta = {"schema_version": 3, "grade": grade, "solution": solution, "locked": locked, "task": task,
            "grade_id": grade_id}
    if grade or task:
        meta["points"] = points
    return {"nbgrader": meta}


def source_notebook():
    """An assignment source: lecture text with maths, a solution, a test with hidden tests, a written
    answer whose model answer ends with a mark scheme, a task with a mark-scheme block."""
    return new_notebook(cells=[
        new_markdown_cell(LECTURE, metadata=_meta("intro", locked=True)),
        new_code_cell("import numpy as np", metadata=_meta("setup", locked=True)),
        new_code_cell(f"def kl_divergence(p, q):\n    ### BEGIN SOLUTION\n    p, q = np.asarray(p), np.asarray(q)\n"
                      f"    {SOLUTION_LINE}\n    ### END SOLUTION", metadata=_meta("kl", solution=True)),
        new_code_cell(f"assert kl_divergence([1.0], [1.0]) == 0.0\n### BEGIN HIDDEN TESTS\n{HIDDEN_1}\n{HIDDEN_2}\n"
                      "### END HIDDEN TESTS", metadata=_meta("test_kl", grade=True, locked=True, points=2)),
        new_markdown_cell(f"### BEGIN SOLUTION\n{MODEL_ANSWER}\n\n{MARK_SCHEME}\n### END SOLUTION",
                          metadata=_meta("explain", grade=True, solution=True, points=1)),
        new_markdown_cell(f"**Task.** Give a pair p, q.\n\n=== BEGIN MARK SCHEME ===\n{TASK_SCHEME}\n"
                          "=== END MARK SCHEME ===", metadata=_meta("pair", task=True, locked=True, points=1)),
    ])


def png_bytes() -> bytes:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1), dpi=20)
    ax.plot([0, 1], [0, 1])
    ax.set(xlabel="x", ylabel="y", title="control")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


PNG = base64.b64encode(png_bytes()).decode()


def autograded(outputs=(), answer=None, extra_cells=(), source=None):
    """What autograde leaves: the student's code and outputs, the test cell restored with its hidden tests
    and a judge's verdict as its output."""
    nb = nbformat.from_dict(source or source_notebook())
    nb.cells[2].source = f"def kl_divergence(p, q):\n    p, q = np.asarray(p), np.asarray(q)\n    {SOLUTION_LINE}"
    nb.cells[2].outputs = list(outputs)
    nb.cells[3].outputs = [new_output("stream", name="stdout", text="✓ kl_divergence is correct\n")]
    nb.cells[4].source = answer if answer is not None else "KL weights the log-ratio by the first argument."
    nb.cells.extend(extra_cells)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.execution_count = i
    return nb


def stdout(text):
    return new_output("stream", name="stdout", text=text)


def display(data, metadata=None):
    return new_output("display_data", data=data, metadata=metadata or {})


def render(nb, sanitize=True, clear=True) -> str:
    """The page nbgrader's ``generate_feedback`` makes of ``nb`` (its template and preprocessors, without
    the gradebook step), with or without kdcourse's two preprocessors (``sanitize``), with or without
    nbgrader's ``ClearHiddenTests`` and ``ClearMarkScheme`` (``clear``)."""
    import nbgrader
    from nbconvert.exporters import HTMLExporter
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import ClearHiddenTests, ClearMarkScheme
    from traitlets.config import Config

    base = Path(nbgrader.__file__).parent / "server_extensions" / "formgrader"
    c = Config()
    c.HTMLExporter.template_name = "feedback"
    c.HTMLExporter.extra_template_basedirs = [str(base / "templates")]
    c.HTMLExporter.extra_template_paths = [str(base / "static" / "node_modules" / "bootstrap" / "dist" / "css")]
    exporter = HTMLExporter(config=c)
    steps = [ClearHiddenTests, ClearMarkScheme] if clear else []
    if sanitize:
        steps = [ProtectStudentMarkers, *steps, SanitizeStudentContent]
    for preprocessor in (*steps, CSSHTMLHeaderPreprocessor):
        exporter.register_preprocessor(preprocessor, enabled=True)
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:  # what GetGrades adds from the gradebook
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") or meta.get("task"):
            meta.setdefault("score", 1.0)
    resources = {"nbgrader": {"notebook": AID, "score": 3.0, "max_score": 4.0, "late_penalty": 0}}
    page, _ = exporter.from_notebook_node(nb, resources=resources)
    return page


@pytest.fixture(scope="module")
def secrets(tmp_path_factory):
    path = tmp_path_factory.mktemp("source") / f"{AID}.ipynb"
    nbformat.write(source_notebook(), str(path))
    return {"path": path, "feedback": feedback_secrets(path)}


def body(page: str) -> str:
    return page[page.index("<body"):]


# --- instructor-only text --------------------------------------------------------------------------------


def test_feedback_secrets_are_hidden_tests_and_mark_schemes(secrets):
    kinds = secrets["feedback"]
    assert kinds[HIDDEN_1] == kinds[HIDDEN_2] == "hidden test"
    assert kinds[MARK_SCHEME] == kinds[TASK_SCHEME] == "mark scheme"
    assert MODEL_ANSWER not in kinds  # a student who wrote the model answer reads their own words
    assert SOLUTION_LINE not in kinds  # a student who wrote the right line sees their own code
    assert all(len(line) >= 20 for line in kinds)


@pytest.mark.parametrize("printed", [
    f"leak: {HIDDEN_1}\nleak: {HIDDEN_2}\n",                         # a prefix on every line
    f">>> {HIDDEN_1} <<<\n",                                         # and a suffix
    HIDDEN_1.replace(" ", "\u200b ").replace("(", "(\u200b") + "\n",  # zero-width characters
    HIDDEN_1.replace(" ", "   \t ") + "\n",                          # other whitespace
])
def test_prefixed_hidden_test_lines_are_caught(secrets, printed):
    page = render(autograded([stdout(printed)]))
    # the old scan (whole stripped lines) let every one of these through
    old = [leak for leak in find_leaks(html_text(page), secret_lines(secrets["path"], kinds=("hidden test",)))
           if "SOLUTION" not in leak and "marker" not in leak]
    assert old == []
    problems = check_feedback_page(page, secrets["feedback"], {})
    assert any("hidden test line" in reason for reason, _ in problems), problems
    assert all(student == "it contained instructor-only text" for _, student in problems)


def test_secrets_hidden_in_attributes_and_html_are_caught(secrets):
    sneaky = f'<abbr title="{HIDDEN_2}">x</abbr><p>{MARK_SCHEME.replace(" ", "&nbsp;")}</p>'
    page = render(autograded([display({"text/html": sneaky, "text/plain": "x"})]))
    reasons = " ".join(reason for reason, _ in check_feedback_page(page, secrets["feedback"], {}))
    assert "hidden test line" in reasons and "mark scheme line" in reasons


def test_a_copied_mark_scheme_is_caught_but_own_answers_are_not(secrets):
    page = render(autograded(answer=f"My answer: {MODEL_ANSWER}"))
    assert SOLUTION_LINE in html_text(page) and MODEL_ANSWER in normalise_text(html_text(page))
    assert check_feedback_page(page, secrets["feedback"], {}) == []  # the student's own work is on the page
    page = render(autograded(answer=f"My answer: {MARK_SCHEME}"))
    reasons = [reason for reason, _ in check_feedback_page(page, secrets["feedback"], {})]
    assert len(reasons) == 1 and "mark scheme line" in reasons[0]


def test_an_honest_page_passes(secrets):
    nb = autograded([stdout("p = [0.5, 0.5]\n"), display({"image/png": PNG, "text/plain": "<Figure>"})])
    page = render(nb)
    assert check_feedback_page(page, secrets["feedback"], student_marker_counts(nb)) == []
    assert HIDDEN_1 not in page and MARK_SCHEME not in page and TASK_SCHEME not in page


def test_printing_marker_words_harms_nobody(secrets):
    words = "### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS\n=== BEGIN MARK SCHEME ===\n### BEGIN SOLUTION\n"
    nb = autograded([stdout(words)])
    page = render(nb)
    # the old scan flagged any marker word, and the command raised for the whole class
    assert any("marker" in leak for leak in find_leaks(html_text(page), {}))
    assert check_feedback_page(page, secrets["feedback"], student_marker_counts(nb)) == []


def test_writing_marker_words_in_an_answer_breaks_no_page(secrets):
    nb = autograded(answer="BEGIN HIDDEN TESTS, said the student, and BEGIN MARK SCHEME too")
    nb.cells[2].source += "\n    # === BEGIN MARK SCHEME === (my own comment)"
    with pytest.raises(RuntimeError, match="No end"):  # nbgrader alone fails this student's page
        render(nb, sanitize=False)
    page = render(nb)
    assert "said the student" in page and "my own comment" in page
    assert check_feedback_page(page, secrets["feedback"], student_marker_counts(nb)) == []


def test_markers_the_student_did_not_write_are_caught(secrets):
    """Hidden tests left in the page (``ClearHiddenTests`` not configured): caught by line and by marker."""
    nb = autograded([stdout("BEGIN HIDDEN TESTS\n")])
    page = render(nb, clear=False)
    reasons = " ".join(reason for reason, _ in check_feedback_page(page, secrets["feedback"], student_marker_counts(nb)))
    assert "marker 'BEGIN HIDDEN TESTS' 2 time(s), the student's own content has it 1 time(s)" in reasons
    assert "hidden test line" in reasons and "mark scheme line" in reasons


# --- active content ---------------------------------------------------------------------------------------

ATTACKS = {
    "script": "<script>document.title = 'pwned'</script>",
    "onerror": '<img src="x" onerror="alert(document.cookie)">',
    "iframe": '<iframe src="https://example.org/phish"></iframe>',
    "object": '<object data="https://example.org/x.swf"></object><embed src="https://example.org/y">',
    "form": '<form action="https://example.org/steal"><input name="password"><button>Log in</button></form>',
    "fixed_inline": ('<div style="position:fixed; top:0; left:0; width:100%; z-index:9999; background:white">'
                     "Score: 17.0 / 17.0</div>"),
    "fixed_style_block": "<style>.banner {position: fixed; top: 0}</style><div class='banner'>Score: 17.0 / 17.0</div>",
    "bootstrap_class": '<div class="navbar navbar-fixed-top">Score: 17.0 / 17.0</div>',
    "javascript_link": '<a href="javascript:alert(1)">see your grade</a><a href=" jAvAsCrIpT:alert(2)">again</a>',
    "meta_refresh": '<meta http-equiv="refresh" content="0; url=https://example.org/">',
    "base": '<base href="https://example.org/">',
    "svg_onload": '<svg onload="alert(1)"><circle r="4"/></svg>',
    "data_html_link": '<a href="data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;">open</a>',
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_sanitize_html_neutralises(name):
    payload = ATTACKS[name]
    assert active_content(f"<body>{payload}</body>") or name == "bootstrap_class"  # what came through before
    cleaned = sanitize_html(payload)
    assert active_content(f"<body>{cleaned}</body>") == []
    for word in ("alert", "javascript", "position", "navbar", "<script", "<iframe", "<form", "<meta", "<style",
                 "<base", "<object", "<embed", "onload", "onerror", "data:text/html"):
        assert word not in cleaned.lower(), (word, cleaned)


def _attack_notebook():
    outputs = [display({"text/html": payload, "text/plain": name}) for name, payload in sorted(ATTACKS.items())]
    outputs.append(display({"application/javascript": "alert('js output')", "text/plain": "<IPython.Javascript>"}))
    outputs.append(display({"text/markdown": "[click me](javascript:alert(3)) <img src=x onerror=alert(4)>"}))
    outputs.append(display({"image/png": PNG, "text/plain": "<Figure>"},
                           {"image/png": {"width": "1 onerror=alert(5)", "height": 40}}))
    outputs.append(display({"text/html": "<b>isolated</b>"}, {"text/html": {"isolated": True}}))
    answer = ("My answer: $\\mathrm{KL}(p\\,\\|\\,q) \\geq 0$.\n\n<img src=x onerror=alert(6)>\n"
              "<div style=\"position:absolute;top:0\">Score: 17.0 / 17.0</div>\n\n[grade](javascript:alert(7))")
    extra = [nbformat.v4.new_raw_cell('<script>alert(8)</script><p class="navbar-fixed-top">raw</p>',
                                      metadata={"raw_mimetype": "text/html"})]
    nb = autograded(outputs, answer=answer, extra_cells=extra)
    nb.cells[2].metadata["tags"] = ["fine_tag", "x navbar-fixed-top"]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "state": {"m": {"model_name": "HTMLModel", "state": {"value": "<img src=x onerror=alert(9)>"}}},
        "version_major": 2, "version_minor": 0}}
    return nb


def test_the_feedback_page_runs_and_covers_nothing():
    nb = _attack_notebook()
    before = body(render(nb, sanitize=False))
    found = " ".join(active_content(before))
    for item in ("<script>", "onerror=", "<iframe>", "<form>", "<meta>", "javascript: URL", "positioned",
                 "<object>", "<embed>", "<base>"):
        assert item in found, item  # all of it reached the page before
    page = render(nb)
    assert active_content(page) == []
    lowered = body(page).lower()
    for word in ("alert", "javascript:", "navbar", "position:", "position :", "<iframe", "isolated-iframe",
                 "widget-state", "<script"):
        assert word not in lowered, word
    # nbgrader's own page still works: its MathJax, its CSS, its score header
    head = page[:page.index("<body")]
    assert "mathjax" in head.lower() and "Safe" in head and "<style" in head
    assert "(Score: 3.0 / 4.0)" in page
    assert "Score: 17.0 / 17.0" in page  # the student's text is shown, in its place, not over the header


def test_lecture_maths_and_plots_survive():
    nb = autograded([display({"image/png": PNG, "text/plain": "<Figure>"}, {"image/png": {"width": 120}})])
    page = render(nb)
    plain = render(nb, sanitize=False)
    for fragment in ("$$\\mathrm{KL}(p\\,\\|\\,q) = \\sum_k p_k \\ln \\frac{p_k}{q_k}$$", "$p = q$",
                     "$p_k &lt; q_k$", "\\begin{align} a &amp;= b \\\\ c &amp;= d \\end{align}",
                     f"data:image/png;base64,{PNG}", "width=\"120\"", "<h1"):
        assert fragment in plain, fragment
        assert fragment in page, fragment
    assert "✓ kl_divergence is correct" in page


# --- the sanitiser's pieces -----------------------------------------------------------------------------


def test_sanitize_notebook_drops_scripts_and_keeps_text_and_images():
    nb = _attack_notebook()
    notes = sanitize_notebook(nb)
    outputs = nb.cells[2].outputs
    assert "widgets" not in nb.metadata and "notebook: widget state removed" in notes
    js = next(o for o in outputs if o["data"].get("text/plain") == "<IPython.Javascript>")
    assert "application/javascript" not in js["data"] and any("application/javascript" in n for n in notes)
    png = next(o for o in outputs if "image/png" in o["data"])
    assert png["data"]["image/png"] == PNG and png["metadata"] == {"image/png": {"height": 40}}
    isolated = next(o for o in outputs if o["data"].get("text/html") == "<b>isolated</b>")
    assert isolated["metadata"] == {}
    assert nb.cells[2].metadata["tags"] == ["fine_tag"]
    assert "<script" not in nb.cells[-1].source and "navbar" not in nb.cells[-1].source
    alone = {"cells": [new_code_cell("x", outputs=[display({"application/javascript": "alert(1)"})])], "metadata": {}}
    sanitize_notebook(alone)
    assert alone["cells"][0]["outputs"][0]["data"] == {
        "text/plain": "[application/javascript output left out of the feedback page]"}


def test_markdown_block_passes_the_template_unchanged():
    from nbconvert.exporters import HTMLExporter

    safe = render_markdown(LECTURE + "\n```python\nx = 1\n\ny = 2\n```\n")
    passed = HTMLExporter().markdown2html({"cell": {}}, markdown_block(safe))
    assert passed.strip() == markdown_block(safe)
    assert "$$\\mathrm{KL}" in safe and "\\begin{align}" in safe


def test_svg_is_kept_only_as_a_clean_image():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1])
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    svg = buf.getvalue()
    evil = svg.replace("</svg>", '<script>alert(1)</script><foreignObject><iframe src="x"/></foreignObject>'
                                 '<a href="javascript:alert(2)"><text style="position:fixed">t</text></a>'
                                 '<image href="https://example.org/track.png"/></svg>')
    cleaned = sanitize_svg(evil)
    assert cleaned is not None and cleaned.count("<path") == svg.count("<path")
    for word in ("script", "foreignObject", "iframe", "javascript", "position", "example.org"):
        assert word not in cleaned
    assert sanitize_svg("<div>not an svg</div>") is None


# --- the command, on a real nbgrader course ----------------------------------------------------------------


@pytest.mark.slow
def test_feedback_command_withholds_per_student_and_writes_the_rest(tmp_path):
    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    from kdcourse.grading.adapter.api import ensure_tools_on_path, quiet_sqlalchemy
    from kdcourse.grading.adapter.config import course_config
    from kdcourse.grading.course import Course, Submission

    (tmp_path / "sources" / AID).mkdir(parents=True)
    (tmp_path / "specs").mkdir()
    nbformat.write(source_notebook(), str(tmp_path / "sources" / AID / f"{AID}.ipynb"))
    course = Course(root=tmp_path / "grading", source_dir=tmp_path / "sources", spec_dir=tmp_path / "specs")
    course.root.mkdir(parents=True)
    ensure_tools_on_path()
    quiet_sqlalchemy()
    config = course_config(course)
    steps = list(config.GenerateFeedback.preprocessors)
    names = [step.__name__ for step in steps]
    if ProtectStudentMarkers not in steps:  # until kdcourse.grading.adapter.config lists them
        steps.insert(names.index("ClearHiddenTests"), ProtectStudentMarkers)
    if SanitizeStudentContent not in steps:
        steps.insert([step.__name__ for step in steps].index("CSSHTMLHeaderPreprocessor"), SanitizeStudentContent)
    config.GenerateFeedback.preprocessors = steps
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    assert api.generate_assignment(AID, force=True, create=True)["success"]
    release = nbformat.read(str(course.release_notebook(AID)), as_version=4)
    source = nbformat.read(str(course.source_notebook(AID)), as_version=4)
    release.cells[3].source = source.cells[3].source  # autograde restores the hidden tests
    students = {
        "honest": autograded([display({"image/png": PNG, "text/plain": "<Figure>"})], source=release),
        "markers": autograded([stdout("### BEGIN HIDDEN TESTS\n=== BEGIN MARK SCHEME ===\n")], source=release),
        "hostile": _attack_notebook_from(release),
        "prefixed": autograded([stdout("".join(f"leak {i}: {line}\n" for i, line in enumerate((HIDDEN_1, HIDDEN_2))))],
                               source=release),
        "copier": autograded(answer=f"{MODEL_ANSWER} {MARK_SCHEME}", source=release),
        "nogradebook": autograded(source=release),  # no gradebook entry: nbgrader fails this one page
    }
    with Gradebook(course.db_url, course.course_id) as gb:
        for student, nb in students.items():
            folder = course.folder("autograded", Submission(AID, student))
            folder.mkdir(parents=True)
            nbformat.write(nb, str(folder / f"{AID}.ipynb"))
            (folder / "timestamp.txt").write_text("2025-01-01 00:00:00.000000 UTC\n", encoding="utf-8")
            if student != "nogradebook":
                gb.update_or_create_student(student)
                gb.add_submission(AID, student)
    (course.folder("autograded", Submission(AID, "hostile")) / "evil.html").write_text("<script>1</script>")
    lines = []
    report = feedback(course, api=api, log=lines.append)
    assert isinstance(report, FeedbackReport)
    page = {s: course.folder("feedback", Submission(AID, s)) / f"{AID}.html" for s in students}
    assert sorted(report.written) == sorted(page[s] for s in ("honest", "markers", "hostile"))
    withheld = {w.submission.student: w for w in report.withheld}
    assert sorted(withheld) == ["copier", "nogradebook", "prefixed"]
    assert "hidden test line" in " ".join(withheld["prefixed"].reasons)
    assert "mark scheme line" in " ".join(withheld["copier"].reasons)
    assert "could not make" in " ".join(withheld["nogradebook"].reasons)
    for student in withheld:
        notice = page[student].read_text(encoding="utf-8")
        assert "Feedback withheld" in notice and "ask your instructor" in notice
        assert "hidden" not in notice and MODEL_ANSWER not in notice and "0.51082" not in notice
    for student in ("honest", "markers", "hostile"):
        html = page[student].read_text(encoding="utf-8")
        assert active_content(html) == [] and HIDDEN_1 not in html and TASK_SCHEME not in html
    assert PNG in page["honest"].read_text(encoding="utf-8")
    assert not (page["hostile"].parent / "evil.html").exists() and report.removed
    assert any(line.startswith("WITHHELD prefixed/") for line in lines)


def _attack_notebook_from(release):
    nb = _attack_notebook()
    fresh = autograded(nb.cells[2].outputs, answer=nb.cells[4].source, extra_cells=nb.cells[6:], source=release)
    fresh.cells[2].metadata["tags"] = nb.cells[2].metadata["tags"]
    fresh.metadata["widgets"] = nb.metadata["widgets"]
    return fresh

