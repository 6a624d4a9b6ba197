"""Tracking (SPEC §5): signed link tokens, the send engine's Links, webhooks, events, ``sync``.

For the send engine, once per campaign and then per recipient::

    from sponsorcast.tracking import campaign_links, links_for
    links = campaign_links(campaign.body)                   # once per campaign
    link_obj, headers = links_for(config, campaign.id, delivery_id, links)
    # link_obj implements render's Links; headers holds List-Unsubscribe (and, when
    # tracking.public_url is set, List-Unsubscribe-Post) to add to that email.

Everything ``links_for`` returns is a pure function of (secret, delivery id, campaign body):
a re-sent batch is byte-for-byte the same.

Tokens are ``<22 chars base64url HMAC-SHA256/128><body>`` where body is the delivery id in
hex, plus ``x<link index in hex>`` for a click. The MAC covers a kind (``o`` open, ``c``
click, ``u`` unsubscribe), so a token for one route is worthless on another.

Click links: ``campaign_links(body)`` lists the http(s) link targets of the campaign body in
order of first appearance; a click token carries the delivery id and the link's index in that
list, and the server re-derives the list from the stored ``Campaign.body``, so a redirect can
only ever go to a link of that campaign. A link target holding Jinja markup (personalised, e.g.
``?c={{ company | urlencode }}``) is rewritten to ``/c/<token>?u=<rendered url>`` where the MAC
also covers the rendered URL, and the server checks that URL against the link's template
before redirecting: still only links from the campaign's body, as rendered for that recipient.

The headers are ``List-Unsubscribe: <https://…/u/token>`` (plus ``<mailto:…>`` only when
``tracking.unsubscribe_mailto`` is configured, SPEC §4) and ``List-Unsubscribe-Post:
List-Unsubscribe=One-Click``; they are meant to win over render's own when merged.

Webhooks use the Svix scheme (``verify_webhook``); ``apply_event`` applies one Resend event
(from ``serve``, ``events import`` or ``sync``) to its delivery, once per provider event id.
Event rows written here have ``type`` ``email.<event>`` (webhooks, imports), ``sync.<event>``
(polled), or ``open`` / ``click`` / ``unsubscribe`` (this server's own tracking).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import sqlalchemy as sa

from sponsorcast.config import Config
from sponsorcast.errors import BadInput, ConfigError, InputFileError
from sponsorcast.store import Store
from sponsorcast.store.models import (
    ALL_SPONSORS,
    DeliveryStatus,
    utcnow,
)
from sponsorcast.store.tables import campaign_t, delivery_t, event_t, sponsor_t
from sponsorcast.suppression import insert_ignore, suppress_conn
from sponsorcast.transport import tag_safe

if TYPE_CHECKING:
    from sponsorcast.render import Links


MAC_BYTES = 16
MAC_CHARS = 22  # base64url of 16 bytes, unpadded
WEBHOOK_TOLERANCE = 300  # seconds, either way
KIND_OPEN, KIND_CLICK, KIND_UNSUBSCRIBE = "o", "c", "u"
_BODY_RE = re.compile(r"^([0-9a-f]{1,16})(?:x([0-9a-f]{1,8}))?$")
_TEMPLATE_RE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)


# --- tokens -------------------------------------------------------------------------------


def require_secret(config: Config) -> str:
    """The tracking secret, or ConfigError (exit 3) saying how to set it."""
    secret = config.secrets.sponsorcast_secret
    if not secret:
        raise ConfigError(
            "SPONSORCAST_SECRET is not set; it signs tracking and unsubscribe links.",
            hint="Set it to a long random string, e.g. export SPONSORCAST_SECRET=$(openssl rand -hex 32).",
        )
    return secret


def _mac(secret: str, kind: str, body: str, url: str | None = None) -> str:
    message = (
        f"sponsorcast/v1|{kind}|{body}" if url is None else f"sponsorcast/v1|{kind}|{body}|{url}"
    )
    mac = _keyed(secret).copy()  # the key's HMAC state is computed once, not per token
    mac.update(message.encode("utf-8"))
    return base64.urlsafe_b64encode(mac.digest()[:MAC_BYTES]).decode("ascii")[:MAC_CHARS]


@lru_cache(maxsize=8)
def _keyed(secret: str) -> hmac.HMAC:
    return hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)


def make_token(
    secret: str, kind: str, delivery_id: int, index: int | None = None, url: str | None = None
) -> str:
    """A compact, deterministic, URL-safe token for (kind, delivery[, link index[, url]])."""
    body = f"{delivery_id:x}" if index is None else f"{delivery_id:x}x{index:x}"
    return _mac(secret, kind, body, url) + body


@dataclass(frozen=True)
class TokenData:
    """What a valid token says."""

    delivery_id: int
    index: int | None = None


def read_token(secret: str, kind: str, token: str, url: str | None = None) -> TokenData | None:
    """The token's content when its MAC is right for this kind (and url), else None."""
    if len(token) <= MAC_CHARS or len(token) > MAC_CHARS + 26:
        return None
    mac, body = token[:MAC_CHARS], token[MAC_CHARS:]
    match = _BODY_RE.match(body)
    if match is None:
        return None
    if not hmac.compare_digest(mac, _mac(secret, kind, body, url)):
        return None
    index = int(match.group(2), 16) if match.group(2) is not None else None
    if (kind == KIND_CLICK) != (index is not None):
        return None
    return TokenData(int(match.group(1), 16), index)


