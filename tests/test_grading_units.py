"""Fast grading tests that start no kernel: course layout, config, settings, staging, status store,
the judge preprocessor, leaks, what a grading kernel can read, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from kdcourse.grading.course import Course, CourseError, Submission, check_student_id, parse_spec
from kdcourse.grading.leaks import find_leaks, notebook_text, secret_lines
from kdcourse.grading.status import Status, StatusStore, failure_reason

from fixtures.grading_helpers import AID, fixture_course, tree_digest

REPO = Path(__file__).resolve().parents[1]
FIXTURE_SOURCE = Path(__file__).parent / "fixtures" / "course" / "notebooks" / "assignments" / AID / f"{AID}.ipynb"
pytestmark = pytest.mark.timeout(120)


def test_repo_config_points_nbgrader_at_the_sources_and_grades_sandboxed():
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    from kdcourse.grading.adapter.execute import SandboxedExecute
    from kdcourse.grading.adapter.judging import JudgeAnswers

    config = PyFileConfigLoader("nbgrader_config.py", path=str(REPO / "grading")).load_config()
    coursedir = CourseDirectory(config=config)
    assert Path(coursedir.root) == REPO / "grading"
    steps = config.Autograde.autograde_preprocessors
    assert steps[:2] == [SandboxedExecute, JudgeAnswers], "every kernel sandboxed, every verdict judged outside"
    assert "Execute" not in [s.__name__ for s in steps]
    assert config.SandboxedExecute.iopub_timeout >= 30 and config.OverwriteCells.add_missing_cells
    assert "--InteractiveShell.xmode=Minimal" in config.SandboxedExecute.extra_arguments
    assert config.CourseFiles.spec_dir == str(REPO / "grading" / "assignments")
    for aid in Course.from_repo(REPO).assignments():
        source = Path(coursedir.format_path(coursedir.source_directory, ".", aid)) / f"{aid}.ipynb"
        assert source.resolve() == (REPO / "notebooks" / "assignments" / aid / f"{aid}.ipynb").resolve()


def test_generated_folders_are_git_ignored():
    names = ["release/x", "submitted/x", "staged/x", "autograded/x", "feedback/x", "export/x", "gradebook.db"]
    result = subprocess.run(["git", "check-ignore", *[f"grading/{n}" for n in names]], cwd=REPO,
                            capture_output=True, text=True, timeout=30)
    assert sorted(result.stdout.split()) == sorted(f"grading/{n}" for n in names)


def test_assignments_are_discovered_by_glob(tmp_path):
    course = fixture_course(tmp_path)
    (course.source_dir / "not_an_assignment").mkdir()
    assert course.assignments() == [AID]
    with pytest.raises(CourseError, match="unknown assignment"):
        course.select(["a99_missing"])


def test_spec_errors_name_the_key():
    with pytest.raises(CourseError, match="points"):
        parse_spec("x", {}, origin="x.toml")
    with pytest.raises(CourseError, match="expected_score"):
        parse_spec("x", {"points": 3, "misconception": [{"name": "a"}]}, origin="x.toml")
    with pytest.raises(CourseError, match=r"\[key.t.q\] needs an 'answer'"):
        parse_spec("x", {"points": 3, "key": {"t": {"q": {"why_wrong": {}}}}}, origin="x.toml")
    with pytest.raises(CourseError, match="must be a list"):
        parse_spec("x", {"points": 3, "cases": {"t": {"f": 3}}}, origin="x.toml")
    spec = parse_spec("x", {"points": 3, "manual_points": 1})
    assert spec.auto_points == 2.0 and spec.judge == "kdcourse.judge.x"


@pytest.mark.parametrize("student, valid", [("alice", True), ("a.b-c_9", True), ("9lives", True),
                                            (".hidden", False), ("a/b", False), ("", False), ("x" * 65, False),
                                            ("ünïcode", False), ("-dash", False)])
def test_one_student_id_rule(student, valid):
    if valid:
        assert check_student_id(student) == student
    else:
        with pytest.raises(CourseError, match="not valid"):
            check_student_id(student)


def test_sandbox_settings_merge_course_and_assignment(tmp_path):
    from kdcourse.grading.settings import ALWAYS_HIDDEN, sandbox_settings

    course = fixture_course(tmp_path)
    settings_file = tmp_path / "course.toml"
    settings_file.write_text('[sandbox]\nmemory_mib = 1024\nhidden_modules = ["sklearn"]\n', encoding="utf-8")
    course = Course(course.root, course.source_dir, course.spec_dir, settings_file=settings_file)
    settings = sandbox_settings(course, AID)
    assert settings.limits.memory_bytes == 1024 * 2**20          # from course.toml
    assert settings.limits.max_processes == 128                  # from the assignment's toml
    assert set(ALWAYS_HIDDEN) | {"sklearn"} <= set(settings.hidden_modules)
    settings_file.write_text("[sandbox]\nmemory_gib = 1\n", encoding="utf-8")
    with pytest.raises(CourseError, match="unknown key 'memory_gib'"):
        sandbox_settings(course, AID)


def _submission(course, student, files):
    folder = course.folder("submitted", Submission(AID, student))
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def test_staging_renamed_invalid_missing_and_foreign_files(tmp_path):
    from kdcourse.grading.staging import stage

    course = fixture_course(tmp_path)
    good = nbformat.writes(nbformat.read(str(course.source_notebook(AID)), as_version=4)).encode()
    _submission(course, "renamed", {"copy of it.ipynb": good})
    _submission(course, "broken", {f"{AID}.ipynb": b'{"cells": ['})
    _submission(course, "empty", {"readme.txt": b"nothing"})
    shadow = _submission(course, "shadow", {f"{AID}.ipynb": good, "numpy.py": b"raise ImportError\n"})
    (shadow / "secret.ipynb").symlink_to(course.source_notebook(AID))
    before = tree_digest(course.root / "submitted")
    names = [f"{AID}.ipynb"]
    renamed = stage(course, Submission(AID, "renamed"), names)
    assert (renamed.folder / f"{AID}.ipynb").is_file() and renamed.notes and not renamed.problems
    broken = stage(course, Submission(AID, "broken"), names)
    assert not (broken.folder / f"{AID}.ipynb").exists() and "not valid JSON" in broken.problems[0]
    assert broken.bad_notebooks == [AID]
    empty = stage(course, Submission(AID, "empty"), names)
    assert "missing" in empty.problems[0] and not empty.has_notebooks(names)
    shadowed = stage(course, Submission(AID, "shadow"), names)
    assert sorted(p.name for p in shadowed.folder.iterdir()) == [f"{AID}.ipynb"]  # no module, no symlink
    assert tree_digest(course.root / "submitted") == before


@pytest.mark.parametrize("log, expected", [
    ("nbclient.exceptions.DeadKernelError: Kernel died", "kernel died"),
    ("sqlite3.OperationalError: database is locked", "locked"),
    ("ValueError: something odd\n", "nbgrader failed (ValueError)"),
])
def test_failure_reason(log, expected):
    assert expected in failure_reason(log)


def test_no_text_of_the_log_becomes_a_reason():
    """nbgrader's log quotes the notebook: a grade_id a student wrote must not become the reason."""
    hostile = ("[Autograde] WARNING | Cell 'SubmissionTimeout: =HYPERLINK(\"http://evil.example\")\x1b[2J' "
               "is not in the database\nValueError: x")
    reason = failure_reason(hostile)
    assert "HYPERLINK" not in reason and "\x1b" not in reason and "evil" not in reason


