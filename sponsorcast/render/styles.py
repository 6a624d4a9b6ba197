"""Inline styles on the Markdown tree, set once per campaign before the HTML is written.

Email clients drop ``<style>`` blocks (Gmail keeps only some, Outlook ignores most), so every
element the body can hold carries its look in a ``style`` attribute. The styles go on the
tokens of the parsed tree rather than through an HTML inliner run afterwards: the HTML is a
Jinja template at that point, and an HTML parser would re-escape the ``{{ … }}`` and
``{% … %}`` it holds. A paragraph holding only a ``{.button}`` link becomes a bulletproof
button: a one-cell table whose cell carries the accent colour, so Outlook shows it too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from markdown_it.token import Token

DEFAULT_ACCENT = "#1a56db"
TEXT_COLOR = "#1f2937"
MUTED_COLOR = "#6b7280"
FONT_STACK = (
    "-apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif, "
    "'Apple Color Emoji', 'Segoe UI Emoji'"
)
ACCENT = re.compile(r"#[0-9a-fA-F]{6}\Z|#[0-9a-fA-F]{3}\Z")

_BLOCK_STYLES = {
    "p": "margin:0 0 16px 0;",
    "h1": "margin:0 0 16px 0;font-size:24px;line-height:32px;font-weight:700;",
    "h2": "margin:24px 0 12px 0;font-size:20px;line-height:28px;font-weight:700;",
    "h3": "margin:20px 0 8px 0;font-size:17px;line-height:24px;font-weight:700;",
    "h4": "margin:16px 0 8px 0;font-size:16px;line-height:24px;font-weight:700;",
    "h5": "margin:16px 0 8px 0;font-size:16px;line-height:24px;font-weight:700;",
    "h6": "margin:16px 0 8px 0;font-size:16px;line-height:24px;font-weight:700;",
    "ul": "margin:0 0 16px 0;padding:0 0 0 24px;",
    "ol": "margin:0 0 16px 0;padding:0 0 0 24px;",
    "li": "margin:0 0 4px 0;",
    "blockquote": f"margin:0 0 16px 0;padding:0 0 0 12px;border-left:3px solid #d1d5db;color:{MUTED_COLOR};",
    "pre": "margin:0 0 16px 0;padding:12px;background:#f3f4f6;white-space:pre-wrap;"
    "word-break:break-word;font-family:Menlo,Consolas,monospace;font-size:13px;",
    "hr": "border:0;border-top:1px solid #e5e7eb;margin:24px 0;",
    "table": "border-collapse:collapse;margin:0 0 16px 0;",
    "th": "border:1px solid #e5e7eb;padding:6px 10px;text-align:left;",
    "td": "border:1px solid #e5e7eb;padding:6px 10px;",
}
_INLINE_STYLES = {
    "code": "font-family:Menlo,Consolas,monospace;font-size:13px;background:#f3f4f6;padding:1px 4px;",
    "image": "max-width:100%;height:auto;border:0;",
}


def link_style(accent: str) -> str:
    """A link in the accent colour; a long URL wraps instead of widening the email."""
    return f"color:{accent};text-decoration:underline;word-break:break-word;"


def button_cell_style(accent: str) -> str:
    """The coloured cell of a bulletproof button."""
    return f"border-radius:6px;background:{accent};"


def button_link_style(accent: str) -> str:
    """The link inside a button: padding on the link, so all of the button is clickable."""
    return (
        f"display:inline-block;padding:12px 24px;border-radius:6px;background:{accent};"
        "color:#ffffff;font-weight:600;text-decoration:none;"
    )


def style_tree(tokens: Sequence[Token], accent: str = DEFAULT_ACCENT) -> None:
    """Put the inline styles on every token of a parsed body, in place."""
    for index, token in enumerate(tokens):
        tag = token.tag
        if token.nesting == 1 and tag in _BLOCK_STYLES:
            token.attrSet("style", _BLOCK_STYLES[tag])
            if tag == "th":  # a header cell says what it heads, for screen readers
                token.attrSet("scope", "col")
        elif token.type == "hr":
            token.attrSet("style", _BLOCK_STYLES["hr"])
        elif token.type in ("fence", "code_block"):  # the style lands on <code> inside <pre>
            token.attrSet("style", _BLOCK_STYLES["pre"])
        elif token.type == "inline":
            for child in token.children or []:
                _style_inline(child, accent)
            if _is_button_paragraph(tokens, index):
                _make_button(tokens, index, accent)


def _style_inline(child: Token, accent: str) -> None:
    if child.type == "link_open":
        button = "button" in str(child.attrGet("class") or "").split()
        child.attrSet("style", button_link_style(accent) if button else link_style(accent))
    elif child.type == "code_inline":
        child.attrSet("style", _INLINE_STYLES["code"])
    elif child.type == "image":
        child.attrSet("style", _INLINE_STYLES["image"])


def _is_button_paragraph(tokens: Sequence[Token], index: int) -> bool:
    """A paragraph whose only content is one ``{.button}`` link."""
    if index == 0 or tokens[index - 1].type != "paragraph_open":
        return False
    children = [c for c in tokens[index].children or [] if c.type != "text" or c.content.strip()]
    return (
        len(children) >= 2
        and children[0].type == "link_open"
        and children[-1].type == "link_close"
        and "button" in str(children[0].attrGet("class") or "").split()
        and sum(1 for c in children if c.type == "link_open") == 1
    )


def _make_button(tokens: Sequence[Token], index: int, accent: str) -> None:
    """The paragraph around a button becomes a one-cell presentation table."""
    opening, closing = tokens[index - 1], tokens[index + 1]
    for token, tag in ((opening, "table"), (closing, "table")):
        token.tag = tag
        token.attrs = {}
    opening.attrSet("role", "presentation")
    opening.attrSet("cellspacing", "0")
    opening.attrSet("cellpadding", "0")
    opening.attrSet("border", "0")
    opening.attrSet("style", "margin:8px 0 24px 0;")
    opening.meta = {"button_cell": button_cell_style(accent)}


__all__ = [
    "ACCENT",
    "DEFAULT_ACCENT",
    "FONT_STACK",
    "MUTED_COLOR",
    "TEXT_COLOR",
    "button_cell_style",
    "button_link_style",
    "link_style",
    "style_tree",
]
