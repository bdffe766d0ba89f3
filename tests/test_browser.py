"""The course in a real browser: JupyterLab started by ``kdcourse lab``, driven by Playwright and chromium.

Run it with ``pytest -m browser -p no:xdist`` after ``.ci/install-browser`` (Debian's chromium and fonts)
and ``pip install -e ".[dev]"`` (Playwright's Python package); without them every test here fails and
says so. Playwright never downloads a browser: chromium is the one on ``PATH``.

* **Student view** (``kdcourse lab --student --root <tmp>``): every blank release is run top to bottom;
  the only errors allowed are the release stubs' ``NotImplementedError("... here, in place of this line")``.
  nbgrader's *Validate* button answers with its "Validation Results" dialog.
* **Lectures view** (``kdcourse lab --lectures --root <tmp copy>``): every lecture runs without any error,
  and each ipywidgets explorer draws a new figure when one of its controls is moved.
* **Instructor view** (``kdcourse lab --instructor``): Nbgrader → Formgrader lists every assignment, and
  each assignment's name opens its source folder ``notebooks/assignments/<id>`` in the file browser.

In every notebook: no stderr output, every figure loaded (``naturalWidth > 0``), the maths typeset by
MathJax with no error node. Cells are run with JupyterLab's own *Run All*; it stops at the first error
(an unanswered exercise of a release), and the test goes on with *Run Selected Cell and All Below* from
the first cell that did not run, until every code cell has run. This uses the menus a student uses, sends
one command per unanswered exercise rather than one per cell, and cannot skip a cell: each round must
run more cells than the last, or the test fails.

Nothing in the repository is opened for writing: the student workspace and the lectures are copies in a
temporary folder, JupyterLab's user settings (autosave off) and workspaces live there too, and notebooks
are closed without saving. Screenshots go to ``$KDCOURSE_SCREENSHOTS`` (default
``test-artifacts/screenshots``).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from kdcourse.paths import find_repo_root

from fixtures.ports import free_port

pytestmark = pytest.mark.browser

REPO = find_repo_root(Path(__file__).parent)
ASSIGNMENT_IDS = sorted(p.name for p in (REPO / "notebooks" / "assignments").iterdir()
                        if p.is_dir() and not p.name.startswith("."))
LECTURES = sorted(p.name for p in (REPO / "notebooks" / "lectures").glob("*.ipynb"))
SCREENSHOTS = Path(os.environ.get("KDCOURSE_SCREENSHOTS") or REPO / "test-artifacts" / "screenshots")
INSTALL_HINT = ("run `.ci/install-browser` (as root: Debian's chromium and fonts) and install the dev extras "
                "(`pip install -e \".[dev]\"`, which brings Playwright's Python package)")

#: Time limits, seconds: one browser action, one server start, one notebook (open, run, check,
#: close), and every test of this module together.
ACTION_S = 30
SERVER_START_S = 120
NOTEBOOK_S = 180
WHOLE_RUN_S = 720
#: The first line ``kdcourse lab`` prints.
URL_LINE = re.compile(r"kdcourse lab: open (?P<url>http://127\.0\.0\.1:(?P<port>\d+)/lab\?token=(?P<token>\S+))")
#: The messages of an unanswered exercise: a release stub's (``kdcourse.grading.stubs``), or the visible
#: test's (and a predict-then-run cell's) when the function or value it needs is still a stub or None
#: (``kdcourse.judge``, "unanswered").
UNANSWERED = re.compile(r"here, in place of this line\s*$|^\S+ is not written yet: |^\S+ is still None: ")

#: The assignment graded by hand in the formgrader test, its written answer, and who submitted it.
GRADED = "a01_kl_divergence"
GRADED_ANSWER = "dark_knowledge"
GRADED_STUDENT = "ada"

NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"
CELLS = f"{NOTEBOOK} .jp-Notebook .jp-Cell"


# --- servers ---------------------------------------------------------------------------------------


@dataclass
class Lab:
    """A running JupyterLab: its process, base URL, token, server root and log file."""

    process: subprocess.Popen
    base: str
    token: str
    root: Path
    log: Path

    def url(self, path: str = "lab") -> str:
        """The address of ``path`` on this server, with the token."""
        return f"{self.base}/{path}{'&' if '?' in path else '?'}token={self.token}"

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's output (for failure messages)."""
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def lab_environment(folder: Path) -> dict[str, str]:
    """The server's environment: the caller's, with JupyterLab's user settings and workspaces in ``folder``.

    The settings turn autosave off, so a notebook run by the test is never written back, and the news
    prompt off; no workspace saved by an earlier session reopens tabs.
    """
    settings = folder / "user-settings"
    docmanager = settings / "@jupyterlab" / "docmanager-extension" / "plugin.jupyterlab-settings"
    docmanager.parent.mkdir(parents=True, exist_ok=True)
    docmanager.write_text(json.dumps({"autosave": False}))
    # no "Would you like to get notified about official Jupyter news?" toast over the screenshots
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True, exist_ok=True)
    notification.write_text(json.dumps({"fetchNews": "false"}))
    (folder / "workspaces").mkdir(exist_ok=True)
    return {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(folder / "workspaces")}


