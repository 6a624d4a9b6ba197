"""Writing clean leads: merged by email, looked up a chunk at a time, written by a thread.

Rows are merged by email within the file, looked up in the store a chunk at a time (one
``IN`` query per chunk) and written with ``executemany`` by a writer thread while the next
chunk is read, all in one write transaction: the import is atomic and memory stays flat.
A non-empty value replaces the stored one; an empty cell keeps it; tags are added, never
removed; ``fields`` are merged key by key; an unchanged lead is not written."""

from __future__ import annotations

import array
import contextlib
import json
import operator
import queue
import re
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sponsorcast.audience import PERSON_COLUMNS
from sponsorcast.store.tables import lead_t

if TYPE_CHECKING:
    import sqlalchemy as sa

import sqlalchemy as sa

from sponsorcast.audience import tags_to_list, tags_to_text
from sponsorcast.leads.normalise import DEFAULT_STATUS, merge_rows
from sponsorcast.leads.report import ImportReport
from sponsorcast.store.models import utcnow

CHUNK_ROWS = 2_000


# What a lead says about the person besides its email (the key of an upsert).
_PERSON = PERSON_COLUMNS[1:]


# Columns compared to decide updated / unchanged, in the order they are written.
_COMPARED = (*_PERSON, "tags", "event", "consent", "fields")


_SCALARS = (*_PERSON, "event", "consent")


# Columns an import inserts.
_INSERTED = (
    "id",
    "sponsor_id",
    "email",
    *_SCALARS,
    "tags",
    "fields",
    "source",
    "source_row",
    "created_at",
    "updated_at",
)


SQLITE_CACHE_KB = 64 * 1024  # page cache while importing into SQLite (memory stays < 200 MB)


_DONE = object()  # tells the writer thread that no more chunks come


