"""What travels to a cluster worker with a grading task, and what comes back.

A worker has the repository installed (the grading code, the sandbox and the judges of
``kdcourse.judge``) but none of the instructor's files. Every task gets them from the run's
:class:`CourseBundle`, sent to the cluster once per run (one Dask task whose result every grading task
reads, so a lost copy is recomputed from the scheduler's):

* the instructor files of the assignments graded: ``<assignment>.toml`` and a judge module beside it
  (``<judge>.py``) when there is one -- points, answer keys, hidden inputs, sandbox limits -- and the
  ``[sandbox]`` table of the course's settings file (nothing else of it: no database URL);
* the files beside each source notebook that nbgrader copies into the grading folder (data files; never
  a notebook, never a ``*.toml``);
* each assignment's definition in the gradebook (:mod:`kdcourse.grading.definitions`).

Then each task carries one :class:`GradingJob`: the submission's staged files (its notebooks, after the
staging policy of :mod:`kdcourse.grading.staging`, and ``timestamp.txt``), the time limits and the sandbox
switch -- tens of kilobytes for a typical notebook. What comes back is a :class:`GradedResult`: how grading went (a
:class:`~kdcourse.grading.workers.TaskResult`, as from a local worker) and the autograded notebooks --
every graded cell's outputs already replaced by the trusted judge's verdict. The worker's own gradebook
is private and thrown away: the instructor's side records the returned notebooks
(:mod:`kdcourse.grading.returned`). No solution notebook and no gradebook credential ever travels.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .course import Course, CourseError, Submission, embedded_db_url
from .settings import Timeouts
from .workers import TaskResult

__all__ = ["CourseBundle", "GradingJob", "GradedResult", "course_bundle", "grading_job", "unpack_bundle",
           "check_file_name", "code_digest", "SETTINGS_NAME"]

#: The settings file's name in a worker's copy of the course.
SETTINGS_NAME = "course.toml"
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\- ]{0,254}$")
_DIGEST: dict[str, str] = {}
#: The libraries whose versions are part of :func:`code_digest`.
COMPUTING_LIBRARIES = ("numpy", "scipy", "torch", "scikit-learn", "nbformat", "nbclient", "ipykernel")


def code_digest() -> str:
    """sha256 of every file of the installed ``kdcourse`` package (grading code, sandbox, judges, and data such
    as the language-model teacher's weights; compiled ``__pycache__`` left out), and of the versions of
    Python and of the libraries the judges and the kernels compute with (:data:`COMPUTING_LIBRARIES`).

    The instructor and every worker must agree: a worker with other judges, or another numpy or torch,
    could give other verdicts.
    """
    if "kdcourse" not in _DIGEST:
        import platform
        from importlib import metadata

        import kdcourse

        package = Path(kdcourse.__file__).parent
        h = hashlib.sha256()
        for path in sorted(package.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                h.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
        versions = [f"python {platform.python_version()}"]
        for library in COMPUTING_LIBRARIES:
            try:
                versions.append(f"{library} {metadata.version(library)}")
            except metadata.PackageNotFoundError:
                versions.append(f"{library} missing")
        h.update("\n".join(versions).encode())
        _DIGEST["kdcourse"] = h.hexdigest()
    return _DIGEST["kdcourse"]


def check_file_name(name: str) -> str:
    """``name`` if it is a plain file name (no folder, no ``..``), else raise ValueError naming it."""
    if not isinstance(name, str) or not _PLAIN_NAME.match(name) or name in (".", ".."):
        raise ValueError(f"file name {name!r} is not a plain file name")
    return name


@dataclass(frozen=True)
class CourseBundle:
    """The instructor's files a worker needs to grade the assignments of one run.

    Attributes
    ----------
    course_id : str
    assignments : tuple of str
    specs : dict
        ``file name -> bytes`` of the instructor files (``<assignment>.toml``, ``<judge>.py``).
    settings : bytes or None
        A settings file holding only the course's ``[sandbox]`` table.
    sources : dict
        ``assignment -> {relative path -> bytes}``: files beside the source notebook.
    definitions : dict
        ``assignment -> definition`` (:func:`kdcourse.grading.definitions.read_definition`).
    code_digest, nbgrader : str
        :func:`code_digest` of the instructor's kdcourse and their nbgrader version: a worker with other
        code refuses to grade.
    """

    course_id: str
    assignments: tuple[str, ...]
    specs: dict[str, bytes]
    settings: bytes | None
    sources: dict[str, dict[str, bytes]]
    definitions: dict[str, dict]
    code_digest: str
    nbgrader: str

    @property
    def digest(self) -> str:
        """sha256 of everything in the bundle: names a worker's copy of the course."""
        h = hashlib.sha256()
        h.update(json.dumps([self.course_id, self.assignments, self.definitions, self.code_digest, self.nbgrader],
                            sort_keys=True).encode())
        for name, data in sorted(self.specs.items()):
            h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        h.update(hashlib.sha256(self.settings or b"").digest())
        for aid, files in sorted(self.sources.items()):
            for name, data in sorted(files.items()):
                h.update(f"{aid}/{name}".encode() + b"\0" + hashlib.sha256(data).digest())
        return h.hexdigest()

    def notebooks(self, assignment: str) -> list[str]:
        """The notebook file names of ``assignment``, as the gradebook defines them."""
        return [f"{nb['name']}.ipynb" for nb in self.definitions[assignment]["notebooks"]]

    def graded_cells(self, assignment: str) -> dict[str, set[str]]:
        """``notebook file name -> graded cell ids`` of ``assignment``, as the gradebook defines them."""
        return {f"{nb['name']}.ipynb": {cell["name"] for cell in nb["grade_cells"]}
                for nb in self.definitions[assignment]["notebooks"]}


@dataclass(frozen=True)
class GradingJob:
    """One submission to grade: its staged files and the limits to grade it under."""

    submission: Submission
    files: dict[str, bytes]
    timeouts: Timeouts
    unsafe_no_sandbox: bool = False


@dataclass
class GradedResult:
    """What a worker sends back: how grading went and the autograded notebooks (``file name -> bytes``)."""

    result: TaskResult
    notebooks: dict[str, bytes] = field(default_factory=dict)
    worker: str = ""


def _source_files(course: Course, assignment: str) -> dict[str, bytes]:
    from nbgrader.utils import find_all_files

    from .adapter.config import IGNORED_FILES

    folder = course.source_dir / assignment
    files = {}
    for path in map(Path, find_all_files(str(folder), [*IGNORED_FILES, "*.ipynb"])):
        if path.is_symlink() or not path.is_file():
            continue
        files[path.relative_to(folder).as_posix()] = path.read_bytes()
    return files


def _toml_value(value, origin: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v, origin) for v in value) + "]"
    raise CourseError(f"{origin}: [sandbox] holds a {type(value).__name__}; only numbers, strings and lists")