def start_lab(audience: str, folder: Path, root: Path | None = None) -> Lab:
    """Start ``kdcourse lab --<audience>`` in its own process group and wait until it answers.

    Parameters
    ----------
    audience : {"student", "instructor", "lectures"}
    folder : Path
        A private folder for the server's log, settings and workspaces.
    root : Path, optional
        ``--root`` (the student workspace, or the lectures folder).

    Raises
    ------
    pytest.fail.Exception
        If no URL is printed, the server exits, or it does not answer within :data:`SERVER_START_S`.
    """
    kdcourse = shutil.which("kdcourse", path=str(Path(sys.executable).parent)) or shutil.which("kdcourse")
    if kdcourse is None:
        pytest.fail("no `kdcourse` command beside this Python or on PATH: pip install -e \".[dev]\"")
    argv = [kdcourse, "lab", f"--{audience}", "--port", str(free_port()), "--no-browser"]
    if root is not None:
        argv += ["--root", str(root)]
    log = folder / "lab.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=REPO, env=lab_environment(folder), stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + SERVER_START_S
    match = None
    while match is None:
        match = URL_LINE.search(log.read_text(errors="replace"))
        if match is None:
            _check_alive(process, log, deadline, "print its URL")
            time.sleep(0.2)
    lab = Lab(process, match["url"].split("/lab?")[0], match["token"], Path(root or REPO), log)
    while not _answers(lab.url("api/status")):
        _check_alive(process, log, deadline, f"answer on {lab.base}")
        time.sleep(0.3)
    return lab


def _check_alive(process: subprocess.Popen, log: Path, deadline: float, what: str) -> None:
    if process.poll() is not None:
        pytest.fail(f"kdcourse lab exited with {process.returncode} before it could {what}:\n"
                    f"{log.read_text(errors='replace')[-3000:]}")
    if time.monotonic() > deadline:
        stop_lab(process)
        pytest.fail(f"kdcourse lab did not {what} within {SERVER_START_S} s:\n{log.read_text(errors='replace')[-3000:]}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def stop_lab(process: subprocess.Popen) -> None:
    """Stop the server's process group and every process it started (kernels run in their own sessions)."""
    import psutil

    with contextlib.suppress(psutil.NoSuchProcess):
        descendants = psutil.Process(process.pid).children(recursive=True)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)
    _gone, alive = psutil.wait_procs(descendants, timeout=5)
    for leftover in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            leftover.kill()


# --- pages -----------------------------------------------------------------------------------------


def screenshot(target, name: str) -> Path:
    """Save a screenshot of a page or locator as ``SCREENSHOTS/<name>.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    target.screenshot(path=str(path), timeout=ACTION_S * 1000)
    return path


def menu_command(page, menu: str, command: str) -> None:
    """Click the item that runs ``command`` (e.g. ``runmenu:run-all``) in the top-level menu ``menu``."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(rf"^{re.escape(menu)}$")).click()
    page.locator(f".lm-Menu-item[data-command='{command}']").click()


def notebook_facts(path: Path) -> dict:
    """What the test needs to know of a notebook file: its cells, its code cells and its cells with maths."""
    cells = json.loads(path.read_text())["cells"]
    source = ["".join(cell["source"]) for cell in cells]
    return {
        "cells": len(cells),
        "code": [i for i, cell in enumerate(cells) if cell["cell_type"] == "code" and source[i].strip()],
        "maths": [i for i, cell in enumerate(cells) if cell["cell_type"] == "markdown" and "$" in source[i]],
        "explorers": [i for i, cell in enumerate(cells) if cell["cell_type"] == "code" and "_explorer(" in source[i]],
    }


