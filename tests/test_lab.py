"""``kdcourse lab``: the right folder for each audience, 127.0.0.1 with a token, no solutions for students."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from kdcourse.cli import build_parser
from kdcourse.grading.course import Course
from kdcourse.lab import ensure_exchange, plan_lab, student_workspace
from kdcourse.notebooks import list_assignments

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENTS = sorted(p.stem for p in list_assignments())


def test_every_audience_listens_on_localhost_with_a_token():
    for audience in ("student", "instructor", "lectures"):
        plan = plan_lab(audience, REPO, port=9999, token="abc", root=None, as_root=False)
        assert "--ServerApp.ip=127.0.0.1" in plan.argv and "--ServerApp.port=9999" in plan.argv
        assert "--IdentityProvider.token=abc" in plan.argv
        assert plan.url == "http://127.0.0.1:9999/lab?token=abc"
        assert "--allow-root" not in plan.argv


def test_allow_root_only_as_root_and_said():
    plan = plan_lab("lectures", REPO, as_root=True)
    assert "--allow-root" in plan.argv and any("--allow-root" in note for note in plan.notes)
    assert "--allow-root" not in plan_lab("lectures", REPO, as_root=False).argv


def test_each_audience_gets_its_folder():
    assert plan_lab("instructor", REPO).root_dir == REPO
    assert plan_lab("lectures", REPO).root_dir == REPO / "notebooks" / "lectures"
    assert plan_lab("student", REPO, root=Path("/tmp/ws")).root_dir == Path("/tmp/ws")
    env = plan_lab("instructor", REPO).env
    assert env["JUPYTER_CONFIG_PATH"].split(os.pathsep)[0] == str(REPO / "grading")
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)  # nbgrader runs alembic by name
    with pytest.raises(ValueError, match="must be a course repository"):
        plan_lab("instructor", REPO, root=Path("/tmp"))
    with pytest.raises(ValueError, match="audience must be one of"):
        plan_lab("teacher", REPO)


def test_an_instructor_root_is_another_course_repository(tmp_path):
    (tmp_path / "grading").mkdir()
    (tmp_path / "notebooks" / "assignments").mkdir(parents=True)
    plan = plan_lab("instructor", REPO, root=tmp_path, as_root=False)
    assert plan.root_dir == tmp_path.resolve()
    assert f"--ServerApp.root_dir={tmp_path.resolve()}" in plan.argv
    assert plan.env["JUPYTER_CONFIG_PATH"].split(os.pathsep)[0] == str(tmp_path.resolve() / "grading")


def test_the_command_line_needs_an_audience():
    parser = build_parser()
    assert parser.parse_args(["lab", "--student"]).audience == "student"
    with pytest.raises(SystemExit):
        parser.parse_args(["lab"])
    with pytest.raises(SystemExit):
        parser.parse_args(["lab", "--student", "--instructor"])


def test_the_exchange_is_created_writable_by_all(tmp_path):
    exchange = ensure_exchange(tmp_path)
    assert exchange == tmp_path / "exchange" and stat.S_IMODE(exchange.stat().st_mode) == 0o777
    assert ensure_exchange(tmp_path) == exchange  # again: no error


@pytest.fixture(scope="module")
def released():
    """The course's releases (generated here if missing: the workspace copies them)."""
    course = Course.from_repo(REPO)
    if any(not course.release_notebook(aid).is_file() for aid in course.assignments()):
        from kdcourse.grading.release import release

        release(course, log=lambda *_: None)
    return course


def test_the_student_workspace_has_blank_releases_and_lectures_only(released, tmp_path):
    workspace = student_workspace(REPO, tmp_path / "ws", log=lambda *_: None)
    notebooks = sorted(p.relative_to(workspace).as_posix() for p in workspace.rglob("*.ipynb"))
    assert [n for n in notebooks if n.startswith("assignments/")] == [f"assignments/{a}/{a}.ipynb" for a in ASSIGNMENTS]
    assert {Path(n).name for n in notebooks if n.startswith("lectures/")} == \
        {p.name for p in (REPO / "notebooks" / "lectures").glob("*.ipynb")}
    for path in workspace.rglob("*"):
        assert path.suffix != ".toml", path
        if path.suffix == ".ipynb":
            assert "BEGIN SOLUTION" not in path.read_text(encoding="utf-8"), path


def test_the_student_workspace_keeps_the_students_work(released, tmp_path):
    workspace = student_workspace(REPO, tmp_path / "ws", log=lambda *_: None)
    mine = workspace / "assignments" / ASSIGNMENTS[0] / f"{ASSIGNMENTS[0]}.ipynb"
    mine.write_text("my work", encoding="utf-8")
    student_workspace(REPO, workspace, log=lambda *_: None)
    assert mine.read_text(encoding="utf-8") == "my work"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - a local test server
        return json.loads(response.read())


@pytest.mark.kernel
def test_the_instructor_formgrader_lists_every_assignment_from_the_repository_root():
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "kdcourse.cli", "lab", "--instructor", "--no-browser",
                                "--port", str(port)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        first = process.stdout.readline()
        assert first.startswith(f"kdcourse lab: open http://127.0.0.1:{port}/lab?token="), first
        token = first.strip().rsplit("token=", 1)[1]
        deadline = time.monotonic() + 90
        while True:
            try:
                assignments = _get(f"http://127.0.0.1:{port}/formgrader/api/assignments?token={token}")
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not answer within 90 s"
                assert process.poll() is None, "kdcourse lab exited"
                time.sleep(1)
        assert sorted(a["name"] for a in assignments) == ASSIGNMENTS
        for assignment in assignments:
            # the source folder, as the formgrader links it (course root grading/ + source_path), lies inside
            # the server's root, so its link opens
            folder = (REPO / "grading" / assignment["source_path"]).resolve()
            assert folder == REPO / "notebooks" / "assignments" / assignment["name"]
            listing = _get(f"http://127.0.0.1:{port}/api/contents/{folder.relative_to(REPO).as_posix()}?token={token}")
            assert f"{assignment['name']}.ipynb" in {item["name"] for item in listing["content"]}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