class Upserter:
    """Collects clean leads, merges repeats, and writes them a chunk at a time.

    Chunks are written by one writer thread while the caller's thread reads and validates the
    next chunk: the database driver releases the GIL while SQLite (or PostgreSQL) works, so on
    two cores the two overlap. At most two chunks are in memory (one queued, one being
    built). The writer is the only thread that touches the connection until ``finish`` or
    ``__exit__`` has joined it, before the transaction ends.

    On SQLite the writes go through a type-less view of the lead table with values already
    converted by the columns' own bind processors (constants once per import, ``fields`` per
    row): the same SQL and stored values, without SQLAlchemy's per-row, per-column processing,
    which cost as much as SQLite's own work. Other dialects use the typed table.
    """

    def __init__(
        self, conn: sa.Connection, sponsor_id: str, source: str, report: ImportReport
    ) -> None:

        self.conn = conn
        self.sponsor_id = sponsor_id
        self.report = report
        self.pending: dict[str, dict[str, Any]] = {}
        t = lead_t
        self.table = t
        self.lookup_cols = [t.c.id, t.c.email, *(t.c[c] for c in _COMPARED)]
        dialect = conn.dialect
        self.raw = dialect.name == "sqlite"
        target: Any = sa.table(t.name, *(sa.column(c) for c in _INSERTED)) if self.raw else t

        def processor(column: str) -> Callable[[Any], Any] | None:
            return (
                t.c[column].type.dialect_impl(dialect).bind_processor(dialect) if self.raw else None
            )

        def prepared(column: str, value: Any) -> Any:
            proc = processor(column)
            return proc(value) if proc is not None else value

        fields_proc = processor("fields")
        self.fields_value: Callable[[Any], Any] = (
            fields_proc if fields_proc is not None else (lambda v: v)
        )
        if fields_proc is not None and all(fields_proc(d) == fields_json(d) for d in _JSON_PROBES):
            self.fields_value = fields_json  # the column serialises as json.dumps does
        now = utcnow()
        self.now = prepared("updated_at", now)
        self.source = prepared("source", source)
        self.sponsor_value = prepared("sponsor_id", sponsor_id)
        self.insert_stmt = target.insert().values(
            {c: sa.bindparam(c) for c in _INSERTED if c != "id"}
        )
        self.update_stmt = (
            target.update()
            .where(target.c.id == sa.bindparam("_id"))
            .values(
                {c: sa.bindparam(c) for c in (*_COMPARED, "source", "source_row", "updated_at")}
            )
        )
        if self.raw:
            # compiled once; rows go to the driver's executemany as tuples in bind order
            ins, upd = (
                self.insert_stmt.compile(dialect=dialect),
                self.update_stmt.compile(dialect=dialect),
            )
            self.insert_sql = (ins.string, operator.itemgetter(*(ins.positiontup or ())))
            self.update_sql = (upd.string, operator.itemgetter(*(upd.positiontup or ())))
        # Leads that existed before this import, by id: 0 = not yet seen in this file,
        # _UNCHANGED = seen and counted unchanged, else counted updated and this is a 31-bit
        # digest of the values it had before the import — so that a repeat of its email in a
        # later chunk can move it between updated and unchanged (a re-import of the same file
        # reports "unchanged" even when the file holds an email twice). 4 bytes per lead id,
        # whatever the file size; ids above max_before were inserted by this import (we hold
        # the write lock).
        if dialect.name == "postgresql":
            # SQLite's write lock serialises imports; PostgreSQL needs its own for max_before
            conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(hashtext('sponsorcast-leads-import'))")
            )
        self.max_before = conn.execute(sa.select(sa.func.max(t.c.id))).scalar() or 0
        self.seen = array.array("i", bytes(4 * (self.max_before + 1)))
        self.lookup_sql: dict[int, str] = {}
        self.prebuild = True  # build insert rows in the reading thread (set by the writer)
        self.cache_size: int | None = None
        if self.raw:
            # a bigger page cache for this transaction: the email index takes random inserts
            self.cache_size = int(conn.exec_driver_sql("PRAGMA cache_size").scalar() or -2000)
            conn.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_CACHE_KB}")

    def __enter__(self) -> Upserter:
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.merged_later = 0  # counted by the writer thread; report.merged by the caller's
        self.writer = threading.Thread(
            target=self._write_loop, name="sponsorcast-import-writer", daemon=True
        )
        self.writer.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        """Stop the writer (it finishes the chunk in hand) and restore the page cache."""
        try:
            self._stop()
        except BaseException:
            if exc_type is None:
                raise  # otherwise the caller's own exception is the one to report
        if self.cache_size is not None:
            with contextlib.suppress(Exception):
                self.conn.exec_driver_sql(f"PRAGMA cache_size = {self.cache_size}")

    def add(self, number: int, lead: dict[str, Any]) -> None:
        """Queue one clean lead; a repeat of an email in this chunk is merged at once."""
        email = lead["email"]
        lead["source_row"] = number
        earlier = self.pending.get(email)
        if earlier is not None:
            self.pending[email] = merge_rows(earlier, lead)
            self.report.merged += 1
            return
        self.pending[email] = lead
        if len(self.pending) >= CHUNK_ROWS:
            self._hand_off()

    def finish(self) -> None:
        """Write what is pending, wait for the writer, and raise what it raised."""
        if self.pending:
            self._hand_off()
        self._stop()
        self.report.merged += self.merged_later
        self.merged_later = 0

    def _hand_off(self) -> None:
        if self.error is not None:
            raise self.error
        # insert rows are built here, in the reading thread, which has time to spare while
        # the writer waits on the database; the writer uses those of leads that are new
        # — unless the last chunk was mostly leads already stored (a re-import)
        insert_row = self._insert_row
        rows = (
            {email: insert_row(lead) for email, lead in self.pending.items()}
            if self.prebuild
            else {}
        )
        self.queue.put((self.pending, rows))
        self.pending = {}

    def _stop(self) -> None:
        if self.writer.is_alive():
            self.queue.put(_DONE)
            self.writer.join()
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def _write_loop(self) -> None:
        while (item := self.queue.get()) is not _DONE:
            if self.error is None:
                try:
                    self._write(*item)
                except BaseException as exc:
                    self.error = exc

    def _write(self, chunk: dict[str, dict[str, Any]], insert_rows: dict[str, Any]) -> None:

        t = self.table
        found: dict[str, tuple[int, dict[str, Any]]] = {}
        if self.raw:
            # same query through the driver: SQLAlchemy's per-row result processing was a
            # quarter of a re-import's time; the only column needing conversion is fields
            emails = list(chunk)
            sql = self.lookup_sql.get(len(emails))
            if sql is None:
                sql = self.lookup_sql[len(emails)] = self._lookup_sql(len(emails))
            loads = json.loads
            for row in self.conn.exec_driver_sql(sql, (self.sponsor_value, *emails)):
                stored = dict(zip(_COMPARED, row[2:], strict=False))
                if stored["fields"] is not None:
                    stored["fields"] = loads(stored["fields"])
                found[row[1]] = (row[0], stored)
        else:
            query = sa.select(*self.lookup_cols).where(
                t.c.sponsor_id == self.sponsor_id, t.c.email.in_(list(chunk))
            )
            for row in self.conn.execute(query):
                found[row.email] = (row.id, {c: getattr(row, c) for c in _COMPARED})
        inserts: list[Any] = []
        updates: list[dict[str, Any]] = []
        report = self.report
        fields_value = self.fields_value
        for email, lead in chunk.items():
            hit = found.get(email)
            if hit is None:
                row_values = insert_rows.get(email)
                if row_values is None:
                    row_values = self._insert_row(lead)
                inserts.append(row_values)
                report.inserted += 1
                continue
            lead_id, stored = hit
            merged = _merge_into_stored(stored, lead)
            changed = merged != stored
            if lead_id > self.max_before:
                self.merged_later += 1  # inserted by an earlier chunk of this file
            else:
                state = self.seen[lead_id]
                if state == 0:  # first time in this file
                    if changed:
                        report.updated += 1
                        self.seen[lead_id] = _digest(stored)
                    else:
                        report.unchanged += 1
                        self.seen[lead_id] = _UNCHANGED
                else:  # the same email again, in a later chunk of this file
                    self.merged_later += 1
                    if state == _UNCHANGED and changed:
                        report.unchanged -= 1
                        report.updated += 1
                        self.seen[lead_id] = _digest(stored)
                    elif state != _UNCHANGED and changed and _digest(merged) == state:
                        report.updated -= 1  # back to what it was before the import
                        report.unchanged += 1
                        self.seen[lead_id] = _UNCHANGED
            if changed:
                merged["fields"] = fields_value(merged["fields"])
                updates.append(
                    {
                        "_id": lead_id,
                        **merged,
                        "source": self.source,
                        "source_row": lead["source_row"],
                        "updated_at": self.now,
                    }
                )
        self.prebuild = len(inserts) * 2 >= len(chunk)
        if self.raw:
            if inserts:
                self.conn.exec_driver_sql(self.insert_sql[0], inserts)
            if updates:
                sql, in_bind_order = self.update_sql
                self.conn.exec_driver_sql(sql, [in_bind_order(r) for r in updates])
        else:
            if inserts:
                self.conn.execute(self.insert_stmt, inserts)
            if updates:
                self.conn.execute(self.update_stmt, updates)

    def _insert_row(self, lead: dict[str, Any]) -> Any:
        """The insert parameters of a new lead: a tuple in bind order on SQLite, else a dict."""
        values = self._insert_values(lead)
        return self.insert_sql[1](values) if self.raw else values

    def _lookup_sql(self, n: int) -> str:

        t = self.table
        query = sa.select(*self.lookup_cols).where(
            t.c.sponsor_id == sa.bindparam("s"),
            t.c.email.in_([sa.bindparam(f"e{i}") for i in range(n)]),
        )
        compiled = query.compile(dialect=self.conn.dialect)
        assert list(compiled.positiontup or ()) == ["s", *(f"e{i}" for i in range(n))]
        return compiled.string

    def _insert_values(self, lead: dict[str, Any]) -> dict[str, Any]:
        tags = lead["tags"]
        return {
            "sponsor_id": self.sponsor_value,
            "email": lead["email"],
            "name": lead.get("name"),
            "first_name": lead.get("first_name"),
            "last_name": lead.get("last_name"),
            "company": lead.get("company"),
            "title": lead.get("title"),
            "intent_level": lead.get("intent_level"),
            "intent_score": lead.get("intent_score"),
            "follow_up_status": lead.get("follow_up_status") or DEFAULT_STATUS,
            "tags": "," + ",".join(tags) + "," if tags else "",  # tags_to_text; already unique
            "event": lead.get("event"),
            "consent": lead.get("consent"),
            "fields": self.fields_value(lead["fields"]),
            "source": self.source,
            "source_row": lead["source_row"],
            "created_at": self.now,
            "updated_at": self.now,
        }


