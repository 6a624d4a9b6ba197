"""Machine opens: pixel loads no person made, kept apart from the opens people made.

Opens are unreliable evidence. Apple Mail Privacy Protection fetches every image of every
email through Apple's proxies when the mail arrives, read or not; corporate security gateways
(Barracuda, Mimecast, Proofpoint, …) fetch links and images seconds after delivery to scan
them. Such an open is recorded (``opened_at``, ``open_count``, the event with ``"machine":
true``) but does not set ``human_opened_at``, which is what ``opened:`` and ``not_opened:``
audiences read. An open is taken for a machine's when

- it comes within ``MACHINE_SECONDS`` of the email being sent (no person opens that fast,
  a scanner does), or
- its user agent is a known scanner, a script, or a bare ``Mozilla/5.0``: the fetches of
  Apple's privacy proxy have been reported to send exactly that.

Gmail's image proxy (``GoogleImageProxy``) fetches when a person opens the email, so it
counts as a person's open. Clicks are better evidence than any open: prefer ``not_clicked``.
"""

from __future__ import annotations

import re
from datetime import datetime

MACHINE_SECONDS = 10.0
_MACHINE_AGENT = re.compile(
    r"barracuda|mimecast|proofpoint|messagelabs|symantec|trend ?micro|forcepoint|"
    r"\bbot\b|crawler|spider|python-requests|python-httpx|curl/|wget/|go-http-client|"
    r"^mozilla/5\.0$",
    re.IGNORECASE,
)


def machine_open(sent_at: datetime | None, at: datetime, user_agent: str | None = None) -> bool:
    """True when this open was most likely made by a machine (see the module)."""
    if user_agent is not None and _MACHINE_AGENT.search(user_agent.strip()):
        return True
    return sent_at is not None and (at - sent_at).total_seconds() < MACHINE_SECONDS
