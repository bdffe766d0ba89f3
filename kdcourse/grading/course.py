"""Where a course lives on disk and which assignments it has.

A course has three places:

* ``root`` -- the nbgrader course root (``grading/`` in the repository): ``release/``, ``submitted/``,
  ``autograded/``, ``feedback/``, ``gradebook.db`` and the exports are written here;
* ``source_dir`` -- the assignment sources, ``<source_dir>/<assignment>/<assignment>.ipynb``
  (``notebooks/assignments/`` in the repository, used in place, never copied);
* ``spec_dir`` -- one instructor file per assignment, ``<spec_dir>/<assignment>.toml`` (points, budget,
  misconception submissions).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
GENERATED_FOLDERS = ("release", "submitted", "autograded", "feedback", "staged", "export")


class CourseError(RuntimeError):
    """A course folder, assignment or instructor file is missing or malformed."""


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
    """The instructor file ``<assignment>.toml`` of one assignment (the one place points are declared)."""

    assignment_id: str
    title: str
    notebook: str
    points: float
    manual_points: float
    budget_s: float
    misconceptions: tuple[Misconception, ...] = ()

    @property
    def notebook_id(self) -> str:
        return Path(self.notebook).stem

    @property
    def auto_points(self) -> float:
        """Points a full solution earns from the autograder (total minus manually graded points)."""
        return self.points - self.manual_points


def find_repo_root(start: Path | None = None) -> Path:
    """The repository holding ``grading/`` and ``notebooks/assignments/``.

    Searches upwards from ``start`` (default: the working directory), then falls back to the folder
    above the installed ``kdcourse`` package.
    """
    here = Path(start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "grading").is_dir() and (candidate / "notebooks" / "assignments").is_dir():
            return candidate
    package_parent = Path(__file__).resolve().parents[2]
    if (package_parent / "notebooks" / "assignments").is_dir():
        return package_parent
    raise CourseError(
        f"no kdcourse repository found above {here} (looked for grading/ and notebooks/assignments/); "
        "pass --root, --sources and --specs explicitly"
    )


@dataclass(frozen=True)
class Course:
    """Paths of one course; every path is absolute."""

    root: Path
    source_dir: Path
    spec_dir: Path
    course_id: str = "kdcourse"

    def __post_init__(self):
        for name in ("root", "source_dir", "spec_dir"):  # noqa: B007
            object.__setattr__(self, name, Path(getattr(self, name)).resolve())

    @classmethod
    def from_repo(cls, repo: Path | None = None, root: Path | None = None) -> "Course":
        """The repository's course: root ``grading/`` (or ``root``), sources in ``notebooks/assignments``."""
        repo = find_repo_root(repo)
        return cls(root=root or repo / "grading", source_dir=repo / "notebooks" / "assignments",
                   spec_dir=repo / "grading" / "assignments")

    # -- layout ------------------------------------------------------------------------------
    @property
    def db_path(self) -> Path:
        return self.root / "gradebook.db"

    @property
    def db_url(self) -> str:
        return "sqlite:///" + str(self.db_path)

    def folder(self, step: str, student: str, assignment: str) -> Path:
        """``<root>/<step>/<student>/<assignment>`` (``release`` has no student level)."""
        if step == "release":
            return self.root / "release" / assignment
        return self.root / step / student / assignment

    # -- discovery ---------------------------------------------------------------------------
    def assignments(self) -> list[str]:
        """Assignment ids with a source notebook ``<source_dir>/<id>/<id>.ipynb``, sorted."""
        if not self.source_dir.is_dir():
            raise CourseError(f"assignment sources folder {self.source_dir} does not exist")
        return sorted(p.parent.name for p in self.source_dir.glob("*/*.ipynb")
                      if p.stem == p.parent.name and _NAME_RE.match(p.stem))

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
        return self.root / "release" / assignment / f"{assignment}.ipynb"

    def spec(self, assignment: str) -> AssignmentSpec:
        """The instructor file of ``assignment``; raises CourseError if it is missing or malformed."""
        path = self.spec_dir / f"{assignment}.toml"
        if not path.is_file():
            raise CourseError(f"instructor file {path} is missing (points and misconceptions live there)")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise CourseError(f"{path}: invalid TOML ({exc})") from exc
        return parse_spec(assignment, data, origin=str(path))

    def students(self, step: str = "submitted") -> list[str]:
        folder = self.root / step
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


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
    return AssignmentSpec(
        assignment_id=assignment,
        title=data.get("title", assignment),
        notebook=data.get("notebook", f"{assignment}.ipynb"),
        points=need(data, "points", float, ""),
        manual_points=float(data.get("manual_points", 0.0)),
        budget_s=float(data.get("budget_s", 30.0)),
        misconceptions=tuple(misconceptions),
    )


def relative_or_absolute(path: Path, start: Path) -> str:
    """``path`` relative to ``start`` when both are on one drive, else absolute (for nbgrader config)."""
    try:
        return os.path.relpath(path, start)
    except ValueError:  # pragma: no cover - different drives on Windows
        return str(path)
