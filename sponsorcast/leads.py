"""Leads: importing them from a source (a CSV file now, PostgreSQL later) and listing them.

The pieces, in the order an import runs them:

- A **source** (:class:`LeadSource`) yields raw rows: ``(row_number, {column: value})``. It only
  reads; it does not know about lead columns. :class:`CsvSource` is the CSV one; a PostgreSQL
  source (``sponsorcast/leads_postgres.py``) implements the same three members.
- A **column plan** (:func:`plan_columns`) maps the source's headers onto lead columns once:
  loose matching (case, spaces, dashes and underscores ignored; synonyms such as ``E-mail``,
  ``user_email``, ``Full Name``), then ``--map`` overrides. Every other column goes to ``fields``
  under its original header.
- **Normalisation** (:meth:`ColumnPlan.lead`) turns one raw row into a clean lead or a
  :class:`RowError` with the reason: email validated with email-validator and stored lower-cased,
  names split, tags split, intent level and score checked.
- **Upsert** (:func:`import_leads`): rows are merged by email within the file, looked up in
  the store a chunk at a time (one ``IN`` query per chunk) and written with ``executemany`` by
  a writer thread while the next chunk is read, all in one write transaction, so that the
  import is atomic and memory stays flat however long the file. On SQLite that transaction
  holds the store's write lock for the whole import (about 40 s for 1,000,000 rows); other
  writers wait for it (busy timeout 30 s).

Upsert rules (a careful user's expectation, spelled out):

- a non-empty value in the file replaces the stored one; an empty cell keeps what is stored
  (so re-importing a file without a ``Status`` column never resets ``contacted`` leads to
  ``new``); ``follow_up_status`` defaults to ``new`` for new leads only;
- tags are added to the stored ones (never removed); ``fields`` are merged key by key;
- ``source`` is set to the source's name on insert and whenever the lead changes; a lead whose
  values are all the same is ``unchanged`` and is not written at all;
- a ``sponsor_id`` (or ``sponsor``) column is allowed as a safety check: a row naming another
  sponsor is rejected, never re-assigned.
"""

from __future__ import annotations

import array
import codecs
import contextlib
import csv
import io
import json
import operator
import os
import queue
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from sponsorcast.audience import PERSON_COLUMNS
from sponsorcast.errors import BadInput, LeadsFileError
from sponsorcast.store.tables import lead_t

if TYPE_CHECKING:
    import sqlalchemy as sa

    from sponsorcast.audience import Audience
    from sponsorcast.store import Store

CHUNK_ROWS = 2_000
HEADER_MAX = 64 * 1024  # characters the header row may have
REJECTS_KEPT = 100  # rejects kept in ImportReport.rejects; every one goes to the rejects file
DELIMITERS = (",", ";", "\t")
INTENT_LEVELS = ("hot", "warm", "cold")
DEFAULT_STATUS = "new"

# Lead columns an imported column can map to (``sponsor_id`` is only checked, never stored).
TARGETS = (*PERSON_COLUMNS, "tags", "event", "consent", "sponsor_id")

# Normalised header (lower-case, no spaces, dashes or underscores) -> lead column.
SYNONYMS: dict[str, str] = {
    **dict.fromkeys(["email", "emailaddress", "useremail", "mail", "emailid"], "email"),
    **dict.fromkeys(["name", "fullname", "username", "contactname"], "name"),
    **dict.fromkeys(["firstname", "givenname", "forename", "userfirstname"], "first_name"),
    **dict.fromkeys(["lastname", "surname", "familyname", "userlastname"], "last_name"),
    **dict.fromkeys(
        ["company", "companyname", "organisation", "organization", "usercompany", "employer"],
        "company",
    ),
    **dict.fromkeys(["title", "jobtitle", "usertitle", "position", "role"], "title"),
    **dict.fromkeys(["intentlevel", "intent"], "intent_level"),
    **dict.fromkeys(["intentscore", "score", "leadscore"], "intent_score"),
    **dict.fromkeys(["followupstatus", "status", "followup"], "follow_up_status"),
    **dict.fromkeys(["tags", "tag", "labels", "label"], "tags"),
    **dict.fromkeys(["event", "eventid", "eventname"], "event"),
    **dict.fromkeys(["consent", "lawfulbasis", "optin"], "consent"),
    **dict.fromkeys(["sponsorid", "sponsor"], "sponsor_id"),
}

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
    "created_at",
    "updated_at",
)
SQLITE_CACHE_KB = 64 * 1024  # page cache while importing into SQLite (memory stays < 200 MB)

