"""The quickstart runs end to end on a tiny budget and prints a sensible table."""

import contextlib
import io
import math

import pytest

from kdcourse import quickstart


@pytest.fixture(scope="module")
def run():
    """``quickstart.main`` on 2 epochs: its exit status, what it printed, and the rows it tabulated."""
    recorded = []
    original = quickstart.run_distillation_demo

    def recording(*args, **kwargs):
        recorded.extend(original(*args, **kwargs))
        return recorded

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.setattr(quickstart, "run_distillation_demo", recording)  # main calls it by this name
        status = quickstart.main(epochs=2, progress=False)
    return status, out.getvalue(), recorded


def test_main_exits_cleanly_and_prints_the_three_models(run):
    status, printed, rows = run
    assert status == 0
    lines = printed.splitlines()
    assert lines[0].startswith("Using ") and "digits" in lines[1]
    table = lines[2:]
    assert table[0].split()[:2] == ["model", "params"] and set(table[1]) == {"-", " "}
    assert [line.split(" (")[0].split(",")[0] for line in table[2:]] == ["teacher", "student", "student"]
    assert len(rows) == 3 and quickstart.format_table(rows) == "\n".join(table)


def test_rows_are_sensible(run):
    _, _, (teacher, scratch, distilled) = run
    for row in (teacher, scratch, distilled):
        assert 0 < row.test_accuracy <= 1 and 0 <= row.test_agreement <= 1
        assert math.isfinite(row.test_kl_to_teacher) and row.test_kl_to_teacher >= 0
        assert row.seconds >= 0
    assert teacher.test_kl_to_teacher == pytest.approx(0.0, abs=1e-6) and teacher.test_agreement == 1.0
    assert teacher.test_accuracy > 0.5  # two epochs are enough for the wide teacher on digits
    assert scratch.parameters == distilled.parameters == 64 * 8 + 8 + 8 * 10 + 10
    assert teacher.parameters > 50 * scratch.parameters
    assert "T=4" in distilled.name and "α=0.5" in distilled.name


@pytest.mark.parametrize("kwargs, error, pattern", [
    (dict(epochs=-1), ValueError, r"epochs must be >= 0"),
    (dict(temperature=0.0), ValueError, r"temperature must be > 0"),
    (dict(alpha=2.0), ValueError, r"alpha must be in \[0, 1\]"),
    (dict(seed="0"), TypeError, r"seed must be an int"),
])
def test_bad_settings_fail_before_any_training(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        quickstart.run_distillation_demo(**kwargs)


def test_the_docstring_names_the_command_that_runs_it():
    assert "python -m kdcourse.quickstart" in quickstart.__doc__
    assert "distill-demo" not in quickstart.__doc__