def _sandbox_toml(table, origin: str) -> bytes:
    """A settings file with only the ``[sandbox]`` table ``table`` (a worker needs nothing else)."""
    if not isinstance(table, dict):
        raise CourseError(f"{origin}: [sandbox] must be a table")
    lines = ["[sandbox]"] + [f"{json.dumps(str(k))} = {_toml_value(v, origin)}" for k, v in table.items()]
    return ("\n".join(lines) + "\n").encode()


def course_bundle(course: Course, gb, assignments: list[str]) -> CourseBundle:
    """The bundle of ``assignments`` of ``course``, read from its files and its open gradebook ``gb``.

    Raises
    ------
    CourseError
        An instructor file is missing, or an assignment is not in the gradebook (not released).
    """
    import nbgrader
    from nbgrader.api import MissingEntry

    from .definitions import read_definition

    specs: dict[str, bytes] = {}
    definitions, sources = {}, {}
    for aid in assignments:
        spec = course.spec(aid)
        specs[f"{aid}.toml"] = (course.spec_dir / f"{aid}.toml").read_bytes()
        judge_file = course.spec_dir / f"{spec.judge}.py"
        if judge_file.is_file():
            specs[judge_file.name] = judge_file.read_bytes()
        try:
            definitions[aid] = read_definition(gb, aid)
        except MissingEntry:
            raise CourseError(f"{aid} is not in the gradebook: run `kdcourse release {aid}` first") from None
        sources[aid] = _source_files(course, aid)
    sandbox = course.settings().get("sandbox")
    settings = _sandbox_toml(sandbox, str(course.settings_file)) if sandbox is not None else None
    return CourseBundle(course.course_id, tuple(assignments), specs, settings, sources, definitions, code_digest(),
                        nbgrader.__version__)


def grading_job(folder: Path, submission: Submission, notebooks: list[str], timeouts: Timeouts,
                unsafe_no_sandbox: bool) -> GradingJob:
    """The job of a staged submission: from its staged ``folder``, the assignment's ``notebooks`` that are
    there and ``timestamp.txt`` (nbgrader grades nothing else: another notebook is skipped as unknown)."""
    files = {}
    for name in [*notebooks, "timestamp.txt"]:
        path = folder / name
        if path.is_file() and not path.is_symlink():
            files[name] = path.read_bytes()
    return GradingJob(submission, files, timeouts, unsafe_no_sandbox)


def unpack_bundle(bundle: CourseBundle, folder: Path) -> Course:
    """Write ``bundle`` into the empty ``folder`` as a private course, with a private SQLite gradebook.

    The course's gradebook is ``<folder>/root/gradebook.db`` whatever the environment says
    (``KDCOURSE_DB_URL`` on a worker machine is never used): a worker never writes the instructor's
    gradebook. Layout: ``root/`` (the nbgrader root), ``specs/``, ``source/<assignment>/``, ``course.toml``.
    """
    from .adapter.api import open_gradebook
    from .definitions import write_definition

    folder = Path(folder)
    specs, source = folder / "specs", folder / "source"
    specs.mkdir(parents=True)
    for name, data in bundle.specs.items():
        (specs / check_file_name(name)).write_bytes(data)
    for aid in bundle.assignments:
        (source / check_file_name(aid)).mkdir(parents=True)
        for relative, data in bundle.sources.get(aid, {}).items():
            parts = relative.split("/")
            target = source.joinpath(aid, *map(check_file_name, parts))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    settings_file = None
    if bundle.settings is not None:
        settings_file = folder / SETTINGS_NAME
        settings_file.write_bytes(bundle.settings)
    root = folder / "root"
    course = Course(root=root, source_dir=source, spec_dir=specs, course_id=bundle.course_id,
                    settings_file=settings_file, gradebook_url=embedded_db_url(root))
    with open_gradebook(course) as gb:
        for aid in bundle.assignments:
            write_definition(gb, aid, bundle.definitions[aid])
    return course
