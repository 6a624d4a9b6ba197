"""Lead sources: what yields raw rows ``(row_number, {column: value})``; the CSV one.

A source only reads; it does not know about lead columns. CSV files are read as
spreadsheets write them: UTF-8 with or without BOM, else Windows-1252/Latin-1 (detected),
comma, semicolon or tab (sniffed), CRLF, quoted cells."""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from sponsorcast.errors import BadInput, LeadsFileError
from sponsorcast.wording import count

if TYPE_CHECKING:
    pass


HEADER_MAX = 64 * 1024  # characters the header row may have

# Key of a raw row that a source found broken; its value is the reason (see LeadSource).
ROW_PROBLEM = "\x00problem"


DELIMITERS = (",", ";", "\t")


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
      A row the source knows is broken carries the reason under ``ROW_PROBLEM``.

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
                line = reader.line_num
                for cells in reader:
                    number += 1
                    first_line, line = line + 1, reader.line_num
                    if not any(cells):
                        continue
                    row: dict[Any, Any] = dict(zip(headers, cells, strict=False))
                    if line > first_line and width > 1:
                        problem = _swallowed_rows(headers, cells, self.delimiter, first_line)
                        if problem:
                            row[ROW_PROBLEM] = problem
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


def _swallowed_rows(
    headers: Sequence[str], cells: Sequence[str], delimiter: str, first_line: int
) -> str | None:
    """The reason a multi-line record is an unclosed quote, or None for a real multi-line cell.

    A quoted cell may hold line breaks (an address, a note); one whose later lines look like
    whole rows of this file (as many delimiters as the header) is a quote left open."""
    for header, cell in zip(headers, cells, strict=False):
        if "\n" not in cell and "\r" not in cell:
            continue
        lines = cell.splitlines()[1:]
        rowlike = sum(1 for text in lines if text.count(delimiter) >= len(headers) - 1)
        if rowlike:
            last = first_line + len(lines)
            return (
                f"has an unclosed quote in its '{display_header(header)}' cell, which swallowed "
                f"{count(len(lines), 'more line')} of the file (lines {first_line + 1}–{last}), "
                f"{rowlike} of them like rows; add the closing quote."
            )
    return None


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
