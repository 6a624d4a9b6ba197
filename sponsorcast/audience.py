"""Audiences: which of a sponsor's leads a campaign goes to, as SQL over the store.

``where_sql`` writes the audience as one SQL condition with named parameters; nothing here
loops over leads in Python. The same text runs under SQLAlchemy (``audience_filter``) and,
for ``leads count`` on an up-to-date SQLite store, through the stdlib driver alone, so that
the command cron runs most often starts without importing SQLAlchemy (docs/benchmarks.md, start-up). That is also
why SQLAlchemy and the store are imported inside the functions that use them.
``recipient`` turns one selected lead row into the mapping that rendering takes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sponsorcast.durations import parse_duration
from sponsorcast.errors import BadInput

if TYPE_CHECKING:
    import sqlalchemy as sa  # on use: keeps start-up fast

    from sponsorcast.config import Config

AUDIENCE_TYPES = ("all", "hot", "warm", "cold", "new", "contacted", "custom")
# keys over the ledger: a campaign id (or a list: any of them) of the same sponsor
LEDGER_KEYS = ("received", "not_received", "opened", "not_opened", "clicked", "not_clicked")
_LEDGER_SQL = {  # what a delivery of the campaign shows of the lead
    "received": "d.sent_at IS NOT NULL",
    "opened": "d.human_opened_at IS NOT NULL",  # machine opens do not count (tracking.machine)
    "clicked": "d.first_click_at IS NOT NULL",
}
FILTER_KEYS = (
    "intent_level",
    "follow_up_status",
    "intent_score_min",
    "intent_score_max",
    "tags",
    "tags_any",
    "event",
    *LEDGER_KEYS,
    "not_contacted_within",  # a duration: no email of this sponsor's campaigns in that window
)
INTENT_LEVELS = ("hot", "warm", "cold")

# What a lead says about the person, in the order every listing and mapping uses.
PERSON_COLUMNS = (
    "email",
    "name",
    "first_name",
    "last_name",
    "company",
    "title",
    "intent_level",
    "intent_score",
    "follow_up_status",
)

# The columns rendering and sending need, in a fixed order.
RECIPIENT_COLUMNS = ("id", "sponsor_id", *PERSON_COLUMNS, "tags", "event", "fields")


@dataclass(frozen=True)
class Audience:
    """A validated audience: a type and, for ``custom``, its filter."""

    type: str = "all"
    filter: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The audience as stored in ``campaign.audience``."""
        return (
            {"type": self.type, "filter": dict(self.filter)} if self.filter else {"type": self.type}
        )


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
    if isinstance(kind, str):
        kind = kind.strip().lower()  # stored levels and statuses are lower-case: HOT is hot
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
            raise BadInput(
                f"unknown audience filter key '{key}' (known: {', '.join(FILTER_KEYS)})."
            )
        if key in ("intent_score_min", "intent_score_max"):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
                raise BadInput(f"audience filter '{key}' must be a whole number from 0 to 100.")
            clean[key] = value
        elif key == "not_contacted_within":
            if not isinstance(value, str):
                raise BadInput(
                    "audience filter 'not_contacted_within' must be a duration such as 14d."
                )
            parse_duration(value)  # a bad one is refused here, with the units it takes
            clean[key] = value.strip().lower()
        elif key in ("intent_level", "follow_up_status", "tags", "tags_any", *LEDGER_KEYS):
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
                raise BadInput(f"audience filter '{key}' must be a string or a list of strings.")
            values = [v.strip() for v in values]
            if key in ("intent_level", "follow_up_status"):  # the import lower-cases these
                values = [v.lower() for v in values]
            if key == "intent_level" and any(v not in INTENT_LEVELS for v in values):
                raise BadInput(
                    f"audience filter 'intent_level' must be among {', '.join(INTENT_LEVELS)}."
                )
            clean[key] = values
        else:  # event
            if not isinstance(value, (str, int)):
                raise BadInput("audience filter 'event' must be a string.")
            clean[key] = str(value)
    if (
        "intent_score_min" in clean
        and "intent_score_max" in clean
        and clean["intent_score_min"] > clean["intent_score_max"]
    ):
        raise BadInput("audience filter intent_score_min is above intent_score_max.")
    return Audience(type=kind, filter=clean)


