"""Markdown to an HTML template, once per campaign, with the Jinja tags kept intact."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from markdown_it import MarkdownIt
from mdurl import encode

if TYPE_CHECKING:
    pass


# ``{{ … }}``, ``{% … %}`` and ``{# … #}``, protected from Markdown (which would mangle them
# in link targets) and put back into the HTML afterwards.
_JINJA_TAG = r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}"


# A line holding only statements or comments, or any single tag.
_JINJA_PROTECT = re.compile(
    r"(?m)^(?P<block>[ \t]*(?:(?:\{%[^\n]*?%\}|\{#[^\n]*?#\})[ \t]*)+)$|" + f"(?s:{_JINJA_TAG})"
)


ANCHOR_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)("([^"]*)"|'([^']*)')""", re.IGNORECASE)


_URL_SAFE = re.compile(r"(?:[A-Za-z0-9;/?:@&=+$,\-_.!~*'()#]|%[0-9A-Fa-f]{2})*")


def encode_url(url: str) -> str:
    if _URL_SAFE.fullmatch(url):  # the usual case, and much cheaper than mdurl
        return url

    return str(encode(url))


@lru_cache(maxsize=1)
def _markdown() -> Any:

    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


def markdown_to_html(body: str) -> tuple[str, dict[int, int]]:
    """Markdown → HTML template source, Jinja tags kept intact (done once per campaign).

    Each tag is swapped for an inert token before Markdown runs and put back afterwards. A line
    holding only statements (``{% for … %}``, ``{% endif %}``) becomes an HTML comment line,
    which Markdown passes through as a block of its own: a loop or condition around list items
    or paragraphs then wraps whole HTML elements instead of cutting a paragraph in two.

    Returns the HTML and, for each HTML line holding a Jinja tag, the body line it came from.
    """
    tags: list[tuple[str, int]] = []
    prefix = "SCJINJA"
    while prefix in body:
        prefix += "Q"

    def protect(match: re.Match[str]) -> str:
        line = body.count("\n", 0, match.start()) + 1
        if match.group("block") is not None:
            tags.append((match.group("block").strip(), line))
            return f"<!--{prefix}B{len(tags) - 1}Z-->"
        tags.append((match.group(0), line))
        return f"{prefix}{len(tags) - 1}Z"

    protected = _JINJA_PROTECT.sub(protect, body)
    rendered: str = _markdown().render(protected)
    pieces: list[str] = []
    lines: dict[int, int] = {}
    html_line = 1
    last = 0
    # (inside a code block Markdown escapes the comment: &lt;!--…--&gt;)
    restore = rf"<!--{prefix}B(\d+)Z-->|&lt;!--{prefix}B(\d+)Z--&gt;|{prefix}(\d+)Z"
    for match in re.finditer(restore, rendered):
        before = rendered[last : match.start()]
        html_line += before.count("\n")
        tag, body_line = tags[int(match.group(1) or match.group(2) or match.group(3))]
        lines.setdefault(html_line, body_line)
        pieces.append(before)
        pieces.append(tag)
        html_line += tag.count("\n")
        last = match.end()
    pieces.append(rendered[last:])
    return _hoist_list_loops("".join(pieces)), lines


# A for loop whose whole body is one list: the loop goes inside the list, so that the items
# it repeats make one list, not one list per item. The list holds no nested list.
_LIST_LOOP = re.compile(
    r"^(\{%-?\s*for\b[^\n]*?%\})\n(<(ul|ol)(?: start=\"\d+\")?>)\n"
    r"((?:(?!<ul|<ol|</ul|</ol|\{%-?\s*(?:end)?for\b)[^\n]*\n)*?)"
    r"(</\3>)\n(\{%-?\s*endfor\s*-?%\})$",
    re.MULTILINE,
)


def _hoist_list_loops(html: str) -> str:
    # Lines are kept: only the order of four lines changes, so error lines stay right.
    return _LIST_LOOP.sub(r"\2\n\1\n\4\6\n\5", html)
