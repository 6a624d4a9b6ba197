"""The store: opening, refusing foreign files, sponsors from config."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from sponsorcast.config import SponsorConfig
from sponsorcast.errors import StoreError
from sponsorcast.store import Store, open_store
from sponsorcast.store.models import Sponsor
from tests.support.project import Project


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sqlite_store_is_wal_with_busy_timeout(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    with store.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_text_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes\n")
    before = _digest(path)
    with pytest.raises(StoreError, match="not a sponsorcast database"):
        open_store(f"sqlite:///{path}")
    assert _digest(path) == before


def test_foreign_sqlite_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO photos (name) VALUES ('cat.jpg')")
    conn.commit()
    conn.close()
    before = _digest(path)
    with pytest.raises(StoreError, match="not a sponsorcast one"):
        open_store(f"sqlite:///{path}")
    assert _digest(path) == before
    assert not (tmp_path / "other.db-wal").exists()


def test_cli_refuses_foreign_store_with_exit_2(project: Project) -> None:
    (project.path / "photos.db").write_bytes(b"\x89PNG not a database")
    result = project.run("--db", "sqlite:///photos.db", "sponsors", "list")
    assert result.exit_code == 2
    assert "photos.db is not a sponsorcast database" in result.stderr
    assert (project.path / "photos.db").read_bytes() == b"\x89PNG not a database"


def test_config_sponsors_are_applied_and_file_wins(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = open_store(
        url, sponsors=(SponsorConfig(id="acme", name="Acme", from_address="A <a@acme.test>"),)
    )
    with store.session() as s:
        names = {sp.id: sp.name for sp in s.scalars(sa.select(Sponsor))}
    assert names == {"default": "Default sponsor", "acme": "Acme"}
    store = open_store(url, sponsors=(SponsorConfig(id="acme", name="Acme Corp"),))
    with store.session() as s:
        acme = s.get(Sponsor, "acme")
        assert acme is not None
        assert (acme.name, acme.from_address) == ("Acme Corp", "A <a@acme.test>")


def test_sponsors_cli_add_list_show(project: Project) -> None:
    r = project.run(
        "sponsors",
        "add",
        "acme",
        "--name",
        "Acme",
        "--from",
        "Acme <hi@acme.test>",
        "--postal-address",
        "2 Road, Town",
    )
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "Added sponsor 'acme'.\n"
    r = project.run("sponsors", "show", "acme", "--json")
    assert r.exit_code == 0
    import json

    assert json.loads(r.stdout) == {
        "id": "acme",
        "name": "Acme",
        "from": "Acme <hi@acme.test>",
        "reply_to": None,
        "postal_address": "2 Road, Town",
        "messaging_enabled": True,
        "accent_color": None,
        "logo_url": None,
        "unsubscribe_mailto": None,
        "layout": None,
        "leads": 0,
        "campaigns": 0,
    }
    r = project.run("sponsors", "list", "--json")
    assert [s["id"] for s in json.loads(r.stdout)] == ["acme", "default"]


def test_sponsors_add_rejects_bad_from(project: Project) -> None:
    r = project.run("sponsors", "add", "acme", "--name", "Acme", "--from", "not an address")
    assert r.exit_code == 2
    assert "--from 'not an address' cannot be a sender address: it is not an address" in r.stderr
    r = project.run("sponsors", "list", "--json")
    assert "acme" not in r.stdout


def test_unknown_sponsor_exit_2(project: Project) -> None:
    r = project.run("sponsors", "show", "ghost")
    assert r.exit_code == 2
    assert r.stderr.strip() == "Error: Unknown sponsor 'ghost' (known: default)."


def test_reopening_never_opens_the_file_outside_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # closing a plain handle on the file would drop the POSIX locks of this process's live
    # SQLite connections (and let another process delete the WAL under them)
    url = f"sqlite:///{tmp_path / 's.db'}"
    first = open_store(url)
    with first.read() as conn:
        conn.exec_driver_sql("SELECT 1")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the store file was opened with open()")

    monkeypatch.setattr(Path, "open", refuse)
    monkeypatch.setattr("builtins.open", refuse)
    second = open_store(url)
    with second.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM sponsor").scalar() == 1


def test_a_store_locked_too_long_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sponsorcast.store.engine as store_module
    from sponsorcast.errors import StoreBusy

    url = f"sqlite:///{tmp_path / 's.db'}"
    open_store(url).dispose()
    holder = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's long import
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 200)
    store = open_store(url, migrate=False)
    try:
        with (
            pytest.raises(StoreBusy, match="stayed locked by another process"),
            store.write() as conn,
        ):
            conn.exec_driver_sql("DELETE FROM sponsor")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with store.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM sponsor").scalar() == 1


def test_writers_of_one_process_queue_and_none_waits_for_ever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from sponsorcast.errors import StoreBusy
    from sponsorcast.store import engine

    store = open_store(f"sqlite:///{tmp_path / 'q.db'}")
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.write() as conn:
            conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
            holding.set()
            release.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait()
    monkeypatch.setattr(engine, "WRITE_QUEUE_TIMEOUT", 0.2)
    # its turn never comes: told, not left waiting
    with pytest.raises(StoreBusy) as busy, store.write():
        pass
    assert str(busy.value.message).startswith(f"The store sqlite:///{tmp_path / 'q.db'} stayed")
    monkeypatch.setattr(engine, "WRITE_QUEUE_TIMEOUT", 30.0)
    waiter = threading.Thread(target=lambda: _insert(store))
    waiter.start()  # queues behind the holder, then writes
    release.set()
    holder.join()
    waiter.join(timeout=10)
    with store.read() as conn:
        assert conn.execute(sa.text("SELECT x FROM t")).scalars().all() == [7]
    store.dispose()


def _insert(store: Store) -> None:
    with store.write() as conn:
        conn.execute(sa.text("INSERT INTO t VALUES (7)"))
