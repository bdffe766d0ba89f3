"""The code checks of the trusted judge, against the ways a hostile review got past them: delegation
hidden behind any binding form, tampering that evades a name list, and submissions that make the
judge do unbounded work. Each check fails closed, and honest notebooks (the course's solutions and
every misconception of its instructor files) are not accused."""

from __future__ import annotations

import copy
import time

import nbformat
import pytest

from kdcourse.grading.simulation.submissions import misconception_notebook
from kdcourse.judge import judge_record, load_items, static
from kdcourse.judge.items import Context
from kdcourse.judge.static import NotebookCode, Uncheckable, forbid_delegation, tampering
from kdcourse.judge.verdict import Wrong
from kdcourse.notebooks import nbgrader_meta, read_notebook, solution_cells, strip_markers

from fixtures.judging import course

F = "import torch\nimport torch.nn.functional as F\n"
BANNED = {"banned_names": ("kl_div", "KLDivLoss"), "banned_packages": ("scipy", "kdcourse")}


def _check(cells: list[str], function: str = "kl_divergence", **banned) -> str:
    """The message :func:`forbid_delegation` raises for ``function`` of the notebook ``cells``."""
    with pytest.raises(Wrong) as raised:
        forbid_delegation(NotebookCode(cells), function, **(banned or BANNED))
    return str(raised.value)


# --- 1. delegation hidden behind other binding forms ----------------------------------------------

