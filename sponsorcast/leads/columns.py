"""The column plan: a source's headers mapped onto lead columns once, loosely.

Case, spaces, dashes and underscores are ignored, synonyms such as ``E-mail``,
``user_email`` or ``Full Name`` are known, then ``--map`` overrides. Every other column goes
to ``fields`` under its original header."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sponsorcast.audience import PERSON_COLUMNS
from sponsorcast.errors import BadInput, LeadsFileError
from sponsorcast.leads.normalise import normalise_row
from sponsorcast.leads.sources import display_header

if TYPE_CHECKING:
    pass

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
    return ColumnPlan(columns=columns, extras=extras, source_name=source_name)


def _header_list(headers: Sequence[str]) -> str:
    shown = [display_header(h) for h in headers[:20]]
    more = f", … ({len(headers) - 20} more)" if len(headers) > 20 else ""
    return ", ".join(shown) + more if shown else "none"
