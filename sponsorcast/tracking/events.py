"""Applying one Resend event to its delivery, once per provider event id; ``events import``.

Event rows have ``type`` ``email.<event>`` (webhooks, imports), ``sync.<event>`` (polled) or
``open`` / ``click`` / ``unsubscribe`` (this server's own tracking, see ``actions``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from sponsorcast.errors import InputFileError
from sponsorcast.store import Store
from sponsorcast.store.models import (
    ALL_SPONSORS,
    DeliveryStatus,
    utcnow,
)
from sponsorcast.store.tables import campaign_t, delivery_t, event_t
from sponsorcast.suppression import insert_ignore, suppress_conn
from sponsorcast.tracking.machine import machine_open
from sponsorcast.transport import tag_safe

if TYPE_CHECKING:
    pass


EMAIL_EVENTS = (
    "email.sent",
    "email.delivered",
    "email.delivery_delayed",
    "email.bounced",
    "email.complained",
    "email.opened",
    "email.clicked",
    "email.failed",
    "email.suppressed",
)


# how far along its way an email is; a status only ever moves to a higher rank
_RANK: dict[str, int] = {
    DeliveryStatus.PENDING: 0,
    DeliveryStatus.CANCELLED: 0,
    DeliveryStatus.SENDING: 1,
    DeliveryStatus.SENT: 2,
    DeliveryStatus.DELIVERED: 3,
    DeliveryStatus.FAILED: 4,
    DeliveryStatus.BOUNCED: 4,
    DeliveryStatus.SUPPRESSED: 4,
    DeliveryStatus.COMPLAINED: 5,
}


@dataclass(frozen=True)
class Applied:
    """The outcome of one event: applied, duplicate (already applied), unmatched or ignored."""

    outcome: str
    delivery_id: int | None = None


def parse_event_time(value: Any) -> datetime | None:
    """An aware UTC datetime from an ISO 8601 string, or None."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace(" ", "T", 1)
    if re.search(r"[+-]\d\d$", text):
        text += ":00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _tags(data: Mapping[str, Any]) -> dict[str, str]:
    raw = data.get("tags")
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return {
            str(t["name"]): str(t.get("value", ""))
            for t in raw
            if isinstance(t, dict) and "name" in t
        }
    return {}


