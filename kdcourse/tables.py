"""Plain-text tables for the terminal (standard library only): one formatter for every table kdcourse prints."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["format_table"]


def format_table(header: Sequence[object], rows: Sequence[Sequence[object]], align: str = "") -> str:
    """Columns padded to their widest cell, a rule under the header.

    Parameters
    ----------
    header : sequence
        Column titles.
    rows : sequence of sequences
        One sequence of cells per row (any objects; shown with ``str``).
    align : str, optional
        One letter per column, ``"l"`` (default) or ``"r"`` to right-align numbers.

    Returns
    -------
    str
    """
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    sides = (align + "l" * len(widths))[:len(widths)]

    def line(row):
        return "  ".join(c.rjust(w) if s == "r" else c.ljust(w) for c, w, s in zip(row, widths, sides)).rstrip()

    lines = [line(row) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
