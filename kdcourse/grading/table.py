"""Plain-text tables for the terminal (no dependencies)."""

from __future__ import annotations


def format_table(header: list[str], rows: list[list[object]]) -> str:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def check_rows(checks) -> tuple[list[str], list[list[object]]]:
    header = ["assignment", "student", "kind", "expected", "autograded", "status", "check"]
    rows = []
    for c in checks:
        got = "-" if c.auto_score is None else f"{c.auto_score:g}/{c.auto_max:g}"
        rows.append([c.student.assignment, c.student.student, c.student.kind, c.student.expect.describe(), got,
                     c.status, "ok" if c.ok else "SURPRISE: " + "; ".join(c.problems)])
    return header, rows
