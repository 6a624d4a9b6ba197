"""Header values that cannot smuggle in another header or another recipient.

Every value that ends up in an email header — a subject, a from or reply-to address, from a
campaign file, ``sponsorcast.toml`` or a lead's data — passes through here before anything
is snapshotted. A control character (CR, LF, VT, FF, NUL, U+0085, …) or a Unicode line or
paragraph separator is refused outright: some mail software treats each as a line break,
so any of them could start a ``Bcc:`` line. An address must be exactly one mailbox, parsed
by the standard library's RFC 5322 parser (no lists, no groups, no trailing junk), with a
domain that email-validator accepts (internationalised domains included).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any

# What a rendered subject's lead data may carry that only means "a new line": folded to a space.
LINE_SEPARATORS = re.compile(r"\s*[\r\n\t\v\f\x1c-\x1e\x85\u2028\u2029]+\s*")
_SEPARATORS = frozenset("\u2028\u2029")
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
# an ASCII dot-atom at a domain of two or more ASCII labels with a letter-only last label
_PLAIN_ADDRESS = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@(?:{_LABEL}\.)+[A-Za-z]{{2,63}}\Z")


def header_problem(value: str) -> str | None:
    """Why ``value`` cannot go into a header (a control character or line separator), or None."""
    if value.isprintable():  # the usual case, checked in C
        return None
    for ch in value:
        if unicodedata.category(ch) == "Cc" or ch in _SEPARATORS:
            return f"it contains {describe(ch)}, which could end the header line"
    return None


def describe(ch: str) -> str:
    """A character as ``U+000D (CARRIAGE RETURN)``, readable in one error line."""
    name = unicodedata.name(ch, "") or _CONTROL_NAMES.get(ch, "a control character")
    return f"U+{ord(ch):04X} ({name})"


_CONTROL_NAMES = {
    "\t": "TAB",
    "\n": "LINE FEED",
    "\v": "VERTICAL TAB",
    "\f": "FORM FEED",
    "\r": "CARRIAGE RETURN",
    "\x00": "NUL",
    "\x85": "NEXT LINE",
    "\x1b": "ESCAPE",
}


@lru_cache(maxsize=1)
def _registry() -> Any:
    from email.headerregistry import HeaderRegistry  # on use: keeps start-up fast

    return HeaderRegistry()


def mailbox_problem(value: str) -> str | None:
    """Why ``value`` is not exactly one ``Name <addr@domain>`` mailbox, or None when it is."""
    problem = header_problem(value)
    if problem is not None:
        return problem
    header = _registry()("from", value)
    addresses = header.addresses
    if len(addresses) != 1 or len(header.groups) != 1 or header.groups[0].display_name:
        return f"it must be exactly one address, not {len(addresses)}"
    if header.defects:
        return "it is not an address like 'Name <hello@example.com>'"
    address = addresses[0]
    if not address.username or not address.domain:
        return "it is not an address like 'Name <hello@example.com>'"
    if _PLAIN_ADDRESS.match(address.addr_spec):
        return None  # the usual case, without importing email-validator (start-up time)
    from email_validator import EmailNotValidError, validate_email  # on use: keeps start-up fast

    try:
        validate_email(address.addr_spec, check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        return f"its address is not valid: {str(exc).rstrip('.')}"
    return None


_PHRASE = re.compile(rf"{_ATEXT}(?: {_ATEXT})*")  # words a display name may show unquoted
NAME_MAX = 100  # characters of a lead's name shown in its To header


def phrase(text: str, limit: int = NAME_MAX) -> str:
    """Text made a header-safe display phrase: control characters and line separators fold
    into spaces, it is cut to ``limit`` characters and quoted unless it is plain words
    (backslash before ``"`` and ``\\``), so it can neither end the header nor add an address.
    Empty when nothing is left."""
    if not text.isprintable():
        text = "".join(
            " " if unicodedata.category(ch) == "Cc" or ch in _SEPARATORS else ch for ch in text
        )
    text = " ".join(text.split())[:limit].strip()
    if not text or _PHRASE.fullmatch(text):
        return text
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}"'


def display_mailbox(name: str | None, address: str) -> str:
    """``"Ada Lovelace" <ada@example.com>``: a lead's To header, its name made header-safe
    (see ``phrase``); no name, just the address."""
    shown = phrase(name) if name else ""
    return f"{shown} <{address}>" if shown else address


__all__ = [
    "LINE_SEPARATORS",
    "NAME_MAX",
    "describe",
    "display_mailbox",
    "header_problem",
    "mailbox_problem",
    "phrase",
]