def open_notebook(page, lab: Lab, relpath: str, facts: dict, deadline: float) -> None:
    """Open ``relpath`` alone in a fresh JupyterLab page; wait for all its cells, its maths and an idle kernel."""
    page.goto(lab.url(f"lab/tree/{relpath}?reset"))  # reset: no tab of an earlier page is restored
    page.wait_for_function(
        """([cells, selector]) => document.querySelectorAll(selector).length === cells""",
        arg=[facts["cells"], CELLS], timeout=_ms_left(deadline))
    page.wait_for_function(
        """([maths, selector]) => {
            const cells = document.querySelectorAll(selector);
            return maths.every(i => cells[i].querySelector('mjx-container'));
        }""", arg=[facts["maths"], CELLS], timeout=_ms_left(deadline))
    page.wait_for_selector(f"{NOTEBOOK} .jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=_ms_left(deadline))


def _ms_left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        pytest.fail("ran out of time (the per-notebook or whole-run limit of the browser tests)")
    return left * 1000


#: True when cell ``target`` has run and nothing is queued or running.
SETTLED_JS = """([target, selector, notebook]) => {
    const cells = document.querySelectorAll(selector);
    const prompt = cell => (cell.querySelector('.jp-InputPrompt')?.textContent || '').trim();
    const indicator = document.querySelector(notebook + ' .jp-Notebook-ExecutionIndicator');
    return /^\\[\\d+\\]:$/.test(prompt(cells[target]))
        && ![...cells].some(cell => prompt(cell).includes('*'))
        && (!indicator || indicator.dataset.status === 'idle');
}"""

#: The input prompt of every cell, in order (``[ ]:``, ``[*]:`` or ``[7]:``; empty for Markdown).
PROMPTS_JS = """(selector) => [...document.querySelectorAll(selector)].map(
    cell => (cell.querySelector('.jp-InputPrompt')?.textContent || '').trim())"""


def wait_until_settled(page, target: int, deadline: float) -> None:
    """Wait until cell ``target`` has run and the kernel is idle with nothing queued, twice in a row
    (0.1 s apart: the kernel goes idle for a moment between two queued cells)."""
    for _ in range(2):
        page.wait_for_function(SETTLED_JS, arg=[target, CELLS, NOTEBOOK], timeout=_ms_left(deadline),
                               polling=100)
        page.wait_for_timeout(100)


#: The index of the active cell.
ACTIVE_JS = """(selector) => [...document.querySelectorAll(selector)].findIndex(
    cell => cell.classList.contains('jp-mod-active'))"""


def select_cell(page, index: int) -> None:
    """Make cell ``index`` the active cell with the arrow keys of command mode, as a keyboard user would.

    Keys rather than a click: while cells scroll into view the notebook's layout still shifts
    (``content-visibility``), and a click can land on a neighbour.
    """
    page.locator(f"{NOTEBOOK} .jp-Notebook").focus()
    page.keyboard.press("Escape")
    for _ in range(5):  # press the whole distance at once, then look again (a key can be lost while scrolling)
        active = page.evaluate(ACTIVE_JS, CELLS)
        if active == index:
            return
        for _ in range(abs(index - active)):
            page.keyboard.press("ArrowDown" if active < index else "ArrowUp")
    pytest.fail(f"could not select cell {index}: the active cell is {page.evaluate(ACTIVE_JS, CELLS)}")


def run_every_cell(page, facts: dict, deadline: float) -> list[int]:
    """Run All, then Run Selected Cell and All Below from the first code cell that has not run, until all ran.

    After an error the kernel aborts the execution requests it has already received, while JupyterLab
    clears their prompts; a request that arrives a moment later may still run. So a round can leave a
    hole (a cell that did not run) above cells that did: the next round starts at the first hole and
    runs everything below it again, in order. Each round runs its first cell, so the first cell that has
    not run moves down every round, or the test fails.

    Returns
    -------
    list of int
        The cell each round started from (the first code cell, then one per stop at an error).
    """
    targets = [facts["code"][0]]
    menu_command(page, "Run", "runmenu:run-all")
    wait_until_settled(page, targets[-1], deadline)
    while True:
        prompts = page.evaluate(PROMPTS_JS, CELLS)
        not_run = [i for i in facts["code"] if not re.fullmatch(r"\[\d+\]:", prompts[i])]
        if not not_run:
            return targets
        assert not_run[0] > targets[-1], (
            f"no progress: cell {not_run[0]} has not run after rounds from cells {targets} "
            f"(prompts of the code cells: {[prompts[i] for i in facts['code']]})")
        targets.append(not_run[0])
        select_cell(page, targets[-1])
        menu_command(page, "Run", "notebook:run-all-below")
        wait_until_settled(page, targets[-1], deadline)


#: Everything the checks read from the rendered notebook, in one pass.
REPORT_JS = """(selector) => {
    const cells = [...document.querySelectorAll(selector)];
    const report = {stderr: [], images: [], mathErrors: [], mathCount: 0, rawTex: [], interacts: []};
    cells.forEach((cell, index) => {
        cell.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
            .forEach(out => report.stderr.push({cell: index, text: out.textContent}));
        cell.querySelectorAll('.jp-OutputArea-output img').forEach(img => report.images.push(
            {cell: index, complete: img.complete, width: img.naturalWidth}));
        cell.querySelectorAll('mjx-merror, [data-mjx-error]').forEach(err => report.mathErrors.push(
            {cell: index, error: err.getAttribute('data-mjx-error') || err.textContent}));
        report.mathCount += cell.querySelectorAll('mjx-container').length;
        cell.querySelectorAll('.jp-RenderedMarkdown').forEach(md => {
            const copy = md.cloneNode(true);
            copy.querySelectorAll('mjx-container, code, pre').forEach(node => node.remove());
            if (/\\$[^$]*\\\\[A-Za-z]+|\\\\\\(|\\\\\\[/.test(copy.textContent)) report.rawTex.push(index);
        });
        if (cell.querySelector('.widget-interact')) report.interacts.push(index);
    });
    return report;
}"""


def page_report(page, deadline: float) -> dict:
    """The outputs of the open notebook, once every image has finished loading."""
    page.wait_for_function(
        """(selector) => [...document.querySelectorAll(selector + ' .jp-OutputArea-output img')]
                          .every(img => img.complete)""", arg=CELLS, timeout=_ms_left(deadline))
    return page.evaluate(REPORT_JS, CELLS)


def parse_error(text: str) -> tuple[str, str] | None:
    """``(name, message)`` of an IPython traceback shown as text, or None for other stderr output."""
    if "Traceback (most recent call last)" not in text and not re.search(r"^Cell In\[\d+\]", text, re.M):
        return None
    last = [line for line in text.strip().splitlines() if line.strip()][-1]
    name, _, message = last.partition(": ")
    return name.strip(), message.strip()


def check_outputs(report: dict, allow_stubs: bool) -> list[str]:
    """What is wrong in a notebook's outputs (an empty list when nothing is).

    Errors other than the release stubs' (``allow_stubs``), any other stderr output, an image that did
    not load, a MathJax error, or TeX left untypeset.
    """
    problems = []
    for out in report["stderr"]:
        error = parse_error(out["text"])
        if error is None:
            problems.append(f"cell {out['cell']} wrote to stderr: {out['text'][:500]!r}")
        elif not (allow_stubs and error[0] == "NotImplementedError" and UNANSWERED.search(error[1])):
            problems.append(f"cell {out['cell']} raised {error[0]}: {error[1][:300]}\n{out['text'][-1500:]}")
    problems += [f"cell {img['cell']}: an image did not load (naturalWidth 0)" for img in report["images"]
                 if not img["width"]]
    problems += [f"cell {err['cell']}: MathJax error {err['error']!r}" for err in report["mathErrors"]]
    problems += [f"cell {index}: TeX left untypeset" for index in report["rawTex"]]
    return problems


def close_notebook(page, lab: Lab) -> None:
    """Close the open notebook without saving ("Discard"), then shut down every kernel the server still runs."""
    menu_command(page, "File", "application:close")
    page.wait_for_function(f"() => !document.querySelector('{NOTEBOOK}') || document.querySelector('.jp-Dialog')")
    dialog = page.locator(".jp-Dialog")
    if dialog.count():
        dialog_button(dialog, "Discard|Don.t Save").click()
    page.wait_for_selector(NOTEBOOK, state="detached")
    for session in page.request.get(lab.url("api/sessions")).json():
        page.request.delete(lab.url(f"api/sessions/{session['id']}"))


def dialog_button(dialog, labels: str):
    """The button of a JupyterLab dialog whose visible label matches ``labels`` (a regular expression).

    By its label, not its accessible name: JupyterLab names "Discard" "Discard changes to file".
    """
    return dialog.locator(".jp-Dialog-button", has=dialog.page.locator(
        ".jp-Dialog-buttonLabel", has_text=re.compile(rf"^({labels})$")))


def move_control(page, interact) -> str:
    """Move the first control of an ipywidgets ``interactive``: drag a slider, or press another toggle."""
    handle = interact.locator(".widget-slider .noUi-handle, .widget-slider .ui-slider-handle").first
    if handle.count():
        box = handle.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] / 2 + 150, box["y"] + box["height"] / 2, steps=8)
        page.mouse.up()
        return "slider"
    toggle = interact.locator(".widget-toggle-buttons button:not(.mod-active)").first
    if toggle.count():
        toggle.click()
        return f"toggle {toggle.text_content().strip()!r}"
    pytest.fail("the explorer has neither a slider nor toggle buttons to move")


