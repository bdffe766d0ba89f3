"""``kdcourse collect PATH``: place student notebooks into ``submitted/`` without touching the originals.

Accepted layouts, in a folder or a ``.zip``:

* nested -- ``[prefix/]<student>/<assignment>/<notebook>.ipynb`` (the notebook keeps its name);
* flat (as learning-management systems download them) -- ``<student>_<anything>.ipynb`` whose name
  contains exactly one known assignment id, e.g. ``smithj_12345_a01_kl_divergence.ipynb`` (placed as
  ``<assignment>.ipynb``).

What is trusted, and what is not:

* only notebooks (``.ipynb``) are copied; every other file, a student's ``timestamp.txt`` included, is
  reported as ignored. The submission time written to ``timestamp.txt`` is the collection time (now, UTC)
  for a folder, and the entry's own time in the zip's metadata (what an LMS export records) for a zip;
* symbolic links are never followed (in a folder: not descended, not read; in a zip: entries whose Unix
  mode says link), nor are other special files (pipes, devices) read;
* a zip entry with an absolute path, a drive or ``..`` is refused; nothing is ever written outside
  ``<root>/submitted/<student>/<assignment>``, and the source is only read;
* sizes are counted on the bytes actually read (a zip's declared sizes can lie): a notebook larger than
  ``[collect] max_notebook_mib`` (20) is refused after reading one byte more than the limit, and reading
  stops for the whole class once ``max_class_mib`` (1024) have been read, so a zip bomb costs at most the
  limits; at most ``max_entries`` (10000) entries are examined.

A bad entry (unsafe path, link, too big, unknown assignment, ambiguous name, bad student id, two notebooks
for one student and assignment, unreadable) is refused with the reason; everything else is placed.
"""

from __future__ import annotations

import datetime as dt
import os
import posixpath
import shutil
import stat
import struct
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .course import Course, CourseError, Submission, check_student_id, format_timestamp

__all__ = ["CollectReport", "CollectLimits", "collect_limits", "collect"]

_MIB = 1024 * 1024
_CHUNK = 1024 * 1024
_LIMIT_KEYS = {"max_notebook_mib": ("notebook_bytes", _MIB), "max_class_mib": ("class_bytes", _MIB),
               "max_entries": ("entries", 1)}


@dataclass
class CollectReport:
    """What ``collect`` did: ``placed`` (``"<student>/<assignment>"``), ``refused`` and ``ignored``
    (``"<path>: reason"``)."""

    placed: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CollectLimits:
    """Bytes of one notebook, bytes read for the whole class, entries examined."""

    notebook_bytes: int = 20 * _MIB
    class_bytes: int = 1024 * _MIB
    entries: int = 10_000


def collect_limits(course: Course) -> CollectLimits:
    """The defaults, changed by the ``[collect]`` table of ``course.toml``::

        [collect]
        max_notebook_mib = 20     # one notebook
        max_class_mib = 1024      # everything read from one folder or zip
        max_entries = 10000       # files (or zip entries) examined
    """
    table = course.settings().get("collect", {})
    origin = str(course.settings_file)
    if not isinstance(table, dict):
        raise CourseError(f"{origin}: [collect] must be a table")
    values = {}
    for key, value in table.items():
        if key not in _LIMIT_KEYS:
            raise CourseError(f"{origin}: [collect] has an unknown key {key!r} (known: {', '.join(_LIMIT_KEYS)})")
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise CourseError(f"{origin}: [collect] {key} must be a positive integer (got {value!r})")
        name, scale = _LIMIT_KEYS[key]
        values[name] = value * scale
    return CollectLimits(**values)


@dataclass
class _Entry:
    """One notebook found in the source: where, for whom, and how to read it."""

    label: str                      # path inside the source, for messages
    student: str
    assignment: str
    name: str                       # file name to write in submitted/<student>/<assignment>/
    size: int                       # declared size (zip) or size when listed (folder)
    when: dt.datetime
    open: Callable[[], object]      # a binary file object, read in chunks