def where_sql(
    sponsor_id: str,
    audience: Audience,
    now: datetime | None = None,
    *,
    dialect: str = "sqlite",
) -> tuple[str, dict[str, Any]]:
    """The SQL condition selecting this audience among ``sponsor_id``'s leads, on table
    ``lead``, with its named parameters (all called ``aud_…``; times are aware datetimes, which
    the caller binds as the store keeps them). ``now`` anchors ``not_contacted_within``;
    ``dialect`` picks how the ledger keys are written (``store.dialects`` says why)."""
    params: dict[str, Any] = {}

    def bind(value: Any) -> str:
        name = f"aud_{len(params)}"
        params[name] = value
        return f":{name}"

    def one_of(column: str, values: Sequence[str]) -> str:
        return f"lead.{column} IN ({', '.join(bind(v) for v in values)})"

    def has_tag(tag: str) -> str:
        escaped = tag.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return f"lead.tags LIKE {bind(f'%,{escaped},%')} ESCAPE '\\'"

    # an erased person's lead row is a tombstone (``suppression.erased``): never a recipient
    conds = [
        f"lead.sponsor_id = {bind(sponsor_id)}",
        "lead.email != ''",
        "lead.email NOT LIKE 'erased:%'",
    ]
    kind = audience.type
    if kind in INTENT_LEVELS:
        conds.append(f"lead.intent_level = {bind(kind)}")
    elif kind == "new":
        conds.append("lead.follow_up_status = 'new'")
    elif kind == "contacted":
        conds.append("lead.follow_up_status != 'new'")
    elif kind == "custom":
        f = audience.filter
        if "intent_level" in f:
            conds.append(one_of("intent_level", f["intent_level"]))
        if "follow_up_status" in f:
            conds.append(one_of("follow_up_status", f["follow_up_status"]))
        if "intent_score_min" in f:
            conds.append(f"lead.intent_score >= {bind(f['intent_score_min'])}")
        if "intent_score_max" in f:
            conds.append(f"lead.intent_score <= {bind(f['intent_score_max'])}")
        if "event" in f:
            conds.append(f"lead.event = {bind(f['event'])}")
        conds.extend(has_tag(tag) for tag in f.get("tags", []))
        if f.get("tags_any"):
            conds.append("(" + " OR ".join(has_tag(t) for t in f["tags_any"]) + ")")
        for key in LEDGER_KEYS:
            if key in f:
                shown = _LEDGER_SQL[key.removeprefix("not_")]
                ids = ", ".join(bind(c) for c in f[key])
                conds.append(
                    _ledger(
                        f"d.campaign_id IN ({ids}) AND {shown}",
                        negate=key.startswith("not_"),
                        dialect=dialect,
                    )
                )
        if "not_contacted_within" in f:
            since = (now or _utcnow()) - parse_duration(f["not_contacted_within"])
            contacted = (
                "d.campaign_id IN (SELECT c.id FROM campaign c WHERE c.sponsor_id = "
                f"{bind(sponsor_id)}) AND d.sent_at >= {bind(since)}"
            )
            conds.append(_ledger(contacted, negate=True, dialect=dialect))
    return " AND ".join(conds), params


def _ledger(condition: str, *, negate: bool, dialect: str) -> str:
    """Leads with a delivery where ``condition`` holds (alias ``d``), or without one."""
    if dialect == "sqlite":  # the subquery runs once, from a covering index
        return f"lead.id {'NOT ' if negate else ''}IN (SELECT d.lead_id FROM delivery d WHERE {condition})"
    exists = f"EXISTS (SELECT 1 FROM delivery d WHERE d.lead_id = lead.id AND {condition})"
    return f"NOT {exists}" if negate else exists


def _utcnow() -> datetime:
    return datetime.now(UTC)


def ledger_campaigns(audience: Audience) -> list[str]:
    """The campaign ids the audience's ledger keys name, in order, once each."""
    ids: list[str] = []
    for key in LEDGER_KEYS:
        ids.extend(c for c in audience.filter.get(key, []) if c not in ids)
    return ids


def ledger_problem(sponsor_id: str, audience: Audience, found: Mapping[str, str]) -> str | None:
    """Why the audience's ledger keys cannot be used (``found``: campaign id → its sponsor)."""
    for campaign_id in ledger_campaigns(audience):
        owner = found.get(campaign_id)
        if owner is None:
            return f"the audience names campaign '{campaign_id}', which the store does not have."
        if owner != sponsor_id:
            return (
                f"the audience names campaign '{campaign_id}' of sponsor '{owner}'; an audience "
                f"of sponsor '{sponsor_id}' can only follow its own campaigns."
            )
    return None


def check_ledger(conn: sa.Connection, sponsor_id: str, audience: Audience) -> None:
    """BadInput when a ledger key names an unknown campaign or another sponsor's."""
    ids = ledger_campaigns(audience)
    if not ids:
        return
    import sqlalchemy as sa  # on use: keeps start-up fast

    from sponsorcast.store.tables import campaign_t

    rows = conn.execute(
        sa.select(campaign_t.c.id, campaign_t.c.sponsor_id).where(campaign_t.c.id.in_(ids))
    ).all()
    problem = ledger_problem(sponsor_id, audience, {r.id: r.sponsor_id for r in rows})
    if problem is not None:
        raise BadInput(problem[0].upper() + problem[1:])


