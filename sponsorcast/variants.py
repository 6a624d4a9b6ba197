"""A/B tests in a campaign file: ``variants:`` (named overrides) and ``test:`` (how to pick).

.. code-block:: yaml

    variants:
      - name: a
      - name: b
        subject: "{{ first_name }}, one day left"
        preheader: Doors close on Friday
        from: Jane at Acme          # the display name only; the address stays the sponsor's
        body: |                     # a whole body of its own (optional)
          …
    test:
      share: 20%        # of the audience, split evenly across the variants
      pick_after: 4h    # after the test group was sent
      by: clicks        # or opens
      fallback: a       # sent when the test is inconclusive; default: the first variant

A shared body can also branch on ``{% if variant == "b" %}``. This module only reads and
checks the keys; ``send.abtest`` assigns, picks and sends.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sponsorcast.config import percent
from sponsorcast.durations import parse_duration
from sponsorcast.errors import BadInput, CampaignFileError
from sponsorcast.headers import header_problem

if TYPE_CHECKING:
    from sponsorcast.campaign import CampaignFile

VARIANT_KEYS = ("name", "subject", "preheader", "from", "body")
TEST_KEYS = ("share", "pick_after", "by", "fallback")
BY = ("clicks", "opens")
MAX_VARIANTS = 10
VARIANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")

Fail = Callable[[str, str], CampaignFileError]


@dataclass(frozen=True)
class Variant:
    """One variant: its name and what it overrides (None: the campaign's own)."""

    name: str
    subject: str | None = None
    preheader: str | None = None
    from_name: str | None = None
    body: str | None = None

    def as_dict(self) -> dict[str, str]:
        """The variant as stored with the campaign."""
        fields = {
            "name": self.name,
            "subject": self.subject,
            "preheader": self.preheader,
            "from": self.from_name,
            "body": self.body,
        }
        return {k: v for k, v in fields.items() if v is not None}


@dataclass(frozen=True)
class ABTest:
    """How the test runs: the share of the audience tested, when and by what the winner is
    picked, and what is sent when the test cannot tell."""

    share: float
    pick_after: str
    by: str = "clicks"
    fallback: str = ""

    @property
    def pick_after_seconds(self) -> float:
        """``pick_after`` in seconds."""
        return parse_duration(self.pick_after).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        """The test as stored with the campaign."""
        return {
            "share": self.share,
            "pick_after": self.pick_after,
            "by": self.by,
            "fallback": self.fallback,
        }


def parse_variants(
    data: Mapping[str, Any], fail: Fail
) -> tuple[tuple[Variant, ...], ABTest | None]:
    """``variants`` and ``test`` of a campaign file: both or neither."""
    raw, raw_test = data.get("variants"), data.get("test")
    if raw is None and raw_test is None:
        return (), None
    if raw is None or raw_test is None:
        key = "test" if raw is not None else "variants"
        raise fail(
            "an A/B test needs both 'variants:' (a list) and 'test:' (share, pick_after).", key
        )
    if not isinstance(raw, list) or not 2 <= len(raw) <= MAX_VARIANTS:
        raise fail(f"variants must be a list of 2 to {MAX_VARIANTS} variants.", "variants")
    variants = tuple(_variant(item, index, fail) for index, item in enumerate(raw, start=1))
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise fail(f"two variants are named '{twice}'; each needs a name of its own.", "variants")
    return variants, _test(raw_test, names, fail)


def _variant(item: Any, index: int, fail: Fail) -> Variant:
    if not isinstance(item, dict):
        raise fail(f"variant {index} must be a mapping with a name.", "variants")
    unknown = sorted(set(item) - set(VARIANT_KEYS))
    if unknown:
        raise fail(
            f"variant {index}: unknown key '{unknown[0]}' (allowed: {', '.join(VARIANT_KEYS)}).",
            "variants",
        )
    name = item.get("name")
    if name is None:
        raise fail(f"variant {index} has no name; give each variant one, like a or b.", "variants")
    if not isinstance(name, str) or not VARIANT_NAME.match(name):
        raise fail(
            f"variant {index}: name {name!r} must be lower-case letters, digits, - or _.",
            "variants",
        )
    values: dict[str, str | None] = {}
    for key in ("subject", "preheader", "from", "body"):
        value = item.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise fail(f"variant '{name}': {key} must be text.", "variants")
        values[key] = value
    for key in ("subject", "preheader", "from"):
        value = values[key]
        if value is not None:
            problem = header_problem(value)
            if problem is not None:
                raise fail(f"variant '{name}': {key}: {problem}.", "variants")
    if values["from"] is not None and ("<" in values["from"] or "@" in values["from"]):
        raise fail(
            f"variant '{name}': from is the display name only, like 'Jane at Acme'.", "variants"
        )
    return Variant(
        name=name,
        subject=values["subject"].strip() if values["subject"] else None,
        preheader=values["preheader"],
        from_name=values["from"].strip() if values["from"] else None,
        body=values["body"],
    )


def _test(raw: Any, names: list[str], fail: Fail) -> ABTest:
    if not isinstance(raw, dict):
        raise fail("test must be a mapping with share and pick_after.", "test")
    unknown = sorted(set(raw) - set(TEST_KEYS))
    if unknown:
        raise fail(f"test: unknown key '{unknown[0]}' (allowed: {', '.join(TEST_KEYS)}).", "test")
    share = _share(raw.get("share"), fail)
    pick_after = raw.get("pick_after")
    if not isinstance(pick_after, str):
        raise fail("test: pick_after must be a duration such as 4h.", "test")
    try:
        parse_duration(pick_after)
    except BadInput as exc:
        raise fail(f"test: pick_after {exc.message[0].lower()}{exc.message[1:]}", "test") from None
    by = raw.get("by", "clicks")
    if by not in BY:
        raise fail(f"test: by must be clicks or opens, not {by!r}.", "test")
    fallback = raw.get("fallback", names[0])
    if fallback not in names:
        raise fail(
            f"test: fallback {fallback!r} is not one of the variants ({', '.join(names)}).", "test"
        )
    return ABTest(share=share, pick_after=pick_after.strip().lower(), by=by, fallback=fallback)


def _share(raw: Any, fail: Fail) -> float:
    value = percent(raw)
    if value is None or not 0 < value <= 1:
        raise fail(
            f"test: share must be a percentage of the audience above 0 % and at most 100 %, "
            f"like 20%, not {raw!r}.",
            "test",
        )
    return value


def with_variant(campaign: CampaignFile, variant: Variant) -> CampaignFile:
    """The campaign as one variant sends it: its overrides applied, ``variant`` set."""
    return replace(
        campaign,
        subject=variant.subject if variant.subject is not None else campaign.subject,
        preheader=variant.preheader if variant.preheader is not None else campaign.preheader,
        body=variant.body if variant.body is not None else campaign.body,
        from_name=variant.from_name,
        variant=variant.name,
    )


def stored_variant(raw: Mapping[str, Any]) -> Variant:
    """A variant as stored with the campaign."""
    return Variant(
        name=str(raw["name"]),
        subject=raw.get("subject"),
        preheader=raw.get("preheader"),
        from_name=raw.get("from"),
        body=raw.get("body"),
    )


def stored_test(raw: Mapping[str, Any]) -> ABTest:
    """A test as stored with the campaign."""
    return ABTest(
        share=float(raw["share"]),
        pick_after=str(raw["pick_after"]),
        by=str(raw.get("by", "clicks")),
        fallback=str(raw.get("fallback", "")),
    )
