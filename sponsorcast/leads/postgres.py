"""Leads straight from a PostgreSQL database: a table (``--table``) or a query (``--query``).

:class:`PostgresSource` is a :class:`sponsorcast.leads.LeadSource`: it only reads rows; the
column plan, validation, upsert, ``--dry-run``, ``--rejects`` and atomicity are the CSV
import's (:func:`sponsorcast.leads.import_leads`). The event platform's ``sponsor_leads``
columns (``user_email``, ``user_name``, ``user_company``, ``user_title``, ``intent_level``,
``intent_score``, ``follow_up_status``, ``tags``, ``sponsor_id``, ``event_id``) match lead
columns by the same loose header rules; every other column goes to ``fields``.

Reading happens in one read-only, repeatable-read transaction through a server-side (named)
cursor fetched ``FETCH_ROWS`` at a time, so a table of millions of rows streams in flat
memory and the import sees one consistent snapshot. The source never writes. Values become
JSON-safe (dates and times as ISO strings, ``numeric`` as int or float, arrays as lists,
``json``/``jsonb`` as they are, anything else as text) so that extra columns fit ``fields``.
Rows are numbered from 1 in the order read; a table with a primary key is read in key order,
so "row N" means the same row on every run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from sponsorcast.errors import BadInput, SourceError
from sponsorcast.leads.sources import unique_names

if TYPE_CHECKING:
    import psycopg

FETCH_ROWS = 5_000
CONNECT_TIMEOUT = 10  # seconds
CURSOR_NAME = "sponsorcast_leads"

# Result types whose Python values are already what an import wants (str, int, bool).
_PLAIN_TYPES = frozenset(
    {"text", "varchar", "bpchar", "char", "name", "citext", "int2", "int4", "int8", "bool", "oid"}
)  # and arrays of them: lists of those
_JSON_TYPES = frozenset({"json", "jsonb"})  # psycopg gives what json.loads gives
_TIME_TYPES = frozenset({"date", "timestamp", "timestamptz", "time", "timetz"})


class PostgresSource:
    """Rows of a PostgreSQL table or query, streamed through a server-side cursor."""

    def __init__(self, url: str, *, table: str | None = None, query: str | None = None) -> None:
        if (table is None) == (query is None):
            raise BadInput(
                'A PostgreSQL source needs exactly one of --table NAME and --query "SELECT …".'
            )
        self.url = url.replace("postgresql+psycopg://", "postgresql://", 1)
        self.shown_url = redact_url(url)
        _check_url(self.url, self.shown_url)
        self.table = table
        self.query = _strip_query(query) if query is not None else None
        if self.query == "":
            raise BadInput("--query is empty; give a SELECT statement.")
        self.name = f"table {table}" if table is not None else "query"
        self._headers: list[str] | None = None

    # -- LeadSource

    def headers(self) -> list[str]:
        """The result's column names (made unique), read without fetching any row."""
        if self._headers is None:
            with self._connect() as conn:
                statement = self._statement(conn)
                with conn.cursor(name=CURSOR_NAME) as cur:
                    self._execute(cur, statement)
                    names = [d.name for d in cur.description or []]
            self._headers = unique_names(names)
        return list(self._headers)

    def rows(self) -> Iterator[tuple[int, dict[Any, Any]]]:
        """Stream ``(row_number, {column: JSON-safe value})``, FETCH_ROWS at a time."""

        headers = self.headers()
        with self._connect() as conn:
            statement = self._statement(conn)
            with conn.cursor(name=CURSOR_NAME) as cur:
                self._execute(cur, statement)
                if len(cur.description or []) != len(headers):
                    raise SourceError(
                        f"The columns of {self.name} changed during the import; run it again."
                    )
                converters = [(headers[i], i, f) for i, f in _converters(conn, cur)]
                number = 0
                try:
                    # fetchmany: one list per round trip, iterated without psycopg's per-row generator
                    while records := cur.fetchmany(FETCH_ROWS):
                        for record in records:
                            number += 1
                            row = dict(zip(headers, record, strict=False))
                            for header, index, convert in converters:
                                value = record[index]
                                if value is not None:
                                    row[header] = convert(value)
                            yield number, row
                except psycopg.Error as exc:
                    raise SourceError(
                        f"Reading {self.name} failed after row {number}: {_reason(exc, self.url)}."
                    ) from None

    # -- helpers

    def _connect(self) -> psycopg.Connection[Any]:

        try:
            conn = psycopg.connect(
                self.url, connect_timeout=CONNECT_TIMEOUT, client_encoding="utf8"
            )
        except psycopg.OperationalError as exc:
            raise SourceError(
                f"Cannot connect to the leads database {self.shown_url}: {_reason(exc, self.url)}.",
                hint="Check the URL (postgresql://USER@HOST:PORT/DATABASE) and that the server is running.",
            ) from None
        except psycopg.Error as exc:
            raise SourceError(
                f"The leads source {self.shown_url} is not a valid PostgreSQL URL ({_reason(exc, self.url)}).",
                hint="Use postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE.",
            ) from None
        # one consistent snapshot, and a guarantee that importing never writes to the platform
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        return conn

    def _statement(self, conn: psycopg.Connection[Any]) -> psycopg.sql.SQL | psycopg.sql.Composed:

        if self.query is not None:
            return sql.SQL(self.query)  # the user's own SQL, by design
        assert self.table is not None
        ident = self._resolve_table(conn, self.table)
        key = [
            r[0]
            for r in conn.execute(
                "SELECT a.attname FROM pg_index i"
                " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
                " WHERE i.indrelid = %s::regclass AND i.indisprimary"
                " ORDER BY array_position(i.indkey::int2[], a.attnum)",
                (ident.as_string(conn),),
            )
        ]
        statement = sql.SQL("SELECT * FROM {}").format(ident)
        if key:
            statement = sql.SQL("{} ORDER BY {}").format(
                statement, sql.SQL(", ").join(sql.Identifier(k) for k in key)
            )
        return statement

    def _resolve_table(self, conn: psycopg.Connection[Any], spec: str) -> psycopg.sql.Identifier:
        """The table as a safely quoted identifier; unquoted names also tried lower-cased, as
        PostgreSQL folds them. A missing table is a SourceError naming it."""

        parts = parse_table_name(spec)
        candidates = [[p for p, _ in parts]]
        folded = [p if quoted else p.lower() for p, quoted in parts]
        if folded != candidates[0]:
            candidates.append(folded)
        for names in candidates:
            ident = sql.Identifier(*names)
            found = conn.execute("SELECT to_regclass(%s)", (ident.as_string(conn),)).fetchone()
            if found is not None and found[0] is not None:
                return ident
        dbname = conn.info.dbname
        raise SourceError(
            f"Table '{spec}' does not exist in database '{dbname}' at {self.shown_url}.",
            hint="Check the name (use schema.table when it is not in the search path), or use --query.",
        )

    def _execute(
        self, cur: psycopg.ServerCursor[Any], statement: psycopg.sql.SQL | psycopg.sql.Composed
    ) -> None:

        try:
            cur.execute(statement)
        except psycopg.Error as exc:
            what = "The query" if self.query is not None else f"Reading {self.name}"
            raise SourceError(f"{what} failed: {_reason(exc, self.url)}.") from None


