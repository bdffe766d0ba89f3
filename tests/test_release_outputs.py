"""Nothing a blank student release prints or draws gives an answer away.

``kdcourse release`` already checks the *sources* of each release for instructor-only lines. These tests
run each blank release and read what it *shows*: every output's text (streams, ``text/plain``, HTML,
LaTeX, Markdown, error messages, widget outputs) and the text of every matplotlib figure it draws
(titles, labels, ticks, legends, annotations, suptitles), collected inside the kernel. They fail if any of
it contains a revealing string made from the instructor's side: a graded value answer's solution value as a
notebook would print it (the source notebook is run, solutions in place, to get the values), or a
multiple-choice key's right option standing as a give-away next to the answer's name. The rules and the
kernel side live in :mod:`fixtures.release_outputs`.

Releases are generated with :func:`kdcourse.grading.release.release` into a temporary copy of the course,
never into the repository; the notebooks are read, never written.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from kdcourse import notebooks as nt
from kdcourse.grading.release import release

from fixtures.grading_helpers import course_copy
from fixtures.release_outputs import (
    revealing_choices,
    revealing_numbers,
    run_with_figure_log,
    scan,
    solution_values,
)

ASSIGNMENTS = [p.stem for p in nt.list_assignments()]
#: Hang guard of one cell (a release runs in at most about 30 s on two cores).
CELL_TIMEOUT_S = 120
#: Hang guard of one assignment's test: the release of every assignment (first test only), then two runs.
TEST_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def course_with_releases(tmp_path_factory):
    """A throw-away course and its releases, generated once by kdcourse's own release step."""
    course = course_copy(tmp_path_factory.mktemp("release-outputs"))
    notebooks = release(course, log=lambda *_: None)
    return course, {path.parent.name: path for path in notebooks}


@pytest.mark.kernel
@pytest.mark.timeout(TEST_TIMEOUT_S)
@pytest.mark.parametrize("aid", ASSIGNMENTS)
def test_blank_release_outputs_reveal_no_answer(aid, course_with_releases, tmp_path):
    course, releases = course_with_releases
    keys = course.spec(aid).keys
    values, failed = solution_values(course.source_notebook(aid), keys, CELL_TIMEOUT_S)
    assert not failed, f"{aid}: the source notebook gave no value for {failed}"
    revealing = revealing_numbers(values) + revealing_choices(keys)
    log = tmp_path / f"{aid}.figure-text.jsonl"
    executed = run_with_figure_log(releases[aid], log, CELL_TIMEOUT_S)
    findings = scan(f"{aid}.ipynb (release)", executed, log, revealing)
    assert not findings, f"the blank release of {aid} shows answers:\n" + "\n".join(map(str, findings))


@pytest.mark.kernel
@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_figure_text_is_collected_in_the_kernel(tmp_path):
    """The kernel side works: the text of a shown pyplot figure, of a figure closed for pyplot and rendered
    to a PNG (as the explorers do), of a figure left open and never shown, and of a figure drawn by a widget
    reaches the log, attributed to its cell, and is flagged, as are a widget's outputs and values."""
    nb = new_notebook(cells=[
        new_code_cell("import io\nimport matplotlib.pyplot as plt"),
        new_code_cell("fig, ax = plt.subplots()\nax.plot([0, 1], [0, 2], label='fit H=0.726446')\n"
                      "ax.set_title('title 12.3456')\nax.set_xlabel('x 0.1111')\nax.legend()\n"
                      "ax.annotate('note 0.2222', (0.5, 1))\nfig.suptitle('sup 0.3333')\nplt.show()"),
        new_markdown_cell("text"),
        new_code_cell("other, ax2 = plt.subplots()\nax2.set_ylabel('png 0.4444')\nplt.close(other)\n"
                      "other.savefig(io.BytesIO(), format='png')"),
        new_code_cell("third, ax3 = plt.subplots()\nax3.set_title('open 0.5555')"),
        new_code_cell("print('printed 0.6666')"),
        new_code_cell("import ipywidgets as widgets\nfrom IPython.display import display\n"
                      "out = widgets.Output()\ndisplay(out)\nwith out:\n    print('in a widget 0.7777')"),
        new_code_cell("def view(T=1.0):\n    fig, ax = plt.subplots()\n    ax.set_title(f'T={T}: 0.8888')\n"
                      "    plt.show()\nwidgets.interactive(view, T=widgets.FloatSlider(value=1.2345))"),
    ])
    path = tmp_path / "figures.ipynb"
    nbformat.write(nb, str(path))
    log = tmp_path / "figures.figure-text.jsonl"
    executed = run_with_figure_log(path, log, CELL_TIMEOUT_S)
    texts = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        texts.setdefault(record["cell"], set()).update(record["texts"])
    assert {"fit H=0.726446", "title 12.3456", "x 0.1111", "note 0.2222", "sup 0.3333"} <= texts[1]
    assert "png 0.4444" in texts[3]
    assert "open 0.5555" in texts[4]
    assert "T=1.2345: 0.8888" in texts[7]
    assert not {0, 5, 6} & set(texts)
    assert nbformat.read(str(path), as_version=4) == nb  # the file is only read
    values = {("test_x", f"v{i}"): [x] for i, x in enumerate(
        (0.726446397560344, 12.3456, 0.1111, 0.2222, 0.3333, 0.4444, 0.5555, 0.6666, 0.7777, 0.8888, 1.2345))}
    found = {(f.cell, f.kind, f.revealing) for f in scan("figures", executed, log, revealing_numbers(values))}
    assert {(1, "figure text", "0.726446"), (1, "figure text", "12.3456"), (3, "figure text", "0.4444"),
            (4, "figure text", "0.5555"), (5, "stream stdout", "0.6666"), (6, "widget stream stdout", "0.7777"),
            (7, "figure text", "0.8888"), (7, "widget value", "1.2345")} <= found