# Stable keys of ``leads list --json`` / ``--csv``.
LIST_COLUMNS = (
    "id",
    *PERSON_COLUMNS,
    "tags",
    "event",
    "fields",
    "source",
    "consent",
    "created_at",
    "updated_at",
)


# --------------------------------------------------------------------------- sources


class LeadSource(Protocol):
    """Where raw lead rows come from. Implement these three members to add a source.

    - ``name``: what ends up in ``lead.source`` and in messages (a file name, ``table x``).
    - ``headers()``: the column names, unique, in source order; raise ``LeadsFileError`` or
      ``SourceError`` when the source cannot be read.
    - ``rows()``: stream ``(row_number, {header: value})`` — the row number as the user counts
      it (for a CSV, the spreadsheet row: the header is row 1). Values may be ``str``, ``None``,
      ``int``/``float``/``bool``, or a ``list`` of strings (an array column, e.g. tags). A header
      missing from a row's dict means "no value". A row with more cells than headers carries the
      surplus as a list under the key ``None`` (as ``csv.DictReader`` does) and is rejected.

    Header mapping, normalisation, validation and writing happen in :func:`import_leads`, the
    same for every source. A source may also offer ``delimiter`` and ``rejects_encoding``
    attributes, used for the ``--rejects`` file.
    """

    name: str

    def headers(self) -> list[str]:
        """The column names, unique, in source order."""
        ...

    def rows(self) -> Iterator[tuple[int, dict[Any, Any]]]:
        """Stream ``(row_number, {header: value})``."""
        ...


_SCAN_BLOCK = 1 << 20