#: ``name -> (cells, kind, words)``: kind "calls" (the banned call is found) or "uncheckable".
HIDDEN = {
    "tuple unpacking": ([F + "_F, _T = torch.nn.functional.kl_div, torch.as_tensor\n"
                         "def kl_divergence(p, q):\n    return _F(_T(q).log(), _T(p), reduction='sum')\n"],
                        "calls", "_F = torch.nn.functional.kl_div"),
    "class __call__": ([F + "class K:\n    def __call__(self, p, q):\n        return F.kl_div(q.log(), p)\n"
                        "kl_divergence = K()\n"], "calls", "K → F.kl_div"),
    "class method": ([F + "class K:\n    def go(self, p, q):\n        return F.kl_div(q.log(), p)\n"
                      "    def __call__(self, p, q):\n        return self.go(p, q)\nkl_divergence = K()\n"],
                     "calls", "F.kl_div"),
    "with as": ([F + "import contextlib\nwith contextlib.nullcontext(F.kl_div) as k:\n    pass\n"
                 "def kl_divergence(p, q):\n    return k(q.log(), p)\n"], "calls", "k = F.kl_div"),
    "for target": ([F + "for k in [F.kl_div]:\n    pass\ndef kl_divergence(p, q):\n    return k(q.log(), p)\n"],
                   "calls", "k = F.kl_div"),
    "subscript target": ([F + "d = {}\nd['k'] = F.kl_div\ndef kl_divergence(p, q):\n    return d['k'](q.log(), p)\n"],
                         "calls", "d = F.kl_div"),
    "attribute target": ([F + "import types\nns = types.SimpleNamespace()\nns.k = F.kl_div\n"
                          "def kl_divergence(p, q):\n    return ns.k(q.log(), p)\n"], "calls", "F.kl_div"),
    "walrus": ([F + "(k := F.kl_div)\ndef kl_divergence(p, q):\n    return k(q.log(), p)\n"], "calls", "k = F.kl_div"),
    "walrus in a comprehension": ([F + "[k := f for f in [F.kl_div]]\ndef kl_divergence(p, q):\n    return k(p, q)\n"],
                                  "calls", "F.kl_div"),
    "global in a helper": ([F + "def _setup():\n    global k\n    k = F.kl_div\n_setup()\n"
                            "def kl_divergence(p, q):\n    return k(q.log(), p)\n"], "calls", "k = F.kl_div"),
    "a helper fills a global": ([F + "d = {}\ndef _fill(x):\n    x['k'] = F.kl_div\n_fill(d)\n"
                                 "def kl_divergence(p, q):\n    return d['k'](q.log(), p)\n"], "calls", "F.kl_div"),
    "dict.update": ([F + "d = {}\ndict.update(d, k=F.kl_div)\ndef kl_divergence(p, q):\n    return d['k'](p, q)\n"],
                    "calls", "F.kl_div"),
    "except as": ([F + "try:\n    raise ValueError(F.kl_div)\nexcept ValueError as e:\n    k = e.args[0]\n"
                   "def kl_divergence(p, q):\n    return k(q.log(), p)\n"], "calls", "F.kl_div"),
    "match capture": ([F + "match F.kl_div:\n    case k:\n        pass\ndef kl_divergence(p, q):\n    return k(p, q)\n"],
                      "calls", "F.kl_div"),
    "rebound after the def": ([F + "def kl_divergence(p, q):\n    return (p * (p / q).log()).sum()\n",
                               "kl_divergence = lambda p, q: F.kl_div(q.log(), p)\n"], "calls", "F.kl_div"),
    "a decorator swaps it": ([F + "def _swap(f):\n    return F.kl_div\n@_swap\ndef kl_divergence(p, q):\n    return 0\n"],
                             "calls", "_swap → F.kl_div"),
    "the module object": ([F + "import inspect\ndef _h():\n    pass\nm = inspect.getmodule(_h)\n"
                           "m.kl_divergence = F.kl_div\n"], "calls", "F.kl_div"),
    "a method replaced through another instance": (
        [F + "class K:\n    def __call__(self, p, q):\n        return self.impl(p, q)\n"
             "    def impl(self, p, q):\n        return 0\nkl_divergence = K()\nother = K()\nother.impl = F.kl_div\n"],
        "calls", "F.kl_div"),
    "%time runs an assignment": ([F, "%time kl_divergence = F.kl_div\n"], "calls", "F.kl_div"),
    "%%capture runs its body": ([F, "%%capture\ndef kl_divergence(p, q):\n    return F.kl_div(q.log(), p)\n"],
                                "calls", "F.kl_div"),
    "an IPython prompt is stripped": ([F, "In [1]: kl_divergence = F.kl_div\n"], "calls", "F.kl_div"),
    "module-level eval": ([F + "kl_divergence = eval('lambda p, q: F.kl_' + 'div(q.log(), p)')\n"], "calls", "eval"),
    "computed getattr at module level": ([F + "k = getattr(F, 'kl_' + 'div')\ndef kl_divergence(p, q):\n    return k(p, q)\n"],
                                         "calls", "getattr with a computed name"),
    "attrgetter": ([F + "import operator\ndef kl_divergence(p, q):\n    return operator.attrgetter('kl_div')(F)(p, q)\n"],
                   "calls", "calls kl_div"),
    # what cannot be followed fails closed, naming why
    "__code__ swapped": ([F + "def _g(p, q):\n    return F.kl_div(q.log(), p)\n"
                          "def kl_divergence(p, q):\n    return (p * (p / q).log()).sum()\n"
                          "kl_divergence.__code__ = _g.__code__\n"], "uncheckable", "kl_divergence.__code__"),
    "%run -i of a file the notebook wrote": (
        [F, "%%writefile helper.py\nimport torch.nn.functional as F\n"
            "def kl_divergence(p, q):\n    return F.kl_div(q.log(), p)\n", "%run -i helper.py\n"],
        "uncheckable", "%run -i helper.py"),
    "%run -i of a file written from a string": (
        [F, "open('helper.py', 'w').write('import torch.nn.functional as F\\nkl_divergence = F.kl_' + 'div\\n')\n",
         "%run -i helper.py\n"], "uncheckable", "%run -i helper.py"),
    "automagic run": ([F, "%%writefile helper.py\ndef kl_divergence(p, q):\n    return 0\n", "run -i helper.py"],
                      "uncheckable", "%run -i helper.py"),
    "%load": ([F, "%load helper.py\n"], "uncheckable", "%load helper.py"),
    "module-level exec defines it": ([F + "exec('def kl_divergence(p, q):\\n    return F.kl_' + 'div(q.log(), p)')\n"],
                                     "uncheckable", "exec"),
    "exec through an alias": ([F + "run = exec\nrun('def kl_divergence(p, q): return 0')\n"], "uncheckable", "exec"),
    "star import": ([F + "from helper import *\ndef kl_divergence(p, q):\n    return helper_kl(p, q)\n"],
                    "uncheckable", "import *"),
    "globals()": ([F + "globals()['kl_divergence'] = F.kl_div\n"], "uncheckable", "globals()"),
    "setattr with a computed name": ([F + "import sys\nsetattr(sys.modules[__name__], 'kl_' + 'divergence', F.kl_div)\n"],
                                     "uncheckable", "setattr with a computed name"),
    "a module the notebook writes": ([F, "%%writefile helper.py\nimport torch.nn.functional as F\nkl = F.kl_div\n",
                                      "from helper import kl\ndef kl_divergence(p, q):\n    return kl(q.log(), p)\n"],
                                     "uncheckable", "a module the notebook writes itself"),
    "a file written with open()": ([F + "open('helper.py', 'w').write('k = 1')\nimport helper\n"
                                    "def kl_divergence(p, q):\n    return helper.k\n"],
                                   "uncheckable", "a module the notebook writes itself"),
    "an unknown module": ([F + "from mystery_helpers_xyz import kl\ndef kl_divergence(p, q):\n    return kl(p, q)\n"],
                          "uncheckable", "a module the grader does not know"),
    "the graded name imported from it": ([F + "from mystery_helpers_xyz import kl_divergence\n"],
                                         "uncheckable", "a module the grader does not know"),
    "a frame's globals": ([F + "import sys\nsys._getframe().f_globals['kl_divergence'] = F.kl_div\n"],
                          "uncheckable", "f_globals"),
    "vars() of a module": ([F + "import inspect\nd = vars(inspect)\n"], "uncheckable", "vars()"),
}


