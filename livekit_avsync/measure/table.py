"""Plain-text tables for the benchmarks: label columns left-aligned, figures right-aligned."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["text_table"]


def text_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    labels: int = 2,
) -> str:
    """``header``, a rule and ``rows`` (short rows are padded); the first ``labels`` columns
    are left-aligned. Ends without a newline."""
    cells = [list(r) + [""] * (len(header) - len(r)) for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]

    def fmt(row: Sequence[str]) -> str:
        padded = [
            c.ljust(w) if i < labels else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    lines = [fmt(header), "  ".join("-" * w for w in widths), *(fmt(r) for r in cells)]
    return "\n".join([title, *lines] if title else lines)
