"""Rendering a batch's members into provider emails, from the campaign's stored snapshot."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sponsorcast import tracking
from sponsorcast.audience import parse_audience, recipient
from sponsorcast.campaign import CampaignFile
from sponsorcast.config import Config
from sponsorcast.headers import display_mailbox
from sponsorcast.render import compile_variants, render_message
from sponsorcast.send.abtest import stored_ab
from sponsorcast.send.plan import check_sponsor
from sponsorcast.store import Store, get_sponsor
from sponsorcast.store.lifecycle import (
    get_campaign_row,
)
from sponsorcast.store.models import (
    Sponsor,
)
from sponsorcast.tracking import campaign_links
from sponsorcast.transport import OutgoingEmail

if TYPE_CHECKING:
    from sponsorcast.campaign import CampaignFile
    from sponsorcast.render import CompiledCampaign
    from sponsorcast.transport import OutgoingEmail


@dataclass
class BatchRenderer:
    """Renders a batch's members into provider emails: a pure function of the snapshot."""

    config: Config
    campaign_id: str
    campaign_tags: Mapping[str, str]
    sponsor: Sponsor
    compiled: CompiledCampaign
    from_address: str
    reply_to: str | None
    subject_prefix: str = ""
    campaign_links: tuple[str, ...] = ()  # the body's links, in order: click tokens index them
    variants: Mapping[str, CompiledCampaign] = field(default_factory=dict)  # an A/B test's

    def render_batch(self, members: Sequence[Mapping[str, Any]]) -> list[OutgoingEmail]:
        """One OutgoingEmail per member (``delivery_id`` and ``recipient`` plus lead columns)."""
        return [self.render_one(m) for m in members]

    def render_one(self, member: Mapping[str, Any]) -> OutgoingEmail:
        """Render one member."""

        delivery_id = int(member.get("delivery_id") or 0)
        links: Any = self.compiled.default_links
        headers: dict[str, str] = {}
        if self.config.tracking.public_url and delivery_id > 0:
            links, headers = tracking.links_for(
                self.config,
                self.campaign_id,
                delivery_id,
                self.campaign_links,
                mailto=self.sponsor.unsubscribe_mailto,
            )
        compiled = self.variants.get(member.get("variant") or "", self.compiled)
        message = render_message(compiled, recipient(member), links)
        tags = {**self.campaign_tags, "campaign": _tag_value(self.campaign_id)}
        if delivery_id > 0:
            tags["delivery"] = str(delivery_id)
        return OutgoingEmail(
            delivery_id=delivery_id,
            from_address=compiled.from_address or self.from_address,
            to=_to_header(member, delivery_id),
            subject=self.subject_prefix + message.subject,
            html=message.html,
            text=message.text,
            reply_to=self.reply_to,
            headers={**message.headers, **headers},
            tags=tuple(tags.items()),
        )


def _to_header(member: Mapping[str, Any], delivery_id: int) -> str:
    address = str(member.get("recipient") or member["email"])
    if delivery_id <= 0:  # a test email goes to the tester's own mailbox, not in the lead's name
        return address
    return display_mailbox(member.get("name"), address)


def _tag_value(value: str) -> str:
    return "".join(ch if ch.isascii() and (ch.isalnum() or ch in "_-") else "_" for ch in value)[
        :256
    ]


def make_renderer(
    store: Store, config: Config, campaign_id: str, *, subject_prefix: str = ""
) -> BatchRenderer:
    """A renderer for a campaign from its stored snapshot (not the file, which may have moved on)."""

    with store.read() as conn:
        row = get_campaign_row(conn, campaign_id)
    sponsor = get_sponsor(store, row["sponsor_id"])
    campaign = stored_campaign(row)
    check_sponsor(sponsor, campaign)
    compiled = compile_variants(
        campaign,
        sponsor,
        unsubscribe_mailto=config.tracking.unsubscribe_mailto,
        language=config.language,
    )
    return BatchRenderer(
        config=config,
        campaign_id=campaign_id,
        campaign_tags={str(k): str(v) for k, v in (row["tags"] or {}).items()},
        sponsor=sponsor,
        compiled=compiled[0],
        variants={c.campaign.variant: c for c in compiled if c.campaign.variant is not None},
        from_address=str(row["from_address"] or sponsor.from_address),
        reply_to=row["reply_to"] or sponsor.reply_to,
        subject_prefix=subject_prefix,
        campaign_links=_links_of(config, campaign.body),
    )


def _links_of(config: Config, body: str) -> tuple[str, ...]:
    if not config.tracking.public_url:
        return ()

    return tuple(campaign_links(body))


def stored_campaign(row: Mapping[Any, Any]) -> CampaignFile:
    """The campaign as snapshotted in the store, in the shape rendering takes."""

    look = row["look"] or {}  # none for a campaign snapshotted before looks were kept
    variants, test = stored_ab(row.get("ab_test"))
    return CampaignFile(
        id=row["id"],
        name=row["name"],
        sponsor=row["sponsor_id"],
        subject=row["subject"],
        body=row["body"],
        audience=parse_audience(row["audience"]),
        from_address=row["from_address"],
        reply_to=row["reply_to"],
        send_at=row["send_at"],
        tags=dict(row["tags"] or {}),
        preheader=look.get("preheader") or "",
        language=look.get("language"),
        line_breaks=bool(look.get("line_breaks", False)),
        layout_html=look.get("layout_html"),
        rolling=bool(row.get("rolling", False)),
        variants=variants,
        test=test,
        path=Path(row["source_path"] or f"{row['id']}.md"),
        content_hash=row["content_hash"],
        body_line=1,
        key_lines={},
    )
