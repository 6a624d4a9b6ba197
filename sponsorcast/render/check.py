"""Checking recipients: render each, and report every distinct problem once with how many it hits."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sponsorcast.campaign import CampaignFile
from sponsorcast.errors import SandboxRefused, TemplateError
from sponsorcast.render.compile import CompiledCampaign, Links
from sponsorcast.render.message import (
    render_html,
    render_subject,
    render_subject_and_text,
    render_text,
    template_vars,
)


@dataclass(frozen=True)
class Problem:
    """One distinct problem found by a check, and how many recipients it hits."""

    path: str
    line: int | None
    message: str
    count: int = 1
    example: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Stable JSON keys."""
        return {
            "file": self.path,
            "line": self.line,
            "message": self.message,
            "recipients": self.count,
            "example": self.example,
        }


@dataclass
class CheckReport:
    """What ``check_recipients`` found: recipients checked and each distinct problem once."""

    campaign_id: str
    path: str
    checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every recipient rendered."""
        return not self.problems


def check_recipients(
    compiled: CompiledCampaign,
    recipients: Iterable[Mapping[str, Any]],
    links: Links | None = None,
) -> CheckReport:
    """Render every recipient; each distinct problem once, with how many it hits."""
    checked, found = collect_problems(compiled, recipients, links)
    return report_of(compiled.campaign, checked, found)


# (file, line, message) -> [recipients hit, order key of the first one, its email]
Found = dict[tuple[str, "int | None", str], list[Any]]


def collect_problems(
    compiled: CompiledCampaign, recipients: Iterable[Mapping[str, Any]], links: Links | None = None
) -> tuple[int, Found]:
    links = links or compiled.default_links
    found: Found = {}
    checked = 0
    unsubscribe = links.unsubscribe_url

    def note(error: TemplateError, recipient: Mapping[str, Any]) -> None:
        key = (error.path or "", error.line, error.reason)
        entry = found.get(key)
        if entry is None:
            # lead id orders the first recipient across shards; else the order seen
            order = recipient.get("id")
            found[key] = [
                1,
                order if isinstance(order, int) else checked,
                recipient.get("email") or "",
            ]
        else:
            entry[0] += 1

    for recipient in recipients:
        checked += 1
        context = template_vars(compiled, recipient, unsubscribe)
        try:
            render_html(compiled, context, links, render_subject_and_text(compiled, context)[0])
            continue
        except SandboxRefused:
            raise
        except TemplateError:
            pass
        # Something is wrong: render part by part so each part's problem is counted.
        subject = "subject"
        try:
            subject = render_subject(compiled, context)
        except SandboxRefused:
            raise
        except TemplateError as exc:
            note(exc, recipient)
        try:
            render_text(compiled, context)
            render_html(compiled, context, links, subject)
        except SandboxRefused:
            raise
        except TemplateError as exc:
            note(exc, recipient)
    return checked, found


def report_of(campaign: CampaignFile, checked: int, found: Found) -> CheckReport:
    problems = [
        Problem(path=k[0], line=k[1], message=k[2], count=v[0], example=v[2] or None)
        for k, v in sorted(found.items(), key=lambda item: (item[0][1] or 0, item[0][2]))
    ]
    return CheckReport(
        campaign_id=campaign.id, path=str(campaign.path), checked=checked, problems=problems
    )


def merge_found(into: Found, other: Found) -> None:
    for key, (count, order, email) in other.items():
        entry = into.get(key)
        if entry is None:
            into[key] = [count, order, email]
        else:
            entry[0] += count
            if order < entry[1]:
                entry[1], entry[2] = order, email