# --- campaign links ----------------------------------------------------------------------

# an http(s) URL in Markdown, HTML or prose; Jinja {{ … }} / {% … %} may sit inside it
_URL_RE = re.compile(r"""https?://(?:\{\{.*?\}\}|\{%.*?%\}|[^\s<>"'`()\[\]{}\\])+""", re.S)
_TRAILING = ".,;:!?*_~"


def campaign_links(body: str) -> list[str]:
    """The http(s) link targets in a campaign body's source, in order, each once."""
    links: list[str] = []
    for match in _URL_RE.finditer(body):
        url = match.group(0)
        while url and url[-1] in _TRAILING:
            url = url[:-1]
        if url not in links:
            links.append(url)
    return links


def is_template(link: str) -> bool:
    """True when a link target holds Jinja markup (it differs per recipient)."""
    return _TEMPLATE_RE.search(link) is not None


def _normalize(url: str) -> str:
    from markdown_it.common.normalize_url import normalizeLink

    return str(normalizeLink(html.unescape(url)))


def _template_pattern(link: str) -> re.Pattern[str]:
    """A regex for the link as rendered: its literal pieces as written or as markdown-it
    normalises them, anything where the Jinja markup was."""
    from markdown_it.common.normalize_url import normalizeLink

    parts = _TEMPLATE_RE.split(html.unescape(link))
    raw = ".*".join(re.escape(p) for p in parts)
    normalized = ".*".join(re.escape(str(normalizeLink(p))) if p else "" for p in parts)
    return re.compile(f"^(?:{raw}|{normalized})$", re.S)


@dataclass(frozen=True)
class LinkIndex:
    """A campaign's links prepared for lookups: static forms by index, templates as patterns."""

    links: tuple[str, ...]
    static: Mapping[str, int]
    templates: tuple[tuple[int, re.Pattern[str]], ...]

    def find(self, url: str) -> tuple[int, bool] | None:
        """(index, personalised) of the campaign link ``url`` was rendered from, or None."""
        for key in (url, html.unescape(url)):
            if key in self.static:
                return self.static[key], False
        for index, pattern in self.templates:
            if pattern.match(url) or pattern.match(html.unescape(url)):
                return index, True
        return None

    def target(self, index: int) -> str | None:
        """Where a static link redirects: the link as a browser would have followed it."""
        if not 0 <= index < len(self.links) or is_template(self.links[index]):
            return None
        return _normalize(self.links[index])


@lru_cache(maxsize=64)
def link_index(links: tuple[str, ...]) -> LinkIndex:
    """Prepare a campaign's link list (cached: the send engine calls this per recipient)."""
    static: dict[str, int] = {}
    templates: list[tuple[int, re.Pattern[str]]] = []
    for i, link in enumerate(links):
        if is_template(link):
            templates.append((i, _template_pattern(link)))
            continue
        for key in (link, html.unescape(link), _normalize(link)):
            static.setdefault(key, i)
    return LinkIndex(links, static, tuple(templates))


# --- the send engine's Links --------------------------------------------------------------


