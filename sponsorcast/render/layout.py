"""The layout every HTML part is wrapped in, built once per campaign from the sponsor's look.

A centred container of at most 600 px made of ``role="presentation"`` tables (what Outlook
desktop lays out reliably), a system font stack at 16/26 px, a white card on a light grey
page, the sponsor's logo on top and the postal address and unsubscribe link underneath. All
of it is styled inline; the one ``<style>`` block holds only what cannot be inline: the media
query that lets the container shrink on a phone and the dark-mode colours. Long unbroken
URLs wrap (``overflow-wrap`` on the card), so nothing scrolls sideways at 375 px. The
preheader, when there is one, is the first thing in the body: hidden, and padded with
invisible characters so that the inbox preview does not run on into the body text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sponsorcast.render.styles import FONT_STACK, MUTED_COLOR, TEXT_COLOR

RTL_LANGUAGES = frozenset({"ar", "fa", "he", "ur", "yi", "ps", "sd", "ug", "dv"})
PAGE_BACKGROUND = "#f3f4f6"
PREHEADER_PADDING = "&#847;&zwnj;&nbsp;" * 90  # keeps the body out of the inbox preview

_STYLE_BLOCK = (
    "<style>\n"
    "@media only screen and (max-width: 620px) {\n"
    "  .sc-container { width: 100% !important; }\n"
    "  .sc-pad { padding-left: 16px !important; padding-right: 16px !important; }\n"
    "}\n"
    "@media (prefers-color-scheme: dark) {\n"
    "  .sc-page { background: #111827 !important; }\n"
    "  .sc-card { background: #1f2937 !important; color: #f3f4f6 !important; }\n"
    "  .sc-foot { color: #9ca3af !important; }\n"
    "}\n"
    "</style>\n"
)


class EmailLayout(Protocol):
    """What wraps a body into a whole HTML part: the default layout, or a project's file."""

    def wrap(self, *, subject: str, preheader: str, body: str, unsubscribe: str, pixel: str) -> str:
        """One recipient's whole HTML part."""
        ...


def hidden_preheader(preheader: str) -> str:
    """The preview text as the first, invisible element of the body (empty without one)."""
    if not preheader:
        return ""
    return (
        '<div style="display:none;max-height:0;max-width:0;overflow:hidden;opacity:0;'
        'mso-hide:all;font-size:1px;line-height:1px;">'
        f"{html.escape(preheader)}{PREHEADER_PADDING}</div>\n"
    )


@dataclass(frozen=True)
class Layout:
    """The HTML around a body: fixed strings, joined with the per-recipient parts."""

    head: str  # up to <title>
    top: str  # from </title> to where the preheader goes
    container: str  # from after the preheader to the body
    footer: str  # from after the body to the unsubscribe link's URL
    bottom: str  # from after that URL to where the pixel goes

    def wrap(self, *, subject: str, preheader: str, body: str, unsubscribe: str, pixel: str) -> str:
        """One recipient's whole HTML part."""
        esc = html.escape
        hidden = hidden_preheader(preheader)
        return (
            f"{self.head}<title>{esc(subject)}</title>{self.top}{hidden}{self.container}"
            f"{body.rstrip()}\n{self.footer}{esc(unsubscribe, quote=True)}{self.bottom}"
            f"{pixel}</body>\n</html>\n"
        )


def text_direction(language: str) -> str:
    """``rtl`` for right-to-left scripts (Arabic, Hebrew, Persian, …), else ``ltr``."""
    return "rtl" if language.split("-")[0].lower() in RTL_LANGUAGES else "ltr"


