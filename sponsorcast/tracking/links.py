"""The send engine's tracked links: open pixel, click redirects, one-click unsubscribe headers.

``campaign_links(body)`` lists the http(s) link targets of a campaign body in order of first
appearance; a click token carries the delivery id and the link's index in that list, and the
server re-derives the list from the stored ``Campaign.body``, so a redirect can only ever go
to a link of that campaign. A link target holding Jinja markup (personalised) is rewritten to
``/c/<token>?u=<rendered url>`` where the MAC also covers the rendered URL, and the server
checks that URL against the link's template before redirecting. Everything ``links_for``
returns is a pure function of (secret, delivery id, campaign body).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import quote

from markdown_it.common.normalize_url import normalizeLink

from sponsorcast.config import Config
from sponsorcast.render import StaticLinks, mailto_unsubscribe
from sponsorcast.tracking.tokens import (
    KIND_CLICK,
    KIND_OPEN,
    KIND_UNSUBSCRIBE,
    make_token,
    require_secret,
)

if TYPE_CHECKING:
    from sponsorcast.render import Links


_TEMPLATE_RE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)


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

    return str(normalizeLink(html.unescape(url)))


def _template_pattern(link: str) -> re.Pattern[str]:
    """A regex for the link as rendered: its literal pieces as written or as markdown-it
    normalises them, anything where the Jinja markup was."""

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
    config: Config,
    campaign_id: str,
    delivery_id: int,
    links: Sequence[str] | None = None,
    *,
    mailto: str | None = None,
) -> tuple[Links, dict[str, str]]:
    """Links and extra headers for one recipient (see the module docstring).

    ``links`` is ``campaign_links(body)`` of the campaign; without it, links are not rewritten.
    ``mailto``: the sponsor's own unsubscribe mailbox, instead of ``[tracking]``'s.
    """

    mailto = mailto or config.tracking.unsubscribe_mailto
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