@dataclass(frozen=True)
class TrackingLinks:
    """Render's ``Links`` for one delivery: signed pixel, click and unsubscribe URLs."""

    public_url: str
    secret: str
    delivery_id: int
    index: LinkIndex
    open_tracking: bool = True
    click_tracking: bool = True
    unsubscribe_url: str = field(init=False)
    pixel_url: str | None = field(init=False)

    def __post_init__(self) -> None:
        unsub = make_token(self.secret, KIND_UNSUBSCRIBE, self.delivery_id)
        object.__setattr__(self, "unsubscribe_url", f"{self.public_url}/u/{unsub}")
        pixel = None
        if self.open_tracking:
            pixel = (
                f"{self.public_url}/o/{make_token(self.secret, KIND_OPEN, self.delivery_id)}.gif"
            )
        object.__setattr__(self, "pixel_url", pixel)

    def click(self, url: str) -> str:
        """The tracked URL for a link of the campaign; any other URL is left as it is."""
        if not self.click_tracking:
            return url
        found = self.index.find(url)
        if found is None:
            return url
        index, personalised = found
        if not personalised:
            token = make_token(self.secret, KIND_CLICK, self.delivery_id, index)
            return f"{self.public_url}/c/{token}"
        plain = html.unescape(url)
        if not plain.startswith(("http://", "https://")):
            return url
        token = make_token(self.secret, KIND_CLICK, self.delivery_id, index, plain)
        return f"{self.public_url}/c/{token}?u={quote(plain, safe='')}"


def unsubscribe_headers(unsubscribe_url: str | None, mailto_url: str = "") -> dict[str, str]:
    """``List-Unsubscribe`` (URL and/or ``mailto:`` URL) and, with an http(s) URL, RFC 8058."""
    one_click = bool(unsubscribe_url) and str(unsubscribe_url).startswith(("https://", "http://"))
    parts = [f"<{unsubscribe_url}>"] if one_click else []
    if mailto_url:
        parts.append(f"<{mailto_url}>")
    headers: dict[str, str] = {}
    if parts:
        headers["List-Unsubscribe"] = ", ".join(parts)
    if one_click:
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return headers


def links_for(
    config: Config, campaign_id: str, delivery_id: int, links: Sequence[str] | None = None
) -> tuple[Links, dict[str, str]]:
    """Links and extra headers for one recipient (see the module docstring).

    ``links`` is ``campaign_links(body)`` of the campaign; without it, links are not rewritten.
    """
    from sponsorcast.render import StaticLinks, mailto_unsubscribe

    mailto = config.tracking.unsubscribe_mailto
    mailto_url = mailto_unsubscribe(mailto) if mailto else ""
    public_url = config.tracking.public_url.rstrip("/")
    if not public_url:
        return StaticLinks(mailto_url), unsubscribe_headers(None, mailto_url)
    tracked = TrackingLinks(
        public_url=public_url,
        secret=require_secret(config),
        # test sends (not in the ledger, ids <= 0) get links of the same shape that lead to no
        # delivery: the server answers them 404
        delivery_id=max(delivery_id, 0),
        index=link_index(tuple(links or ())),
        open_tracking=config.tracking.open_tracking,
        click_tracking=config.tracking.click_tracking,
    )
    return tracked, unsubscribe_headers(tracked.unsubscribe_url, mailto_url)


# --- webhook signatures (Svix scheme) -----------------------------------------------------


class WebhookSignatureError(BadInput):
    """A webhook's signature is missing, wrong or too old."""


def _header(headers: Mapping[str, str], *names: str) -> str | None:
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in names:
        if name in lowered:
            return lowered[name]
    return None


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: Callable[[], float] = time.time,
) -> str:
    """Check a Svix-signed webhook; returns its ``svix-id`` or raises WebhookSignatureError."""
    msg_id = _header(headers, "svix-id", "webhook-id")
    stamp = _header(headers, "svix-timestamp", "webhook-timestamp")
    signatures = _header(headers, "svix-signature", "webhook-signature")
    if not msg_id or not stamp or not signatures:
        raise WebhookSignatureError(
            "The webhook has no svix-id, svix-timestamp or svix-signature header."
        )
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookSignatureError("The webhook's svix-timestamp is not a number.") from None
    if abs(now() - timestamp) > WEBHOOK_TOLERANCE:
        raise WebhookSignatureError("The webhook's timestamp is more than 5 minutes away from now.")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("RESEND_WEBHOOK_SECRET is not a valid whsec_… secret.") from None
    signed = msg_id.encode("utf-8") + b"." + stamp.encode("ascii") + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode("ascii", "replace"), expected):
            return msg_id
    raise WebhookSignatureError("The webhook's signature does not match.")


