"""``kdcourse lab``: JupyterLab for one audience, on 127.0.0.1 with a token.

* ``--student``: a workspace holding the blank releases of the assignments and copies of the lectures
  (``kdcourse release`` is run first when a release is missing); the server's root is that workspace, so
  no solution is in reach of its file browser. Notebooks already in the workspace are never overwritten:
  they hold the student's work.
* ``--instructor``: the server's root is the repository (or the course repository ``--root`` names: a
  folder with ``grading/`` and ``notebooks/assignments/``, such as one term's copy of the course), and
  nbgrader's formgrader reads its ``grading/nbgrader_config.py`` (the folder is put on
  ``JUPYTER_CONFIG_PATH``), so the formgrader lists the assignments without nbgrader's "local config"
  option; the course's exchange folder is created.
* ``--lectures``: the lectures folder (``notebooks/lectures`` unless ``--root`` names another).

The URL, with its token, is printed before JupyterLab starts. Jupyter refuses to run as root unless told
``--allow-root``; the command passes it only when running as root, and says so.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from kdcourse.paths import find_repo_root, is_repo_root

__all__ = ["AUDIENCES", "LabPlan", "plan_lab", "student_workspace", "ensure_exchange", "run_lab"]

AUDIENCES = ("student", "instructor", "lectures")
HOST = "127.0.0.1"
#: Where ``--student`` puts its workspace unless ``--root`` names one.
DEFAULT_STUDENT_WORKSPACE = Path.home() / "kdcourse-student"


@dataclass(frozen=True)
class LabPlan:
    """How to start JupyterLab for one audience: the command, its folder, its environment and its URL."""

    audience: str
    root_dir: Path
    argv: list[str]
    url: str
    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def ensure_exchange(course_root: Path) -> Path:
    """Create the course's nbgrader exchange folder ``<course root>/exchange``, writable by every user.

    nbgrader's exchange must be writable by all students of a class on one JupyterHub (its own docs ask
    for mode 0777 on a shared folder); without the folder the formgrader and the Assignments tab warn.
    """
    exchange = course_root / "exchange"
    exchange.mkdir(parents=True, exist_ok=True)
    exchange.chmod(0o777)
    return exchange


def student_workspace(repo: Path, workspace: Path, log=print) -> Path:
    """Fill ``workspace`` with the blank releases (``assignments/<id>/``) and the lectures (``lectures/``).

    A release missing from ``grading/release`` is generated first. Files already in the workspace are
    kept as they are (they hold the student's work); only missing ones are copied.
    """
    from kdcourse.grading.course import Course

    course = Course.from_repo(repo)
    missing = [aid for aid in course.assignments() if not course.release_notebook(aid).is_file()]
    if missing:
        from kdcourse.grading.release import release

        release(course, missing, log=log)
    copies = [(course.root / "release" / aid, workspace / "assignments" / aid) for aid in course.assignments()]
    copies.append((repo / "notebooks" / "lectures", workspace / "lectures"))
    for source, target in copies:
        for path in sorted(source.rglob("*")):
            if not path.is_file() or ".ipynb_checkpoints" in path.parts:
                continue
            destination = target / path.relative_to(source)
            if not destination.exists():
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, destination)
    return workspace


def plan_lab(audience: str, repo: Path, port: int = 8888, token: str | None = None, root: Path | None = None,
             open_browser: bool = True, as_root: bool | None = None) -> LabPlan:
    """The JupyterLab command for ``audience`` (one of :data:`AUDIENCES`), without starting anything.

    Parameters
    ----------
    audience : str
    repo : Path
        The course repository.
    port : int, default=8888
    token : str, optional
        Default: a fresh random token.
    root : Path, optional
        The workspace (``student``), the lectures folder (``lectures``), or a course repository
        (``instructor``: a folder with ``grading/`` and ``notebooks/assignments/``; default ``repo``).
    open_browser : bool, default=True
    as_root : bool, optional
        Whether the server runs as root (default: ask the operating system).

    Raises
    ------
    ValueError
        For an unknown audience, or an instructor ``root`` that is not a course repository.
    """
    if audience not in AUDIENCES:
        raise ValueError(f"audience must be one of {AUDIENCES} (got {audience!r})")
    token = token or secrets.token_hex(24)
    as_root = _running_as_root() if as_root is None else as_root
    # nbgrader runs tools of this environment by name (alembic, for the gradebook): put them on PATH even
    # when the environment is not activated (the README runs .venv/bin/kdcourse directly)
    env: dict[str, str] = {"PATH": os.pathsep.join(p for p in (str(Path(sys.executable).parent),
                                                                 os.environ.get("PATH")) if p)}
    notes: list[str] = []
    if audience == "instructor":
        root_dir = (root or repo).resolve()
        if not is_repo_root(root_dir):
            raise ValueError(f"--root for --instructor must be a course repository (holding grading/ and "
                             f"notebooks/assignments/); {root_dir} is not")
        grading = str(root_dir / "grading")
        env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(p for p in (grading, os.environ.get("JUPYTER_CONFIG_PATH")) if p)
        notes.append("the formgrader reads grading/nbgrader_config.py: Nbgrader → Formgrader lists the assignments")
    elif audience == "student":
        root_dir = (root or DEFAULT_STUDENT_WORKSPACE).resolve()
    else:
        root_dir = (root or repo / "notebooks" / "lectures").resolve()
    argv = [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.ip={HOST}", f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root_dir}", f"--IdentityProvider.token={token}"]
    if not open_browser:
        argv.append("--no-browser")
    if as_root:
        argv.append("--allow-root")
        notes.append("running as root: JupyterLab is started with --allow-root")
    url = f"http://{HOST}:{port}/lab?token={token}"
    return LabPlan(audience, root_dir, argv, url, env, notes)


def run_lab(audience: str, port: int = 8888, root: Path | None = None, open_browser: bool = True) -> int:
    """Prepare the folders of ``audience``, print the URL and run JupyterLab until it stops; its exit code."""
    repo = find_repo_root()
    try:
        plan = plan_lab(audience, repo, port=port, root=root, open_browser=open_browser)
    except ValueError as exc:
        print(f"kdcourse lab: {exc}", file=sys.stderr)
        return 2
    if audience == "student":
        student_workspace(repo, plan.root_dir)
    if audience == "instructor":
        ensure_exchange(plan.root_dir / "grading")
    print(f"kdcourse lab: open {plan.url}", flush=True)
    print(f"kdcourse lab: {audience} view of {plan.root_dir}", flush=True)
    for note in plan.notes:
        print(f"kdcourse lab: {note}", flush=True)
    try:
        return subprocess.call(plan.argv, cwd=plan.root_dir, env={**os.environ, **plan.env})
    except KeyboardInterrupt:
        return 0
