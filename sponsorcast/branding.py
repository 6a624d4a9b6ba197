"""A sponsor's look in its emails: accent colour, logo, unsubscribe mailbox and layout file.

The values go into HTML attributes and headers of every email, so each is refused unless it
is exactly what it claims to be: a ``#rrggbb`` colour, an ``https://`` image URL without
quotes, spaces or control characters, a ``mailto:`` URL or a single address, a layout file
under the project's ``layouts/`` folder.
"""

from __future__ import annotations

import re

BRANDING_KEYS = ("accent_color", "logo_url", "unsubscribe_mailto", "layout")
URL_MAX = 2000

_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})\Z")
_URL = re.compile(r"https://[A-Za-z0-9.-]+(?::\d+)?(?:/[A-Za-z0-9._~!$&'()*+,;=:@%/?#-]*)?\Z")


def branding_problem(key: str, value: str) -> str | None:
    """Why ``value`` cannot be the sponsor's ``key``, or None when it can."""
    if key == "accent_color":
        return None if _COLOR.match(value) else "it must be a colour like #1a56db"
    if key == "logo_url":
        if len(value) > URL_MAX or not _URL.match(value) or "'" in value:
            return "it must be an https:// image URL without spaces or quotes"
        return None
    if key == "unsubscribe_mailto":
        from sponsorcast.headers import mailbox_problem  # on use: keeps start-up fast

        address = value[len("mailto:") :].split("?", 1)[0] if value.startswith("mailto:") else value
        problem = mailbox_problem(address)
        return None if problem is None else f"it must be one address or a mailto: URL ({problem})"
    if key == "layout":
        parts = value.replace("\\", "/").split("/")
        if value.startswith("/") or ".." in parts or parts[0] != "layouts" or len(parts) < 2:
            return "it must be a file in the project's layouts/ folder, like layouts/acme.html"
        return None
    return f"'{key}' is not a branding setting"


__all__ = ["BRANDING_KEYS", "URL_MAX", "branding_problem"]