# --- applying events ----------------------------------------------------------------------

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
_RANK = {
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
    row: Mapping[str, Any], kind: str, data: Mapping[str, Any], at: datetime, polled: bool
) -> dict[str, Any]:
    """Column updates one event makes to a delivery (never moving its status backwards)."""
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
    changes = _changes(row, kind, data, at, polled)
    email_id = data.get("email_id")
    if row["provider_message_id"] is None and isinstance(email_id, str) and email_id:
        # found by its tags before the sender recorded the answer (or it crashed first): the
        # sender only records deliveries still pending/sending, so keep the id here for sync
        changes["provider_message_id"] = email_id
    if changes:
        conn.execute(delivery_t.update().where(delivery_t.c.id == row["id"]).values(**changes))
    return Applied("applied", row["id"])


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


# --- own tracking: opens, clicks, unsubscribes ------------------------------------------


def _delivery(
    conn: sa.Connection, delivery_id: int, *, lock: bool = False
) -> dict[str, Any] | None:
    query = (
        sa.select(
            delivery_t,
            campaign_t.c.sponsor_id,
            campaign_t.c.body,
            sponsor_t.c.name.label("sponsor_name"),
        )
        .select_from(
            delivery_t.join(campaign_t, campaign_t.c.id == delivery_t.c.campaign_id).join(
                sponsor_t, sponsor_t.c.id == campaign_t.c.sponsor_id
            )
        )
        .where(delivery_t.c.id == delivery_id)
    )
    if lock:  # PostgreSQL: concurrent events for one delivery apply one after the other
        query = query.with_for_update(of=delivery_t)
    row = conn.execute(query).mappings().first()
    return dict(row) if row is not None else None


def _own_event(
    conn: sa.Connection,
    row: Mapping[str, Any],
    type_: str,
    at: datetime,
    payload: dict[str, Any],
    event_id: str | None = None,
) -> None:
    conn.execute(
        event_t.insert().values(
            campaign_id=row["campaign_id"],
            delivery_id=row["id"],
            type=type_,
            provider_event_id=event_id,
            occurred_at=at,
            payload=payload,
            created_at=at,
        )
    )


def record_open(store: Store, delivery_id: int, *, now: datetime | None = None) -> bool:
    """Count an open from the pixel; False when the delivery does not exist."""
    at = now or utcnow()
    with store.write() as conn:
        row = _delivery(conn, delivery_id, lock=True)
        if row is None:
            return False
        _own_event(conn, row, "open", at, {"source": "pixel"})
        values = _changes(row, "opened", {}, at, polled=False)
        conn.execute(delivery_t.update().where(delivery_t.c.id == delivery_id).values(**values))
    return True


def resolve_click(store: Store, secret: str, token: str, url: str | None) -> tuple[int, str] | None:
    """(delivery id, where to redirect) for a valid click token, else None. Changes nothing."""
    data = read_token(secret, KIND_CLICK, token, url)
    if data is None or data.index is None:
        return None
    with store.read() as conn:
        row = _delivery(conn, data.delivery_id)
    if row is None:
        return None
    index = link_index(tuple(campaign_links(row["body"])))
    if url is None:
        target = index.target(data.index)
        return (data.delivery_id, target) if target is not None else None
    # personalised: the signed, rendered URL must come from that link's template
    if not url.startswith(("http://", "https://")):
        return None
    for i, pattern in index.templates:
        if i == data.index and pattern.match(url):
            return data.delivery_id, url
    return None


def record_click(store: Store, delivery_id: int, url: str, *, now: datetime | None = None) -> bool:
    """Count a click on a tracked link; False when the delivery does not exist."""
    at = now or utcnow()
    with store.write() as conn:
        row = _delivery(conn, delivery_id, lock=True)
        if row is None:
            return False
        _own_event(conn, row, "click", at, {"source": "redirect", "url": url})
        values = _changes(row, "clicked", {}, at, polled=False)
        conn.execute(delivery_t.update().where(delivery_t.c.id == delivery_id).values(**values))
    return True


@dataclass(frozen=True)
class Recipient:
    """Who an unsubscribe token stands for (shown, partly masked, on the page)."""

    delivery_id: int
    email: str
    sponsor_id: str
    sponsor_name: str
    unsubscribed: bool


def unsubscribe_target(store: Store, delivery_id: int) -> Recipient | None:
    """The recipient behind an unsubscribe token, or None. Changes nothing."""
    with store.read() as conn:
        row = _delivery(conn, delivery_id)
    if row is None:
        return None
    return Recipient(
        row["id"],
        row["recipient"],
        row["sponsor_id"],
        row["sponsor_name"] or row["sponsor_id"],
        row["unsubscribed_at"] is not None,
    )


