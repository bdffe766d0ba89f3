"""Where a course lives on disk, which assignments it has, and what its instructor files say.

A course has four places:

* ``root`` -- the nbgrader course root (``grading/`` in the repository): ``release/``, ``submitted/``,
  ``autograded/``, ``feedback/``, ``gradebook.db`` and the exports are written here;
* ``source_dir`` -- the assignment sources, ``<source_dir>/<assignment>/<assignment>.ipynb``
  (``notebooks/assignments/`` in the repository, used in place, never copied);
* ``spec_dir`` -- one instructor file per assignment, ``<spec_dir>/<assignment>.toml``: points, run-time
  budget, the answer key of the trusted judge, hidden test inputs, sandbox limits and the misconception
  submissions that ``kdcourse verify`` grades;
* ``settings_file`` -- the course-wide settings (``grading/course.toml``): the sandbox limits every
  assignment starts from, and optionally the gradebook's database (``[gradebook] url``).

The gradebook is a SQLAlchemy URL (:attr:`Course.db_url`): the course's own ``gradebook_url`` when it has one
(a throw-away course, a worker's private copy), else ``KDCOURSE_DB_URL``, else ``url`` in the ``[gradebook]``
table of the settings file, else SQLite in the root. PostgreSQL (``postgresql+psycopg://user@host/db``) is the
database for several graders at once; SQLite is the embedded default.

A submission is named by :class:`Submission` ``(assignment, student)``, in nbgrader's order, everywhere.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["CourseError", "Submission", "OfSubmission", "Misconception", "AssignmentSpec", "Course", "parse_spec",
           "check_student_id", "STUDENT_ID_RULE", "format_timestamp", "relative_or_absolute", "embedded_db_url",
           "redacted_url", "DB_URL_VARIABLE"]

#: The environment variable that names the gradebook database (a SQLAlchemy URL).
DB_URL_VARIABLE = "KDCOURSE_DB_URL"

_STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: The student-id rule in words (collect, simulated submissions and the CLI all apply it).
STUDENT_ID_RULE = "1 to 64 letters, digits, '_', '-' or '.', starting with a letter or a digit"
_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f UTC"


class CourseError(RuntimeError):
    """A course folder, assignment, student id or instructor file is missing or malformed."""


@dataclass(frozen=True, order=True)
class Submission:
    """One student's submission of one assignment: ``(assignment, student)``, nbgrader's order."""

    assignment: str
    student: str

    def __str__(self) -> str:
        return f"{self.assignment}/{self.student}"


class OfSubmission:
    """For records about one submission (a ``submission`` field): its assignment and student by name."""

    submission: Submission

    @property
    def assignment(self) -> str:
        return self.submission.assignment

    @property
    def student(self) -> str:
        return self.submission.student


def check_student_id(student: str) -> str:
    """Return ``student`` if it is a valid student id (:data:`STUDENT_ID_RULE`), else raise CourseError."""
    if not isinstance(student, str) or not _STUDENT_ID.match(student):
        raise CourseError(f"student id {student!r} is not valid: use {STUDENT_ID_RULE}")
    return student


def format_timestamp(when: dt.datetime) -> str:
    """A submission time as nbgrader's ``timestamp.txt`` holds it, in UTC."""
    return when.astimezone(dt.timezone.utc).strftime(_TIMESTAMP_FORMAT)


@dataclass(frozen=True)
class Misconception:
    """A wrong-but-plausible submission: solution cells replaced by ``replace`` (grade_id -> source)."""

    name: str
    description: str
    expected_score: float
    expected_messages: tuple[str, ...]
    replace: dict = field(default_factory=dict)


@dataclass(frozen=True)
class AssignmentSpec:
    """The instructor file ``<assignment>.toml`` of one assignment.

    Attributes
    ----------
    points, manual_points : float
        Total points and the manually graded part (the one place points are declared).
    budget_s : float
        Run time a solution may take on two CPU cores, in seconds.
    judge : str
        The module that judges the collected answers (default ``kdcourse.judge.<assignment>``).
    keys : dict
        ``grade_id -> answer name -> {"answer": ..., "why_wrong": {option: message}}``: the
        multiple-choice keys, known to the judge only.
    cases : dict
        ``grade_id -> answer name -> [arguments, ...]``: hidden test inputs, sent into the kernel at
        grading time; their expected results are computed by the judge.
    sandbox : dict
        Overrides of the course's sandbox limits and hidden modules for this assignment.
    misconceptions : tuple of Misconception
    """

    assignment_id: str
    title: str
    notebook: str
    points: float
    manual_points: float
    budget_s: float
    judge: str = ""
    keys: dict = field(default_factory=dict)
    cases: dict = field(default_factory=dict)
    sandbox: dict = field(default_factory=dict)
    misconceptions: tuple[Misconception, ...] = ()

    @property
    def auto_points(self) -> float:
        """Points a full solution earns from the autograder (total minus manually graded points)."""
        return self.points - self.manual_points


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise CourseError(f"{path}: invalid TOML ({exc})") from exc


