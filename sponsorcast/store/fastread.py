"""Reading an up-to-date SQLite store through the stdlib driver alone.

``leads count`` is what cron jobs and scripts ask most often, and importing SQLAlchemy and the
models costs more than the 0.3 s start-up budget (docs/benchmarks.md, start-up). When the store is a SQLite file
with every migration applied, such a read needs neither. ``connect`` returns None whenever that
is not certain, and the caller then opens the store as every other command does (which creates
or migrates it and refuses a file that is not a sponsorcast database). Nothing here writes:
the connection is opened read-only.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

BUSY_TIMEOUT_MS = 30_000
MIGRATIONS_TABLE = "_sponsorcast_migrations"

# What a current store has applied; tests/store/test_fastread.py keeps this equal to
# migrations.MIGRATIONS (migrations.py imports SQLAlchemy, which is what this module avoids).
CURRENT_MIGRATIONS = frozenset(
    {
        "m001_initial",
        "m002_send_batches",
        "m003_batch_payload_hash",
        "m004_batch_payload",
        "m005_email_look",
        "m006_sponsor_layout",
        "m007_report_indexes",
        "m008_rate_budget",
        "m009_guard_rails",
        "m010_frequency_cap",
        "m011_ab_tests",
        "m012_budget_window",
    }
)


def sqlite_path(url: str) -> Path | None:
    """The file behind a sqlite URL, or None for an in-memory database."""
    rest = url.split(":///", 1)[1] if ":///" in url else ""
    if not rest or rest == ":memory:":
        return None
    return Path(rest.split("?", 1)[0])


def connect(url: str) -> sqlite3.Connection | None:
    """A read-only connection, inside one read transaction, to the up-to-date SQLite store at
    ``url``; None for anything else (PostgreSQL, no file yet, pending migrations, not ours)."""
    if not url.startswith("sqlite"):
        return None
    path = sqlite_path(url)
    if path is None or not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro",
            uri=True,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
        )
    except sqlite3.Error:
        return None
    try:
        # one snapshot for the schema check and every read after it
        conn.execute("BEGIN")
        applied = {row[0] for row in conn.execute(f"SELECT name FROM {MIGRATIONS_TABLE}")}
    except sqlite3.Error:  # not an SQLite file, no ledger, locked past the timeout, ...
        conn.close()
        return None
    if applied != CURRENT_MIGRATIONS:
        conn.close()
        return None
    return conn


def has_sponsor(conn: sqlite3.Connection, sponsor_id: str) -> bool:
    """True if the store knows this sponsor."""
    return conn.execute("SELECT 1 FROM sponsor WHERE id = ?", (sponsor_id,)).fetchone() is not None


def stored_time(value: datetime) -> str:
    """An aware time as SQLAlchemy keeps it in SQLite (naive UTC text), for comparisons."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