@pytest.mark.parametrize("name", sorted(HIDDEN))
def test_delegation_is_found_or_fails_closed_whatever_binds_the_name(name):
    cells, kind, words = HIDDEN[name]
    message = _check(cells)
    if kind == "calls":
        assert message.startswith("kl_divergence calls ") and "write the formula yourself" in message, message
    else:
        assert message.startswith("kl_divergence cannot be checked: "), message
    assert words in message, message


def test_an_uncheckable_function_fails_its_test_and_asks_for_a_review():
    from fixtures.judging import record_of

    spec = course().spec("a01_kl_divergence")
    record = record_of("a01_kl_divergence", "test_kl_divergence", {"kl_divergence": lambda p, q: 0.0})
    code = NotebookCode([(3, "import numpy as np\n"), (9, "%run -i helper.py\n")])
    verdict = judge_record("a01_kl_divergence", "test_kl_divergence", record, code=code, spec=spec,
                           spec_dir=course().spec_dir)
    assert not verdict.passed and "cannot be checked: cell 9, line 1 runs `%run -i helper.py`" in verdict.message
    assert "could not be checked" in verdict.review


def test_the_finding_says_where_it_is():
    message = _check([(2, F), (5, "def _h(p, q):\n    return F.kl_div(q.log(), p)\n"),
                      (8, "def kl_divergence(p, q):\n    return _h(p, q)\n")])
    assert "kl_divergence calls _h → F.kl_div (from torch.nn.functional.kl_div) (cell 5, line 2)" in message


# --- honest code is not accused -------------------------------------------------------------------

ASSIGNMENTS = ("a01_kl_divergence", "a02_distillation_loss", "a03_teacher_student",
               "a04_dissimilarity_and_reverse_kl")


def _source_solution(assignment: str):
    """The source notebook with its solution markers removed (what the model answer submits)."""
    nb = read_notebook(course().source_notebook(assignment))
    for cell in solution_cells(nb).values():
        if cell.cell_type == "code":
            cell.source = strip_markers(cell.source)
    return nb