class CsvSource:
    """A CSV file: encoding detected (UTF-8 ± BOM, UTF-16 with BOM, else Windows-1252/Latin-1),
    delimiter sniffed among comma, semicolon and tab, read as a stream."""

    def __init__(self, path: Path | str, encoding: str | None = None) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self._requested = _check_encoding(encoding) if encoding else None
        self.encoding: str | None = None
        self.delimiter = ","
        self.rejects_encoding = "utf-8"
        self._headers: list[str] | None = None
        self._skip_first_line = False  # an Excel "sep=;" line

    def headers(self) -> list[str]:
        """The header row, made unique (blank → ``column N``, repeated → ``Name (2)``)."""
        if self._headers is None:
            self.encoding = self._requested or self._detect_encoding()
            self.rejects_encoding = (
                "utf-8-sig"
                if self.encoding not in ("utf-8", "utf-8-sig") or self._has_bom()
                else "utf-8"
            )
            with self._open() as fh:
                sample = fh.read(HEADER_MAX)
                longer = bool(fh.read(1))
            if longer and "\n" not in sample and "\r" not in sample:
                raise LeadsFileError(
                    f"the header row is longer than {HEADER_MAX:,} characters; nothing was imported.",
                    path=self.path,
                    hint="Is this a CSV file? A header row names the columns on one line.",
                )
            headers = self._parse_header(sample)
            if _undecodable(headers):
                raise self._decode_error("in the header row")
            self._headers = headers
        return list(self._headers)

    def rows(self) -> Iterator[tuple[int, dict[Any, Any]]]:
        """Stream the data rows; blank rows are skipped but still counted."""
        headers = self.headers()
        width = len(headers)
        unnamed = {h for h in headers if h.startswith("\x00")}
        with self._open() as fh:
            if self._skip_first_line:
                fh.readline()
            reader = csv.reader(fh, delimiter=self.delimiter)
            number = 1 + self._skip_first_line
            # a named encoding is read with surrogateescape, so that a wrong byte is found at
            # its exact row (a strict decoder fails a whole read-ahead block early)
            check = self._requested is not None
            try:
                next(reader, None)
                for cells in reader:
                    number += 1
                    if not any(cells):
                        continue
                    row: dict[Any, Any] = dict(zip(headers, cells, strict=False))
                    if len(cells) > width:
                        surplus = cells[width:]
                        if any(c.strip() for c in surplus):
                            row[None] = surplus
                    if unnamed:
                        for h in unnamed:
                            if not (row.get(h) or "").strip():
                                row.pop(h, None)
                    if check and _undecodable(cells):
                        raise self._decode_error(f"at row {number}")
                    yield number, row
            except csv.Error as exc:
                raise LeadsFileError(
                    f"row {number + 1} is not valid CSV ({exc}).", path=self.path
                ) from None
            except UnicodeDecodeError as exc:  # only when detected: the file changed meanwhile
                raise self._decode_error(f"near row {number + 1} ({exc.reason})") from None

    # -- helpers

    def _decode_error(self, where: str) -> LeadsFileError:
        shown = "utf-8" if self.encoding == "utf-8-sig" else self.encoding
        return LeadsFileError(
            f"cannot be decoded as {shown} {where}.",
            path=self.path,
            hint="Name the file's encoding with --encoding (e.g. cp1252, latin-1, utf-8), "
            "or leave it out to have it detected.",
        )

    def _open(self) -> TextIO:
        try:
            errors = "surrogateescape" if self._requested else "strict"
            return open(self.path, encoding=self.encoding, newline="", errors=errors)
        except OSError as exc:
            raise LeadsFileError(
                f"cannot be read ({exc.strerror or exc}).", path=self.path
            ) from None

    def _has_bom(self) -> bool:
        try:
            with open(self.path, "rb") as fh:
                return fh.read(3) == codecs.BOM_UTF8
        except OSError:
            return False

    def _detect_encoding(self) -> str:
        """UTF-8 if every byte decodes as UTF-8, else Windows-1252, else Latin-1."""
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 - closed by the with below, after the error mapping
        except OSError as exc:
            raise LeadsFileError(
                f"cannot be read ({exc.strerror or exc}).", path=self.path
            ) from None
        with fh:
            head = fh.read(4)
            if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
                return "utf-16"
            fh.seek(0)
            first = fh.read(8192)
            if b"\x00" in first:
                raise LeadsFileError(
                    "is not a CSV text file (it contains NUL bytes).",
                    path=self.path,
                    hint="Export the spreadsheet as CSV (UTF-8) and import that file.",
                )
            for candidate in ("utf-8", "cp1252"):
                fh.seek(0)
                decoder = codecs.getincrementaldecoder(candidate)()
                try:
                    while block := fh.read(_SCAN_BLOCK):
                        decoder.decode(block)
                    decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    if candidate == "utf-8":
                        self._refuse_mixed_encodings(fh)
                    continue
                return "utf-8-sig" if candidate == "utf-8" else candidate
            return "latin-1"

    def _refuse_mixed_encodings(self, fh: Any) -> None:
        """Refuse a file whose lines are partly UTF-8 and partly another encoding (two exports
        pasted together): decoding it as one would turn one part into mojibake."""
        fh.seek(0)
        utf8: list[int] = []
        other: list[int] = []
        for number, line in enumerate(fh, start=1):
            if line.isascii():
                continue
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                other.append(number)
            else:
                utf8.append(number)
        if utf8 and other:

            def listed(lines: list[int]) -> str:
                return ", ".join(map(str, lines[:5])) + (", …" if len(lines) > 5 else "")

            raise LeadsFileError(
                f"mixes UTF-8 (lines {listed(utf8)}) with another encoding (lines {listed(other)}); "
                "read as one encoding, the other lines would be garbled, so nothing was imported.",
                path=self.path,
                hint="Re-export the file in one encoding (CSV UTF-8), or name one with --encoding.",
            )

    def _parse_header(self, sample: str) -> list[str]:
        if sample.startswith("\ufeff"):
            sample = sample[1:]
        first_line = sample.split("\n", 1)[0].strip("\r")
        if re.fullmatch(r"sep=.", first_line, flags=re.IGNORECASE):
            self.delimiter = first_line[4]
            self._skip_first_line = True
            sample = sample.split("\n", 1)[1] if "\n" in sample else ""
        else:
            self.delimiter = _sniff_delimiter(sample)
        try:
            header = next(csv.reader(io.StringIO(sample), delimiter=self.delimiter), None)
        except csv.Error as exc:
            raise LeadsFileError(
                f"the header row is not valid CSV ({exc}).", path=self.path
            ) from None
        if not header or not any(h.strip() for h in header):
            raise LeadsFileError("is empty: no header row found.", path=self.path)
        return _unique_headers(header)


def _undecodable(cells: Sequence[str]) -> bool:
    """True when a cell holds a byte the encoding could not decode (an escaped surrogate)."""
    text = "".join(cells)
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check_encoding(encoding: str) -> str:
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise BadInput(f"Unknown encoding '{encoding}' (try utf-8, cp1252 or latin-1).") from None
    return "utf-8-sig" if name == "utf-8" else name


