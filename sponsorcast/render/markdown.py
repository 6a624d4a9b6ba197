"""Markdown to the HTML and text-part templates, once per campaign, with the Jinja tags kept intact."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from markdown_it import MarkdownIt
from mdit_py_plugins.attrs import attrs_plugin

from sponsorcast.render.environment import LINK_FILTER
from sponsorcast.render.styles import DEFAULT_ACCENT, style_tree
from sponsorcast.render.text import tree_to_text

# ``{{ … }}``, ``{% … %}`` and ``{# … #}``, protected from Markdown (which would mangle them
# in link targets) and put back into the HTML afterwards.
_JINJA_TAG = r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}"


# A line holding only statements or comments, or any single tag.
_JINJA_PROTECT = re.compile(
    r"(?m)^(?P<block>[ \t]*(?:(?:\{%[^\n]*?%\}|\{#[^\n]*?#\})[ \t]*)+)$|" + f"(?s:{_JINJA_TAG})"
)


# A statement line that closes a block, or switches branch: it follows what it closes.
_CLOSING = re.compile(r"\{%-?\s*(?:end\w*|else|elif)\b")


ANCHOR_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)("([^"]*)"|'([^']*)')""", re.IGNORECASE)


@lru_cache(maxsize=2)
def _markdown(line_breaks: bool) -> Any:
    md = MarkdownIt("commonmark", {"breaks": line_breaks}).enable(["table", "strikethrough"])
    md.use(attrs_plugin, allowed=["class"])
    md.add_render_rule("paragraph_open", _paragraph_open)
    md.add_render_rule("paragraph_close", _paragraph_close)
    return md


def _paragraph_open(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    """A button's paragraph opens its table, row and coloured cell (see ``styles``)."""
    html: str = self.renderToken(tokens, idx, options, env)
    cell = (tokens[idx].meta or {}).get("button_cell")
    return html.rstrip("\n") + f'<tr><td style="{cell}">' if cell else html


def _paragraph_close(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    if tokens[idx].tag == "table":
        return "</td></tr></table>\n"
    html: str = self.renderToken(tokens, idx, options, env)
    return html


@dataclass(frozen=True)
class Converted:
    """A body converted once: the HTML and text-part templates, and for each template line
    holding a Jinja tag, the body line it came from."""

    html: str
    html_lines: dict[int, int]
    text: str
    text_lines: dict[int, int]


def convert_body(body: str, *, line_breaks: bool = True, accent: str = DEFAULT_ACCENT) -> Converted:
    """Markdown → HTML (styled inline) and plain-text templates, Jinja tags kept intact.

    Each tag is swapped for an inert token before Markdown runs and put back afterwards. A line
    holding only statements (``{% for … %}``, ``{% endif %}``) becomes an HTML comment line,
    which Markdown passes through as a block of its own: a loop or condition around list items
    or paragraphs then wraps whole HTML elements instead of cutting a paragraph in two.
    ``line_breaks``: a single line break in the source is a line break in the email.
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
    md = _markdown(line_breaks)
    tokens = md.parse(protected)
    style_tree(tokens, accent)
    html, html_lines = _restore(md.renderer.render(tokens, md.options, {}), tags, prefix)
    marker = f"<!--{prefix}B"

    def closing(comment: str) -> bool:
        number = re.search(rf"{marker}(\d+)Z", comment)
        return number is not None and _CLOSING.match(tags[int(number.group(1))][0]) is not None

    text_source = tree_to_text(
        tokens,
        placeholder=prefix,
        closing=closing,
        link_filter=LINK_FILTER,
        keep_newlines=re.search(r"\{%-?\s*raw\b", body) is not None,
    )
    text, text_lines = _restore(text_source, tags, prefix)
    return Converted(_hoist_list_loops(html), html_lines, text, text_lines)


def markdown_to_html(body: str) -> tuple[str, dict[int, int]]:
    """Markdown → HTML template source, Jinja tags kept intact (see ``convert_body``)."""
    converted = convert_body(body)
    return converted.html, converted.html_lines


def _restore(rendered: str, tags: list[tuple[str, int]], prefix: str) -> tuple[str, dict[int, int]]:
    pieces: list[str] = []
    lines: dict[int, int] = {}
    out_line = 1
    last = 0
    # (inside a code block Markdown escapes the comment: &lt;!--…--&gt;)
    restore = rf"<!--{prefix}B(\d+)Z-->|&lt;!--{prefix}B(\d+)Z--&gt;|{prefix}(\d+)Z"
    for match in re.finditer(restore, rendered):
        before = rendered[last : match.start()]
        out_line += before.count("\n")
        tag, body_line = tags[int(match.group(1) or match.group(2) or match.group(3))]
        lines.setdefault(out_line, body_line)
        pieces.append(before)
        pieces.append(tag)
        out_line += tag.count("\n")
        last = match.end()
    pieces.append(rendered[last:])
    return "".join(pieces), lines


# A for loop whose whole body is one list: the loop goes inside the list, so that the items
# it repeats make one list, not one list per item. The list holds no nested list.
_LIST_LOOP = re.compile(
    r"^(\{%-?\s*for\b[^\n]*?%\})\n(<(ul|ol)\b[^>\n]*>)\n"
    r"((?:(?!<ul|<ol|</ul|</ol|\{%-?\s*(?:end)?for\b)[^\n]*\n)*?)"
    r"(</\3>)\n(\{%-?\s*endfor\s*-?%\})$",
    re.MULTILINE,
)


def _hoist_list_loops(html: str) -> str:
    # Lines are kept: only the order of four lines changes, so error lines stay right.
    return _LIST_LOOP.sub(r"\2\n\1\n\4\6\n\5", html)
