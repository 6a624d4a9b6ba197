"""Opening the store (SQLite or PostgreSQL), migrating it, and its transactions.

SQLite runs in WAL mode with a busy timeout; ``Store.write()`` starts ``BEGIN IMMEDIATE`` so
that a write transaction takes the lock at its start and concurrent writers queue instead of
failing half-way. On PostgreSQL the same calls are ordinary transactions.

A SQLite store on a read-only file system (a mounted backup, a read-only volume) is opened
read-only: every read works, and ``write()`` raises ``StoreReadOnly`` before it starts. A full
disk (SQLite's "database or disk is full", PostgreSQL's ``53100``) is ``StoreFull``: the
transaction was rolled back, and everything committed before it is kept.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from sponsorcast.config import Config, SponsorConfig
from sponsorcast.errors import NotFound, StoreBusy, StoreError, StoreFull, StoreReadOnly
from sponsorcast.store.fastread import BUSY_TIMEOUT_MS, MIGRATIONS_TABLE, sqlite_path
from sponsorcast.store.migrations import MigrationState, migration_state, run_migrations
from sponsorcast.store.models import Sponsor, utcnow
from sponsorcast.store.tables import sponsor_t
from sponsorcast.wording import count

PG_CONNECT_TIMEOUT = 10  # seconds
WRITE_QUEUE_TIMEOUT = BUSY_TIMEOUT_MS / 1000  # longest wait for this process's write turn
DEFAULT_SPONSOR = "default"


@dataclass
class Store:
    """An open store: an engine plus the transactions sponsorcast uses."""

    url: str
    engine: sa.Engine
    read_only: bool = False  # a SQLite file on a read-only file system
    committed: int = 0  # write transactions this Store committed (what a later error keeps)
    # SQLite writers of this process queue here: SQLite's own busy handler sleeps in steps of
    # up to 100 ms, which a sender's rate slot (in the same store) cannot afford to wait
    _writers: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def is_sqlite(self) -> bool:
        """True for a SQLite store."""
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A read transaction (deferred on SQLite: it never blocks writers in WAL mode)."""
        try:
            with self.engine.connect() as conn, conn.begin():
                yield conn
        except sa.exc.OperationalError as exc:
            raise self._full(exc) or exc from None

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """A write transaction: committed at the end of the block, rolled back on error."""
        if self.read_only:
            raise StoreReadOnly(
                f"The store {redact_url(self.url)} is on a read-only file system; this command "
                "needs to write to it, so nothing was done.",
                hint="Read-only commands (stats, deliveries, leads list/count, campaigns) work "
                "there; copy the store to a writable place for the rest.",
            )
        try:
            with self._queue(), self.engine.connect() as conn:
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin():
                    yield conn
        except sa.exc.OperationalError as exc:
            if "database is locked" in str(exc.orig):
                raise self._busy() from None
            raise self._full(exc) or exc from None
        self.committed += 1

    def _busy(self) -> StoreBusy:
        kept = (
            "nothing was changed by this command"
            if not self.committed
            else "what this command had recorded before is kept; run it again to go on"
        )
        return StoreBusy(
            f"The store {redact_url(self.url)} stayed locked by another process for "
            f"{BUSY_TIMEOUT_MS // 1000} s; {kept}.",
            hint="A large 'leads import' holds the lock until it ends: run this again afterwards.",
        )

    @contextmanager
    def _queue(self) -> Iterator[None]:
        """Hold this process's SQLite write turn (nothing on PostgreSQL: its locks wake at once).
        It waits as long as SQLite's own busy timeout would, never for ever."""
        if not self.is_sqlite:
            yield
            return
        if not self._writers.acquire(timeout=WRITE_QUEUE_TIMEOUT):
            raise self._busy()
        try:
            yield
        finally:
            self._writers.release()

    def _full(self, exc: sa.exc.DBAPIError) -> StoreFull | None:
        orig = exc.orig
        full = "database or disk is full" in str(orig) or getattr(orig, "sqlstate", None) == "53100"
        if not full:
            return None
        return StoreFull(
            f"The disk holding the store {redact_url(self.url)} is full; the last change was rolled "
            "back and everything recorded before it is kept.",
            hint="Free some space and run the command again.",
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """An ORM session for small reads and writes (bulk paths use Core)."""
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def migration_state(self) -> MigrationState:
        """Which migrations are applied and which are pending."""
        with self.read() as conn:
            return migration_state(conn)

    def upgrade(self) -> list[str]:
        """Apply pending migrations; returns the names applied now."""
        # the common case, an up-to-date store, costs one read and takes no write lock
        if not self.migration_state().pending:
            return []
        return run_migrations(self.write)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


_ENGINES: weakref.WeakSet[sa.Engine] = weakref.WeakSet()  # every store opened, for close_all


def close_all() -> None:
    """Close the pooled connections of every store this process opened (before a quick exit)."""
    for engine in list(_ENGINES):
        engine.dispose()


def open_store(
    url: str,
    *,
    migrate: bool = True,
    sponsors: tuple[SponsorConfig, ...] = (),
    create: bool = True,
) -> Store:
    """Open (creating if allowed) and migrate the store at ``url``, then apply config sponsors."""
    read_only = False
    if url.startswith("sqlite"):
        engine, read_only = _sqlite_engine(url, create=create)
    elif url.startswith("postgresql"):
        engine = _postgres_engine(url)
    else:
        raise StoreError(f"Store URL {url!r} is neither sqlite:/// nor postgresql://.")
    store = Store(url=url, engine=engine, read_only=read_only)
    _ENGINES.add(engine)
    if read_only:
        pending = store.migration_state().pending
        if pending:
            raise StoreReadOnly(
                f"The store {redact_url(url)} is on a read-only file system and was written by an "
                f"older sponsorcast ({count(len(pending), 'migration')} pending); it cannot be read as it is.",
                hint="Copy it to a writable place and open it there once.",
            )
        return store  # the config's sponsors are not written; reads show the store as it is
    if migrate:
        try:
            store.upgrade()
        except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
            # ProgrammingError: on PostgreSQL, e.g. no CREATE permission on the schema
            raise StoreError(
                f"Cannot open the store {_redact(url)}: {_scrub(_first_line(exc), parsed_password(url))}."
            ) from None
        apply_sponsors(store, sponsors)
    return store


def open_from_config(config: Config, *, migrate: bool = True) -> Store:
    """Open the store a config names, with its sponsors applied."""
    return open_store(config.store_url, migrate=migrate, sponsors=config.sponsors)


def _sqlite_engine(url: str, *, create: bool) -> tuple[sa.Engine, bool]:
    path = sqlite_path(url)
    read_only = False
    if path is not None:
        read_only = _on_read_only_fs(path)
        _refuse_foreign_sqlite(path, create=create and not read_only, read_only=read_only)
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
    if read_only and path is not None:
        # immutable: nothing can change the file, so SQLite takes no locks and needs no -shm
        engine = sa.create_engine(
            f"sqlite:///{_ro_uri(path)}&uri=true", connect_args={"timeout": BUSY_TIMEOUT_MS / 1000}
        )
    else:
        engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # let us issue BEGIN ourselves (pysqlite's own transaction handling defers it wrongly)
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not read_only:
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine, read_only


def _on_read_only_fs(path: Path) -> bool:
    """True when the store file (or the folder it would be made in) cannot be written at all."""
    folder = path.parent if path.parent.exists() else None
    if path.exists():
        return not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK)
    return folder is not None and not os.access(folder, os.W_OK)