def test_reasons_are_clean_words_and_the_csv_runs_no_formula(tmp_path):
    from kdcourse.grading.export import spreadsheet_safe, write_csv

    status = Status(Submission(AID, "s"))
    status.flag("used \x1b[2Jmore\u202e than\n\t2 GiB")
    assert status.reasons == ["used [2Jmore than 2 GiB"]
    assert spreadsheet_safe("=HYPERLINK(1)") == "'=HYPERLINK(1)" and spreadsheet_safe("-1.5") == "-1.5"
    path = write_csv(tmp_path / "g.csv", ["student", "reasons"], [{"student": "s", "reasons": "@SUM(A1)"}])
    assert path.read_text(encoding="utf-8").splitlines()[1] == "s,'@SUM(A1)"


def test_status_store_round_trip_in_the_gradebook(tmp_path):
    from kdcourse.grading.adapter.api import open_gradebook

    course = fixture_course(tmp_path)
    with open_gradebook(course) as gb:
        store = StatusStore(gb.engine)
        first = Status(Submission(AID, "alice"), seconds=3.25)
        first.flag("used more than 2 GiB of memory")
        store.write(first)
        store.write(Status(Submission(AID, "bob"), notes=["notebook renamed"]))
        first.flag("a second reason")
        store.write(first)  # replaces the row
        stored = StatusStore(gb.engine).read()
        assert set(gb.db.bind.dialect.get_table_names(gb.db.connection())) >= {"kdcourse_status", "grade"}
    assert stored[Submission(AID, "alice")].reasons == ["used more than 2 GiB of memory", "a second reason"]
    assert stored[Submission(AID, "alice")].status == "flagged"
    assert stored[Submission(AID, "bob")].notes == ["notebook renamed"]
    assert stored[Submission(AID, "bob")].status == "graded"