def _sniff_delimiter(sample: str) -> str:
    """The delimiter that splits the header into the most columns, consistently with the
    first data rows; comma when in doubt."""
    lines = sample.splitlines()
    if len(sample) >= 64 * 1024 and len(lines) > 1:
        lines = lines[:-1]  # the last line of a cut sample may be partial
    text = "\n".join(lines[:20])
    best, best_score = ",", (0, 0)
    for delim in DELIMITERS:
        try:
            records = [r for r in csv.reader(io.StringIO(text), delimiter=delim) if r]
        except csv.Error:
            continue
        if not records:
            continue
        width = len(records[0])
        consistent = sum(1 for r in records[1:] if len(r) == width)
        score = (width if width > 1 else 0, consistent)
        if score > best_score:
            best, best_score = delim, score
    return best


def _unique_headers(raw: Sequence[str]) -> list[str]:
    names = []
    for i, h in enumerate(raw, start=1):
        name = h.strip().lstrip("\ufeff").strip()
        # an unnamed column: kept only where a row has a value in it (see CsvSource.rows)
        names.append(name or f"\x00column {i}")
    return unique_names(names)


def unique_names(names: Sequence[str]) -> list[str]:
    """Column names made unique the way a spreadsheet user reads them: ``Email``, ``Email (2)``."""
    out: list[str] = []
    seen: set[str] = set()
    for name in names:
        base, k = name, 2
        while name in seen:
            name = f"{base} ({k})"
            k += 1
        seen.add(name)
        out.append(name)
    return out


def display_header(header: str) -> str:
    """A header as the user should see it (unnamed columns are ``column N``)."""
    return header.lstrip("\x00")


# --------------------------------------------------------------------------- column plan


def normalise_header(header: str) -> str:
    """Lower-case, trimmed, without spaces, dashes or underscores: ``E-mail`` → ``email``."""
    return re.sub(r"[\s\-_]+", "", header.strip().lower())


def target_for(name: str) -> str | None:
    """The lead column a header or ``--map`` target names, or None."""
    key = normalise_header(name)
    if key in SYNONYMS:
        return SYNONYMS[key]
    for target in TARGETS:
        if key == target.replace("_", ""):
            return target
    return None


def parse_mapping(items: Iterable[str]) -> dict[str, str]:
    """``["Work Email=email", …]`` (the ``--map`` options) → ``{"Work Email": "email"}``."""
    mapping: dict[str, str] = {}
    for item in items:
        column, sep, target = item.partition("=")
        if not sep or not column.strip() or not target.strip():
            raise BadInput(f"--map '{item}' must look like \"Column Name=email\".")
        mapping[column.strip()] = target.strip()
    return mapping


@dataclass(frozen=True)
class ColumnPlan:
    """Which source column feeds which lead column; the rest go to ``fields``."""

    columns: Mapping[str, str]  # lead column -> source header
    extras: tuple[str, ...]  # source headers kept in ``fields``
    source_name: str
    scalars: tuple[tuple[str, str], ...] = ()  # (lead column, header) of every column but tags
    extra_keys: tuple[tuple[str, str], ...] = ()  # (header, key in fields)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "scalars", tuple((t, h) for t, h in self.columns.items() if t != "tags")
        )
        object.__setattr__(self, "extra_keys", tuple((h, display_header(h)) for h in self.extras))

    def lead(
        self,
        number: int,
        raw: Mapping[Any, Any],
        sponsor_id: str | None = None,
        extra_tags: Sequence[str] = (),
    ) -> dict[str, Any]:
        """One raw row as a clean lead dict; raises RowError with the reason."""
        return _normalise(self, number, raw, sponsor_id, extra_tags)