def image_src(interact) -> str:
    """A digest of the explorer's figure (its image data)."""
    src = interact.locator("img").first.get_attribute("src", timeout=ACTION_S * 1000) or ""
    return hashlib.sha256(src.encode()).hexdigest()


def check_explorer(page, cell_index: int, name: str, deadline: float) -> None:
    """The explorer in cell ``cell_index`` is a live widget whose figure changes when a control moves."""
    cell = page.locator(CELLS).nth(cell_index)
    interact = cell.locator(".widget-interact")
    assert interact.count() == 1, (f"cell {cell_index}: the explorer is not shown as a widget; its output is "
                                   f"{cell.locator('.jp-OutputArea').text_content()[:300]!r}")
    interact.scroll_into_view_if_needed()
    interact.locator("img").first.wait_for(timeout=_ms_left(deadline))
    before = image_src(interact)
    screenshot(interact, f"{name}-explorer-before")
    control = move_control(page, interact)
    limit = min(deadline, time.monotonic() + ACTION_S)
    while image_src(interact) == before:
        assert time.monotonic() < limit, f"cell {cell_index}: the figure did not change after moving the {control}"
        page.wait_for_timeout(250)
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0",
                           arg=interact.locator("img").first.element_handle(), timeout=ACTION_S * 1000)
    screenshot(interact, f"{name}-explorer-after")


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deadline() -> float:
    """When every test of this module together must be done (:data:`WHOLE_RUN_S`)."""
    return time.monotonic() + WHOLE_RUN_S


