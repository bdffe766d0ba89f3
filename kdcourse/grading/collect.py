"""``kdcourse collect PATH``: place student submissions into ``submitted/`` without touching the originals.

Accepted layouts, in a folder or a ``.zip``:

* nested -- ``<student>/<assignment>/<notebook>.ipynb`` (optionally ``timestamp.txt`` beside it);
* flat (as learning-management systems download them) -- ``<student>_<anything>.ipynb`` whose name
  contains exactly one known assignment id, e.g. ``smithj_12345_a01_kl_divergence.ipynb``.

Anything that cannot be placed (unknown assignment, ambiguous name, two files for one student and
assignment, unsafe zip entry) is refused with the reason, and nothing of it is written.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .course import Course, CourseError

_STUDENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class CollectReport:
    placed: list[str] = field(default_factory=list)    # "<student>/<assignment>"
    refused: list[str] = field(default_factory=list)   # "<path>: reason"


def _safe_extract(archive: Path, target: Path) -> dict[str, dt.datetime]:
    """Extract ``archive`` into ``target``; refuses absolute or ``..`` entries. Returns entry times."""
    times = {}
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            name = info.filename
            if name.startswith(("/", "\\")) or ".." in Path(name).parts:
                raise CourseError(f"{archive}: unsafe entry {name!r} (absolute path or '..')")
            if name.startswith("__MACOSX/") or info.is_dir():
                continue
            zf.extract(info, target)
            times[str(Path(name))] = dt.datetime(*info.date_time, tzinfo=dt.timezone.utc)
    return times


def _timestamp(path: Path, zip_times: dict[str, dt.datetime], root: Path) -> str:
    when = zip_times.get(str(path.relative_to(root)))
    if when is None:
        when = dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.timezone.utc)
    return when.strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def _plan(root: Path, assignments: list[str], report: CollectReport) -> dict[tuple[str, str], list[Path]]:
    """``(student, assignment) -> files`` to copy."""
    plan: dict[tuple[str, str], list[Path]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if any(part.startswith(".") or part == "__MACOSX" for part in rel.parts):
            continue
        parts = rel.parts
        # nested: [prefix/]<student>/<assignment>/<file>
        if len(parts) >= 3 and parts[-2] in assignments:
            student, aid = parts[-3], parts[-2]
        elif path.suffix == ".ipynb":
            hits = [a for a in assignments if a in path.stem]
            if len(hits) != 1:
                report.refused.append(f"{rel}: " + ("names no known assignment" if not hits else
                                                   f"names several assignments ({', '.join(hits)})"))
                continue
            aid = hits[0]
            student = path.stem.split("_", 1)[0] if "_" in path.stem else ""
            if not student or student == aid or aid.startswith(student):
                report.refused.append(f"{rel}: no student id before the first '_' in the file name")
                continue
            path = path  # flat file: renamed to the assignment's notebook when placed
        else:
            report.refused.append(f"{rel}: not in a <student>/<assignment>/ folder and not a notebook")
            continue
        if not _STUDENT_RE.match(student):
            report.refused.append(f"{rel}: student id {student!r} has characters other than letters, digits, _ . -")
            continue
        plan.setdefault((student, aid), []).append(path)
    return plan


def collect(course: Course, source: Path, log=print) -> CollectReport:
    """Copy the submissions found in ``source`` (folder or zip) into ``<root>/submitted``."""
    source = Path(source)
    if not source.exists():
        raise CourseError(f"{source} does not exist")
    assignments = course.assignments()
    report = CollectReport()
    with tempfile.TemporaryDirectory(prefix="kdcourse-collect-") as tmp:
        zip_times: dict[str, dt.datetime] = {}
        if source.is_file():
            if not zipfile.is_zipfile(source):
                raise CourseError(f"{source} is neither a folder nor a zip archive")
            root = Path(tmp) / "unzipped"
            zip_times = _safe_extract(source, root)
        else:
            root = source
        plan = _plan(root, assignments, report)
        for (student, aid), files in sorted(plan.items()):
            notebooks = [f for f in files if f.suffix == ".ipynb"]
            flat = [f for f in notebooks if f.parent == root or f.parent.name != aid]
            if len(flat) > 1 or (flat and len(notebooks) > 1):
                report.refused.append(f"{student}/{aid}: several notebooks ({', '.join(f.name for f in notebooks)});"
                                      " cannot tell which one to grade")
                continue
            target = course.folder("submitted", student, aid)
            if target.exists():
                shutil.rmtree(target)
            target.mkdir(parents=True)
            for f in files:
                name = f"{aid}.ipynb" if f in flat else f.name
                shutil.copy2(f, target / name)
            if not (target / "timestamp.txt").exists():
                (target / "timestamp.txt").write_text(_timestamp(files[0], zip_times, root) + "\n", encoding="utf-8")
            report.placed.append(f"{student}/{aid}")
    for item in report.placed:
        log(f"placed {item}")
    for item in report.refused:
        log(f"REFUSED {item}")
    return report