def unsubscribe(store: Store, delivery_id: int, *, now: datetime | None = None) -> Recipient | None:
    """Unsubscribe a delivery's recipient from its sponsor (idempotent); None if unknown."""
    at = now or utcnow()
    with store.write() as conn:
        row = _delivery(conn, delivery_id, lock=True)
        if row is None:
            return None
        if row["unsubscribed_at"] is None:
            conn.execute(
                delivery_t.update().where(delivery_t.c.id == delivery_id).values(unsubscribed_at=at)
            )
            _own_event(
                conn,
                row,
                "unsubscribe",
                at,
                {"source": "unsubscribe"},
                event_id=f"unsubscribe:{delivery_id}",
            )
        suppress_conn(conn, row["recipient"], row["sponsor_id"], "unsubscribed")
    return Recipient(
        row["id"],
        row["recipient"],
        row["sponsor_id"],
        row["sponsor_name"] or row["sponsor_id"],
        True,
    )


# --- events import ----------------------------------------------------------------------


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


# --- sync: ask the provider ---------------------------------------------------------------

# GET /emails/{id} last_event values that say something about a delivery
SYNC_EVENTS = frozenset(e.removeprefix("email.") for e in EMAIL_EVENTS)
NOT_FINAL = (DeliveryStatus.SENDING, DeliveryStatus.SENT)


class EmailStatusSource(Protocol):
    """What ``sync`` needs from a transport: Resend's ``GET /emails/{id}``."""

    async def get_email(self, message_id: str) -> dict[str, Any]:
        """The provider's record of one email."""
        ...


@dataclass
class SyncResult:
    """Counts from ``sync``: deliveries asked about and what became of them."""

    checked: int = 0
    updated: int = 0
    unchanged: int = 0
    missing: int = 0
    errors: list[str] = field(default_factory=list)


def _sync_query(campaign_id: str | None, after: int, chunk: int) -> sa.Select[Any]:
    d = delivery_t
    query = (
        sa.select(d.c.id, d.c.provider_message_id)
        .where(d.c.provider_message_id.is_not(None), d.c.status.in_(NOT_FINAL), d.c.id > after)
        .order_by(d.c.id)
        .limit(chunk)
    )
    if campaign_id is not None:
        query = query.where(d.c.campaign_id == campaign_id)
    return query


def polled_payload(message_id: str, email: Mapping[str, Any]) -> dict[str, Any] | None:
    """The event a ``GET /emails/{id}`` answer amounts to, or None when it says nothing new."""
    last = email.get("last_event")
    if not isinstance(last, str) or last not in SYNC_EVENTS:
        return None
    return {
        "type": f"email.{last}",
        "source": "sync",
        "data": {"email_id": message_id},
        "email": dict(email),
    }


async def sync_deliveries(
    store: Store,
    source: EmailStatusSource,
    campaign_id: str | None = None,
    *,
    concurrency: int = 4,
    chunk: int = 500,
) -> SyncResult:
    """Ask the provider about every delivery not yet final (sending/sent with a message id)."""
    import asyncio

    from sponsorcast.errors import CredentialsError, NotFound, TransportError

    if campaign_id is not None:
        with store.read() as conn:
            found = conn.execute(
                sa.select(campaign_t.c.id).where(campaign_t.c.id == campaign_id)
            ).first()
        if found is None:
            raise NotFound(
                f"Unknown campaign '{campaign_id}'.",
                hint="'sponsorcast campaigns list' shows the campaigns in the store.",
            )
    result = SyncResult()
    gate = asyncio.Semaphore(concurrency)

    async def one(message_id: str) -> None:
        async with gate:
            try:
                email = await source.get_email(message_id)
            except NotFound:
                result.missing += 1
                return
            except CredentialsError:
                raise
            except TransportError as exc:
                result.errors.append(exc.message)
                return
        payload = polled_payload(message_id, email)
        outcome = "ignored"
        if payload is not None:
            event_id = f"sync:{message_id}:{payload['type']}"
            outcome = apply_event(store, payload, event_id, "sync", polled=True).outcome
        if outcome == "applied":
            result.updated += 1
        else:
            result.unchanged += 1

    after = 0
    while True:
        with store.read() as conn:
            rows = conn.execute(_sync_query(campaign_id, after, chunk)).all()
        if not rows:
            break
        after = rows[-1].id
        result.checked += len(rows)
        await asyncio.gather(*(one(r.provider_message_id) for r in rows))
    return result
