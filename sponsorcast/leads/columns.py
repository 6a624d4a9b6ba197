"""The column plan: a source's headers mapped onto lead columns once, loosely.

Case, accents, spaces, dashes, dots and underscores are ignored; synonyms such as ``E-mail``,
``user_email`` or ``Full Name`` are known, in English, German, French, Spanish, Italian, Dutch
and Portuguese (``Vorname``, ``Prénom``, ``Correo electrónico``); then ``--map`` overrides.
Every other column goes to ``fields`` under its original header. The plan also says what a
person should know before trusting the import: no name column, or a column that looks like
a field another column was chosen for."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sponsorcast.audience import PERSON_COLUMNS
from sponsorcast.errors import BadInput, LeadsFileError
from sponsorcast.leads.normalise import normalise_row
from sponsorcast.leads.sources import display_header

# Lead columns an imported column can map to (``sponsor_id`` is only checked, never stored).
TARGETS = (*PERSON_COLUMNS, "tags", "event", "consent", "sponsor_id")


# Normalised headers (lower-case, accents folded, no spaces, dashes, dots or underscores) per
# lead column: English, then German, French, Spanish, Italian, Dutch and Portuguese.
_KNOWN_HEADERS = {
    "email": """email emailaddress useremail mail emailid emailadresse mailadresse adresseemail
        courriel adressecourriel adressemail correo correoelectronico indirizzoemail posta
        postaelettronica emailadres enderecodeemail enderecoemail""",
    "name": """name fullname username contactname vollername nomcomplet nombrecompleto
        nomecompleto volledigenaam naam""",
    "first_name": """firstname givenname forename userfirstname vorname prenom nombre nome
        voornaam primeironome""",
    "last_name": """lastname surname familyname userlastname nachname familienname nom
        nomdefamille apellido apellidos cognome achternaam sobrenome ultimonome""",
    "company": """company companyname organisation organization usercompany employer firma
        unternehmen firmenname societe entreprise empresa compania organizacion azienda societa
        bedrijf organizacao""",
    "title": """title jobtitle usertitle position role berufsbezeichnung funktion poste fonction
        cargo puesto ruolo functie""",
    "intent_level": "intentlevel intent",
    "intent_score": "intentscore score leadscore punktzahl",
    "follow_up_status": "followupstatus status followup",
    "tags": "tags tag labels label schlagworte etiquettes etiquetas",
    "event": "event eventid eventname veranstaltung evenement",
    "consent": "consent lawfulbasis optin einwilligung",
    "sponsor_id": "sponsorid sponsor",
}

# Normalised header -> lead column.
SYNONYMS: dict[str, str] = {
    header: target for target, words in _KNOWN_HEADERS.items() for header in words.split()
}


NAME_COLUMNS = ("name", "first_name", "last_name")


def normalise_header(header: str) -> str:
    """Lower-case, accents folded, no spaces, dashes, dots or underscores: ``E-Mail`` → ``email``."""
    key = header.strip().lower()
    if not key.isascii():
        key = "".join(c for c in unicodedata.normalize("NFKD", key) if not unicodedata.combining(c))
    return re.sub(r"[\s\-_.]+", "", key)


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
    warnings: tuple[str, ...] = ()  # what the person should check before trusting the import
    headers: tuple[str, ...] = ()  # every source header, in source order
    scalars: tuple[tuple[str, str], ...] = ()  # (lead column, header) of every column but tags
    extra_keys: tuple[tuple[str, str], ...] = ()  # (header, key in fields)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "scalars", tuple((t, h) for t, h in self.columns.items() if t != "tags")
        )
        object.__setattr__(self, "extra_keys", tuple((h, display_header(h)) for h in self.extras))

    def mapping(self) -> list[tuple[str, str]]:
        """``(header, destination)`` for every column in source order; extras go to ``fields.X``."""
        to = {h: t for t, h in self.columns.items()} | {
            h: f"fields.{k}" for h, k in self.extra_keys
        }
        return [(display_header(h), to[h]) for h in self.headers if h in to]

    def lead(
        self,
        number: int,
        raw: Mapping[Any, Any],
        sponsor_id: str | None = None,
        extra_tags: Sequence[str] = (),
    ) -> dict[str, Any]:
        """One raw row as a clean lead dict; raises RowError with the reason."""
        return normalise_row(self, number, raw, sponsor_id, extra_tags)


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
    return ColumnPlan(
        columns=columns,
        extras=extras,
        source_name=source_name,
        warnings=tuple(_warnings(columns, extras)),
        headers=tuple(headers),
    )


def _warnings(columns: Mapping[str, str], extras: Sequence[str]) -> Iterator[str]:
    if not any(c in columns for c in NAME_COLUMNS):
        yield (
            "no name column was found, so every email greets its reader with the fallback "
            '("Hi there"); name one with --map "Column=name" (or first_name, last_name).'
        )
    for header in extras:
        if header.startswith("\x00"):
            continue
        target = SYNONYMS.get(normalise_header(header)) or target_for(header)
        if target is not None and target in columns:
            yield (
                f"column '{header}' also looks like {target}, but '{display_header(columns[target])}' "
                f"was chosen for it; '{header}' is kept in fields.{header}."
            )


def _header_list(headers: Sequence[str]) -> str:
    shown = [display_header(h) for h in headers[:20]]
    more = f", … ({len(headers) - 20} more)" if len(headers) > 20 else ""
    return ", ".join(shown) + more if shown else "none"
