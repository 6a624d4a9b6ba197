"""The stdlib-only read of an up-to-date SQLite store: used only when certain, never writes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sponsorcast.store import fastread, open_store
from sponsorcast.store.migrations import MIGRATIONS, run_migrations
from tests.support.project import TESTS, Project


def test_current_migrations_are_the_migration_list() -> None:
    assert {m.__name__ for m in MIGRATIONS} == fastread.CURRENT_MIGRATIONS


def test_up_to_date_store_opens_read_only(project: Project) -> None:
    conn = fastread.connect(project.config.store_url)
    assert conn is not None
    try:
        assert fastread.has_sponsor(conn, "default")
        assert not fastread.has_sponsor(conn, "nobody")
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("INSERT INTO sponsor (id, name, messaging_enabled) VALUES ('x', 'X', 1)")
    finally:
        conn.close()


def _v1_store(path: Path) -> None:
    store = open_store(f"sqlite:///{path}", migrate=False)
    run_migrations(store.write, upto="m001_initial")
    store.dispose()


def _foreign_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda p: None, id="missing"),
        pytest.param(lambda p: p.write_bytes(b""), id="empty"),
        pytest.param(lambda p: p.mkdir(), id="directory"),
        pytest.param(lambda p: p.write_text("name,email\nAda,ada@example.com\n"), id="not-sqlite"),
        pytest.param(_foreign_sqlite, id="foreign-sqlite"),
        pytest.param(_v1_store, id="pending-migrations"),
    ],
)
def test_anything_uncertain_is_left_to_the_store(tmp_path: Path, make) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "store.db"
    make(path)
    before = path.read_bytes() if path.is_file() else None
    assert fastread.connect(f"sqlite:///{path}") is None
    assert (path.read_bytes() if path.is_file() else None) == before
    assert path.exists() == (before is not None or path.is_dir())


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "postgresql://u@127.0.0.1:1/db"]
)
def test_other_urls_are_left_to_the_store(url: str) -> None:
    assert fastread.connect(url) is None


def test_sqlite_path() -> None:
    assert fastread.sqlite_path("sqlite:///a/b.db?timeout=5") == Path("a/b.db")
    assert fastread.sqlite_path("sqlite:////abs/b.db") == Path("/abs/b.db")
    assert fastread.sqlite_path("sqlite://") is None


# --------------------------------------------------------------------------- leads count


def _snapshot(path: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        rows: list[tuple[object, ...]] = []
        for (table,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ):
            rows.extend((table, *r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY 1"))
        return rows
    finally:
        conn.close()


def test_count_starts_without_sqlalchemy(project: Project) -> None:
    """On an up-to-date SQLite store, `leads count` imports neither SQLAlchemy nor SQLModel
    (issue 2: start-up under 0.3 s; the time itself is in bench/bench_startup.py)."""
    assert project.run("leads", "import", str(TESTS / "leads.csv")).exit_code == 0
    code = (
        "import sys\n"
        "from sponsorcast.cli import app\n"
        "try:\n"
        "    app(['leads', 'count', '--filter', 'intent_score_min=0'])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        "print(sorted(m for m in ('sqlalchemy', 'sqlmodel', 'sponsorcast.store.engine', 'sponsorcast.store.models')"
        " if m in sys.modules))\n"
    )
    env = {**os.environ, "SPONSORCAST_CONFIG": "", "SPONSORCAST_DB": "", "COLUMNS": "100"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=project.path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    full = project.run("leads", "count", "--filter", "intent_score_min=0").stdout
    assert out == full + "[]\n"
    assert full.startswith(f"{_count_with_sqlalchemy(project, 'intent_score_min=0')} leads (custom")


def _count_with_sqlalchemy(project: Project, flt: str) -> int:
    from sponsorcast.audience import audience_from_options, count_recipients

    store = project.store()
    try:
        with store.read() as conn:
            return int(
                conn.execute(
                    count_recipients("default", audience_from_options(None, [flt]))
                ).scalar_one()
            )
    finally:
        store.dispose()


def test_count_migrates_an_older_store(project: Project, tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _v1_store(path)
    r = project.run("--db", f"sqlite:///{path}", "leads", "count")
    assert (r.exit_code, r.stdout, r.stderr) == (0, "0 leads (all of sponsor 'default').\n", "")
    conn = fastread.connect(f"sqlite:///{path}")
    assert conn is not None  # migrated by that count, so the next one takes the quick read
    conn.close()


def test_count_of_unknown_sponsor_changes_nothing(project: Project) -> None:
    path = project.path / "sponsorcast.db"
    before = _snapshot(path)
    r = project.run("leads", "count", "--sponsor", "nobody")
    assert (r.exit_code, r.stdout) == (2, "")
    assert r.stderr == "Error: Unknown sponsor 'nobody' (known: default).\n"
    assert _snapshot(path) == before


def test_count_of_a_sponsor_only_in_the_config(project: Project) -> None:
    """A sponsor added to sponsorcast.toml is in the store by the first command that opens it."""
    toml = project.path / "sponsorcast.toml"
    toml.write_text(toml.read_text() + '\n[sponsors.acme]\nname = "Acme"\n', encoding="utf-8")
    r = project.run("leads", "count", "--sponsor", "acme", "--json")
    assert (r.exit_code, r.stdout) == (0, '{\n  "count": 0\n}\n')
    conn = fastread.connect(project.config.store_url)
    assert conn is not None and fastread.has_sponsor(conn, "acme")
    conn.close()
