"""Audiences (SPEC §2): which of a sponsor's leads a campaign goes to, as SQL over the store.

``audience_filter`` builds a WHERE clause; nothing here loops over leads in Python.
``recipient`` turns one selected lead row into the mapping that rendering takes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from sponsorcast.errors import BadInput
from sponsorcast.leads import PERSON_COLUMNS
from sponsorcast.models import Lead

AUDIENCE_TYPES = ("all", "hot", "warm", "cold", "new", "contacted", "custom")
FILTER_KEYS = (
    "intent_level",
    "follow_up_status",
    "intent_score_min",
    "intent_score_max",
    "tags",
    "tags_any",
    "event",
)
INTENT_LEVELS = ("hot", "warm", "cold")

lead_table: sa.Table = Lead.__table__  # type: ignore[attr-defined]

# The columns rendering and sending need, in a fixed order.
RECIPIENT_COLUMNS = ("id", "sponsor_id", *PERSON_COLUMNS, "tags", "event", "fields")


@dataclass(frozen=True)
class Audience:
    """A validated audience: a type and, for ``custom``, its filter."""

    type: str = "all"
    filter: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The audience as stored in ``campaign.audience``."""
        return {"type": self.type, "filter": dict(self.filter)} if self.filter else {"type": self.type}


def parse_audience(raw: Any) -> Audience:
    """Validate an audience from a campaign file or the command line (a type name or a mapping).

    Raises BadInput with a sentence naming the wrong key or value; callers add file and line.
    """
    if raw is None:
        return Audience()
    if isinstance(raw, str):
        raw = {"type": raw}
    if not isinstance(raw, Mapping):
        raise BadInput("audience must be a type name or a mapping with 'type' and 'filter'.")
    unknown = set(raw) - {"type", "filter"}
    if unknown:
        raise BadInput(f"unknown audience key '{sorted(unknown)[0]}' (known: type, filter).")
    kind = raw.get("type", "all")
    if kind not in AUDIENCE_TYPES:
        raise BadInput(f"unknown audience type '{kind}' (known: {', '.join(AUDIENCE_TYPES)}).")
    flt = raw.get("filter") or {}
    if flt and kind != "custom":
        raise BadInput(f"audience type '{kind}' takes no filter; use type: custom.")
    if not isinstance(flt, Mapping):
        raise BadInput("audience filter must be a mapping.")
    clean: dict[str, Any] = {}
    for key, value in flt.items():
        if key not in FILTER_KEYS:
            raise BadInput(f"unknown audience filter key '{key}' (known: {', '.join(FILTER_KEYS)}).")
        if key in ("intent_score_min", "intent_score_max"):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
                raise BadInput(f"audience filter '{key}' must be a whole number from 0 to 100.")
            clean[key] = value
        elif key in ("intent_level", "follow_up_status", "tags", "tags_any"):
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
                raise BadInput(f"audience filter '{key}' must be a string or a list of strings.")
            if key == "intent_level" and any(v not in INTENT_LEVELS for v in values):
                raise BadInput(f"audience filter 'intent_level' must be among {', '.join(INTENT_LEVELS)}.")
            clean[key] = [v.strip() for v in values]
        else:  # event
            if not isinstance(value, (str, int)):
                raise BadInput("audience filter 'event' must be a string.")
            clean[key] = str(value)
    if "intent_score_min" in clean and "intent_score_max" in clean:
        if clean["intent_score_min"] > clean["intent_score_max"]:
            raise BadInput("audience filter intent_score_min is above intent_score_max.")
    return Audience(type=kind, filter=clean)


def audience_filter(sponsor_id: str, audience: Audience) -> sa.ColumnElement[bool]:
    """The SQL condition selecting this audience among ``sponsor_id``'s leads."""
    c = lead_table.c
    conds: list[sa.ColumnElement[bool]] = [c.sponsor_id == sponsor_id, c.email != ""]
    kind = audience.type
    if kind in INTENT_LEVELS:
        conds.append(c.intent_level == kind)
    elif kind == "new":
        conds.append(c.follow_up_status == "new")
    elif kind == "contacted":
        conds.append(c.follow_up_status != "new")
    elif kind == "custom":
        f = audience.filter
        if "intent_level" in f:
            conds.append(c.intent_level.in_(f["intent_level"]))
        if "follow_up_status" in f:
            conds.append(c.follow_up_status.in_(f["follow_up_status"]))
        if "intent_score_min" in f:
            conds.append(c.intent_score >= f["intent_score_min"])
        if "intent_score_max" in f:
            conds.append(c.intent_score <= f["intent_score_max"])
        if "event" in f:
            conds.append(c.event == f["event"])
        for tag in f.get("tags", []):
            conds.append(_has_tag(tag))
        if f.get("tags_any"):
            conds.append(sa.or_(*(_has_tag(t) for t in f["tags_any"])))
    return sa.and_(*conds)


def _has_tag(tag: str) -> sa.ColumnElement[bool]:
    escaped = tag.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return lead_table.c.tags.like(f"%,{escaped},%", escape="\\")


def select_recipients(
    sponsor_id: str, audience: Audience, columns: Sequence[str] = RECIPIENT_COLUMNS
) -> sa.Select[Any]:
    """SELECT of the audience's leads, ordered by id (stable for batching and previews)."""
    cols = [lead_table.c[name] for name in columns]
    return sa.select(*cols).where(audience_filter(sponsor_id, audience)).order_by(lead_table.c.id)


def count_recipients(sponsor_id: str, audience: Audience) -> sa.Select[Any]:
    """SELECT count(*) of the audience."""
    return sa.select(sa.func.count()).select_from(lead_table).where(audience_filter(sponsor_id, audience))


def tags_to_list(tags: str | None) -> list[str]:
    """``,a,b,`` → ``["a", "b"]``."""
    return [t for t in (tags or "").split(",") if t]


def tags_to_text(tags: Sequence[str]) -> str:
    """``["a", "b"]`` → ``,a,b,`` (duplicates dropped, order kept)."""
    seen = list(dict.fromkeys(t.strip() for t in tags if t.strip()))
    return "," + ",".join(seen) + "," if seen else ""


def recipient(row: Mapping[str, Any]) -> dict[str, Any]:
    """One selected lead row as the mapping rendering takes (tags as a list, fields a dict)."""
    data = dict(row)
    data["tags"] = tags_to_list(data.get("tags"))
    data["fields"] = dict(data.get("fields") or {})
    return data


def iter_recipients(conn: sa.Connection, query: sa.Select[Any], chunk: int = 2000) -> Iterator[dict[str, Any]]:
    """Stream a recipient query in chunks so memory stays flat for any audience size."""
    result = conn.execution_options(stream_results=True, yield_per=chunk).execute(query)
    for row in result.mappings():
        yield recipient(dict(row))