class _Budget:
    """Bytes read so far for the whole class."""

    def __init__(self, limits: CollectLimits):
        self.limits = limits
        self.used = 0

    @property
    def exhausted(self) -> bool:
        return self.used >= self.limits.class_bytes


def _printable(name: str) -> str:
    """A path for messages: control characters (a terminal escape in a file name) shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)


def _mib(n: int) -> str:
    return f"{n / _MIB:g} MiB"


def _read_bounded(entry: _Entry, budget: _Budget) -> bytes:
    """The bytes of ``entry``, read in chunks; raises ValueError past the notebook or class limit."""
    limits = budget.limits
    if entry.size > limits.notebook_bytes:
        raise ValueError(f"larger than {_mib(limits.notebook_bytes)} ({_mib(entry.size)}; "
                         "limit [collect] max_notebook_mib)")
    parts, total = [], 0
    with entry.open() as handle:
        while True:
            room = min(limits.notebook_bytes + 1 - total, limits.class_bytes - budget.used)
            if room <= 0:
                break
            chunk = handle.read(min(_CHUNK, room))
            if not chunk:
                break
            parts.append(chunk)
            total += len(chunk)
            budget.used += len(chunk)
        if total > limits.notebook_bytes:
            raise ValueError(f"larger than {_mib(limits.notebook_bytes)} once read, whatever its declared size "
                             "(limit [collect] max_notebook_mib)")
        if budget.exhausted and handle.read(1):
            raise ValueError(f"the class limit of {_mib(limits.class_bytes)} read was reached "
                             "(limit [collect] max_class_mib)")
    return b"".join(parts)


def _classify(parts: tuple[str, ...], assignments: list[str]) -> tuple[str, str, str]:
    """``(student, assignment, file name to write)`` of a notebook at ``parts``; raises ValueError."""
    filename = parts[-1]
    if len(parts) >= 3 and parts[-2] in assignments:
        return parts[-3], parts[-2], filename
    stem = filename[: -len(".ipynb")]
    hits = [a for a in assignments if a in stem]
    if len(hits) != 1:
        raise ValueError("names no known assignment" if not hits else
                         f"names several assignments ({', '.join(hits)})")
    aid = hits[0]
    student = stem.split("_", 1)[0] if "_" in stem else ""
    if not student or student == aid or aid.startswith(student):
        raise ValueError("no student id before the first '_' in the file name")
    return student, aid, f"{aid}.ipynb"


def _skipped_name(part: str) -> bool:
    return part.startswith(".") or part == "__MACOSX"


def _consider(parts: tuple[str, ...], label: str, assignments: list[str], report: CollectReport):
    """``(student, assignment, name)`` for a regular file at ``parts``, or None (reported) if it is not
    a notebook to place."""
    if any(_skipped_name(p) for p in parts):
        report.ignored.append(f"{label}: hidden or system file")
        return None
    if parts[-1] == "timestamp.txt":
        report.ignored.append(f"{label}: a student's timestamp is not trusted; the collection time is used")
        return None
    if not parts[-1].endswith(".ipynb"):
        report.ignored.append(f"{label}: not a notebook")
        return None
    try:
        student, aid, name = _classify(parts, assignments)
        check_student_id(student)
    except (ValueError, CourseError) as error:
        report.refused.append(f"{label}: {error}")
        return None
    return student, aid, name


# --- folders -----------------------------------------------------------------------------------------


def _open_beneath(root_fd: int, parts: tuple[str, ...]):
    """Open ``root/parts...`` for reading, refusing a link at any step (``O_NOFOLLOW`` per component), so a
    folder swapped for a link after the walk is not followed either; only a regular file is returned."""
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    fd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | nofollow, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        file_fd = os.open(parts[-1], os.O_RDONLY | nofollow | getattr(os, "O_NONBLOCK", 0), dir_fd=fd)
    finally:
        os.close(fd)
    try:
        if not stat.S_ISREG(os.fstat(file_fd).st_mode):
            raise OSError(f"{parts[-1]} is not a regular file")
        return os.fdopen(file_fd, "rb")
    except BaseException:
        os.close(file_fd)
        raise


def _folder_entries(root: Path, root_fd: int, assignments: list[str], limits: CollectLimits,
                    report: CollectReport, now: dt.datetime) -> Iterator[_Entry]:
    """Notebooks of a folder, walked without following any link (``os.fwalk`` on directory handles)."""
    seen = 0
    for dirpath, dirnames, filenames, dirfd in os.fwalk(root, follow_symlinks=False):
        rel_dir = Path(dirpath).relative_to(root).parts
        for name in list(dirnames):
            label = _printable("/".join((*rel_dir, name)))
            if stat.S_ISLNK(os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode):
                report.refused.append(f"{label}: symbolic link, not followed")
                dirnames.remove(name)
            elif _skipped_name(name):
                report.ignored.append(f"{label}/: hidden or system folder")
                dirnames.remove(name)
        dirnames.sort()
        for name in sorted(filenames):
            label = _printable("/".join((*rel_dir, name)))
            seen += 1
            if seen > limits.entries:
                report.refused.append(f"{label} and what follows: more than {limits.entries} files "
                                      "(limit [collect] max_entries)")
                return
            try:
                info = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            except OSError as error:
                report.refused.append(f"{label}: cannot be read ({error.strerror or error})")
                continue
            if stat.S_ISLNK(info.st_mode):
                report.refused.append(f"{label}: symbolic link, not followed")
                continue
            if not stat.S_ISREG(info.st_mode):
                report.refused.append(f"{label}: not a regular file")
                continue
            found = _consider((*rel_dir, name), label, assignments, report)
            if found is not None:
                parts = (*rel_dir, name)
                yield _Entry(label, *found, size=info.st_size, when=now,
                             open=lambda parts=parts: _open_beneath(root_fd, parts))


# --- zips ---------------------------------------------------------------------------------------------


def _zip_parts(name: str) -> tuple[str, ...] | None:
    """The path of a zip entry as parts, or None if it is absolute, has a drive or ``..``."""
    path = name.replace("\\", "/")
    if "\x00" in path or path.startswith("/") or (len(path) >= 2 and path[1] == ":"):
        return None
    parts = tuple(p for p in path.split("/") if p not in ("", "."))
    if not parts or ".." in parts or posixpath.isabs(path):
        return None
    return parts


def _zip_time(info: zipfile.ZipInfo) -> dt.datetime | None:
    """The entry's modification time: the UTC Unix time of its extended-timestamp field when present,
    else its DOS date and time read as UTC; None when neither is a valid date."""
    extra = info.extra
    i = 0
    while i + 4 <= len(extra):
        header, length = struct.unpack("<HH", extra[i:i + 4])
        body = extra[i + 4:i + 4 + length]
        if header == 0x5455 and len(body) >= 5 and body[0] & 1:
            try:
                return dt.datetime.fromtimestamp(struct.unpack("<I", body[1:5])[0], tz=dt.timezone.utc)
            except (OverflowError, OSError, ValueError):
                break
        i += 4 + length
    try:
        return dt.datetime(*info.date_time, tzinfo=dt.timezone.utc)
    except ValueError:
        return None


def _zip_entries(zf: zipfile.ZipFile, assignments: list[str], limits: CollectLimits, report: CollectReport,
                 now: dt.datetime) -> Iterator[_Entry]:
    for seen, info in enumerate(zf.infolist(), start=1):
        label = _printable(info.filename)
        if seen > limits.entries:
            report.refused.append(f"{label} and what follows: more than {limits.entries} entries "
                                  "(limit [collect] max_entries)")
            return
        parts = _zip_parts(info.filename)
        if parts is None:
            report.refused.append(f"{label}: unsafe entry (absolute path, drive or '..'), skipped")
            continue
        mode = info.external_attr >> 16
        if info.is_dir() or stat.S_ISDIR(mode):
            continue
        if stat.S_ISLNK(mode):
            report.refused.append(f"{label}: symbolic link, not followed")
            continue
        if mode and stat.S_IFMT(mode) and not stat.S_ISREG(mode):
            report.refused.append(f"{label}: not a regular file")
            continue
        found = _consider(parts, label, assignments, report)
        if found is None:
            continue
        if info.flag_bits & 0x1:
            report.refused.append(f"{label}: encrypted")
            continue
        when = _zip_time(info)
        if when is None:
            report.ignored.append(f"{label}: no valid date in the zip; the collection time is used")
        yield _Entry(label, *found, size=info.file_size, when=when or now,
                     open=lambda i=info: zf.open(i))


# --- placing ------------------------------------------------------------------------------------------


def _check_source(course: Course, source: Path) -> None:
    submitted = (course.root / "submitted").resolve()
    resolved = source.resolve()
    if resolved == submitted or submitted in resolved.parents or resolved in submitted.parents:
        raise CourseError(f"{source} overlaps the course's {submitted}; collect from a folder or zip outside it")


def _place(course: Course, entries: Iterator[_Entry], limits: CollectLimits, report: CollectReport) -> None:
    # list every notebook first (nothing read yet), so that two for one student and assignment are refused
    by_submission: dict[Submission, list[_Entry]] = {}
    listed = list(entries)
    for entry in listed:
        by_submission.setdefault(Submission(entry.assignment, entry.student), []).append(entry)
    submitted = (course.root / "submitted").resolve()
    budget = _Budget(limits)
    for submission, found in sorted(by_submission.items()):
        if len(found) > 1:
            report.refused.append(f"{submission.student}/{submission.assignment}: several notebooks "
                                  f"({', '.join(e.label for e in found)}); cannot tell which one to grade")
            continue
        entry = found[0]
        if budget.exhausted:
            report.refused.append(f"{entry.label}: not read, the class limit of {_mib(limits.class_bytes)} "
                                  "was reached (limit [collect] max_class_mib)")
            continue
        try:
            data = _read_bounded(entry, budget)
        except ValueError as error:
            report.refused.append(f"{entry.label}: {error}")
            continue
        except (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError) as error:
            report.refused.append(f"{entry.label}: damaged or unsupported zip entry ({error})")
            continue
        except OSError as error:
            report.refused.append(f"{entry.label}: cannot be read ({error.strerror or error})")
            continue
        target = course.folder("submitted", submission)
        if submitted not in target.resolve().parents:  # cannot happen with checked ids; never write outside
            report.refused.append(f"{entry.label}: would be written outside {submitted}")
            continue
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        (target / entry.name).write_bytes(data)
        (target / "timestamp.txt").write_text(format_timestamp(entry.when) + "\n", encoding="utf-8")
        report.placed.append(f"{submission.student}/{submission.assignment}")


def collect(course: Course, source: Path, log=print) -> CollectReport:
    """Copy the notebooks found in ``source`` (a folder or a zip) into ``<root>/submitted``.

    Returns the :class:`CollectReport`; ``log`` gets one line per placed, refused and ignored item.
    Raises CourseError when ``source`` does not exist, is neither a folder nor a zip, or overlaps
    ``submitted/``.
    """
    source = Path(source)
    if not source.exists():
        raise CourseError(f"{source} does not exist")
    _check_source(course, source)
    assignments = course.assignments()
    limits = collect_limits(course)
    report = CollectReport()
    now = dt.datetime.now(dt.timezone.utc)
    if source.is_dir():
        root = source.resolve()  # the instructor's own path may be a link; nothing below it is followed
        root_fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            _place(course, _folder_entries(root, root_fd, assignments, limits, report, now), limits, report)
        finally:
            os.close(root_fd)
    else:
        if not zipfile.is_zipfile(source):
            raise CourseError(f"{source} is neither a folder nor a zip archive")
        try:
            with zipfile.ZipFile(source) as zf:
                _place(course, _zip_entries(zf, assignments, limits, report, now), limits, report)
        except zipfile.BadZipFile as error:
            raise CourseError(f"{source}: not a readable zip archive ({error})") from None
    for item in report.placed:
        log(f"placed {item}")
    for item in report.refused:
        log(f"REFUSED {item}")
    for item in report.ignored:
        log(f"ignored {item}")
    return report
