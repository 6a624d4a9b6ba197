"""``render``: one recipient's email, and a whole campaign file checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sponsorcast.campaign import CampaignFile, load_campaign

if TYPE_CHECKING:
    from pathlib import Path

from sponsorcast.errors import BadInput, InputFileError, NotFound
from sponsorcast.headers import display_mailbox
from sponsorcast.render.check import CheckReport, Problem
from sponsorcast.render.compile import CompiledCampaign, compile_campaign, compile_variants
from sponsorcast.render.message import RenderedMessage, render_message
from sponsorcast.render.parallel import check_variants
from sponsorcast.render.partials import with_layout, with_partials
from sponsorcast.render.recipients import RecipientSource
from sponsorcast.variants import with_variant


@dataclass(frozen=True)
class Preview:
    """One recipient's rendered email, for ``render`` without ``--check``."""

    campaign_id: str
    path: str
    to: str
    from_address: str | None
    reply_to: str | None
    message: RenderedMessage
    note: str | None = None  # e.g. "not in the campaign's audience"

    def as_dict(self) -> dict[str, Any]:
        """Stable JSON keys."""
        return {
            "campaign": self.campaign_id,
            "file": self.path,
            "to": self.to,
            "from": self.from_address,
            "reply_to": self.reply_to,
            "subject": self.message.subject,
            "headers": self.message.headers,
            "text": self.message.text,
            "html": self.message.html,
            "note": self.note,
        }


@dataclass
class CheckResult:
    """One campaign file's outcome in ``render --check``: its report, or why it is invalid."""

    report: CheckReport
    invalid: bool = False
    warnings: list[str] = field(default_factory=list)  # not errors: e.g. no postal address

    def as_dict(self) -> dict[str, Any]:
        """Stable JSON keys."""
        return {
            "file": self.report.path,
            "campaign": self.report.campaign_id,
            "valid": not self.invalid,
            "recipients": self.report.checked,
            "problems": [p.as_dict() for p in self.report.problems],
            "warnings": list(self.warnings),
        }


def preview_campaign(
    path: Path, source: RecipientSource, to: str | None = None, variant: str | None = None
) -> Preview:
    """Render one campaign file for one recipient (``to``, else the audience's first); an A/B
    test's ``variant`` (else its first)."""
    campaign = with_partials(load_campaign(path), source.config.root)
    sponsor = source.sponsor(campaign.sponsor)
    campaign = with_layout(campaign, sponsor.layout, source.config.root)
    campaign = _variant_of(campaign, variant)
    compiled = compile_campaign(
        campaign,
        sponsor,
        unsubscribe_mailto=source.config.tracking.unsubscribe_mailto,
        language=source.config.language,
    )
    lead, note = source.find(campaign.sponsor, campaign.audience, to)
    message = render_message(compiled, lead, compiled.default_links)
    to_header = display_mailbox(lead.get("name"), str(lead["email"]))
    return Preview(
        campaign_id=campaign.id,
        path=str(path),
        to=to_header,
        from_address=compiled.from_address,
        reply_to=compiled.reply_to,
        message=message,
        note=note,
    )


def check_campaign_file(path: Path, source: RecipientSource) -> CheckResult:
    """Check one campaign file against every recipient of its audience.

    An invalid file (YAML, keys, template syntax, sandbox, unknown sponsor) is reported as one
    problem with ``invalid`` set instead of raising, so a directory check reports every file.
    """

    try:
        campaign = with_partials(load_campaign(path), source.config.root)
        sponsor = source.sponsor(campaign.sponsor)
        campaign = with_layout(campaign, sponsor.layout, source.config.root)
        compiled = compile_variants(
            campaign,
            sponsor,
            unsubscribe_mailto=source.config.tracking.unsubscribe_mailto,
            language=source.config.language,
        )
        warnings = sending_warnings(compiled[0])
        return CheckResult(check_variants(compiled, source), warnings=warnings)
    except (InputFileError, NotFound) as exc:
        if isinstance(exc, InputFileError) and exc.path not in (None, str(path)):
            raise  # the leads CSV, not the campaign: the whole check is invalid
        line = exc.line if isinstance(exc, InputFileError) else None
        reason = exc.reason if isinstance(exc, InputFileError) else exc.message
        problem = Problem(path=str(path), line=line, message=reason, count=0)
        return CheckResult(
            CheckReport(campaign_id=path.stem, path=str(path), problems=[problem]), invalid=True
        )


def sending_warnings(compiled: CompiledCampaign) -> list[str]:
    """What would stop or spoil a send although every recipient renders."""
    sponsor = compiled.sponsor_vars["id"]
    warnings = []
    if not compiled.from_address:
        warnings.append(
            f"sponsor '{sponsor}' has no from address and the file sets no 'from:': sending will "
            f"be refused (set 'from' under [sponsors.{sponsor}])."
        )
    if not compiled.postal_address:
        warnings.append(
            f"sponsor '{sponsor}' has no postal address: every footer needs one "
            f"(set 'postal_address' under [sponsors.{sponsor}])."
        )
    if compiled.preheader_template is None and not compiled.preheader_text:
        warnings.append(
            "no preheader: the inbox preview shows the first words of the body instead "
            "(set 'preheader:' in the front matter, a line like the subject)."
        )
    return warnings


def _variant_of(campaign: CampaignFile, name: str | None) -> CampaignFile:
    """The campaign as variant ``name`` sends it (an A/B test's first without a name)."""
    if not campaign.variants:
        if name is not None:
            raise BadInput(
                f"Campaign '{campaign.id}' has no variants; --variant is for an A/B test."
            )
        return campaign
    names = [v.name for v in campaign.variants]
    if name is None:
        return with_variant(campaign, campaign.variants[0])
    if name not in names:
        raise BadInput(
            f"Campaign '{campaign.id}' has no variant '{name}' (its variants: {', '.join(names)})."
        )
    return with_variant(campaign, campaign.variants[names.index(name)])