# --- the scanner without a kernel ------------------------------------------------------------------------


def _stream(text: str):
    return new_output("stream", name="stdout", text=text)


def _fake_release(*outputs) -> nbformat.NotebookNode:
    return new_notebook(cells=[new_markdown_cell("# A release"), new_code_cell("x = 1"),
                               new_code_cell("show()", outputs=list(outputs))])


def _log(tmp_path: Path, *records) -> Path:
    path = tmp_path / "figure-text.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


VALUES = {("test_replica", "kl_A"): [0.006577118099991286], ("test_scenario_c_numbers", "accuracy_after"):
          [0.7444444298744202], ("test_replica", "count"): [7], ("test_share", "share"): [0.5]}
KEYS = {"test_replica": {"best_replica": {"answer": "A"}}, "test_alpha": {"alpha_to_one": {"answer": "a"}}}


def _revealing():
    return revealing_numbers(VALUES) + revealing_choices(KEYS)


@pytest.mark.parametrize("output", [
    _stream("KL(reference || A) = 0.006577 nats\n"),
    _stream("accuracy 0.828 → 0.744\n"),
    new_output("execute_result", data={"text/plain": "np.float64(0.006577118099991286)"}),
    new_output("display_data", data={"text/html": "<td>0.0066</td>", "text/plain": "table"}),
    new_output("display_data", data={"text/latex": r"$\mathrm{acc} = 74.4\%$"}),
    new_output("display_data", data={"text/markdown": "best: **0.74444**"}),
    new_output("error", ename="NotImplementedError", evalue="kl_A should be 0.00657712", traceback=[]),
    _stream('best_replica = "A"\n'),
    _stream("check: best_replica -> the correct answer is 'A'\n"),
    _stream("alpha_to_one = a\n"),
], ids=["stream", "3-decimals", "repr", "html", "latex-percent", "markdown", "error", "choice", "choice-word",
        "choice-bare"])
def test_scan_flags_a_revealing_output(output, tmp_path):
    findings = scan("fake", _fake_release(output), _log(tmp_path), _revealing())
    assert findings and {f.cell for f in findings} == {2}, findings
    assert "fake, cell 2" in str(findings[0])


def test_scan_flags_a_revealing_figure_text(tmp_path):
    log = _log(tmp_path, {"cell": 1, "how": "drawn", "texts": ["epoch", "0.0", "0.5"]},
               {"cell": 2, "how": "drawn", "texts": ["student A: KL = 0.0066 nats"]})
    findings = scan("fake", _fake_release(), log, _revealing())
    assert [(f.cell, f.kind, f.revealing) for f in findings] == [(2, "figure text", "0.0066")]
    assert "kl_A (test_replica)" in findings[0].why


def test_scan_passes_outputs_that_reveal_nothing(tmp_path):
    harmless = _fake_release(
        _stream("NotImplementedError: set best_replica to one of 'A', 'B' or 'C'\n"),
        _stream("best_replica is a string; answer with one letter: A, B or C\n"),
        _stream("best_replica: 'A', 'B' or 'C'\nalpha_to_one: a letter is expected, your answer is a string\n"),
        _stream("values 10.006577 0.0065771 0.74 0.745 7 0.500 50.0% epoch 7\n"),
        _stream("probabilities [0.073 0.095 0.744 0.128 0.133]\n"),  # a short number among many: chance
        new_output("error", ename="NotImplementedError", evalue="kl_A is still None", traceback=[]),
    )
    log = _log(tmp_path, {"cell": 2, "how": "drawn", "texts": ["0.0", "0.5", "1.0", "7", "accuracy"]})
    assert scan("fake", harmless, log, _revealing()) == []
