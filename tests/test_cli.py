"""The console script's always-available commands."""

import subprocess
import sys

import kdcourse
from kdcourse.cli import main


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as stop:
        assert stop.code == 0
    assert capsys.readouterr().out.strip() == f"kdcourse {kdcourse.__version__}"


def test_doctor_reports_versions_and_device(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for name in ("torch", "numpy", "nbgrader", "nbgrader lab extension"):
        assert name in out
    assert "Using " in out


def test_console_script_entry_point():
    result = subprocess.run([sys.executable, "-m", "kdcourse.cli", "--version"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "kdcourse" in result.stdout
