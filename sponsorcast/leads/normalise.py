"""Normalising one raw row into a clean lead, or a ``RowError`` saying why it cannot be.

Emails are validated (email-validator, no DNS) and stored lower-cased, names split, tags
split, intent level and score checked."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from sponsorcast.errors import RowError
from sponsorcast.leads.sources import ROW_PROBLEM
from sponsorcast.wording import count

if TYPE_CHECKING:
    from sponsorcast.leads.columns import ColumnPlan  # columns imports this module


INTENT_LEVELS = ("hot", "warm", "cold")


DEFAULT_STATUS = "new"


_ATEXT = r"a-zA-Z0-9_!#$%&'*+\-/=?^`{|}~"


_ASCII_LOCAL = re.compile(rf"([{_ATEXT}]+(?:\.[{_ATEXT}]+)*)@(.+)\Z", re.DOTALL)


_DOMAIN_CACHE: dict[str, tuple[str, str] | None] = {}


_DOMAIN_CACHE_MAX = 50_000


def normalise_email(value: str) -> str:
    """A valid address, trimmed and lower-cased; ValueError with email-validator's reason.

    Fast path, exactly equivalent to email-validator's syntax check (no DNS): a plain ASCII
    dot-atom local part is valid as it is, so only the domain needs validating, and its
    result is cached per domain. Anything else (quotes, Unicode, display names, over-long
    addresses, bad domains) goes through ``validate_email`` in full.
    """
    email = value.strip()
    m = _ASCII_LOCAL.match(email)
    if m is not None:
        local, domain = m.group(1), m.group(2)
        try:
            cached = _DOMAIN_CACHE[domain]
        except KeyError:
            cached = _validate_domain(domain)
        if cached is not None:
            norm_domain, ascii_domain = cached
            # email-validator's length rules: 254 UTF-8 bytes, original and normalised forms
            original = len(email) if email.isascii() else len(email.encode())
            if (
                original <= 254
                and len(local) + 1 + len(norm_domain.encode()) <= 254
                and len(local) + 1 + len(ascii_domain) <= 254
            ):
                return f"{local}@{norm_domain}".lower()
    return _validate_full(email)


def _validate_domain(domain: str) -> tuple[str, str] | None:
    from email_validator import EmailNotValidError, validate_email  # on use: 20 ms to import

    try:
        v = validate_email(f"a@{domain}", check_deliverability=False)
        result: tuple[str, str] | None = (v.domain, v.ascii_domain)
    except EmailNotValidError:
        result = None
    if len(_DOMAIN_CACHE) >= _DOMAIN_CACHE_MAX:
        _DOMAIN_CACHE.clear()
    _DOMAIN_CACHE[domain] = result
    return result


def _validate_full(email: str) -> str:
    from email_validator import EmailNotValidError, validate_email  # on use: 20 ms to import

    try:
        return validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, (list, tuple)):
        return _text(", ".join(str(v) for v in value if v is not None))
    text = str(value).strip()
    return text or None


def split_tags(value: Any) -> list[str]:
    """Tags from one cell (``a;b`` or ``a,b``) or an array value; trimmed, empties dropped."""
    if value is None:
        return []
    if value.__class__ is str:  # one cell: the common case
        tags: list[str] = []
        for tag in value.replace(";", ",").split(","):
            tag = tag.strip()
            if tag and tag not in tags:
                tags.append(tag)
        return tags
    items = value if isinstance(value, (list, tuple)) else [value]
    tags = []
    for item in items:
        if item is None:
            continue
        for tag in _TAG_SEP.split(str(item)):
            tag = tag.strip()
            if tag and tag not in tags:
                tags.append(tag)
    return tags


_TAG_SEP = re.compile(r"[;,]")


def split_name(name: str) -> tuple[str | None, str | None]:
    """``Ada Lovelace`` → (Ada, Lovelace); ``Lovelace, Ada`` → (Ada, Lovelace); ``Linus`` → (Linus, None)."""
    if "," in name:
        last, _, first = name.partition(",")
        return (first.strip() or None, last.strip() or None)
    parts = name.split(None, 1)
    return (parts[0] if parts else None, parts[1] if len(parts) > 1 else None)


def _quote(value: Any) -> str:
    text = str(value)
    return repr(text if len(text) <= 80 else text[:77] + "...")


def normalise_row(
    plan: ColumnPlan,
    number: int,
    raw: Mapping[Any, Any],
    sponsor_id: str | None,
    extra_tags: Sequence[str],
) -> dict[str, Any]:
    if ROW_PROBLEM in raw:
        raise RowError(number, raw[ROW_PROBLEM])
    if None in raw:
        surplus = [c for c in raw[None] if str(c).strip()]
        raise RowError(
            number,
            f"has {count(len(surplus), 'more cell')} than the header "
            f"({_quote(surplus[0])}…); is a delimiter inside an unquoted value?",
        )
    cols = plan.columns
    get = raw.get
    lead: dict[str, Any] = {}
    for target, header in plan.scalars:
        value = get(header)
        if value.__class__ is str:  # the common case, inlined: this runs for every cell
            value = value.strip()
            lead[target] = value if value else None
        else:
            lead[target] = _text(value)

    email = lead["email"]
    if email is None:
        raise RowError(number, "has no email address.")
    try:
        lead["email"] = normalise_email(email)
    except ValueError as exc:
        raise RowError(number, f"{_quote(email)} is not a valid email address ({exc})") from None

    if "sponsor_id" in lead:
        row_sponsor = lead.pop("sponsor_id")
        if row_sponsor is not None and sponsor_id is not None and row_sponsor != sponsor_id:
            raise RowError(
                number,
                f"belongs to sponsor {_quote(row_sponsor)}, not '{sponsor_id}' "
                f"(import it with --sponsor {row_sponsor}).",
            )

    level = lead.get("intent_level")
    if level is not None:
        level = level.lower()
        if level not in INTENT_LEVELS:
            raise RowError(
                number,
                f"intent level {_quote(lead['intent_level'])} must be hot, warm, cold or empty.",
            )
        lead["intent_level"] = level

    score = lead.get("intent_score")
    if score is not None:
        lead["intent_score"] = _score(number, score, get(cols["intent_score"]))

    status = lead.get("follow_up_status")
    if status is not None:
        lead["follow_up_status"] = status.lower()

    name, first, last = lead.get("name"), lead.get("first_name"), lead.get("last_name")
    if name is not None and first is None and last is None:
        lead["first_name"], lead["last_name"] = split_name(name)
    elif name is None and (first is not None or last is not None):
        lead["name"] = " ".join(p for p in (first, last) if p)

    tag_cell = get(cols["tags"]) if "tags" in cols else None
    tags = split_tags(tag_cell) if tag_cell else []
    for tag in extra_tags:
        if tag not in tags:
            tags.append(tag)
    lead["tags"] = tags

    fields: dict[str, Any] = {}
    for header, key in plan.extra_keys:
        if header in raw:
            value = raw[header]
            if value.__class__ is str:
                value = value.strip()
            fields[key] = "" if value is None else value
    lead["fields"] = fields
    return lead


def _score(number: int, text: str, raw: Any) -> int:
    """A 0–100 score from a cell: ``55``, ``55.5`` or ``55,5`` (a decimal comma), rounded half up."""
    if text.isascii() and text.isdigit() and len(text) <= 3 and raw.__class__ is not bool:
        value = int(text)
        if value <= 100:
            return value
    wrong = RowError(number, f"intent score {_quote(text)} must be a number from 0 to 100.")
    if isinstance(raw, bool):
        raise wrong
    if isinstance(raw, int):
        value = raw
    else:
        if not _DECIMAL.fullmatch(text):
            raise wrong
        value = int(Decimal(text.replace(",", ".")).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if not 0 <= value <= 100:
        raise wrong
    return value


# A plain decimal: digits, then a point or a decimal comma and more digits (no exponent, no sign).
_DECIMAL = re.compile(r"[0-9]{1,3}(?:[.,][0-9]{1,6})?")


def merge_rows(first: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """Two rows of one file for the same email: the later row's non-empty values win, tags
    and fields are united."""
    merged = dict(first)
    for key, value in later.items():
        if key == "tags":
            merged["tags"] = first["tags"] + [t for t in value if t not in first["tags"]]
        elif key == "fields":
            f = dict(first["fields"])
            for k, v in value.items():
                if v != "" or k not in f:
                    f[k] = v
            merged["fields"] = f
        elif value is not None:
            merged[key] = value
    return merged
