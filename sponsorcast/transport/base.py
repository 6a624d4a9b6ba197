"""The types every transport shares: the email, the outcome, the protocol and their checks.

The send engine hands a transport a batch of ``OutgoingEmail`` and a stable idempotency key
and gets back a ``BatchOutcome`` or one of the errors of ``sponsorcast.errors``:

- ``AuthError`` (exit 3): 401/403, no ``RESEND_API_KEY``, or a base URL that answers 404;
  stop, mark nothing failed.
- ``QuotaExceeded`` (a ``CampaignPaused``): daily/monthly quota; pause, resume later.
- ``BatchRejected``: the provider refused the whole request for good (e.g. 422
  ``invalid_from_address``, 409 ``invalid_idempotent_request``, 451); fail its deliveries
  with ``.reason``.
- ``OutcomeUnknown``: retries exhausted (5xx, 429, timeouts, dropped connections); the
  request may have been accepted: keep the batch claimable and re-send it under the SAME key
  with the SAME emails (the provider then replays its first answer instead of sending twice).

A payload is a pure function of its emails: ``to_resend`` and the JSON encoding are
deterministic, so a re-sent batch is byte-for-byte the same request.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    pass

_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
TAG_MAX = 256


def tag_safe(value: str) -> str:
    """Turn any string into a valid Resend tag name/value (ASCII letters, digits, ``_``, ``-``)."""
    return _TAG_UNSAFE.sub("_", value)[:TAG_MAX]


@dataclass(frozen=True)
class OutgoingEmail:
    """One rendered email, ready for a transport; ``delivery_id`` is the ledger id."""

    delivery_id: int  # ledger id; test sends (not in the ledger) use 0 or negative ids
    from_address: str
    to: str
    subject: str
    html: str
    text: str
    reply_to: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)  # e.g. List-Unsubscribe
    tags: tuple[tuple[str, str], ...] = ()  # e.g. (("campaign", "spring"), ("delivery", "12"))

    def to_resend(self) -> dict[str, Any]:
        """This email as a Resend ``SendEmailRequest``: fixed key order, empty optionals left out.

        Header names are sorted and tag names/values are made tag-safe (``tag_safe``) so the
        payload does not depend on how the caller built them.
        """
        body: dict[str, Any] = {"from": self.from_address, "to": [self.to], "subject": self.subject}
        if self.html:
            body["html"] = self.html
        if self.text:
            body["text"] = self.text
        if self.reply_to:
            body["reply_to"] = self.reply_to
        if self.headers:
            body["headers"] = {name: self.headers[name] for name in sorted(self.headers)}
        if self.tags:
            body["tags"] = [{"name": tag_safe(n), "value": tag_safe(v)} for n, v in self.tags]
        return body


@dataclass
class BatchOutcome:
    """What the provider did with a batch: accepted (with message ids) and rejected emails."""

    accepted: dict[int, str] = field(default_factory=dict)  # delivery_id -> provider message id
    rejected: dict[int, str] = field(default_factory=dict)  # delivery_id -> provider's message


class Transport(Protocol):
    """Carries batches of emails; one instance per run, closed with ``aclose``."""

    name: str  # "resend" / "outbox"
    sends_for_real: bool

    async def send_batch(
        self, emails: Sequence[OutgoingEmail], idempotency_key: str
    ) -> BatchOutcome:
        """Send one batch under one idempotency key; raise a ``TransportError`` on failure."""
        ...

    def preflight(self) -> Callable[[], None]:
        """Before anything is recorded: take a slot for one question to the provider now,
        and return the question (blocking; it raises ``AuthError`` when the provider refuses
        our key). Run beside the render check."""
        ...

    async def aclose(self) -> None:
        """Release connections and files."""
        ...


_KEY_SAFE = re.compile(r"^[\x21-\x7e]+$")


def api_key_problem(key: str) -> str | None:
    """Why an API key cannot be sent in an HTTP header, said without quoting the key; or None."""
    if not _KEY_SAFE.match(key.strip()):
        return (
            "RESEND_API_KEY contains spaces, line breaks or non-ASCII characters; an API key "
            "has none (copy it again from the Resend dashboard)"
        )
    return None


def freeze_emails(emails: Sequence[OutgoingEmail]) -> bytes:
    """Every field of a batch's emails as compressed JSON, to re-send them unchanged later."""
    rows = [
        [
            e.delivery_id,
            e.from_address,
            e.to,
            e.subject,
            e.html,
            e.text,
            e.reply_to,
            [[k, v] for k, v in e.headers.items()],
            [[k, v] for k, v in e.tags],
        ]
        for e in emails
    ]
    return zlib.compress(json.dumps(rows, ensure_ascii=False, separators=(",", ":")).encode(), 1)


def thaw_emails(blob: bytes) -> list[OutgoingEmail]:
    """The emails ``freeze_emails`` kept, field for field."""
    rows = json.loads(zlib.decompress(blob))
    return [
        OutgoingEmail(
            delivery_id=int(d),
            from_address=f,
            to=t,
            subject=s,
            html=h,
            text=x,
            reply_to=r,
            headers={str(k): str(v) for k, v in hs},
            tags=tuple((str(k), str(v)) for k, v in ts),
        )
        for d, f, t, s, h, x, r, hs, ts in rows
    ]


def check_batch(emails: Sequence[OutgoingEmail], idempotency_key: str) -> None:
    """Refuse a batch a transport cannot map back to deliveries (programming errors)."""
    if not emails:
        raise ValueError("A batch needs at least one email.")
    if not 1 <= len(idempotency_key) <= 256:
        raise ValueError("An idempotency key must be 1 to 256 characters long.")
    ids = [email.delivery_id for email in emails]
    if len(set(ids)) != len(ids):
        raise ValueError("Delivery ids must be unique within a batch (use -1, -2, … for tests).")


__all__ = [
    "BatchOutcome",
    "OutgoingEmail",
    "Transport",
    "api_key_problem",
    "check_batch",
    "freeze_emails",
    "tag_safe",
    "thaw_emails",
]