def embedded_db_url(root: Path) -> str:
    """The SQLite gradebook ``<root>/gradebook.db`` (a writer waits up to 60 s for another's lock)."""
    return f"sqlite:///{Path(root) / 'gradebook.db'}?timeout=60"


def redacted_url(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***`` (for messages)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<a malformed database URL>"


@dataclass(frozen=True)
class Course:
    """Paths of one course; every path is absolute.

    ``gradebook_url``: the gradebook's SQLAlchemy URL for this course only (wins over ``KDCOURSE_DB_URL``
    and the settings file); empty by default.
    """

    root: Path
    source_dir: Path
    spec_dir: Path
    course_id: str = "kdcourse"
    settings_file: Path | None = None
    gradebook_url: str = ""

    def __post_init__(self):
        for name in ("root", "source_dir", "spec_dir"):
            object.__setattr__(self, name, Path(getattr(self, name)).resolve())
        if self.settings_file is not None:
            object.__setattr__(self, "settings_file", Path(self.settings_file).resolve())

    @classmethod
    def from_repo(cls, repo: Path | None = None, root: Path | None = None) -> Course:
        """The repository's course: root ``grading/`` (or ``root``), sources in ``notebooks/assignments``."""
        from kdcourse.paths import RepositoryNotFound, find_repo_root

        try:
            repo = find_repo_root(repo)
        except RepositoryNotFound as exc:
            raise CourseError(str(exc)) from None
        return cls(root=root or repo / "grading", source_dir=repo / "notebooks" / "assignments",
                   spec_dir=repo / "grading" / "assignments", settings_file=repo / "grading" / "course.toml")

    def with_root(self, root: Path, gradebook_url: str | None = None) -> Course:
        """The same course (sources, instructor files, settings) graded in another root folder.

        ``gradebook_url``: its gradebook (default: the same rule as this course's); a throw-away course
        passes ``embedded_db_url(root)`` so that it never writes into a configured database.
        """
        return Course(root=root, source_dir=self.source_dir, spec_dir=self.spec_dir, course_id=self.course_id,
                      settings_file=self.settings_file,
                      gradebook_url=self.gradebook_url if gradebook_url is None else gradebook_url)

    # -- layout ------------------------------------------------------------------------------
    @property
    def db_path(self) -> Path:
        return self.root / "gradebook.db"

    @property
    def db_url(self) -> str:
        """The gradebook's SQLAlchemy URL: ``gradebook_url``, else ``KDCOURSE_DB_URL``, else ``[gradebook] url``
        of the settings file, else SQLite in the root (:func:`embedded_db_url`).

        Raises
        ------
        CourseError
            The settings file's ``[gradebook]`` table is malformed.
        """
        if self.gradebook_url:
            return self.gradebook_url
        if os.environ.get(DB_URL_VARIABLE):
            return os.environ[DB_URL_VARIABLE]
        table = self.settings().get("gradebook", {})
        if not isinstance(table, dict) or set(table) - {"url"}:
            raise CourseError(f"{self.settings_file}: [gradebook] may only hold url = \"<SQLAlchemy URL>\"")
        url = table.get("url", "")
        if not isinstance(url, str):
            raise CourseError(f"{self.settings_file}: [gradebook] url must be a string, got {type(url).__name__}")
        return url or embedded_db_url(self.root)

    def folder(self, step: str, submission: Submission) -> Path:
        """``<root>/<step>/<student>/<assignment>`` of a submission (``step``: submitted, autograded, ...)."""
        return self.root / step / submission.student / submission.assignment

    def release_folder(self, assignment: str) -> Path:
        return self.root / "release" / assignment

    # -- discovery ---------------------------------------------------------------------------
    def assignments(self) -> list[str]:
        """Assignment ids with a source notebook ``<source_dir>/<id>/<id>.ipynb``, sorted."""
        if not self.source_dir.is_dir():
            raise CourseError(f"assignment sources folder {self.source_dir} does not exist")
        from kdcourse.notebooks import assignment_sources

        return [p.stem for p in assignment_sources(self.source_dir)]

    def select(self, requested: list[str] | tuple[str, ...] | None) -> list[str]:
        """``requested`` checked against the sources (all assignments when empty)."""
        known = self.assignments()
        if not requested:
            if not known:
                raise CourseError(f"no assignments found in {self.source_dir} (expected <id>/<id>.ipynb)")
            return known
        unknown = [a for a in requested if a not in known]
        if unknown:
            raise CourseError(f"unknown assignment(s) {', '.join(unknown)}; known: {', '.join(known) or 'none'}")
        return list(requested)

    def source_notebook(self, assignment: str) -> Path:
        return self.source_dir / assignment / f"{assignment}.ipynb"

    def release_notebook(self, assignment: str) -> Path:
        return self.release_folder(assignment) / f"{assignment}.ipynb"

    def spec(self, assignment: str) -> AssignmentSpec:
        """The instructor file of ``assignment``; raises CourseError if it is missing or malformed."""
        path = self.spec_dir / f"{assignment}.toml"
        if not path.is_file():
            raise CourseError(f"instructor file {path} is missing (points and the answer key live there)")
        return parse_spec(assignment, _read_toml(path), origin=str(path))

    def settings(self) -> dict:
        """The course-wide settings (``course.toml``), or ``{}`` when the course has none."""
        if self.settings_file is None or not self.settings_file.is_file():
            return {}
        return _read_toml(self.settings_file)

    def students(self, step: str = "submitted") -> list[str]:
        """Student folders under ``<root>/<step>``, sorted."""
        folder = self.root / step
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and _STUDENT_ID.match(p.name))

    def submissions(self, step: str = "submitted", assignments=None, students=None) -> list[Submission]:
        """The submissions present under ``<root>/<step>``, optionally restricted, sorted."""
        chosen = self.select(assignments)
        found = [Submission(aid, s) for aid in chosen for s in self.students(step)
                 if self.folder(step, Submission(aid, s)).is_dir()]
        return sorted(s for s in found if not students or s.student in students)