def plan_columns(
    headers: Sequence[str],
    mapping: Mapping[str, str] | None,
    source_name: str,
    *,
    path: str | None = None,
) -> ColumnPlan:
    """Match headers to lead columns: ``--map`` first, then loosely by name and synonym."""
    where = path or source_name
    by_norm: dict[str, list[str]] = {}
    for h in headers:
        by_norm.setdefault(normalise_header(display_header(h)), []).append(h)
    columns: dict[str, str] = {}
    taken: set[str] = set()
    for column, target_name in (mapping or {}).items():
        target = target_for(target_name)
        if target is None:
            raise BadInput(
                f"--map '{column}={target_name}': '{target_name}' is not a lead column "
                f"(one of: {', '.join(TARGETS)}); unmapped columns are kept in fields."
            )
        if column in headers:
            header = column
        else:
            matches = by_norm.get(normalise_header(column), [])
            if len(matches) != 1:
                raise LeadsFileError(
                    f"--map '{column}={target_name}': no column '{column}' "
                    f"(headers found: {_header_list(headers)}).",
                    path=where,
                )
            header = matches[0]
        if target in columns and columns[target] != header:
            raise BadInput(
                f"--map names two columns for {target}: '{columns[target]}' and '{header}'."
            )
        columns[target] = header
        taken.add(header)
    loose: dict[str, list[str]] = {}
    for h in headers:
        if h in taken or h.startswith("\x00"):
            continue
        target = SYNONYMS.get(normalise_header(h))
        if target is not None and target not in columns:
            loose.setdefault(target, []).append(h)
    for target, found in loose.items():
        if len(found) > 1:
            raise LeadsFileError(
                f"the columns {' and '.join(repr(h) for h in found)} both look like {target}.",
                path=where,
                hint=f'Choose one with --map "{found[0]}={target}"; the other is then kept in fields.',
            )
        columns[target] = found[0]
        taken.add(found[0])
    if "email" not in columns:
        raise LeadsFileError(
            f"no email column (headers found: {_header_list(headers)}).",
            path=where,
            hint='Name it with --map, e.g. --map "Work Email=email".',
        )
    extras = tuple(h for h in headers if h not in taken)
    return ColumnPlan(columns=columns, extras=extras, source_name=source_name)


def _header_list(headers: Sequence[str]) -> str:
    shown = [display_header(h) for h in headers[:20]]
    more = f", … ({len(headers) - 20} more)" if len(headers) > 20 else ""
    return ", ".join(shown) + more if shown else "none"


# --------------------------------------------------------------------------- normalisation


class RowError(Exception):
    """One row cannot be imported; ``reason`` says why (without the row number)."""

    def __init__(self, number: int, reason: str) -> None:
        super().__init__(f"row {number}: {reason}")
        self.number = number
        self.reason = reason


_ATEXT = r"a-zA-Z0-9_!#$%&'*+\-/=?^`{|}~"
_ASCII_LOCAL = re.compile(rf"([{_ATEXT}]+(?:\.[{_ATEXT}]+)*)@(.+)\Z", re.DOTALL)
_DOMAIN_CACHE: dict[str, tuple[str, str] | None] = {}
_DOMAIN_CACHE_MAX = 50_000


def normalise_email(value: str) -> str:
    """A valid address, trimmed and lower-cased; ValueError with email-validator's reason.

    Fast path, exactly equivalent to email-validator's syntax check (no DNS): a plain ASCII
    dot-atom local part is valid as it is, so only the domain needs validating, and its
    result is cached per domain. Anything else (quotes, Unicode, display names, over-long
    addresses, bad domains) goes through ``validate_email`` in full.
    """
    email = value.strip()
    m = _ASCII_LOCAL.match(email)
    if m is not None:
        local, domain = m.group(1), m.group(2)
        try:
            cached = _DOMAIN_CACHE[domain]
        except KeyError:
            cached = _validate_domain(domain)
        if cached is not None:
            norm_domain, ascii_domain = cached
            # email-validator's length rules: 254 UTF-8 bytes, original and normalised forms
            original = len(email) if email.isascii() else len(email.encode())
            if (
                original <= 254
                and len(local) + 1 + len(norm_domain.encode()) <= 254
                and len(local) + 1 + len(ascii_domain) <= 254
            ):
                return f"{local}@{norm_domain}".lower()
    return _validate_full(email)


def _validate_domain(domain: str) -> tuple[str, str] | None:
    from email_validator import EmailNotValidError, validate_email

    try:
        v = validate_email(f"a@{domain}", check_deliverability=False)
        result: tuple[str, str] | None = (v.domain, v.ascii_domain)
    except EmailNotValidError:
        result = None
    if len(_DOMAIN_CACHE) >= _DOMAIN_CACHE_MAX:
        _DOMAIN_CACHE.clear()
    _DOMAIN_CACHE[domain] = result
    return result


def _validate_full(email: str) -> str:
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, (list, tuple)):
        return _text(", ".join(str(v) for v in value if v is not None))
    text = str(value).strip()
    return text or None


