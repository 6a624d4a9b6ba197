"""What an import did: rows read, leads inserted, updated and unchanged, rows rejected."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ImportReport:
    """What an import did (or, with ``dry_run``, would do)."""

    source: str
    sponsor_id: str
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    merged: int = 0  # rows folded into an earlier row of the same file (same email)
    erased: int = 0  # rows of people erased on request (``leads forget``): never imported
    rows: int = 0  # data rows read (blank rows not counted)
    rejects: list[tuple[int, str]] = field(default_factory=list)  # the first REJECTS_KEPT
    dry_run: bool = False
    rejects_path: str | None = None
    columns: list[tuple[str, str]] = field(
        default_factory=list
    )  # (header, lead column or fields.X)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The report for ``--json``."""
        return {
            "source": self.source,
            "sponsor": self.sponsor_id,
            "dry_run": self.dry_run,
            "rows": self.rows,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "merged": self.merged,
            "erased": self.erased,
            "rejects": [{"row": r, "reason": reason} for r, reason in self.rejects],
            "rejects_file": self.rejects_path,
            "columns": [{"column": c, "to": to} for c, to in self.columns],
            "warnings": list(self.warnings),
        }