def parse_spec(assignment: str, data: dict, origin: str = "<toml>") -> AssignmentSpec:
    """Validate the parsed TOML of an instructor file; errors name the file and the key."""

    def need(table, key, kind, where):
        if key not in table:
            raise CourseError(f"{origin}: {where}missing key {key!r}")
        value = table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind):
            raise CourseError(f"{origin}: {where}{key!r} must be {kind.__name__}, got {type(value).__name__}")
        return value

    def table(key) -> dict:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise CourseError(f"{origin}: [{key}] must be a table")
        return value

    misconceptions = []
    names = set()
    for i, entry in enumerate(data.get("misconception", [])):
        where = f"misconception #{i + 1}: "
        name = need(entry, "name", str, where)
        if not re.match(r"^[a-z0-9_]+$", name) or name in names:
            raise CourseError(f"{origin}: {where}name {name!r} must match [a-z0-9_]+ and be unique")
        names.add(name)
        messages = entry.get("expected_messages", [])
        if not isinstance(messages, list) or not all(isinstance(m, str) for m in messages):
            raise CourseError(f"{origin}: {where}expected_messages must be a list of strings")
        replace = entry.get("replace", {})
        if not isinstance(replace, dict) or not all(isinstance(v, str) for v in replace.values()):
            raise CourseError(f"{origin}: {where}replace must map grade_ids to source strings")
        misconceptions.append(Misconception(
            name=name, description=entry.get("description", ""),
            expected_score=need(entry, "expected_score", float, where),
            expected_messages=tuple(messages), replace=dict(replace)))
    keys = table("key")
    for grade_id, answers in keys.items():
        for name, entry in (answers or {}).items():
            if not isinstance(entry, dict) or "answer" not in entry:
                raise CourseError(f"{origin}: [key.{grade_id}.{name}] needs an 'answer'")
    cases = table("cases")
    for grade_id, answers in cases.items():
        for name, value in (answers or {}).items():
            if not isinstance(value, list):
                raise CourseError(f"{origin}: [cases.{grade_id}] {name} must be a list of argument lists")
    return AssignmentSpec(
        assignment_id=assignment,
        title=data.get("title", assignment),
        notebook=data.get("notebook", f"{assignment}.ipynb"),
        points=need(data, "points", float, ""),
        manual_points=float(data.get("manual_points", 0.0)),
        budget_s=float(data.get("budget_s", 30.0)),
        judge=data.get("judge", f"kdcourse.judge.{assignment}"),
        keys=keys,
        cases=cases,
        sandbox=table("sandbox"),
        misconceptions=tuple(misconceptions),
    )


def relative_or_absolute(path: Path, start: Path) -> str:
    """``path`` relative to ``start`` when both are on one drive, else absolute (for nbgrader config)."""
    try:
        return os.path.relpath(path, start)
    except ValueError:  # pragma: no cover - different drives on Windows
        return str(path)