def split_tags(value: Any) -> list[str]:
    """Tags from one cell (``a;b`` or ``a,b``) or an array value; trimmed, empties dropped."""
    if value is None:
        return []
    if value.__class__ is str:  # one cell: the common case
        tags: list[str] = []
        for tag in value.replace(";", ",").split(","):
            tag = tag.strip()
            if tag and tag not in tags:
                tags.append(tag)
        return tags
    items = value if isinstance(value, (list, tuple)) else [value]
    tags = []
    for item in items:
        if item is None:
            continue
        for tag in _TAG_SEP.split(str(item)):
            tag = tag.strip()
            if tag and tag not in tags:
                tags.append(tag)
    return tags


_TAG_SEP = re.compile(r"[;,]")


def split_name(name: str) -> tuple[str | None, str | None]:
    """``Ada Lovelace`` → (Ada, Lovelace); ``Lovelace, Ada`` → (Ada, Lovelace); ``Linus`` → (Linus, None)."""
    if "," in name:
        last, _, first = name.partition(",")
        return (first.strip() or None, last.strip() or None)
    parts = name.split(None, 1)
    return (parts[0] if parts else None, parts[1] if len(parts) > 1 else None)


def _quote(value: Any) -> str:
    text = str(value)
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _normalise(
    plan: ColumnPlan,
    number: int,
    raw: Mapping[Any, Any],
    sponsor_id: str | None,
    extra_tags: Sequence[str],
) -> dict[str, Any]:
    if None in raw:
        surplus = [c for c in raw[None] if str(c).strip()]
        raise RowError(
            number,
            f"has {len(surplus)} more cell(s) than the header "
            f"({_quote(surplus[0])}…); is a delimiter inside an unquoted value?",
        )
    cols = plan.columns
    get = raw.get
    lead: dict[str, Any] = {}
    for target, header in plan.scalars:
        value = get(header)
        if value.__class__ is str:  # the common case, inlined: this runs for every cell
            value = value.strip()
            lead[target] = value if value else None
        else:
            lead[target] = _text(value)

    email = lead["email"]
    if email is None:
        raise RowError(number, "has no email address.")
    try:
        lead["email"] = normalise_email(email)
    except ValueError as exc:
        raise RowError(number, f"{_quote(email)} is not a valid email address ({exc})") from None

    if "sponsor_id" in lead:
        row_sponsor = lead.pop("sponsor_id")
        if row_sponsor is not None and sponsor_id is not None and row_sponsor != sponsor_id:
            raise RowError(
                number,
                f"belongs to sponsor {_quote(row_sponsor)}, not '{sponsor_id}' "
                f"(import it with --sponsor {row_sponsor}).",
            )

    level = lead.get("intent_level")
    if level is not None:
        level = level.lower()
        if level not in INTENT_LEVELS:
            raise RowError(
                number,
                f"intent level {_quote(lead['intent_level'])} must be hot, warm, cold or empty.",
            )
        lead["intent_level"] = level

    score = lead.get("intent_score")
    if score is not None:
        lead["intent_score"] = _score(number, score, get(cols["intent_score"]))

    status = lead.get("follow_up_status")
    if status is not None:
        lead["follow_up_status"] = status.lower()

    name, first, last = lead.get("name"), lead.get("first_name"), lead.get("last_name")
    if name is not None and first is None and last is None:
        lead["first_name"], lead["last_name"] = split_name(name)
    elif name is None and (first is not None or last is not None):
        lead["name"] = " ".join(p for p in (first, last) if p)

    tag_cell = get(cols["tags"]) if "tags" in cols else None
    tags = split_tags(tag_cell) if tag_cell else []
    for tag in extra_tags:
        if tag not in tags:
            tags.append(tag)
    lead["tags"] = tags

    fields: dict[str, Any] = {}
    for header, key in plan.extra_keys:
        if header in raw:
            value = raw[header]
            if value.__class__ is str:
                value = value.strip()
            fields[key] = "" if value is None else value
    lead["fields"] = fields
    return lead


def _score(number: int, text: str, raw: Any) -> int:
    if text.isascii() and text.isdigit() and len(text) <= 3 and raw.__class__ is not bool:
        value = int(text)
        if value <= 100:
            return value
    if isinstance(raw, bool):
        raise RowError(number, f"intent score {_quote(text)} must be a whole number from 0 to 100.")
    try:
        if isinstance(raw, int):
            value = raw
        else:
            as_float = float(text.replace(",", ".")) if not text.isdigit() else float(text)
            if not as_float.is_integer():
                raise ValueError
            value = int(as_float)
    except (ValueError, OverflowError):
        raise RowError(
            number, f"intent score {_quote(text)} must be a whole number from 0 to 100."
        ) from None
    if not 0 <= value <= 100:
        raise RowError(number, f"intent score {_quote(text)} must be a whole number from 0 to 100.")
    return value