def test_judge_preprocessor_replaces_test_cell_outputs(tmp_path):
    """Whatever the kernel printed, raised or published as a number in a test cell is not the score."""
    from nbgrader.utils import determine_grade

    from kdcourse.answers import ANSWERS_MIME
    from kdcourse.grading.adapter.config import course_config
    from kdcourse.grading.adapter.judging import JudgeAnswers

    course = fixture_course(tmp_path)
    nb = nbformat.read(str(course.source_notebook(AID)), as_version=4)
    test = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_best_choice")
    record = {"format": 1, "assignment": AID, "item": "test_best_choice",
              "answers": {"answer": {"probe": "value", "value": {"t": "str", "v": "B"}}}}
    test.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "2"}, execution_count=1),
                    nbformat.v4.new_output("display_data", data={ANSWERS_MIME: record, "text/plain": "x"})]
    judge = JudgeAnswers(config=course_config(course))
    resources = {"nbgrader": {"assignment": AID, "student": "s", "notebook": AID, "db_url": course.db_url}}
    nb, _ = judge.preprocess(nb, resources)
    assert [o.output_type for o in test.outputs] == ["error"]
    assert "whole distribution" in test.outputs[0].evalue  # the key's message for "B"
    assert determine_grade(test)[0] == 0
    test.outputs = [nbformat.v4.new_output("stream", name="stdout", text="all checks passed, honest\n")]
    nb, _ = judge.preprocess(nb, resources)
    assert "no answers were recorded" in test.outputs[0].evalue


def test_no_key_or_expected_value_reaches_the_grading_kernel():
    """The plan sent into the kernel holds inputs only; the package the kernel sees holds no judge."""
    from kdcourse.judge import load_items, plan_for
    from kdcourse.sandbox.view import copy_package, package_dir, split_hidden

    course = Course.from_repo(REPO)
    for aid in course.assignments():
        spec = course.spec(aid)
        plan = json.dumps(plan_for(aid, spec, course.spec_dir), ensure_ascii=False)
        for grade_id, answers in spec.keys.items():
            for key in answers.values():
                for message in key.get("why_wrong", {}).values():
                    assert message[:60] not in plan, f"{aid} {grade_id}: a key message is in the plan"
        assert load_items(aid, spec, course.spec_dir)  # the judge exists on the trusted side
    from kdcourse.grading.settings import ALWAYS_HIDDEN

    modules, _ = split_hidden(ALWAYS_HIDDEN)
    view = Path(os.environ.get("TMPDIR", "/tmp")) / f"kdcourse-view-test-{os.getpid()}"
    try:
        copy_package(package_dir(), view, modules)
        files = [str(p.relative_to(view)) for p in view.rglob("*") if p.is_file()]
        assert not [f for f in files if f.startswith(("judge", "grading"))]
        assert "answers/checker.py" in files
        text = "\n".join((view / f).read_text(encoding="utf-8", errors="ignore") for f in files if f.endswith(".py"))
        for aid in course.assignments():
            for answers in course.spec(aid).keys.values():
                for key in answers.values():
                    for message in key.get("why_wrong", {}).values():
                        assert message[:60] not in text
    finally:
        import shutil

        shutil.rmtree(view, ignore_errors=True)