def _check_url(url: str, shown: str) -> None:
    """Refuse, before connecting, a URL libpq cannot parse or whose port is not a number."""

    hint = "Use postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE."
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error as exc:
        raise SourceError(
            f"The leads source {shown} is not a valid PostgreSQL URL ({_reason(exc, url)}).",
            hint=hint,
        ) from None
    ports = str(params.get("port") or "")
    if ports and not all(p.isdigit() and 0 < int(p) < 65536 for p in ports.split(",")):
        raise SourceError(
            f"The leads source {shown} is not a valid PostgreSQL URL (bad port).", hint=hint
        )


def parse_table_name(spec: str) -> list[tuple[str, bool]]:
    """``schema.table`` (either part may be "double quoted") → [(part, was_quoted), …]."""
    parts: list[tuple[str, bool]] = []
    i, n = 0, len(spec)
    while True:
        if i < n and spec[i] == '"':
            j, buf = i + 1, []
            while True:
                if j >= n:
                    raise BadInput(f"--table {spec!r}: unbalanced double quote.")
                if spec[j] == '"':
                    if j + 1 < n and spec[j + 1] == '"':
                        buf.append('"')
                        j += 2
                        continue
                    break
                buf.append(spec[j])
                j += 1
            parts.append(("".join(buf), True))
            i = j + 1
        else:
            j = spec.find(".", i)
            j = n if j < 0 else j
            parts.append((spec[i:j].strip(), False))
            i = j
        if i >= n:
            break
        if spec[i] != ".":
            raise BadInput(f"--table {spec!r}: expected '.' between schema and table.")
        i += 1
    if not 1 <= len(parts) <= 2 or any(not p for p, _ in parts):
        raise BadInput(f"--table {spec!r} must be TABLE or SCHEMA.TABLE.")
    return parts


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (in the user part and the query string)."""
    url = re.sub(r"(://[^:/@?#]*):[^@/?#]*@", r"\1:***@", url)
    return re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", url)


def _password(url: str) -> str | None:
    m = re.search(r"://[^:/@?#]*:([^@/?#]*)@", url) or re.search(r"(?i)[?&]password=([^&#]*)", url)
    return m.group(1) if m and m.group(1) else None


def _reason(exc: BaseException, url: str) -> str:
    """psycopg's message as one line, without noise, and never with the password in it."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    text = " ".join((lines[0] if lines else type(exc).__name__).split()).rstrip(".")
    for prefix in ("connection failed: ", "connection is bad: "):
        text = text.removeprefix(prefix)
    text = text.replace("FATAL: ", "")
    secret = _password(url)
    return text.replace(secret, "***") if secret else text


def _strip_query(query: str) -> str:
    return query.strip().rstrip(";").strip()


def _converters(
    conn: psycopg.Connection[Any], cur: psycopg.ServerCursor[Any]
) -> list[tuple[int, Callable[[Any], Any]]]:
    """For each column whose values are not already JSON-safe: its index and converter
    (chosen once per column from its type, so the per-row work stays small)."""
    out: list[tuple[int, Callable[[Any], Any]]] = []
    for index, column in enumerate(cur.description or []):
        info = conn.adapters.types.get(column.type_code)
        if info is None:
            out.append((index, jsonable))
            continue
        is_array = info.array_oid == column.type_code
        if info.name in _PLAIN_TYPES or (info.name in _JSON_TYPES and not is_array):
            continue
        if not is_array and info.name in _TIME_TYPES:
            out.append((index, _isoformat))
        elif not is_array and info.name == "numeric":
            out.append((index, _number))
        else:
            out.append((index, jsonable))
    return out


def _isoformat(value: Any) -> Any:
    return value.isoformat() if isinstance(value, (datetime, date, time)) else str(value)


def _number(value: Any) -> Any:
    return jsonable(value) if not isinstance(value, Decimal) else _decimal(value)


def _decimal(value: Decimal) -> Any:
    if not value.is_finite():
        return str(value)
    return int(value) if value == value.to_integral_value() else float(value)


def jsonable(value: Any) -> Any:
    """A value from PostgreSQL as something JSON can hold (for ``fields``)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    if isinstance(value, (UUID, timedelta)):
        return str(value)
    return str(value)