def _find_delivery(conn: sa.Connection, data: Mapping[str, Any]) -> dict[str, Any] | None:
    cols = (delivery_t, campaign_t.c.sponsor_id)
    joined = delivery_t.join(campaign_t, campaign_t.c.id == delivery_t.c.campaign_id)
    email_id = data.get("email_id")
    if isinstance(email_id, str) and email_id:
        row = (
            conn.execute(
                sa.select(*cols)
                .select_from(joined)
                .where(delivery_t.c.provider_message_id == email_id)
                .with_for_update(of=delivery_t)
            )
            .mappings()
            .first()
        )
        if row is not None:
            return dict(row)
    tags = _tags(data)
    try:
        delivery_id = int(tags.get("delivery", ""))
    except ValueError:
        return None
    row = (
        conn.execute(
            sa.select(*cols)
            .select_from(joined)
            .where(delivery_t.c.id == delivery_id)
            .with_for_update(of=delivery_t)
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    # the same Resend account may serve other stores, whose delivery ids collide with ours
    if "campaign" in tags and tags["campaign"] != tag_safe(row["campaign_id"]):
        return None
    if row["provider_message_id"] and email_id and row["provider_message_id"] != email_id:
        return None
    return dict(row)


def _earliest(current: datetime | None, at: datetime) -> datetime:
    return at if current is None or at < current else current


def _recipients(data: Mapping[str, Any]) -> list[str]:
    to = data.get("to")
    if isinstance(to, str):
        return [to]
    if isinstance(to, list):
        return [t for t in to if isinstance(t, str)]
    return []


def _is_hard_bounce(data: Mapping[str, Any]) -> bool:
    # Resend sends email.bounced for permanent rejections; bounce.type says Permanent,
    # Transient or Undetermined. Only Permanent (or no type at all) suppresses.
    bounce = data.get("bounce")
    if not isinstance(bounce, dict) or not bounce.get("type"):
        return True
    return str(bounce["type"]).lower() == "permanent"


def _changes(
    row: Mapping[str, Any],
    kind: str,
    data: Mapping[str, Any],
    at: datetime,
    polled: bool,
    *,
    machine: bool = False,
) -> dict[str, Any]:
    """Column updates one event makes to a delivery (never moving its status backwards);
    ``machine``: an open no person made (``tracking.machine``)."""
    values: dict[str, Any] = {}
    status = row["status"]

    def advance(new: str) -> None:
        nonlocal status
        if _RANK[new] > _RANK.get(status, 0):
            status = new
            values["status"] = new

    accepted = kind in (
        "sent",
        "delivered",
        "delivery_delayed",
        "opened",
        "clicked",
        "complained",
        "bounced",
    )
    delivered = kind in ("delivered", "opened", "clicked", "complained")
    if accepted:
        if row["sent_at"] is None:
            values["sent_at"] = at
        advance(DeliveryStatus.SENT)
    if delivered:
        # the earliest evidence wins, whatever order events arrive in
        if row["delivered_at"] is None or at < row["delivered_at"]:
            values["delivered_at"] = at
        advance(DeliveryStatus.DELIVERED)
    if kind == "opened":
        values["opened_at"] = _earliest(row["opened_at"], at)
        if not machine:
            values["human_opened_at"] = _earliest(row["human_opened_at"], at)
        values["open_count"] = max(row["open_count"], 1) if polled else row["open_count"] + 1
    elif kind == "clicked":
        values["first_click_at"] = _earliest(row["first_click_at"], at)
        values["click_count"] = max(row["click_count"], 1) if polled else row["click_count"] + 1
    elif kind == "complained":
        advance(DeliveryStatus.COMPLAINED)
    elif kind == "bounced":
        advance(DeliveryStatus.BOUNCED)
        bounce = data.get("bounce")
        if isinstance(bounce, dict) and bounce.get("message"):
            values["last_error"] = str(bounce["message"])[:500]
    elif kind == "failed":
        advance(DeliveryStatus.FAILED)
        failed = data.get("failed")
        if isinstance(failed, dict) and failed.get("reason"):
            values["last_error"] = str(failed["reason"])[:500]
    elif kind == "suppressed":
        advance(DeliveryStatus.SUPPRESSED)
    return values


def apply_event_conn(
    conn: sa.Connection,
    payload: Mapping[str, Any],
    event_id: str | None,
    source: str = "webhook",
    *,
    polled: bool = False,
) -> Applied:
    """Apply one Resend event inside an open write transaction (see ``apply_event``)."""
    kind_full = payload.get("type")
    if kind_full not in EMAIL_EVENTS:
        return Applied("ignored")
    if event_id is not None:
        seen = conn.execute(
            sa.select(event_t.c.id).where(event_t.c.provider_event_id == event_id)
        ).first()
        if seen is not None:
            return Applied("duplicate")
    raw_data = payload.get("data")
    data: Mapping[str, Any] = raw_data if isinstance(raw_data, dict) else {}
    at = (
        parse_event_time(payload.get("created_at"))
        or parse_event_time(data.get("created_at"))
        or utcnow()
    )
    row = _find_delivery(conn, data)
    kind = str(kind_full).removeprefix("email.")
    values = {
        "campaign_id": row["campaign_id"] if row is not None else None,
        "delivery_id": row["id"] if row is not None else None,
        "type": kind_full if source != "sync" else f"sync.{kind}",
        "provider_event_id": event_id,
        "occurred_at": at,
        "payload": dict(payload),
        "created_at": utcnow(),
    }
    if event_id is None:
        conn.execute(event_t.insert().values(**values))
    elif not insert_ignore(conn, event_t, values, ("provider_event_id",)):
        return Applied("duplicate")  # a concurrent request applied it first
    addresses = [row["recipient"]] if row is not None else _recipients(data)
    reason = None
    if kind == "complained":
        reason = "complained"
    elif kind == "bounced" and _is_hard_bounce(data):
        reason = "bounced"
    elif kind == "suppressed":
        reason = "bounced"  # Resend's own list: earlier hard bounces or complaints
    if reason is not None:
        for address in addresses:
            suppress_conn(conn, address, ALL_SPONSORS, reason)
    if row is None:
        return Applied("unmatched")
    machine = kind == "opened" and machine_open(
        row["sent_at"], at, _user_agent(data) if not polled else None
    )
    changes = _changes(row, kind, data, at, polled, machine=machine)
    email_id = data.get("email_id")
    if row["provider_message_id"] is None and isinstance(email_id, str) and email_id:
        # found by its tags before the sender recorded the answer (or it crashed first): the
        # sender only records deliveries still pending/sending, so keep the id here for sync
        changes["provider_message_id"] = email_id
    if changes:
        conn.execute(delivery_t.update().where(delivery_t.c.id == row["id"]).values(**changes))
    return Applied("applied", row["id"])


def _user_agent(data: Mapping[str, Any]) -> str | None:
    """The opener's user agent, where a provider's event carries one."""
    found = data.get("open") if isinstance(data.get("open"), Mapping) else data
    for key in ("userAgent", "user_agent"):
        value = found.get(key) if isinstance(found, Mapping) else None
        if isinstance(value, str):
            return value
    return None


def apply_event(
    store: Store,
    payload: Mapping[str, Any],
    event_id: str | None,
    source: str = "webhook",
    *,
    polled: bool = False,
) -> Applied:
    """Apply one Resend event to its delivery and the suppression list, once per event id."""
    with store.write() as conn:
        return apply_event_conn(conn, payload, event_id, source, polled=polled)


def payload_event_id(payload: Mapping[str, Any]) -> str:
    """A stable id for a saved payload that came without its svix-id."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:40]


def parse_event_line(line: str) -> tuple[str, dict[str, Any]]:
    """(event id, payload) from one JSONL line: a Resend payload or {"svix-id", "payload"}."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    if "payload" in obj:
        payload = obj["payload"]
        event_id = obj.get("svix-id")
        if not isinstance(event_id, str) or not event_id:
            raise ValueError("an object with 'payload' needs a 'svix-id' string")
    else:
        payload, event_id = obj, None
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
        raise ValueError("the payload has no 'type'")
    if not isinstance(payload.get("data"), dict):
        raise ValueError("the payload has no 'data' object")
    return event_id or payload_event_id(payload), payload


@dataclass
class ImportResult:
    """Counts from ``events import``."""

    applied: int = 0
    duplicate: int = 0
    unmatched: int = 0
    ignored: int = 0

    def add(self, outcome: str) -> None:
        """Count one outcome."""
        setattr(self, outcome, getattr(self, outcome) + 1)


def read_events_file(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every event in a JSONL file, or InputFileError naming the first bad line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputFileError("no such file.", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot be read ({exc}).", path=path) from None
    events: list[tuple[str, dict[str, Any]]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            events.append(parse_event_line(line))
        except ValueError as exc:
            raise InputFileError(f"{exc}; nothing was applied.", path=path, line=number) from None
    return events


def import_events(store: Store, events: Iterable[tuple[str, Mapping[str, Any]]]) -> ImportResult:
    """Apply saved events in one transaction, each at most once."""
    result = ImportResult()
    with store.write() as conn:
        for event_id, payload in events:
            result.add(apply_event_conn(conn, payload, event_id, "import").outcome)
    return result
