"""A report as CSV files in one folder, each written whole or not at all.

Cells a spreadsheet would run as a formula get a leading ``'`` (``spreadsheet.safe_cell``): a
sponsor opens these in Excel, and names, companies and bounce reasons come from outside.
The recipients file is streamed from the store row by row, whatever its size.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sponsorcast.spreadsheet import safe_cell


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    return safe_cell(value)


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``rows`` under a header of ``columns`` to ``path``, atomically."""
    lines = ([_cell(row.get(key)) for key in columns] for row in rows)
    return _write(path, columns, lines)


def write_csv_text(path: Path, columns: Sequence[str], lines: Iterable[str]) -> Path:
    """Write a header and finished CSV lines (``export.recipient_lines``) to ``path``, atomically."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            csv.writer(out, lineterminator="\n").writerow(list(columns))
            for line in lines:
                out.write(line)
                out.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _write(path: Path, columns: Sequence[str], lines: Iterable[Sequence[Any]]) -> Path:
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(list(columns))
            writer.writerows(lines)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


__all__ = ["write_csv", "write_csv_text"]