_UNCHANGED = 1


_JSON_SAFE = re.compile(r"[ !#-\[\]-~]*\Z").match  # printable ASCII but " and \


_JSON_PROBES: tuple[dict[str, Any], ...] = (
    {},
    {"Booth": "B1", "Notes": ""},
    {"a": 1, "é": '"x"\n'},
)


def fields_json(fields: Mapping[str, Any]) -> str:
    """``json.dumps(fields)``, byte for byte, with a fast path for plain text values
    (the usual CSV case), which json.dumps takes ~2 µs for."""
    parts = []
    for key, value in fields.items():
        if (
            value.__class__ is not str
            or key.__class__ is not str
            or not _JSON_SAFE(key)
            or not _JSON_SAFE(value)
        ):
            return json.dumps(fields)
        parts.append(f'"{key}": "{value}"')
    return "{" + ", ".join(parts) + "}"


def _digest(values: Mapping[str, Any]) -> int:
    """A 31-bit digest of a lead's compared values, never 0 or _UNCHANGED."""
    return (hash(repr([values[c] for c in _COMPARED])) & 0x3FFFFFFF) | 0x40000000


def _merge_into_stored(stored: Mapping[str, Any], lead: Mapping[str, Any]) -> dict[str, Any]:
    """The stored lead's compared columns after applying one file row (see module rules)."""

    merged = dict(stored)
    for c in _SCALARS:
        value = lead.get(c)
        if value is not None:
            merged[c] = value
    if lead["tags"]:
        old = tags_to_list(stored["tags"])
        merged["tags"] = tags_to_text(old + [t for t in lead["tags"] if t not in old])
    if lead["fields"]:
        f = dict(stored["fields"] or {})
        for k, v in lead["fields"].items():
            if v != "" or k not in f:
                f[k] = v
        merged["fields"] = f
    return merged
