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


def test_grading_commands_explain_a_missing_extra(monkeypatch, capsys):
    import kdcourse.cli as cli

    monkeypatch.setattr(cli, "_grading_unavailable_reason", lambda: "nbgrader is not installed")
    assert cli.main(["verify", "a01_kl_divergence"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'kdcourse[grading]'" in err and "nbgrader is not installed" in err


def test_doctor_reports_an_unavailable_forced_device(monkeypatch, capsys):
    import kdcourse.device

    monkeypatch.setattr(kdcourse.device, "_accelerator_available", lambda kind: kind == "cpu")
    monkeypatch.setenv("KDCOURSE_DEVICE", "cuda")
    assert main(["doctor"]) == 1
    assert "device: device 'cuda' was requested but is not available" in capsys.readouterr().out
