"""Signed link tokens: ``<22 chars base64url HMAC-SHA256/128><body>``.

The body is the delivery id in hex, plus ``x<link index in hex>`` for a click. The MAC
covers a kind (``o`` open, ``c`` click, ``u`` unsubscribe), so a token for one route is
worthless on another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from sponsorcast.config import Config
from sponsorcast.errors import ConfigError

if TYPE_CHECKING:
    pass


MAC_BYTES = 16


MAC_CHARS = 22  # base64url of 16 bytes, unpadded


KIND_OPEN = "o"
KIND_CLICK = "c"
KIND_UNSUBSCRIBE = "u"


_BODY_RE = re.compile(r"^([0-9a-f]{1,16})(?:x([0-9a-f]{1,8}))?$")


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