def audience_filter(
    sponsor_id: str, audience: Audience, now: datetime | None = None
) -> sa.ColumnElement[bool]:
    """``where_sql`` as a SQLAlchemy clause (times bound as the store keeps them), written for
    whichever store it runs on."""
    import sqlalchemy as sa  # on use: keeps start-up fast

    from sponsorcast.store.dialects import PerDialect
    from sponsorcast.store.models import UTCDateTime

    def clause(dialect: str) -> sa.TextClause:
        sql, params = where_sql(sponsor_id, audience, now, dialect=dialect)
        # parenthesised: a text clause is not grouped when it is negated or combined
        return sa.text(f"({sql})").bindparams(
            *(
                sa.bindparam(
                    name, value, type_=UTCDateTime() if isinstance(value, datetime) else None
                )
                for name, value in params.items()
            )
        )

    sqlite = clause("sqlite")
    if not ledger_campaigns(audience) and "not_contacted_within" not in audience.filter:
        return PerDialect(sqlite, sqlite)  # the same text for every store, as a column element
    return PerDialect(sqlite, clause("postgresql"))


def select_recipients(
    sponsor_id: str, audience: Audience, columns: Sequence[str] = RECIPIENT_COLUMNS
) -> sa.Select[Any]:
    """SELECT of the audience's leads, ordered by id (stable for batching and previews)."""
    import sqlalchemy as sa  # on use: keeps start-up fast

    from sponsorcast.store.tables import lead_t  # here, not on top: `leads count` avoids SQLAlchemy

    cols = [lead_t.c[name] for name in columns]
    return sa.select(*cols).where(audience_filter(sponsor_id, audience)).order_by(lead_t.c.id)


def count_recipients(sponsor_id: str, audience: Audience) -> sa.Select[Any]:
    """SELECT count(*) of the audience."""
    import sqlalchemy as sa  # on use: keeps start-up fast

    from sponsorcast.store.tables import lead_t  # here, not on top: `leads count` avoids SQLAlchemy

    return (
        sa.select(sa.func.count()).select_from(lead_t).where(audience_filter(sponsor_id, audience))
    )


def count_audience(config: Config, sponsor_id: str, audience: Audience) -> int:
    """How many of the sponsor's leads the audience selects.

    An up-to-date SQLite store that knows the sponsor is read through the stdlib driver;
    anything else (PostgreSQL, a new or older store, an unknown sponsor) opens the store
    as every command does, which migrates it, applies the config's sponsors and gives the
    usual errors.
    """
    from sponsorcast.store import fastread  # on use: keeps start-up fast

    quick = fastread.connect(config.store_url)
    if quick is not None:
        with closing(quick):
            if fastread.has_sponsor(quick, sponsor_id):
                ids = ledger_campaigns(audience)
                found = dict(
                    quick.execute(
                        "SELECT id, sponsor_id FROM campaign WHERE id IN "
                        f"({', '.join('?' * len(ids))})",
                        ids,
                    ).fetchall()
                    if ids
                    else []
                )
                problem = ledger_problem(sponsor_id, audience, found)
                if problem is not None:
                    raise BadInput(problem[0].upper() + problem[1:])
                sql, params = where_sql(sponsor_id, audience)
                params = {
                    k: fastread.stored_time(v) if isinstance(v, datetime) else v
                    for k, v in params.items()
                }
                return int(
                    quick.execute(f"SELECT count(*) FROM lead WHERE {sql}", params).fetchone()[0]
                )
    from sponsorcast.store import get_sponsor, open_from_config  # on use: keeps start-up fast

    store = open_from_config(config)
    try:
        get_sponsor(store, sponsor_id)
        with store.read() as conn:
            check_ledger(conn, sponsor_id, audience)
            return int(conn.execute(count_recipients(sponsor_id, audience)).scalar_one())
    finally:
        store.dispose()


def audience_from_options(audience: str | None, filters: Sequence[str]) -> Audience:
    """``--audience TYPE`` and ``--filter KEY=VALUE`` options as a validated Audience
    (a filter implies ``custom``; lists are comma-separated; scores are whole numbers)."""
    flt: dict[str, Any] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise BadInput(f"--filter '{item}' must look like KEY=VALUE, e.g. intent_score_min=50.")
        if key in ("intent_score_min", "intent_score_max"):
            try:
                flt[key] = int(value)
            except ValueError:
                raise BadInput(f"--filter {key} must be a whole number from 0 to 100.") from None
        elif key in ("event", "not_contacted_within"):
            flt[key] = value
        else:
            flt[key] = [v.strip() for v in value.split(",") if v.strip()]
    if not flt:
        return parse_audience(audience or "all")
    return parse_audience({"type": audience or "custom", "filter": flt})


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


def iter_recipients(
    conn: sa.Connection, query: sa.Select[Any], chunk: int = 2000
) -> Iterator[dict[str, Any]]:
    """Stream a recipient query in chunks so memory stays flat for any audience size."""
    # options of this statement only: Connection.execution_options() would set them on the
    # connection for every later statement of the transaction (an INSERT in a server cursor)
    result = conn.execute(query, execution_options={"stream_results": True, "yield_per": chunk})
    keys = list(result.keys())
    # plain tuples zipped with the keys: half the time of ``result.mappings()`` a row, which
    # counts for the render check of a whole audience before the first email
    for row in result:
        data = dict(zip(keys, row, strict=True))  # as ``recipient`` makes it, without a copy
        data["tags"] = tags_to_list(data.get("tags"))
        data["fields"] = dict(data.get("fields") or {})
        yield data