def _code_of(nb) -> tuple[NotebookCode, set[int]]:
    code = NotebookCode([(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"])
    return code, {i for i, c in enumerate(nb.cells) if c.cell_type == "code" and not nbgrader_meta(c).get("locked")}


def _static_verdicts(assignment: str, code: NotebookCode) -> dict[str, str | None]:
    """``grade_id -> message`` of each static check (``None`` when it passes)."""
    spec = course().spec(assignment)
    verdicts = {}
    for grade_id, item in load_items(assignment, spec, course().spec_dir).items():
        if item.static is None:
            continue
        context = Context(assignment, grade_id, True, {}, code)
        try:
            item.static(context)
            verdicts[grade_id] = None
        except Wrong as wrong:
            verdicts[grade_id] = f"{type(wrong).__name__}: {wrong}"
    return verdicts


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_solutions_pass_the_code_checks_and_are_not_tampering(assignment):
    code, editable = _code_of(_source_solution(assignment))
    assert not code.opaque and not code.too_large
    verdicts = _static_verdicts(assignment, code)
    assert verdicts and all(v is None for v in verdicts.values()), verdicts
    assert tampering(code, editable=editable) == []


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_no_misconception_is_uncheckable_or_tampering(assignment):
    spec = course().spec(assignment)
    base = _source_solution(assignment)
    for misconception in spec.misconceptions:
        code, editable = _code_of(misconception_notebook(course(), spec, misconception, base=base))
        assert not code.opaque, (misconception.name, code.opaque)
        verdicts = _static_verdicts(assignment, code)
        assert not [v for v in verdicts.values() if v and v.startswith("Uncheckable")], (misconception.name, verdicts)
        assert tampering(code, editable=editable) == [], misconception.name


def test_ordinary_code_binds_names_without_being_accused():
    """Checks after the function, plots, a class with methods, loops and prints are not delegation."""
    cells = [F, "def kl_divergence(p, q):\n    '''KL with kl_div's convention: softmax of nothing.'''\n"
                "    return (p * (p / q).log()).sum(-1)\n",
             "p, q = torch.tensor([0.5, 0.5]), torch.tensor([0.9, 0.1])\n"
             "print(kl_divergence(p, q), F.kl_div(q.log(), p, reduction='sum'))\n"
             "for T in [1.0, 2.0]:\n    z = torch.randn(3)\n    print(F.kl_div(z.log_softmax(-1), p.softmax(-1)))\n"
             "results = {name: kl_divergence(p, q) for name in ['a']}\n",
             "class Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
             "        self.fc = torch.nn.Linear(2, 2)\n    def forward(self, x):\n        return self.fc(x)\n"
             "net = Net()\nprint(type(net).__name__, net.__class__.__name__, len(list(net.modules())))\n",
             "%matplotlib inline\n", "!ls\n"]
    code = NotebookCode(cells)
    assert code.delegation("kl_divergence", **BANNED) is None
    assert tampering(list(enumerate(cells))) == []


SETUP = "import numpy as np\nfrom kdcourse.answers import Checker\ncheck = Checker('a01_kl_divergence')\n"
NOISY = ("import functools\ndef noisy(function):\n    @functools.wraps(function)\n"
         "    def wrapper(*args):\n        print('called')\n        return function(*args)\n    return wrapper\n")
OWN_ENTROPY = "def entropy(p):\n    p = np.asarray(p)\n    return -np.sum(p * np.log(p))\n"


def test_a_rebound_function_handed_to_the_test_cells_check_is_not_delegation(monkeypatch):
    """A wrapped function is passed to ``check`` by the locked test cell: the course's collector is not a
    reference implementation, though it comes from kdcourse (a banned package)."""
    cells = [SETUP, NOISY + OWN_ENTROPY + "entropy = noisy(entropy)\n", "check('test_entropy', entropy)\n"]
    assert NotebookCode(cells).delegation("entropy", **BANNED) is None
    # without trusting the collector it looked like delegation: kdcourse is banned, and entropy reaches check
    monkeypatch.setattr(static, "TRUSTED_ORIGINS", frozenset())
    assert "check = Checker" in _check(cells, "entropy")


@pytest.mark.parametrize("alias", [
    "from kdcourse.divergences import entropy as Checker\n",
    "import kdcourse.divergences as _d\nChecker = _d.entropy\n",
    "from kdcourse.answers import checker as _c\nChecker = _c.judge_record\n",
])
def test_only_the_collector_itself_is_trusted_not_its_name(alias):
    """A student who names a reference implementation ``Checker`` gains nothing: trust goes to the origin."""
    cells = [SETUP.replace("from kdcourse.answers import Checker\n", alias),
             "def entropy(p):\n    return Checker(p)\n"]
    assert "Checker" in _check(cells, "entropy")


def test_an_attribute_of_the_collector_is_still_judged():
    cells = [SETUP, "def entropy(p):\n    return Checker.reference_entropy(p)\n"]
    assert "kdcourse.answers.Checker.reference_entropy" in _check(cells, "entropy")


# --- 2. tampering that evades a list of names -------------------------------------------------------

TAMPERING = {
    "getattr(sys, 'modules')": ("import sys\ngetattr(sys, 'modules')['numpy'] = None\n", "sys.modules"),
    "a computed get_ipython": ("import builtins as b\ngetattr(b, 'get_' + 'ipython')()\n", "computed name"),
    "events from anywhere": ("_ip = some_shell\n_ip.events.register('post_run_cell', print)\n", "event hooks"),
    "setattr on a module": ("import math\nsetattr(math, 'isnan', lambda x: False)\n", "imported module math"),
    "check rebound by a tuple": ("check, x = print, 1\n", "rebinds check"),
    "check rebound by for": ("for check in [print]:\n    pass\n", "rebinds check"),
    "check rebound by walrus": ("(check := print)\n", "rebinds check"),
    "check rebound by import-as": ("from builtins import print as check\n", "rebinds check"),
    "check rebound through global": ("def f():\n    global check\n    check = print\nf()\n", "rebinds check"),
    "check rebound by with": ("import contextlib\nwith contextlib.nullcontext(print) as check:\n    pass\n",
                              "rebinds check"),
    "check._plan": ("check._plan = {}\n", "reaches into check (check._plan)"),
    "check's class": ("check.__class__.__call__ = lambda *a, **k: None\n", "reaches into check"),
    "check aliased": ("c = check\nc._plan = {}\n", "uses check other than calling it"),
    "setattr on check": ("setattr(check, '_plan', {})\n", "on check"),
    "frames through a traceback": ("try:\n    1 / 0\nexcept Exception as e:\n    g = e.__traceback__.tb_frame.f_back.f_globals\n",
                                   "frames"),
    "__subclasses__": ("x = object.__subclasses__()\n", "__subclasses__"),
    "a __dict__ write": ("import numpy as np\nnp.__dict__['allclose'] = None\n", "__dict__"),
    "a __globals__ write": ("def f():\n    pass\nf.__globals__['check'] = print\n", "__globals__"),
    "__builtins__ write": ("__builtins__.print = None\n", "__builtins__"),
    "module-level exec": ("exec('x = 1')\n", "exec"),
    "eval": ("y = eval('1 + 1')\n", "eval"),
    "compile": ("c = compile('x = 1', 'f', 'exec')\n", "compile"),
    "an unusual cell magic": ("%%python_hook\nanything\n", "%%python_hook"),
    "%run": ("%run -i helper.py\n", "%run -i helper.py"),
    "%load_ext of an extension": ("%load_ext my_hooks\n", "%load_ext my_hooks"),
    "%config runs code": ("%config InteractiveShell.ast_transformers = []\n", "%config"),
    "a string naming get_ipython": ("import pkgutil\npkgutil.resolve_name('IPython:get_ipython')()\n", "get_ipython"),
    "a string naming IPython": ("import pydoc\nshell = pydoc.locate('IPython.core.getipython')\n", "IPython"),
    "Checker": ("from kdcourse import answers\nanswers.Checker.__call__ = None\n", "Checker"),
    "probes": ("import kdcourse.answers.probes as p\n", "answer collector"),
    "kdcourse.answers in a string": ("import importlib\nimportlib.import_module('kdcourse.' + 'answers')\n",
                                     "importlib"),
    "the history": ("In.clear()\n", "input history"),
    "gc": ("import gc\ngc.get_objects()\n", "gc"),
}


@pytest.mark.parametrize("name", sorted(TAMPERING))
def test_tampering_is_reported_however_it_is_spelled(name):
    source, words = TAMPERING[name]
    found = tampering([(4, source)])
    assert found and found[0].startswith("cell 4:") and words in found[0], found


def test_tampering_in_a_locked_cell_is_not_the_students():
    code = NotebookCode([(1, "from kdcourse.answers import Checker\ncheck = Checker('a01')\n"),
                         (3, "def kl(p, q):\n    return 0\n")])
    assert tampering(code, editable={3}) == []
    assert tampering(code, editable={1, 3})  # the same code, editable, would be reported


def test_no_student_text_becomes_part_of_a_reason():
    found = tampering([(2, "%%evil =HYPERLINK(\"http://x\")\x1b[2J\nx\n"),
                       (3, "s = 'IPython =HYPERLINK(\"http://x\")'\n")])
    text = " ".join(found)
    assert "%%evil" in text and "=" not in text and "\x1b" not in text and "HYPERLINK(" not in text, found


# --- 3. bounded work on submitted code ------------------------------------------------------------


def _huge_cell(mib: float = 6) -> str:
    return "%%writefile /dev/null\n" + "x = 1\n" * int(mib * 2**20 / 6)


def test_a_huge_cell_is_refused_at_once_and_fails_closed():
    start = time.perf_counter()
    code = NotebookCode([F, _huge_cell(), "def kl_divergence(p, q):\n    return 0\n"])
    with pytest.raises(Uncheckable, match="too large for the grader to check"):
        code.delegation("kl_divergence", **BANNED)
    assert tampering(code) == [code.too_large]
    assert not code.empty
    assert time.perf_counter() - start < 1.0


def test_too_many_syntax_nodes_fail_closed(monkeypatch):
    monkeypatch.setattr(static, "MAX_NODES", 50)
    code = NotebookCode(["x = [" + ", ".join(["1"] * 100) + "]\n"])
    assert "more than 50 syntax nodes" in code.too_large
    with pytest.raises(Uncheckable):
        code.delegation("kl_divergence")


def test_cell_magics_are_not_parsed_as_python():
    code = NotebookCode(["%%bash\nthis is ( not python\n", "%%writefile notes.txt\ndef kl_divergence(): ...\n"])
    assert code.empty and not code.opaque and not code.definitions


def test_a_notebook_code_is_judged_without_parsing_again(monkeypatch):
    """``judge_record`` uses the NotebookCode it is given, for every test."""
    from fixtures.judging import record_of

    code = NotebookCode([F + "def kl_divergence(p, q):\n    return F.kl_div(q.log(), p)\n"])
    monkeypatch.setattr(NotebookCode, "_read_cell", lambda *a, **k: pytest.fail("parsed again"))
    record = record_of("a01_kl_divergence", "test_kl_divergence", {"kl_divergence": lambda p, q: 0.0}, graded=False)
    verdict = judge_record("a01_kl_divergence", "test_kl_divergence", record, code=code)
    assert not verdict.passed and "kl_divergence calls F.kl_div" in verdict.message


def test_the_grader_parses_a_notebook_once_and_flags_a_huge_one(monkeypatch, tmp_path):
    """The nbgrader preprocessor: one NotebookCode for all tests and the tampering check; a 6 MiB cell
    behind ``%%writefile /dev/null`` costs little time and flags the submission."""
    from kdcourse.grading.adapter import findings
    from kdcourse.grading.adapter.config import course_config
    from kdcourse.grading.adapter.judging import JudgeAnswers
    from kdcourse.grading.course import Submission

    built = []

    class Counting(NotebookCode):
        def __init__(self, *args, **kwargs):
            built.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(static, "NotebookCode", Counting)
    aid = "a02_distillation_loss"
    repo = course()
    resources = {"nbgrader": {"assignment": aid, "student": "huge", "notebook": aid, "db_url": "sqlite://"}}
    judge = JudgeAnswers(config=course_config(repo))

    nb = _source_solution(aid)
    judge.preprocess(copy.deepcopy(nb), resources)
    assert built == [1]
    assert findings.take(Submission(aid, "huge")).reasons == []

    nb.cells.insert(3, nbformat.v4.new_code_cell(_huge_cell()))
    start = time.perf_counter()
    judged, _ = judge.preprocess(nb, resources)
    assert time.perf_counter() - start < 5.0
    assert built == [1, 1]
    reasons = findings.take(Submission(aid, "huge")).reasons
    assert any("too large for the grader to check" in r for r in reasons), reasons
    messages = [o.get("evalue", "") for c in judged.cells if nbgrader_meta(c).get("grade")
                for o in c.get("outputs", [])]
    assert any("too large for the grader to check" in m for m in messages), messages


def test_code_nested_deeper_than_the_grader_can_read_fails_closed(monkeypatch):
    """CPython compiles nesting a little deeper than ``ast`` can represent (and the limit shrinks with the
    grader's own stack): such a cell may run in the kernel, so it is not skipped."""
    import ast

    source = "kl_divergence = F.kl_div if 1" + " + 1" * 1000 + " else 0\n"
    compile(source, "<cell>", "exec")  # the kernel would run it

    def too_deep(*args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded during ast construction")

    with monkeypatch.context() as patched:
        patched.setattr(ast, "parse", too_deep)
        code = NotebookCode([(1, F), (2, source)])
    with pytest.raises(Uncheckable, match="cell 2 is nested too deeply for the grader to read"):
        code.delegation("kl_divergence", **BANNED)
    assert tampering(code, editable={2}) == ["cell 2: its code is nested too deeply for the grader to read"]


def test_a_syntax_error_cell_is_skipped_as_the_kernel_skips_it():
    code = NotebookCode([F, "def broken(:\n    F.kl_div\n", "def kl_divergence(p, q):\n    return (p / q).log()\n"])
    assert code.delegation("kl_divergence", **BANNED) is None