def merge_rows(first: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """Two rows of one file for the same email: the later row's non-empty values win, tags
    and fields are united."""
    merged = dict(first)
    for key, value in later.items():
        if key == "tags":
            merged["tags"] = first["tags"] + [t for t in value if t not in first["tags"]]
        elif key == "fields":
            f = dict(first["fields"])
            for k, v in value.items():
                if v != "" or k not in f:
                    f[k] = v
            merged["fields"] = f
        elif value is not None:
            merged[key] = value
    return merged


# --------------------------------------------------------------------------- import


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
    rows: int = 0  # data rows read (blank rows not counted)
    rejects: list[tuple[int, str]] = field(default_factory=list)  # the first REJECTS_KEPT
    dry_run: bool = False
    rejects_path: str | None = None

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
            "rejects": [{"row": r, "reason": reason} for r, reason in self.rejects],
            "rejects_file": self.rejects_path,
        }


class _Rollback(Exception):
    """Raised inside the write transaction to undo it (dry run, or bad rows)."""


def import_leads(
    store: Store,
    source: LeadSource,
    *,
    sponsor_id: str = "default",
    mapping: Mapping[str, str] | None = None,
    extra_tags: Sequence[str] = (),
    dry_run: bool = False,
    rejects_path: Path | str | None = None,
    raw_rejects: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Upsert a source's leads for a sponsor, atomically; see the module docstring for rules.

    Without ``rejects_path`` any bad row raises LeadsFileError (row number and reason, plus how
    many other rows are bad) and nothing is written. With it, bad rows go to that CSV file
    (original columns plus ``reason``; formula-like cells neutralised unless ``raw_rejects``)
    and the rest is imported. ``dry_run`` runs everything
    in a transaction that is rolled back, so the numbers are exactly those of a real run.
    ``progress`` is called after each chunk with the number of rows read so far.
    """
    from sponsorcast.store import get_sponsor

    get_sponsor(store, sponsor_id)
    source_path = getattr(source, "path", None)
    if (
        rejects_path
        and source_path is not None
        and Path(rejects_path).resolve() == Path(source_path).resolve()
    ):
        raise BadInput(f"--rejects {rejects_path} is the file being imported; name another file.")
    headers = source.headers()
    path = str(getattr(source, "path", source.name))
    plan = plan_columns(headers, mapping, source.name, path=path)
    tags = split_tags(list(extra_tags))
    report = ImportReport(
        source=source.name,
        sponsor_id=sponsor_id,
        dry_run=dry_run,
        rejects_path=str(rejects_path) if rejects_path else None,
    )
    rejects = _RejectsFile(rejects_path, headers, source, raw=raw_rejects) if rejects_path else None
    bad_rows: list[int] = []  # the first few, for the message
    bad_count = 0
    try:
        try:
            with store.write() as conn, _Upserter(conn, sponsor_id, source.name, report) as upsert:
                for number, raw in source.rows():
                    report.rows += 1
                    try:
                        lead = plan.lead(number, raw, sponsor_id, tags)
                    except RowError as exc:
                        report.rejected += 1
                        if len(report.rejects) < REJECTS_KEPT:
                            report.rejects.append((number, exc.reason))
                        if rejects is not None:
                            rejects.write(raw, exc.reason)
                        else:
                            bad_count += 1
                            if len(bad_rows) < 6:
                                bad_rows.append(number)
                        continue
                    if not bad_count:
                        upsert.add(number, lead)
                        if progress is not None and report.rows % CHUNK_ROWS == 0:
                            progress(report.rows)
                if bad_count:
                    raise _Rollback
                upsert.finish()
                if progress is not None:
                    progress(report.rows)
                if dry_run:
                    raise _Rollback
        except _Rollback:
            pass
    except BaseException:
        if rejects is not None:
            rejects.discard()
        raise
    if rejects is not None:
        rejects.commit()
    if bad_count:
        first_row, reason = report.rejects[0]
        others = bad_count - 1
        more = ""
        if others:
            listed = ", ".join(str(n) for n in bad_rows[1:]) + (", …" if others > 5 else "")
            more = f" ({others} more bad row{'s' if others > 1 else ''}: {listed})"
        raise LeadsFileError(
            f"row {first_row}: {reason}{more}; nothing was imported.",
            path=path,
            hint="Fix the file, or import with --rejects FILE to import the valid rows and "
            "write the bad ones to FILE.",
        )
    return report


class _RejectsFile:
    """The ``--rejects`` CSV, written to a temp file and moved into place when the import ends."""

    def __init__(
        self, path: Path | str, headers: Sequence[str], source: LeadSource, *, raw: bool = False
    ) -> None:
        from sponsorcast.spreadsheet import safe_cell

        self.safe: Callable[[Any], Any] = (lambda value: value) if raw else safe_cell
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp")
        self.headers = list(headers)
        try:
            self.fh = open(  # noqa: SIM115 - lives until commit() or discard()
                self.tmp, "w", encoding=getattr(source, "rejects_encoding", "utf-8"), newline=""
            )
        except OSError as exc:
            raise BadInput(
                f"Cannot write the rejects file {self.path} ({exc.strerror or exc})."
            ) from None
        self.writer = csv.writer(
            self.fh, delimiter=getattr(source, "delimiter", ","), lineterminator="\r\n"
        )
        self.writer.writerow([self.safe(display_header(h)) for h in self.headers] + ["reason"])

    def write(self, raw: Mapping[Any, Any], reason: str) -> None:
        cells = ["" if raw.get(h) is None else _cell(raw.get(h)) for h in self.headers]
        # surplus cells of a too-long row go after the reason, so that the columns stay aligned
        row = [*cells, reason, *(_cell(c) for c in raw.get(None) or [])]
        self.writer.writerow([self.safe(c) for c in row])

    def commit(self) -> None:
        self.fh.close()
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        self.fh.close()
        self.tmp.unlink(missing_ok=True)


def _cell(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    return str(value)


_DONE = object()  # tells the writer thread that no more chunks come


class _Upserter:
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
        import sqlalchemy as sa

        from sponsorcast.store.models import utcnow

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
            .values({c: sa.bindparam(c) for c in (*_COMPARED, "source", "updated_at")})
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

    def __enter__(self) -> _Upserter:
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
        import sqlalchemy as sa

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
                    {"_id": lead_id, **merged, "source": self.source, "updated_at": self.now}
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
        import sqlalchemy as sa

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
    from sponsorcast.audience import tags_to_list, tags_to_text

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


# --------------------------------------------------------------------------- CSV for render --check


RECIPIENT_KEYS = (
    "id",
    "sponsor_id",
    "email",
    "name",
    "first_name",
    "last_name",
    "company",
    "title",
    "intent_level",
    "intent_score",
    "follow_up_status",
    "tags",
    "event",
    "fields",
)


def read_csv_recipients(
    path: Path | str, *, encoding: str | None = None, mapping: Mapping[str, str] | None = None
) -> Iterator[dict[str, Any]]:
    """Stream a leads CSV as recipient dicts (the shape of ``audience.recipient``), one per
    row, without touching the store; a bad row raises LeadsFileError naming the row."""
    source = CsvSource(path, encoding=encoding)
    plan = plan_columns(source.headers(), mapping, source.name, path=str(path))
    for number, raw in source.rows():
        try:
            lead = plan.lead(number, raw)
        except RowError as exc:
            raise LeadsFileError(f"row {number}: {exc.reason}", path=str(path)) from None
        yield {
            "id": None,
            "sponsor_id": None,
            **{k: lead.get(k) for k in RECIPIENT_KEYS[2:]},
            "follow_up_status": lead.get("follow_up_status") or DEFAULT_STATUS,
        }


# --------------------------------------------------------------------------- listing


def list_leads(
    store: Store, sponsor_id: str, audience: Audience, limit: int | None = None
) -> Iterator[dict[str, Any]]:
    """Stream the audience's leads (LIST_COLUMNS, tags as a list, fields a dict), by id."""
    from sponsorcast.audience import iter_recipients, select_recipients
    from sponsorcast.store import get_sponsor

    get_sponsor(store, sponsor_id)
    query = select_recipients(sponsor_id, audience, columns=LIST_COLUMNS)
    if limit is not None:
        query = query.limit(limit)
    with store.read() as conn:
        for row in iter_recipients(conn, query):
            yield {k: row[k] for k in LIST_COLUMNS}
