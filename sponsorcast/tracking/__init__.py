"""Tracking: what happens after an email leaves — signed links, webhooks, events, ``sync``, ``serve``.

Rule of this package: every change to a delivery after sending goes through ``events`` (from
a webhook, a saved file or ``sync``) or ``actions`` (this server's own open, click and
unsubscribe), each applied once; ``server`` is only the HTTP front end and holds no logic of
its own beyond refusing what it has not vetted. Nothing here sends email.

- ``tokens``: signed link tokens (HMAC, one kind per route)
- ``links``: the tracked links and List-Unsubscribe headers a sent email carries
- ``webhooks``: Svix signature checks
- ``events``: applying a provider event to its delivery; ``events import``
- ``actions``: opens, clicks, unsubscribes
- ``sync``: polling Resend for deliveries not yet final
- ``server``: the Starlette app behind ``sponsorcast serve`` (imported on its own)
"""

from __future__ import annotations

from sponsorcast.tracking.actions import (
    Recipient,
    record_click,
    record_open,
    resolve_click,
    unsubscribe,
    unsubscribe_target,
)
from sponsorcast.tracking.events import (
    EMAIL_EVENTS,
    Applied,
    ImportResult,
    apply_event,
    apply_event_conn,
    import_events,
    parse_event_line,
    parse_event_time,
    payload_event_id,
    read_events_file,
)
from sponsorcast.tracking.links import (
    LinkIndex,
    TrackingLinks,
    campaign_links,
    is_template,
    link_index,
    links_for,
    unsubscribe_headers,
)
from sponsorcast.tracking.sync import (
    NOT_FINAL,
    SYNC_EVENTS,
    EmailStatusSource,
    SyncResult,
    polled_payload,
    sync_deliveries,
)
from sponsorcast.tracking.tokens import (
    KIND_CLICK,
    KIND_OPEN,
    KIND_UNSUBSCRIBE,
    MAC_BYTES,
    MAC_CHARS,
    TokenData,
    make_token,
    read_token,
    require_secret,
)
from sponsorcast.tracking.webhooks import (
    WEBHOOK_TOLERANCE,
    verify_webhook,
)

__all__ = [
    "EMAIL_EVENTS",
    "KIND_CLICK",
    "KIND_OPEN",
    "KIND_UNSUBSCRIBE",
    "MAC_BYTES",
    "MAC_CHARS",
    "NOT_FINAL",
    "SYNC_EVENTS",
    "WEBHOOK_TOLERANCE",
    "Applied",
    "EmailStatusSource",
    "ImportResult",
    "LinkIndex",
    "Recipient",
    "SyncResult",
    "TokenData",
    "TrackingLinks",
    "apply_event",
    "apply_event_conn",
    "campaign_links",
    "import_events",
    "is_template",
    "link_index",
    "links_for",
    "make_token",
    "parse_event_line",
    "parse_event_time",
    "payload_event_id",
    "polled_payload",
    "read_events_file",
    "read_token",
    "record_click",
    "record_open",
    "require_secret",
    "resolve_click",
    "sync_deliveries",
    "unsubscribe",
    "unsubscribe_headers",
    "unsubscribe_target",
    "verify_webhook",
]