@pytest.fixture(scope="module")
def browser():
    """Headless chromium from ``PATH``, driven by Playwright; fails (never skips) when either is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"Playwright for Python is not installed: {INSTALL_HINT}")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail(f"no chromium on PATH: {INSTALL_HINT}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, timeout=ACTION_S * 1000)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh page with the per-action time limit."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(ACTION_S * 1000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="module")
def student_lab(tmp_path_factory):
    """``kdcourse lab --student`` on a fresh workspace in a temporary folder."""
    folder = tmp_path_factory.mktemp("student-lab")
    lab = start_lab("student", folder, root=folder / "workspace")
    yield lab
    stop_lab(lab.process)


@pytest.fixture(scope="module")
def lectures_lab(tmp_path_factory):
    """``kdcourse lab --lectures`` on a copy of the lectures folder."""
    folder = tmp_path_factory.mktemp("lectures-lab")
    lectures = shutil.copytree(REPO / "notebooks" / "lectures", folder / "lectures",
                               ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    lab = start_lab("lectures", folder, root=lectures)
    yield lab
    stop_lab(lab.process)


def kdcourse_command(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run ``kdcourse ARGS`` in ``cwd``; fail the test with its output if it does not succeed."""
    argv = [str(Path(sys.executable).parent / "kdcourse"), *args]
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"kdcourse {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result


