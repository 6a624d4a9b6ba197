"""Resend webhook signatures (the Svix scheme): id, timestamp within 5 minutes, HMAC-SHA256."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from sponsorcast.errors import ConfigError, WebhookSignatureError

if TYPE_CHECKING:
    pass


WEBHOOK_TOLERANCE = 300  # seconds, either way


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