def test_secret_lines_of_the_fixture():
    secrets = secret_lines(FIXTURE_SOURCE)
    assert set(secrets.values()) == {"solution", "mark scheme"}
    assert find_leaks("nothing to see", secrets) == []
    assert find_leaks("### BEGIN SOLUTION", secrets) != []
    a_secret = next(line for line, kind in secrets.items() if kind == "solution")
    assert find_leaks(f"x = 1\n    {a_secret}\n", secrets) != []  # a whole line: a leak
    assert find_leaks(f"Call `{a_secret}` when you are done.", secrets) == []  # quoted in prose: not a leak


def test_release_leak_scan_reads_cell_sources_not_json(tmp_path):
    secrets = secret_lines(FIXTURE_SOURCE)
    a_secret = next(line for line, kind in secrets.items() if kind == "solution")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"def f():\n    {a_secret}\n")])
    path = tmp_path / "leaky.ipynb"
    nbformat.write(nb, str(path))
    assert find_leaks(notebook_text(path), secrets) != []


def test_cli_reports_course_errors_with_exit_code_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "kdcourse.cli", "release", "--root", str(tmp_path / "r"),
         "--sources", str(tmp_path / "nowhere"), "--specs", str(tmp_path)],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_cli_lists_the_instructor_commands():
    from kdcourse.cli import build_parser

    help_text = build_parser().format_help()
    for command in ("doctor", "release", "collect", "autograde", "feedback", "export", "verify", "demo"):
        assert command in help_text
    args = build_parser().parse_args(["autograde", AID, "--student", "s1", "--jobs", "2", "--unsafe-no-sandbox"])
    assert (args.assignment, args.student, args.jobs, args.unsafe_no_sandbox) == (AID, ["s1"], 2, True)


def test_autograde_refuses_to_run_unsandboxed_without_being_told(tmp_path, monkeypatch):
    import kdcourse.sandbox as sandbox
    from kdcourse.grading.autograde import require_sandbox

    unavailable = sandbox.SandboxStatus(False, "install bubblewrap (apt-get install bubblewrap)", "not enforced")
    monkeypatch.setattr(sandbox, "sandbox_status", lambda: unavailable)
    with pytest.raises(CourseError, match="install bubblewrap.*--unsafe-no-sandbox"):
        require_sandbox(unsafe_no_sandbox=False)
    require_sandbox(unsafe_no_sandbox=True)  # told to: no error


def test_simulated_written_answers_leave_out_the_mark_scheme():
    from kdcourse.notebooks import model_answer

    text = "The teacher's small probabilities rank the wrong classes.\n\nMark scheme (2 points): 1 point for ...\n"
    assert model_answer(text) == "The teacher's small probabilities rank the wrong classes.\n"
    assert model_answer("No scheme here.\n") == "No scheme here.\n"


def test_mark_scheme_paragraph_of_a_written_answer_is_secret():
    secrets = secret_lines(REPO / "notebooks" / "assignments" / "a01_kl_divergence" / "a01_kl_divergence.ipynb",
                           kinds=("mark scheme",))
    assert secrets and all(kind == "mark scheme" for kind in secrets.values())
    assert any(line.startswith("Mark scheme") for line in secrets)