def _ro_uri(path: Path) -> str:
    return f"{path.resolve().as_uri()}?mode=ro&immutable=1"


def _refuse_foreign_sqlite(path: Path, *, create: bool, read_only: bool = False) -> None:
    """Refuse, without touching it, a file that is not a sponsorcast database."""
    if not path.exists():
        if read_only:
            raise StoreError(f"The store {path} does not exist, and its folder is read-only.")
        if not create:
            raise StoreError(f"The store {path} does not exist.", hint="Run 'sponsorcast init'.")
        return
    if path.is_dir():
        raise StoreError(f"The store path {path} is a directory, not a database file.")
    if path.stat().st_size == 0:
        return
    # Only SQLite itself may open the file: closing a plain file handle would drop this
    # process's POSIX locks on it, which live SQLite connections here depend on (another
    # process could then delete the WAL under them).
    try:
        uri = _ro_uri(path) if read_only else f"{path.resolve().as_uri()}?mode=ro"
        ro = sqlite3.connect(uri, uri=True)
        try:
            names = {
                r[0] for r in ro.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
        finally:
            ro.close()
    except sqlite3.DatabaseError:
        raise StoreError(
            f"{path} is not a sponsorcast database (not an SQLite file); it was left untouched."
        ) from None
    if names and MIGRATIONS_TABLE not in names:
        raise StoreError(
            f"{path} is an SQLite database but not a sponsorcast one; it was left untouched."
        )


def _postgres_engine(url: str) -> sa.Engine:
    """An engine on psycopg 3, checked by connecting once; failures become one StoreError."""
    shown = _redact(url)
    driver_url = url
    if url.startswith("postgresql://"):
        driver_url = "postgresql+psycopg://" + url[len("postgresql://") :]
    try:
        parsed = sa.engine.make_url(driver_url)
        _ = parsed.port  # a non-numeric port fails here, not half-way through connecting
        engine = sa.create_engine(
            parsed,
            pool_pre_ping=True,
            # a database created as SQL_ASCII would hand back bytes; fail fast on a dead host
            connect_args={"connect_timeout": PG_CONNECT_TIMEOUT, "client_encoding": "utf8"},
        )
    except (sa.exc.ArgumentError, ValueError):
        raise StoreError(
            f"The store URL {shown} is not a valid PostgreSQL URL.",
            hint="Use postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE.",
        ) from None
    try:
        with engine.connect():
            pass
    except sa.exc.DBAPIError as exc:
        engine.dispose()
        reason = _scrub(_pg_reason(exc), parsed_password(url))
        raise StoreError(
            f"Cannot connect to the PostgreSQL store {shown}: {reason}.",
            hint="Check [store] url (or SPONSORCAST_DB / --db) and that the server is running.",
        ) from None
    return engine


def parsed_password(url: str) -> str | None:
    """The password in a URL, if any (so that it can be scrubbed from messages)."""
    try:
        password = sa.engine.make_url(url).password
    except (sa.exc.ArgumentError, ValueError):
        return None
    return str(password) if password else None


def _pg_reason(exc: BaseException) -> str:
    """psycopg's message as one line, without its 'connection failed:' and 'FATAL:' noise."""
    text = " ".join(_first_line(exc).split())
    for prefix in ("connection failed: ", "connection is bad: "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text.replace("FATAL: ", "")


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def _redact(url: str) -> str:
    """Hide a password in a URL before printing it."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        # unparsable (e.g. a non-numeric port): still never show what looks like a password
        return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", exc) or exc).strip()
    return text.splitlines()[0].rstrip(".") if text else type(exc).__name__


def apply_sponsors(store: Store, sponsors: tuple[SponsorConfig, ...]) -> None:
    """Make sure ``default`` exists and the config's sponsor fields are in the store."""
    table = sponsor_t
    with store.read() as conn:
        existing = {r.id: r for r in conn.execute(sa.select(table))}
    writes: list[tuple[str, dict[str, Any]]] = []
    if DEFAULT_SPONSOR not in existing and all(s.id != DEFAULT_SPONSOR for s in sponsors):
        writes.append((DEFAULT_SPONSOR, {"name": "Default sponsor"}))
    for sc in sponsors:
        values: dict[str, Any] = {
            k: v
            for k, v in {
                "name": sc.name,
                "from_address": sc.from_address,
                "reply_to": sc.reply_to,
                "postal_address": sc.postal_address,
                "messaging_enabled": sc.messaging_enabled,
                "accent_color": sc.accent_color,
                "logo_url": sc.logo_url,
                "unsubscribe_mailto": sc.unsubscribe_mailto,
                "layout": sc.layout,
            }.items()
            if v is not None
        }
        # the caps are the config's alone: one taken out of the file is taken off the sponsor
        values.update(daily_cap=sc.daily_cap, warmup=sc.warmup, frequency_cap=sc.frequency_cap)
        row = existing.get(sc.id)
        if row is None or any(getattr(row, k) != v for k, v in values.items()):
            writes.append((sc.id, values))
    if not writes:
        return
    now = utcnow()
    with store.write() as conn:
        if not store.is_sqlite:
            # hosts opening one fresh PostgreSQL store at once would both insert `default`;
            # SQLite's BEGIN IMMEDIATE already serializes this check-then-insert
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7411002)"))
        for sid, values in writes:
            found = conn.execute(sa.select(table.c.id).where(table.c.id == sid)).first()
            if found is None:
                conn.execute(
                    table.insert().values(
                        id=sid,
                        name=values.get("name", sid),
                        from_address=values.get("from_address"),
                        reply_to=values.get("reply_to"),
                        postal_address=values.get("postal_address"),
                        messaging_enabled=values.get("messaging_enabled", True),
                        accent_color=values.get("accent_color"),
                        logo_url=values.get("logo_url"),
                        unsubscribe_mailto=values.get("unsubscribe_mailto"),
                        layout=values.get("layout"),
                        daily_cap=values.get("daily_cap"),
                        warmup=values.get("warmup"),
                        frequency_cap=values.get("frequency_cap"),
                        created_at=now,
                        updated_at=now,
                    )
                )
            else:
                conn.execute(
                    table.update().where(table.c.id == sid).values(**values, updated_at=now)
                )


def get_sponsor(store: Store, sponsor_id: str) -> Sponsor:
    """The sponsor with this id, or NotFound naming the known ones."""
    # a Core read: the ORM's first query configures every mapper, 15 ms of a send's start
    with store.read() as conn:
        row = conn.execute(sa.select(sponsor_t).where(sponsor_t.c.id == sponsor_id)).first()
        if row is None:
            ids = conn.execute(sa.select(sponsor_t.c.id).order_by(sponsor_t.c.id)).scalars()
            known = ", ".join(ids) or "none"
            raise NotFound(f"Unknown sponsor '{sponsor_id}' (known: {known}).")
    return Sponsor(**row._asdict())


def redact_url(url: str) -> str:
    """A store URL fit to print: any password replaced by ***."""
    return _redact(url)
