"""Clicks per link: which of a campaign's links were clicked, by how many recipients.

A link is counted as the campaign wrote it: a personalised link (``?ref={{ lead.id }}``) is one
link however many URLs it rendered to. Its text is the text of the link in the email's HTML.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from sponsorcast.render.markdown import convert_body
from sponsorcast.tracking.links import campaign_links, is_template, link_index

_ANCHOR = re.compile(
    r"""<a\b[^>]*?\bhref\s*=\s*("([^"]*)"|'([^']*)')[^>]*>(.*?)</a\s*>""", re.S | re.I
)
_IMAGE = re.compile(r"""<img\b[^>]*?\bsrc\s*=\s*("([^"]*)"|'([^']*)')""", re.S | re.I)
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")

OTHER_LINKS = "(links not in the campaign)"


@dataclass(frozen=True)
class LinkClicks:
    """One link's clicks: ``unique`` recipients, ``total`` clicks."""

    campaign: str
    url: str
    text: str
    unique: int
    total: int
    own: bool = True  # one of the campaign's links (else a URL that matched none of them)

    @property
    def personalised(self) -> bool:
        """True when the link differs per recipient (it holds Jinja markup)."""
        return is_template(self.url)


@dataclass(frozen=True)
class _Shown:
    texts: dict[int, str]
    images_only: frozenset[int]


@lru_cache(maxsize=16)
def _shown(body: str) -> _Shown:
    """The text of each link in the email, and the links that only ever are an image."""
    links = campaign_links(body)
    index = link_index(tuple(links))
    page = convert_body(body).html
    texts: dict[int, str] = {}
    for match in _ANCHOR.finditer(page):
        found = index.find(html.unescape(match.group(2) or match.group(3) or ""))
        if found is not None and found[0] not in texts:
            text = _SPACE.sub(" ", html.unescape(_TAG.sub(" ", match.group(4)))).strip()
            texts[found[0]] = text
    images = set()
    for match in _IMAGE.finditer(page):
        found = index.find(html.unescape(match.group(2) or match.group(3) or ""))
        if found is not None:
            images.add(found[0])
    return _Shown(texts, frozenset(images - set(texts)))


def link_clicks(
    campaign_id: str,
    body: str,
    keyed: Iterable[tuple[str, int, int]],
    *,
    anonymous: bool = False,
) -> list[LinkClicks]:
    """Every link of the campaign with its clicks, most clicked first.

    ``keyed``: (link key, total, unique) from ``query.clicks_per_key``. A key that is no link of
    the campaign (an old campaign's click, a URL edited on the way) gets a row of its own, or,
    when ``anonymous``, one row for all of them: such a URL may carry an address.
    """
    links = campaign_links(body)
    position = {link: i for i, link in enumerate(links)}
    index = link_index(tuple(links))
    shown = _shown(body)
    counts = [[0, 0] for _ in links]
    other: dict[str, list[int]] = {}
    for key, total, unique in keyed:
        i = position.get(key)
        if i is None:
            found = index.find(key)
            i = found[0] if found is not None else None
        unknown = OTHER_LINKS if anonymous else key
        bucket = counts[i] if i is not None else other.setdefault(unknown, [0, 0])
        bucket[0] += total
        bucket[1] += unique
    rows = [
        LinkClicks(campaign_id, link, shown.texts.get(i, ""), counts[i][1], counts[i][0])
        for i, link in enumerate(links)
        if i not in shown.images_only or counts[i][0]
    ]
    rows += [LinkClicks(campaign_id, url, "", u, t, own=False) for url, (t, u) in other.items()]
    order = {row.url: n for n, row in enumerate(rows)}
    return sorted(rows, key=lambda r: (-r.unique, -r.total, order[r.url]))


__all__ = ["OTHER_LINKS", "LinkClicks", "link_clicks"]
