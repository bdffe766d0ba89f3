"""``kdcourse collect`` against hostile inputs: links, unsafe zip entries, zip bombs, a student's own
timestamp, stray files, and a class zip where good and bad entries are mixed. No kernel, no nbgrader."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
import struct
import time
import zipfile
from pathlib import Path

import pytest

from kdcourse.grading.collect import CollectLimits, collect, collect_limits
from kdcourse.grading.course import Course, CourseError, Submission

pytestmark = pytest.mark.timeout(120)

A1, A2 = "a01_kl", "a02_loss"
NOTEBOOK = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n'
SOLUTIONS = b'{"cells": [{"source": "### BEGIN SOLUTION secret"}], "metadata": {}, "nbformat": 4}\n'
MIB = 1024 * 1024


def make_course(tmp: Path, settings: str = "") -> Course:
    """Two assignments; the source notebooks hold 'solutions' that must never reach submitted/."""
    for aid in (A1, A2):
        (tmp / "sources" / aid).mkdir(parents=True)
        (tmp / "sources" / aid / f"{aid}.ipynb").write_bytes(SOLUTIONS)
    (tmp / "specs").mkdir()
    settings_file = tmp / "course.toml"
    settings_file.write_text(settings, encoding="utf-8")
    return Course(root=tmp / "grading", source_dir=tmp / "sources", spec_dir=tmp / "specs",
                  settings_file=settings_file)


def digest(path: Path) -> dict[str, str]:
    """Every entry under ``path`` (links as their target text, not followed) -> content hash."""
    if path.is_file():
        return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}
    out = {}
    for p in sorted(path.rglob("*")):
        rel = str(p.relative_to(path))
        out[rel] = ("link:" + os.readlink(p)) if p.is_symlink() else (
            hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
    return out


def submitted_files(course: Course) -> list[str]:
    base = course.root / "submitted"
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()) if base.exists() else []


def quiet(*_):
    pass


def zip_with(path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]], compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return path


# --- the layouts that must keep working ------------------------------------------------------------------


def test_nested_folder_and_flat_zip_are_placed(tmp_path):
    course = make_course(tmp_path)
    inbox = tmp_path / "inbox"
    (inbox / "alice" / A1).mkdir(parents=True)
    (inbox / "alice" / A1 / f"{A1}.ipynb").write_bytes(NOTEBOOK)
    archive = zip_with(tmp_path / "lms.zip", [(f"bob_1234_{A2}.ipynb", NOTEBOOK)])
    report = collect(course, inbox, log=quiet)
    assert report.placed == [f"alice/{A1}"] and not report.refused
    report = collect(course, archive, log=quiet)
    assert report.placed == [f"bob/{A2}"] and not report.refused
    assert submitted_files(course) == [f"alice/{A1}/{A1}.ipynb", f"alice/{A1}/timestamp.txt",
                                       f"bob/{A2}/{A2}.ipynb", f"bob/{A2}/timestamp.txt"]
    assert (course.folder("submitted", Submission(A2, "bob")) / f"{A2}.ipynb").read_bytes() == NOTEBOOK


# --- links -------------------------------------------------------------------------------------------------


def test_folder_symlinks_are_not_followed(tmp_path):
    course = make_course(tmp_path)
    inbox = tmp_path / "inbox"
    (inbox / "alice" / A1).mkdir(parents=True)
    (inbox / "alice" / A1 / f"{A1}.ipynb").write_bytes(NOTEBOOK)
    # beside a real notebook: a link to the source notebook, with its solutions
    (inbox / "mallory" / A1).mkdir(parents=True)
    (inbox / "mallory" / A1 / f"{A1}.ipynb").symlink_to(course.source_notebook(A1))
    # a flat LMS-style name that is a link, and a link to a whole folder of sources
    (inbox / f"eve_1_{A2}.ipynb").symlink_to(course.source_notebook(A2))
    (inbox / "trudy").symlink_to(course.source_dir)  # trudy/a01_kl/a01_kl.ipynb would look nested
    before = digest(inbox)
    report = collect(course, inbox, log=quiet)
    assert report.placed == [f"alice/{A1}"]
    refused = "\n".join(report.refused)
    for name in (f"mallory/{A1}/{A1}.ipynb", f"eve_1_{A2}.ipynb", "trudy"):
        assert f"{name}: symbolic link, not followed" in refused
    assert all(b"secret" not in (course.root / "submitted" / f).read_bytes() for f in submitted_files(course))
    assert submitted_files(course) == [f"alice/{A1}/{A1}.ipynb", f"alice/{A1}/timestamp.txt"]
    assert digest(inbox) == before


def test_special_files_are_not_read(tmp_path):
    course = make_course(tmp_path)
    inbox = tmp_path / "inbox"
    (inbox / "carol" / A1).mkdir(parents=True)
    os.mkfifo(inbox / "carol" / A1 / f"{A1}.ipynb")  # reading it would block forever
    report = collect(course, inbox, log=quiet)
    assert report.placed == [] and any("not a regular file" in r for r in report.refused)


def test_zip_symlink_entries_are_refused(tmp_path):
    course = make_course(tmp_path)
    link = zipfile.ZipInfo(f"mallory/{A1}/{A1}.ipynb")
    link.create_system = 3
    link.external_attr = (0o120777 << 16)
    target = str(course.source_notebook(A1)).encode()
    archive = zip_with(tmp_path / "class.zip", [(link, target), (f"alice/{A1}/{A1}.ipynb", NOTEBOOK)])
    report = collect(course, archive, log=quiet)
    assert report.placed == [f"alice/{A1}"]
    assert report.refused == [f"mallory/{A1}/{A1}.ipynb: symbolic link, not followed"]
    assert not course.folder("submitted", Submission(A1, "mallory")).exists()


# --- paths --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    f"../x_1_{A1}.ipynb", f"alice/../../x_1_{A1}.ipynb", f"/tmp/x_1_{A1}.ipynb", f"C:/x_1_{A1}.ipynb",
    f"..\\x_1_{A1}.ipynb", f"\\\\server\\x_1_{A1}.ipynb",
])
def test_unsafe_zip_entries_are_skipped_not_fatal(tmp_path, name):
    course = make_course(tmp_path)
    archive = zip_with(tmp_path / "evil.zip", [(name, NOTEBOOK), (f"bob_2_{A1}.ipynb", NOTEBOOK)])
    report = collect(course, archive, log=quiet)
    assert report.placed == [f"bob/{A1}"]
    assert len(report.refused) == 1 and "unsafe entry" in report.refused[0]
    assert submitted_files(course) == [f"bob/{A1}/{A1}.ipynb", f"bob/{A1}/timestamp.txt"]
    assert not (tmp_path / f"x_1_{A1}.ipynb").exists() and not (course.root / f"x_1_{A1}.ipynb").exists()


def test_only_notebooks_are_copied(tmp_path):
    course = make_course(tmp_path)
    inbox = tmp_path / "inbox"
    folder = inbox / "alice" / A1
    (folder / ".ipynb_checkpoints").mkdir(parents=True)
    (folder / f"{A1}.ipynb").write_bytes(NOTEBOOK)
    (folder / "feedback.html").write_text("<script>alert(1)</script>", encoding="utf-8")
    (folder / "helper.py").write_text("import os", encoding="utf-8")
    (folder / ".ipynb_checkpoints" / f"{A1}-checkpoint.ipynb").write_bytes(NOTEBOOK)
    (inbox / "stray.txt").write_text("?", encoding="utf-8")
    report = collect(course, inbox, log=quiet)
    assert report.placed == [f"alice/{A1}"] and report.refused == []
    ignored = "\n".join(report.ignored)
    for name in ("feedback.html", "helper.py", "stray.txt", ".ipynb_checkpoints"):
        assert name in ignored
    assert submitted_files(course) == [f"alice/{A1}/{A1}.ipynb", f"alice/{A1}/timestamp.txt"]


# --- time ---------------------------------------------------------------------------------------------------


def test_a_students_timestamp_is_ignored_in_a_folder(tmp_path):
    course = make_course(tmp_path)
    folder = tmp_path / "inbox" / "alice" / A1
    folder.mkdir(parents=True)
    (folder / f"{A1}.ipynb").write_bytes(NOTEBOOK)
    (folder / "timestamp.txt").write_text("2000-01-01 00:00:00.000000 UTC\n", encoding="utf-8")
    os.utime(folder / f"{A1}.ipynb", (946684800, 946684800))  # a file date from 2000 is not trusted either
    start = dt.datetime.now(dt.timezone.utc)
    report = collect(course, tmp_path / "inbox", log=quiet)
    assert any("timestamp.txt" in item and "not trusted" in item for item in report.ignored)
    written = (course.folder("submitted", Submission(A1, "alice")) / "timestamp.txt").read_text().strip()
    when = dt.datetime.strptime(written, "%Y-%m-%d %H:%M:%S.%f UTC").replace(tzinfo=dt.timezone.utc)
    assert start - dt.timedelta(seconds=1) <= when <= dt.datetime.now(dt.timezone.utc)


def test_a_zip_entry_gets_its_own_date(tmp_path):
    course = make_course(tmp_path)
    info = zipfile.ZipInfo(f"alice_99_{A1}.ipynb", date_time=(2025, 3, 4, 5, 6, 8))
    fake = zipfile.ZipInfo("alice/timestamp.txt", date_time=(2025, 3, 4, 5, 6, 8))
    nested_fake = zipfile.ZipInfo(f"bob/{A2}/timestamp.txt")
    stamped = zipfile.ZipInfo(f"bob/{A2}/{A2}.ipynb", date_time=(1999, 1, 1, 0, 0, 0))
    # the extended-timestamp field (0x5455) carries the UTC time and wins over the DOS date
    utc = dt.datetime(2025, 6, 1, 12, 30, tzinfo=dt.timezone.utc)
    stamped.extra = struct.pack("<HHBI", 0x5455, 5, 1, int(utc.timestamp()))
    archive = zip_with(tmp_path / "lms.zip", [(info, NOTEBOOK), (fake, b"2000-01-01 00:00:00 UTC"),
                                               (nested_fake, b"2000-01-01 00:00:00 UTC"), (stamped, NOTEBOOK)])
    report = collect(course, archive, log=quiet)
    assert report.placed == [f"alice/{A1}", f"bob/{A2}"]
    alice = (course.folder("submitted", Submission(A1, "alice")) / "timestamp.txt").read_text()
    bob = (course.folder("submitted", Submission(A2, "bob")) / "timestamp.txt").read_text()
    assert alice == "2025-03-04 05:06:08.000000 UTC\n"  # DOS times have 2 s steps
    assert bob == "2025-06-01 12:30:00.000000 UTC\n"
    assert sum("timestamp.txt" in item for item in report.ignored) == 2


# --- sizes --------------------------------------------------------------------------------------------------


def test_limits_come_from_course_settings(tmp_path):
    assert collect_limits(make_course(tmp_path / "a")) == CollectLimits()
    assert CollectLimits().notebook_bytes == 20 * MIB and CollectLimits().class_bytes == 1024 * MIB
    course = make_course(tmp_path / "b", "[collect]\nmax_notebook_mib = 2\nmax_class_mib = 5\nmax_entries = 7\n")
    assert collect_limits(course) == CollectLimits(2 * MIB, 5 * MIB, 7)
    with pytest.raises(CourseError, match="max_notebook_mib must be a positive integer"):
        collect_limits(make_course(tmp_path / "c", "[collect]\nmax_notebook_mib = 0\n"))
    with pytest.raises(CourseError, match="unknown key 'max_mib'"):
        collect_limits(make_course(tmp_path / "d", "[collect]\nmax_mib = 3\n"))


def test_a_zip_bomb_is_stopped_early(tmp_path):
    course = make_course(tmp_path)
    zeros = bytes(64 * MIB)  # deflates to about 64 KiB
    archive = zip_with(tmp_path / "bomb.zip", [(f"mallory_1_{A1}.ipynb", zeros), (f"alice_1_{A1}.ipynb", NOTEBOOK)])
    assert archive.stat().st_size < MIB
    start = time.monotonic()
    report = collect(course, archive, log=quiet)
    assert time.monotonic() - start < 30
    assert report.placed == [f"alice/{A1}"]
    assert len(report.refused) == 1 and "mallory_1" in report.refused[0] and "larger than 20 MiB" in report.refused[0]
    assert not course.folder("submitted", Submission(A1, "mallory")).exists()


def _lie_about_size(archive: Path, name: str, declared: int) -> None:
    """Rewrite the uncompressed size of the only entry, ``name``, in its local header and central record."""
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        local = zf.getinfo(name).header_offset
    struct.pack_into("<I", data, local + 22, declared)
    struct.pack_into("<I", data, data.find(b"PK\x01\x02") + 24, declared)
    archive.write_bytes(bytes(data))


def test_declared_sizes_are_not_trusted(tmp_path):
    course = make_course(tmp_path, "[collect]\nmax_notebook_mib = 1\n")
    archive = zip_with(tmp_path / "liar.zip", [(f"mallory_1_{A1}.ipynb", bytes(8 * MIB))])
    _lie_about_size(archive, f"mallory_1_{A1}.ipynb", 1000)
    with zipfile.ZipFile(archive) as zf:
        assert zf.getinfo(f"mallory_1_{A1}.ipynb").file_size == 1000
    report = collect(course, archive, log=quiet)
    assert report.placed == [] and len(report.refused) == 1 and report.refused[0].startswith(f"mallory_1_{A1}.ipynb")
    assert not course.folder("submitted", Submission(A1, "mallory")).exists()


def test_an_oversized_notebook_in_a_folder_is_refused(tmp_path):
    course = make_course(tmp_path, "[collect]\nmax_notebook_mib = 1\n")
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / f"mallory_1_{A1}.ipynb").write_bytes(bytes(MIB + 1))
    (folder / f"alice_1_{A1}.ipynb").write_bytes(bytes(MIB))
    report = collect(course, folder, log=quiet)
    assert report.placed == [f"alice/{A1}"]
    assert len(report.refused) == 1 and "larger than 1 MiB" in report.refused[0]


def test_the_class_limit_counts_what_is_read(tmp_path):
    course = make_course(tmp_path, "[collect]\nmax_notebook_mib = 1\nmax_class_mib = 2\n")
    chunk = bytes(int(0.9 * MIB))
    archive = zip_with(tmp_path / "many.zip", [(f"s{i}_1_{A1}.ipynb", chunk) for i in range(4)])
    report = collect(course, archive, log=quiet)
    assert report.placed == [f"s0/{A1}", f"s1/{A1}"]
    assert len(report.refused) == 2 and all("max_class_mib" in r for r in report.refused)


def test_too_many_entries_stop_the_listing(tmp_path):
    course = make_course(tmp_path, "[collect]\nmax_entries = 3\n")
    archive = zip_with(tmp_path / "many.zip", [(f"s{i}_1_{A1}.ipynb", NOTEBOOK) for i in range(6)])
    report = collect(course, archive, log=quiet)
    assert report.placed == [f"s0/{A1}", f"s1/{A1}", f"s2/{A1}"]
    assert len(report.refused) == 1 and "max_entries" in report.refused[0]


# --- a class zip with everything at once ---------------------------------------------------------------------


def test_a_mixed_class_zip_places_the_good_and_reports_the_bad(tmp_path):
    course = make_course(tmp_path)
    link = zipfile.ZipInfo(f"mallory_1_{A2}.ipynb")
    link.external_attr = (0o120777 << 16)
    fifo = zipfile.ZipInfo(f"oscar/{A2}/{A2}.ipynb")
    fifo.external_attr = ((stat.S_IFIFO | 0o644) << 16)
    entries = [
        (f"alice_1_{A1}.ipynb", NOTEBOOK),                  # placed
        (f"bob/{A2}/{A2}.ipynb", NOTEBOOK),                 # placed (nested)
        (f"bob/{A2}/timestamp.txt", b"2000-01-01"),         # ignored
        (f"carol_1_{A1}_{A2}.ipynb", NOTEBOOK),             # ambiguous
        ("dave_1_homework.ipynb", NOTEBOOK),                # unknown assignment
        (f"-rf_1_{A1}.ipynb", NOTEBOOK),                    # bad student id
        (f"erin_1_{A1}.ipynb", NOTEBOOK),                   # two notebooks for erin/a01
        (f"erin_2_{A1}.ipynb", NOTEBOOK),
        (f"../frank_1_{A1}.ipynb", NOTEBOOK),               # unsafe
        (link, b"/etc/passwd"),                             # link
        (fifo, b""),                                        # special file
        (f"grace_1_{A2}.ipynb", bytes(30 * MIB)),           # too big
        ("readme.md", b"hello"),                            # ignored
        ("__MACOSX/._alice_1_a01_kl.ipynb", b"\x00"),       # ignored
    ]
    archive = zip_with(tmp_path / "class.zip", entries)
    before = digest(archive)
    lines = []
    report = collect(course, archive, log=lines.append)
    assert report.placed == [f"alice/{A1}", f"bob/{A2}"]
    refused = "\n".join(report.refused)
    expectations = {
        f"carol_1_{A1}_{A2}.ipynb": "names several assignments",
        "dave_1_homework.ipynb": "names no known assignment",
        f"-rf_1_{A1}.ipynb": "student id '-rf' is not valid",
        f"erin/{A1}": "several notebooks",
        f"../frank_1_{A1}.ipynb": "unsafe entry",
        f"mallory_1_{A2}.ipynb": "symbolic link",
        f"oscar/{A2}/{A2}.ipynb": "not a regular file",
        f"grace_1_{A2}.ipynb": "larger than 20 MiB",
    }
    for name, reason in expectations.items():
        assert any(r.startswith(name) and reason in r for r in report.refused), (name, refused)
    assert len(report.refused) == len(expectations)
    assert len(report.ignored) == 3
    assert submitted_files(course) == [f"alice/{A1}/{A1}.ipynb", f"alice/{A1}/timestamp.txt",
                                       f"bob/{A2}/{A2}.ipynb", f"bob/{A2}/timestamp.txt"]
    assert (course.folder("submitted", Submission(A2, "bob")) / "timestamp.txt").read_text() != "2000-01-01"
    assert digest(archive) == before
    assert sum(line.startswith("placed ") for line in lines) == 2
    assert sum(line.startswith("REFUSED ") for line in lines) == len(expectations)
    assert sum(line.startswith("ignored ") for line in lines) == 3


def test_control_characters_in_names_are_escaped_in_messages(tmp_path):
    course = make_course(tmp_path)
    archive = zip_with(tmp_path / "ansi.zip", [("\x1b[2J\x1b[31mevil.ipynb", NOTEBOOK)])
    lines = []
    collect(course, archive, log=lines.append)
    assert lines and all("\x1b" not in line for line in lines)


def test_collect_refuses_a_source_that_overlaps_submitted(tmp_path):
    course = make_course(tmp_path)
    (course.root / "submitted" / "alice" / A1).mkdir(parents=True)
    with pytest.raises(CourseError, match="overlaps"):
        collect(course, course.root / "submitted", log=quiet)
    with pytest.raises(CourseError, match="overlaps"):
        collect(course, course.root, log=quiet)
    with pytest.raises(CourseError, match="neither a folder nor a zip"):
        (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
        collect(course, tmp_path / "notes.txt", log=quiet)


def test_a_carried_forward_function_is_taken_from_the_notebook_namespace(monkeypatch):
    # The a01 replica test names only the numbers; the checker finds the student's kl_divergence itself.
    from kdcourse.answers import checker as checker_module

    def kl_divergence(p, q):
        return 0.5

    monkeypatch.setattr(checker_module, "_notebook_namespace", lambda: {"kl_divergence": kl_divergence})
    record = checker_module.Checker("a01_kl_divergence").collect(
        "test_replica", {"kl_A": 0.1, "kl_B": 0.2, "kl_C": 0.3, "best_replica": "A"})
    calls = record["answers"]["kl_divergence"]["results"]
    assert len(calls) == 3 and all(call["returned"]["v"] == 0.5 for call in calls), calls
    monkeypatch.setattr(checker_module, "_notebook_namespace", lambda: {})
    record = checker_module.Checker("a01_kl_divergence").collect("test_replica", {})
    assert record["answers"]["kl_divergence"]["probe"] == "missing"
