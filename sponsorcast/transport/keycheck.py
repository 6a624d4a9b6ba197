"""Asking the provider whether it takes the API key: one cheap request, ``GET /domains``.

``send`` asks while the render check runs, so that a refused key is found before anything is
recorded, and the limit the answer announces (``ratelimit-limit``) is known before the first
email. ``doctor`` asks to report. A key with sending access only is refused that endpoint with
401 ``restricted_api_key``: the key itself is accepted.

===========================================  =============
answer                                       verdict
===========================================  =============
401 ``restricted_api_key``                   ``sending-only``
401, 403 (any other name), 404               ``refused``
5xx, a timeout, no connection                ``unknown`` (the run's own retries decide)
anything else (2xx, a 429, …)                ``accepted``
===========================================  =============
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import httpx

from sponsorcast import __version__

Verdict = Literal["accepted", "sending-only", "refused", "unknown"]
KEY_CHECK_TIMEOUT = 5.0  # seconds the key check may take before the run goes on without it


@dataclass(frozen=True)
class KeyAnswer:
    """What the provider said of the key; ``headers`` is None when there was no answer."""

    verdict: Verdict
    detail: str
    status: int | None = None
    headers: dict[str, str] | None = field(default=None, repr=False)
    sent_at: float = 0.0  # time.monotonic() when the request left


def ask_provider(
    base_url: str, key: str, timeout: float, *, client: httpx.Client | None = None
) -> KeyAnswer:
    """One ``GET /domains`` with ``key``: does the provider take it?"""
    base = base_url.rstrip("/")
    headers = {"Authorization": f"Bearer {key.strip()}", "User-Agent": f"sponsorcast/{__version__}"}
    sent_at = time.monotonic()
    try:
        if client is not None:
            response = client.get(f"{base}/domains", headers=headers, timeout=timeout)
        else:
            response = httpx.get(f"{base}/domains", headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        return KeyAnswer(
            "unknown", f"{base} is not reachable ({type(exc).__name__})", None, None, sent_at
        )
    status = response.status_code
    kept = {
        k: v
        for k, v in response.headers.items()
        if k.lower().startswith(("ratelimit-", "retry-after"))
    }
    name = _error_name(response)
    if status == 401 and name == "restricted_api_key":
        verdict: Verdict = "sending-only"
        detail = f"{base} accepted the key (sending access only)"
    elif status in (401, 403):
        verdict = "refused"
        detail = f"{base} refused the key ({status})"
    elif status == 404:
        verdict = "refused"
        detail = f"{base} answered 404 Not Found: is resend.base_url (or RESEND_BASE_URL) right?"
    elif status >= 500:
        verdict = "unknown"
        detail = f"{base} answered {status}"
    else:
        verdict = "accepted"
        detail = f"{base} accepted the key"
    return KeyAnswer(verdict, detail, status, kept, sent_at)


def _error_name(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("name", "")) if isinstance(body, dict) else ""


__all__ = ["KEY_CHECK_TIMEOUT", "KeyAnswer", "Verdict", "ask_provider"]
