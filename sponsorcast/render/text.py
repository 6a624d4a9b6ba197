"""The plain-text part, written from the same Markdown tree as the HTML part, once per campaign.

No Markdown syntax is left: emphasis is plain text, a link is its text followed by its URL in
brackets (just the URL when the text is the URL), list items start with ``- `` or ``1. ``,
headings are lines of their own, quotes start with ``> ``, code is indented. Jinja placeholders
pass through as text, to be put back by the caller; a line holding only statements
(``{% for %}``) leaves no empty line behind (its newline goes into a Jinja comment).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from markdown_it.token import Token

_TAGS = re.compile(r"<[^>]*>")


def tree_to_text(
    tokens: Sequence[Token],
    *,
    placeholder: str,
    closing: Callable[[str], bool],
    link_filter: str,
    keep_newlines: bool = False,
) -> str:
    """The text-part template source for a parsed Markdown body.

    ``placeholder`` starts every stand-in for a Jinja tag (``<!--`` + it: a statement-only
    line); ``closing`` tells whether such a line is a closing one (``{% endfor %}``). A link
    target made with template values goes through the ``link_filter`` filter, so that a value
    with a space is encoded in the text part as it is in the HTML part. ``keep_newlines``: a
    statement line keeps its newline (inside ``{% raw %}`` a Jinja comment would be printed).
    """
    after_statement = "\n" if keep_newlines else "{#\n#}"
    statement_marker = f"<!--{placeholder}B"
    out: list[str] = []
    blank_due = False
    lists: list[list[int | None]] = []  # per open list: [next number] or [None] for bullets
    quote = 0
    item_started = False
    i = 0
    while i < len(tokens):
        token = tokens[i]
        kind = token.type
        if kind == "html_block" and statement_marker in token.content:
            # an opening statement goes after the blank line that separates it from the block
            # before; a closing one ({% endfor %}) keeps the blank line for after it, so that
            # the block it repeats is not followed by one in every round
            if blank_due and not closing(token.content):
                out.append("\n")
                blank_due = False
            out.append(token.content.rstrip("\n") + after_statement)
            i += 1
            continue
        if kind in ("bullet_list_open", "ordered_list_open"):
            start = token.attrGet("start")
            lists.append([int(start) if start is not None else 1] if kind[0] == "o" else [None])
            if blank_due and len(lists) == 1:
                out.append("\n")
            blank_due = False
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
            blank_due = not lists
        elif kind == "list_item_open":
            number = lists[-1][0]
            marker = "- " if number is None else f"{number}. "
            if number is not None:
                lists[-1][0] = number + 1
            out.append(_prefix(quote) + "  " * (len(lists) - 1) + marker)
            item_started = True
        elif kind == "list_item_close":
            item_started = False
        elif kind == "blockquote_open":
            if blank_due and not quote:
                out.append("\n")
                blank_due = False
            quote += 1
        elif kind == "blockquote_close":
            quote -= 1
        elif kind in ("paragraph_open", "heading_open"):
            if blank_due and not item_started:
                out.append(_prefix(quote) + "\n" if quote else "\n")
            blank_due = False
        elif kind == "inline":
            text = _inline(token.children or [], placeholder, link_filter)
            indent = "  " * len(lists) if lists else ""
            lines = text.split("\n")
            first = lines[0] if item_started else _prefix(quote) + lines[0]
            rest = [_prefix(quote) + (indent + line if lists else line) for line in lines[1:]]
            out.append("\n".join([first, *rest]) + "\n")
            item_started = False
        elif kind in ("paragraph_close", "heading_close"):
            blank_due = not lists or not tokens[i - 2].hidden
        elif kind in ("fence", "code_block"):
            if blank_due:
                out.append("\n")
            out.append("".join(f"    {line}\n" for line in token.content.rstrip("\n").split("\n")))
            blank_due = True
        elif kind == "hr":
            if blank_due:
                out.append("\n")
            out.append("----\n")
            blank_due = True
        elif kind == "html_block":
            text = _TAGS.sub("", token.content).strip()
            if text:
                if blank_due:
                    out.append("\n")
                out.append(text + "\n")
                blank_due = True
        elif kind == "table_open":
            if blank_due:
                out.append("\n")
            i = _table(tokens, i, out)
            blank_due = True
        i += 1
    return "".join(out)


def _prefix(depth: int) -> str:
    return "> " * depth


def _inline(children: Sequence[Token], placeholder: str, link_filter: str) -> str:
    parts: list[str] = []
    link: list[str] | None = None  # the text of the link being read
    href = ""
    for child in children:
        kind = child.type
        target = link if link is not None else parts
        if kind == "text" or kind == "code_inline":
            target.append(child.content)
        elif kind == "softbreak" or kind == "hardbreak":
            target.append("\n")
        elif kind == "image":
            target.append(child.content or str(child.attrGet("alt") or ""))
        elif kind == "link_open":
            link, href = [], str(child.attrGet("href") or "")
            if placeholder in href:
                href = f"{{% filter {link_filter} %}}{href}{{% endfilter %}}"
        elif kind == "link_close" and link is not None:
            text = "".join(link)
            parts.append(href if text in (href, "") or _bare(href) == text else f"{text} ({href})")
            link = None
        elif kind == "html_inline":
            continue
    return "".join(parts)


def _bare(url: str) -> str:
    """``mailto:a@b`` → ``a@b``: an autolinked address is not written twice."""
    return url[len("mailto:") :] if url.startswith("mailto:") else url


def _table(tokens: Sequence[Token], i: int, out: list[str]) -> int:
    """Rows of cells joined by `` | ``; returns the index of ``table_close``."""
    row: list[str] = []
    while tokens[i].type != "table_close":
        token = tokens[i]
        if token.type == "inline":
            row.append(_inline(token.children or [], "\x00", ""))
        elif token.type == "tr_close":
            out.append(" | ".join(row) + "\n")
            row = []
        i += 1
    return i


__all__ = ["tree_to_text"]
