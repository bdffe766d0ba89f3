"""Shared helpers of the grading tests: a copy of the fixture course in a temporary folder."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from kdcourse.grading.config import Timeouts
from kdcourse.grading.course import Course

FIXTURE = Path(__file__).parent / "fixtures" / "course"
AID = "f01_fixture"
# short limits keep the hang cases quick; generous enough for a numpy-only kernel on a busy machine
TEST_TIMEOUTS = Timeouts(cell=8, iopub=30, startup=90, submission=150)


def fixture_course(tmp: Path) -> Course:
    """The fixture course copied into ``tmp`` (sources and instructor files), course root ``tmp/grading``."""
    shutil.copytree(FIXTURE, tmp, dirs_exist_ok=True)
    return Course(root=tmp / "grading", source_dir=tmp / "notebooks" / "assignments",
                  spec_dir=tmp / "grading" / "assignments")


def tree_digest(folder: Path) -> dict[str, str]:
    """``relative path -> sha256`` of every file under ``folder``."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}
