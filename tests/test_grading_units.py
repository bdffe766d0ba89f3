"""Fast grading tests that start no kernel: course layout, config, staging, collect, policy, leaks, CLI."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from fixtures.grading_helpers import AID, fixture_course, tree_digest
from kdcourse.grading.course import Course, CourseError, parse_spec
from kdcourse.grading.leaks import find_leaks, notebook_text, secret_lines
from kdcourse.grading.policy import failure_reason
from kdcourse.grading.preprocessors import StderrAsStdout

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(120)


def test_repo_config_points_nbgrader_at_the_sources_without_copies():
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(REPO / "grading")).load_config()
    coursedir = CourseDirectory(config=config)
    assert Path(coursedir.root) == REPO / "grading"
    assert config.Execute.iopub_timeout >= 30 and config.OverwriteCells.add_missing_cells
    assert "--InteractiveShell.xmode=Minimal" in config.Execute.extra_arguments
    course = Course.from_repo(REPO)
    for aid in course.assignments():
        source = Path(coursedir.format_path(coursedir.source_directory, ".", aid)) / f"{aid}.ipynb"
        assert source.resolve() == (REPO / "notebooks" / "assignments" / aid / f"{aid}.ipynb").resolve()
        assert source.is_file()


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
    spec = parse_spec("x", {"points": 3, "manual_points": 1})
    assert spec.auto_points == 2.0


def _submission(course, student, files):
    folder = course.folder("submitted", student, AID)
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def test_staging_renamed_invalid_and_missing_notebooks(tmp_path):
    from kdcourse.grading.staging import stage

    course = fixture_course(tmp_path)
    good = nbformat.writes(nbformat.read(str(course.source_notebook(AID)), as_version=4)).encode()
    _submission(course, "renamed", {"copy of it.ipynb": good})
    _submission(course, "broken", {f"{AID}.ipynb": b'{"cells": ['})
    _submission(course, "empty", {"readme.txt": b"nothing"})
    before = tree_digest(course.root / "submitted")
    names = [f"{AID}.ipynb"]
    renamed = stage(course, "renamed", AID, names)
    assert (renamed.folder / f"{AID}.ipynb").is_file() and renamed.notes and not renamed.problems
    broken = stage(course, "broken", AID, names)
    assert not (broken.folder / f"{AID}.ipynb").exists() and "not valid JSON" in broken.problems[0]
    empty = stage(course, "empty", AID, names)
    assert "missing" in empty.problems[0]
    assert tree_digest(course.root / "submitted") == before


def test_collect_nested_folder_and_flat_zip(tmp_path):
    from kdcourse.grading.collect import collect

    course = fixture_course(tmp_path / "course")
    inbox = tmp_path / "inbox"
    (inbox / "alice" / AID).mkdir(parents=True)
    (inbox / "alice" / AID / f"{AID}.ipynb").write_text("{}", encoding="utf-8")
    (inbox / "alice" / AID / "timestamp.txt").write_text("2025-01-02 10:00:00 UTC\n", encoding="utf-8")
    (inbox / "stray.txt").write_text("?", encoding="utf-8")
    archive = tmp_path / "lms.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"bob_1234_{AID}.ipynb", "{}")
        zf.writestr("carol_999_homework.ipynb", "{}")
        zf.writestr(f"dave_1_{AID}.ipynb", "{}")
        zf.writestr(f"dave_2_{AID}.ipynb", "{}")
    before = tree_digest(inbox)
    report = collect(course, inbox, log=lambda *_: None)
    assert report.placed == [f"alice/{AID}"]
    assert any("stray.txt" in r for r in report.refused)
    assert (course.folder("submitted", "alice", AID) / "timestamp.txt").read_text().startswith("2025-01-02")
    report = collect(course, archive, log=lambda *_: None)
    assert report.placed == [f"bob/{AID}"]
    assert (course.folder("submitted", "bob", AID) / f"{AID}.ipynb").is_file()
    assert any("carol" in r and "no known assignment" in r for r in report.refused)
    assert any("dave" in r and "several notebooks" in r for r in report.refused)
    assert not course.folder("submitted", "dave", AID).exists()
    assert tree_digest(inbox) == before


def test_collect_refuses_unsafe_zip(tmp_path):
    from kdcourse.grading.collect import collect

    course = fixture_course(tmp_path / "course")
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"../x_{AID}.ipynb", "{}")
    with pytest.raises(CourseError, match="unsafe entry"):
        collect(course, archive, log=lambda *_: None)


@pytest.mark.parametrize("log, expected", [
    ("nbclient.exceptions.DeadKernelError: Kernel died", "kernel died"),
    ("SubmissionTimeout: grading took longer than 5 s; the kernel was killed", "longer than 5 s"),
    ("sqlite3.OperationalError: database is locked", "locked"),
    ("ValueError: something odd\n", "ValueError: something odd"),
])
def test_failure_reason(log, expected):
    assert expected in failure_reason(log)


def test_stderr_of_test_cells_becomes_stdout_only_there():
    def cell(meta):
        return nbformat.v4.new_code_cell("x", metadata={"nbgrader": meta}, outputs=[
            nbformat.v4.new_output("stream", name="stderr", text="UserWarning: careful\n")])

    test_cell = cell({"grade": True, "solution": False, "grade_id": "t", "points": 1})
    answer_cell = cell({"grade": False, "solution": True, "grade_id": "s"})
    nb = nbformat.v4.new_notebook(cells=[test_cell, answer_cell])
    nb, _ = StderrAsStdout().preprocess(nb, {})
    assert nb.cells[0].outputs[0]["name"] == "stdout"
    assert nb.cells[0].outputs[0]["text"] == "[stderr] UserWarning: careful\n"
    assert nb.cells[1].outputs[0]["name"] == "stderr"


def test_secret_lines_of_the_fixture():
    secrets = secret_lines(FIXTURE_SOURCE)
    kinds = set(secrets.values())
    assert kinds == {"solution", "hidden test", "mark scheme"}
    assert find_leaks("nothing to see", secrets) == []
    assert find_leaks("### BEGIN HIDDEN TESTS", secrets) != []
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


FIXTURE_SOURCE = Path(__file__).parent / "fixtures" / "course" / "notebooks" / "assignments" / AID / f"{AID}.ipynb"


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
    args = build_parser().parse_args(["autograde", AID, "--student", "s1", "--jobs", "2"])
    assert (args.assignment, args.student, args.jobs) == (AID, ["s1"], 2)


def test_simulated_written_answers_leave_out_the_mark_scheme():
    from kdcourse.grading.submissions import model_answer

    text = "The teacher's small probabilities rank the wrong classes.\n\nMark scheme (2 points): 1 point for ...\n"
    assert model_answer(text) == "The teacher's small probabilities rank the wrong classes.\n"
    assert model_answer("No scheme here.\n") == "No scheme here.\n"


def test_mark_scheme_paragraph_of_a_written_answer_is_secret():
    secrets = secret_lines(Path(__file__).parents[1] / "notebooks" / "assignments" / "a01_kl_divergence"
                           / "a01_kl_divergence.ipynb", kinds=("mark scheme",))
    assert secrets and all(kind == "mark scheme" for kind in secrets.values())
    assert any(line.startswith("Mark scheme") for line in secrets)