@pytest.fixture(scope="module")
def instructor_course(tmp_path_factory) -> Path:
    """A course repository in a temporary folder (the sources, the nbgrader config and the instructor files
    of this one) with one autograded submission of :data:`GRADED`: the solution, handed in by
    :data:`GRADED_STUDENT`, its written answer waiting for a manual grade."""
    from kdcourse.grading.course import Course, Submission
    from kdcourse.grading.simulation.submissions import notebook_files, solution_notebook, submit_files

    course_repo = tmp_path_factory.mktemp("instructor-course")
    shutil.copytree(REPO / "notebooks" / "assignments", course_repo / "notebooks" / "assignments",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copytree(REPO / "grading" / "assignments", course_repo / "grading" / "assignments")
    for name in ("nbgrader_config.py", "course.toml"):
        shutil.copy2(REPO / "grading" / name, course_repo / "grading" / name)
    kdcourse_command(["release", GRADED], course_repo, timeout=180)
    course = Course.from_repo(course_repo)
    submit_files(course, Submission(GRADED, GRADED_STUDENT), notebook_files(solution_notebook(course, GRADED), GRADED))
    kdcourse_command(["autograde", GRADED, "--no-progress"], course_repo, timeout=300)
    return course_repo


@pytest.fixture(scope="module")
def instructor_lab(tmp_path_factory, instructor_course):
    """``kdcourse lab --instructor --root`` on :func:`instructor_course` (this repository is not written to)."""
    lab = start_lab("instructor", tmp_path_factory.mktemp("instructor-lab"), root=instructor_course)
    yield lab
    stop_lab(lab.process)


# --- tests -----------------------------------------------------------------------------------------


def run_notebook_test(page, lab: Lab, relpath: str, name: str, allow_stubs: bool, deadline: float) -> dict:
    """Open, run every cell, check the outputs and close one notebook; the page report."""
    notebook_deadline = min(deadline, time.monotonic() + NOTEBOOK_S)
    path = lab.root / relpath
    original = path.read_bytes()
    facts = notebook_facts(path)
    open_notebook(page, lab, relpath, facts, notebook_deadline)
    rounds = run_every_cell(page, facts, notebook_deadline)
    report = page_report(page, notebook_deadline)
    report["rounds"] = rounds
    errors = [out for out in report["stderr"] if parse_error(out["text"])]
    if errors:
        page.locator(CELLS).nth(errors[0]["cell"]).scroll_into_view_if_needed()
    screenshot(page, f"{name}-after-run-all")
    problems = check_outputs(report, allow_stubs)
    for index in facts["explorers"]:
        check_explorer(page, index, name, notebook_deadline)
    close_notebook(page, lab)
    assert path.read_bytes() == original, f"{relpath} was modified by the browser session"
    assert not problems, f"{relpath}:\n" + "\n".join(problems)
    return report


@pytest.mark.timeout(NOTEBOOK_S + SERVER_START_S + 60)
@pytest.mark.parametrize("aid", ASSIGNMENT_IDS)
def test_release_runs_with_only_unanswered_exercise_errors(aid, page, student_lab, deadline):
    report = run_notebook_test(page, student_lab, f"assignments/{aid}/{aid}.ipynb", aid, True, deadline)
    assert len(report["rounds"]) > 1, f"{aid}: Run All never stopped at an unanswered exercise: are the solutions in?"


@pytest.mark.timeout(NOTEBOOK_S + SERVER_START_S + 60)
def test_validate_button_gives_its_dialog(page, student_lab, deadline):
    aid = ASSIGNMENT_IDS[0]
    relpath = f"assignments/{aid}/{aid}.ipynb"
    notebook_deadline = min(deadline, time.monotonic() + NOTEBOOK_S)
    open_notebook(page, student_lab, relpath, notebook_facts(student_lab.root / relpath), notebook_deadline)
    page.locator(f"{NOTEBOOK} .jp-Toolbar").get_by_role("button", name="Validate").click()
    dialog = page.locator(".jp-Dialog", has_text="Validation Results")
    dialog.wait_for(timeout=min(_ms_left(notebook_deadline), 150_000))
    screenshot(page, f"{aid}-validate-dialog")
    body = dialog.locator(".jp-Dialog-body")
    assert "error running the validate command" not in body.text_content(), body.text_content()[:2000]
    assert body.locator(".validation-failed").count() or "failed" in body.text_content(), (
        f"a blank release should fail validation; the dialog says {body.text_content()[:1000]!r}")
    dialog_button(dialog, "Ok|OK").click()
    close_notebook(page, student_lab)


@pytest.mark.timeout(NOTEBOOK_S + SERVER_START_S + 60)
@pytest.mark.parametrize("lecture", LECTURES)
def test_lecture_runs_without_errors_and_its_explorers_respond(lecture, page, lectures_lab, deadline):
    run_notebook_test(page, lectures_lab, lecture, Path(lecture).stem, False, deadline)


@pytest.mark.timeout(NOTEBOOK_S + SERVER_START_S + 60)
def test_formgrader_lists_every_assignment_and_opens_its_source(page, instructor_lab, deadline):
    page.goto(instructor_lab.url())
    menu_command(page, "Nbgrader", "nbgrader:open-formgrader")
    frame = page.frame_locator(".jp-MainAreaWidget iframe")
    names = frame.locator("td.name a")
    names.first.wait_for(timeout=_ms_left(deadline))
    page.wait_for_timeout(500)
    screenshot(page, "formgrader-assignments")
    assert sorted(names.all_text_contents()) == ASSIGNMENT_IDS
    for aid in ASSIGNMENT_IDS:
        frame.locator("td.name a", has_text=re.compile(f"^{aid}$")).click()
        page.wait_for_function(
            """(path) => [...document.querySelectorAll('.jp-BreadCrumbs-item')].some(i => i.dataset.path === path)""",
            arg=f"notebooks/assignments/{aid}", timeout=min(_ms_left(deadline), ACTION_S * 1000))
        listing = page.locator(".jp-DirListing-itemText").all_text_contents()
        assert f"{aid}.ipynb" in listing, f"the file browser shows {listing} for {aid}"


def wait_for_gradebook(course_repo: Path, condition, what: str, deadline: float):
    """Poll the course's gradebook until ``condition(scores of GRADED_STUDENT)`` holds; those scores."""
    from kdcourse.grading.course import Course
    from kdcourse.grading.scores import read_scores

    course = Course.from_repo(course_repo)
    limit = min(deadline, time.monotonic() + ACTION_S)
    while True:
        rows = [row for row in read_scores(course, [GRADED]) if row.student == GRADED_STUDENT]
        if rows and condition(rows[0]):
            return rows[0]
        assert time.monotonic() < limit, f"the gradebook never showed {what}: {rows}"
        time.sleep(0.5)


@pytest.mark.timeout(NOTEBOOK_S + 2 * SERVER_START_S + 60)
def test_a_manual_grade_and_comment_from_the_formgrader_reach_the_export(page, instructor_lab, instructor_course,
                                                                       deadline):
    comment = "Right idea; say which wrong classes get the probability."
    page.goto(instructor_lab.url())
    menu_command(page, "Nbgrader", "nbgrader:open-formgrader")
    frame = page.frame_locator(".jp-MainAreaWidget iframe")
    frame.get_by_role("link", name="Manual Grading").click(timeout=_ms_left(deadline))
    frame.get_by_role("link", name=GRADED, exact=True).click(timeout=_ms_left(deadline))
    frame.get_by_role("link", name=GRADED, exact=True).click(timeout=_ms_left(deadline))  # its one notebook
    frame.get_by_role("link", name="Submission #1").click(timeout=_ms_left(deadline))
    score = frame.locator(f"input.score#{GRADED_ANSWER}")
    score.wait_for(timeout=_ms_left(deadline))
    before = wait_for_gradebook(instructor_course, lambda row: True, "the submission", deadline)
    assert before.needs_manual_grade and before.questions[GRADED_ANSWER] == 0
    score.fill("1.5")
    score.press("Tab")
    frame.locator(f"#{GRADED_ANSWER}-comment").fill(comment)
    frame.locator(f"#{GRADED_ANSWER}-comment").press("Tab")
    after = wait_for_gradebook(instructor_course, lambda row: row.comments.get(GRADED_ANSWER) == comment
                               and row.questions[GRADED_ANSWER] == 1.5, "the manual grade and comment", deadline)
    frame.locator(f"#{GRADED_ANSWER}-comment").scroll_into_view_if_needed()
    screenshot(page, "formgrader-manual-grade")
    assert not after.needs_manual_grade
    kdcourse_command(["export"], instructor_course, timeout=120)
    with open(instructor_course / "grading" / "export" / "grades.csv", encoding="utf-8") as fh:
        rows = [row for row in csv.DictReader(fh) if row["student"] == GRADED_STUDENT]
    assert len(rows) == 1, rows
    row = rows[0]
    assert float(row[f"q:{GRADED_ANSWER}"]) == 1.5
    assert float(row["score"]) == pytest.approx(before.score + 1.5)
    assert row["needs_manual_grade"] == "false"
    assert row["comments"] == f"{GRADED_ANSWER}: {comment}"