def build_layout(
    *, language: str, sponsor_name: str, postal_address: str, logo_url: str | None
) -> Layout:
    """The default layout for one campaign (its language) and its sponsor (logo, address)."""
    esc = html.escape
    direction = text_direction(language)
    align = "right" if direction == "rtl" else "left"
    head = (
        f'<!DOCTYPE html>\n<html lang="{esc(language, quote=True)}" dir="{direction}">\n<head>\n'
        '<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="x-apple-disable-message-reformatting">\n'
        '<meta name="color-scheme" content="light dark">\n'
        '<meta name="supported-color-schemes" content="light dark">\n'
    )
    top = (
        f"\n{_STYLE_BLOCK}</head>\n"
        f'<body class="sc-page" style="margin:0;padding:0;background:{PAGE_BACKGROUND};">\n'
    )
    logo = (
        '<tr><td class="sc-pad" style="padding:0 40px 16px 40px;text-align:center;">'
        f'<img src="{esc(logo_url, quote=True)}" alt="{esc(sponsor_name, quote=True)}" '
        'width="160" style="max-width:160px;width:160px;height:auto;border:0;"></td></tr>\n'
        if logo_url
        else ""
    )
    container = (
        f'<table role="presentation" width="100%" cellspacing="0" cellpadding="0" border="0" '
        f'class="sc-page" style="width:100%;background:{PAGE_BACKGROUND};">\n'
        '<tr><td align="center" style="padding:24px 8px;">\n'
        '<table role="presentation" class="sc-container" width="600" cellspacing="0" '
        'cellpadding="0" border="0" style="width:600px;max-width:600px;margin:0 auto;">\n'
        f"{logo}"
        '<tr><td class="sc-card sc-pad" style="background:#ffffff;padding:32px 40px;'
        f"border-radius:8px;font-family:{FONT_STACK};font-size:16px;line-height:26px;"
        f'color:{TEXT_COLOR};text-align:{align};overflow-wrap:anywhere;word-break:break-word;">\n'
    )
    address = esc(postal_address) + "<br>\n" if postal_address else ""
    footer = (
        "</td></tr>\n"
        '<tr><td class="sc-foot sc-pad" style="padding:16px 40px;'
        f"font-family:{FONT_STACK};font-size:12px;line-height:18px;color:{MUTED_COLOR};"
        'text-align:center;">\n'
        f'{address}<a href="'
    )
    bottom = (
        f'" style="color:{MUTED_COLOR};text-decoration:underline;">Unsubscribe</a>\n'
        "</td></tr>\n</table>\n</td></tr>\n</table>\n"
    )
    return Layout(head=head, top=top, container=container, footer=footer, bottom=bottom)


# Stand-ins for what a layout file's slots hold per recipient; never in real text.
_SLOTS = ("content", "subject", "preheader", "unsubscribe_url")
_SLOT_MARK = "\x00sc-slot-{}\x00"
_SLOT = re.compile("\x00sc-slot-(" + "|".join(_SLOTS) + ")\x00")


@dataclass(frozen=True)
class FileLayout:
    """A project's layout file, rendered once per campaign with its slots left open.

    ``pieces`` alternates fixed HTML and slot names: ``["<html>…<td>", "content", "</td>…"]``.
    """

    pieces: tuple[str, ...]

    def wrap(self, *, subject: str, preheader: str, body: str, unsubscribe: str, pixel: str) -> str:
        """One recipient's whole HTML part, the slots filled (escaped where they are text)."""
        values = {
            "content": body.rstrip() + "\n",
            "subject": html.escape(subject),
            "preheader": hidden_preheader(preheader),
            "unsubscribe_url": html.escape(unsubscribe, quote=True),
        }
        out = [values[p] if i % 2 else p for i, p in enumerate(self.pieces)]
        page = "".join(out)
        return page.replace("</body>", pixel + "</body>", 1) if pixel else page


def file_layout(rendered: str) -> tuple[FileLayout | None, str | None]:
    """Split a layout file rendered with slot stand-ins; or None and why it cannot be used."""
    parts = _SLOT.split(rendered)
    slots = parts[1::2]
    if slots.count("content") != 1:
        return None, "a layout must hold {{ content }} exactly once"
    if "unsubscribe_url" not in slots:
        return None, "a layout must link {{ unsubscribe_url }}: every email needs it"
    if "preheader" not in slots:  # the preview text goes first in the body all the same
        content_at = parts.index("content", 1)
        for i in range(0, content_at, 2):
            match = re.search(r"<body\b[^>]*>\n?", parts[i])
            if match is not None:
                head, rest = parts[i][: match.end()], parts[i][match.end() :]
                parts = [*parts[:i], head, "preheader", rest, *parts[i + 1 :]]
                break
        else:
            return None, "a layout without {{ preheader }} must have a <body> before {{ content }}"
    return FileLayout(tuple(parts)), None


def slot_values() -> Mapping[str, Any]:
    """What a layout file's slots are rendered with, once per campaign: stand-ins."""
    from markupsafe import Markup  # jinja2's own dependency

    return {name: Markup(_SLOT_MARK.format(name)) for name in _SLOTS}


__all__ = [
    "EmailLayout",
    "FileLayout",
    "Layout",
    "build_layout",
    "file_layout",
    "hidden_preheader",
    "slot_values",
    "text_direction",
]
