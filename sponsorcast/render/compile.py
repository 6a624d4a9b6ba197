"""Compiling a campaign's templates once: subject, text part, HTML part, refusing what is unsafe."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from jinja2 import TemplateSyntaxError, nodes

from sponsorcast.campaign import CampaignFile
from sponsorcast.errors import SandboxRefused, TemplateError
from sponsorcast.render import sandbox
from sponsorcast.variants import with_variant

if TYPE_CHECKING:
    from jinja2 import Template

    from sponsorcast.store.models import Sponsor
from email.utils import parseaddr
from urllib.parse import quote

from sponsorcast.headers import display_mailbox, phrase
from sponsorcast.render.environment import NamedVars, jinja_environment
from sponsorcast.render.layout import EmailLayout, build_layout, file_layout, slot_values
from sponsorcast.render.markdown import convert_body
from sponsorcast.render.styles import DEFAULT_ACCENT

SUBJECT_BODY_SPLIT = "\x00"  # between subject and body in ``head_template``; never in a valid file


class Links(Protocol):
    """Per-recipient links: the unsubscribe URL, click rewriting and the open pixel."""

    @property
    def unsubscribe_url(self) -> str:
        """The URL that unsubscribes this recipient."""
        ...

    @property
    def pixel_url(self) -> str | None:
        """The open-tracking pixel's URL, or None for no pixel."""
        ...

    def click(self, url: str) -> str:
        """The URL to put in the email for a link to ``url``."""
        ...


@dataclass(frozen=True)
class StaticLinks:
    """Links when tracking is not configured: links stay as written, no pixel."""

    unsubscribe_url: str
    pixel_url: str | None = None

    def click(self, url: str) -> str:
        """Links are left unchanged."""
        return url


@dataclass(frozen=True, eq=False)
class CompiledCampaign:
    """A campaign ready to render for any recipient (build with ``compile_campaign``)."""

    campaign: CampaignFile
    sponsor_vars: Mapping[str, Any]
    campaign_vars: Mapping[str, Any]
    from_address: str | None
    reply_to: str | None
    postal_address: str
    unsubscribe_mailto: str
    subject_template: Template
    text_template: Template
    html_template: Template
    head_template: Template | None  # subject + SUBJECT_BODY_SPLIT + body in one template, when safe
    base_vars: dict[str, Any]  # Jinja's globals, sponsor and campaign: the same for everyone
    html_lines: Mapping[int, int]  # HTML template line -> body line
    text_lines: Mapping[int, int]  # text template line -> body line
    html_has_links: bool
    text_has_links: bool  # the text part shows link URLs (tracked when tracking is on)
    html_has_blocks: bool
    layout: EmailLayout  # the HTML around the body
    preheader_template: Template | None  # the inbox preview text, when it uses template values
    preheader_text: str  # the preview text when it is the same for everyone (no template run)
    list_id: str  # the List-Id header (RFC 2919)

    @property
    def default_links(self) -> StaticLinks:
        """Links for when tracking is not configured (unsubscribe by ``mailto:``)."""
        return StaticLinks(self.unsubscribe_mailto)


def compile_campaign(
    campaign: CampaignFile,
    sponsor: Sponsor,
    *,
    unsubscribe_mailto: str = "",
    language: str = "en",
) -> CompiledCampaign:
    """Compile a campaign's templates once; raises TemplateError with the file line.

    ``unsubscribe_mailto`` is the project's (a sponsor's own wins); ``language`` the project's
    (a campaign's own wins). Markdown, styles and the layout are all done here, once.
    """
    path = campaign.path
    subject_line = campaign.key_lines.get("subject", 1)
    body_line = campaign.body_line

    subject_template = _compile(campaign.subject, False, path, lambda line: subject_line)
    converted = convert_body(
        campaign.body,
        line_breaks=campaign.line_breaks,
        accent=sponsor.accent_color or DEFAULT_ACCENT,
    )
    text_body, text_lines = converted.text, converted.text_lines
    text_template = _compile(
        text_body, False, path, lambda line: html_file_line(text_lines, line, body_line)
    )
    html_source, html_lines = converted.html, converted.html_lines
    html_template = _compile(
        html_source, True, path, lambda line: html_file_line(html_lines, line, body_line)
    )
    preheader_line = campaign.key_lines.get("preheader", 1)
    # a preheader without template syntax is the same for everyone: no render per recipient
    static_preheader = not any(mark in campaign.preheader for mark in ("{{", "{%", "{#"))
    preheader_template = (
        _compile(campaign.preheader, False, path, lambda line: preheader_line)
        if campaign.preheader and not static_preheader
        else None
    )

    from_address = campaign.from_address or sponsor.from_address
    if campaign.from_name and from_address:  # a variant's own display name, the same address
        from_address = display_mailbox(campaign.from_name, parseaddr(from_address)[1])
    reply_to = campaign.reply_to or sponsor.reply_to
    sponsor_vars = {
        "id": sponsor.id,
        "name": sponsor.name or sponsor.id,
        "from": sponsor.from_address or "",
        "from_address": sponsor.from_address or "",
        "reply_to": sponsor.reply_to or "",
        "postal_address": sponsor.postal_address or "",
    }
    campaign_vars = {"id": campaign.id, "name": campaign.name, "tags": dict(campaign.tags)}
    # One template run instead of two for subject and text; not when the subject has
    # statements ({% set %} would leak into the body) — then they run separately.
    head_template = None
    if "{%" not in campaign.subject and SUBJECT_BODY_SPLIT not in campaign.subject + campaign.body:
        try:
            env = jinja_environment(False)
            head_template = env.from_string(
                sandbox.guard_loops(env.parse(campaign.subject + SUBJECT_BODY_SPLIT + text_body))
            )
        except TemplateSyntaxError:  # cannot happen when both parts compiled; stay on the safe path
            head_template = None
    base_vars = {
        **jinja_environment(False).globals,
        "sponsor": NamedVars("sponsor", sponsor_vars),
        "campaign": NamedVars("campaign", campaign_vars),
    }
    if campaign.variant is not None:
        base_vars["variant"] = campaign.variant
    return CompiledCampaign(
        campaign=campaign,
        sponsor_vars=sponsor_vars,
        campaign_vars=campaign_vars,
        from_address=from_address,
        reply_to=reply_to,
        postal_address=sponsor.postal_address or "",
        unsubscribe_mailto=mailto_unsubscribe(
            sponsor.unsubscribe_mailto or unsubscribe_mailto or reply_to or from_address or ""
        ),
        subject_template=subject_template,
        text_template=text_template,
        html_template=html_template,
        head_template=head_template,
        base_vars=base_vars,
        html_lines=html_lines,
        text_lines=text_lines,
        html_has_links=bool(re.search(r"<a\b", html_source, re.IGNORECASE)),
        text_has_links="http" in text_body,
        html_has_blocks="{%" in html_source,
        layout=_layout(campaign, sponsor, language, base_vars),
        preheader_template=preheader_template,
        preheader_text=campaign.preheader if static_preheader else "",
        list_id=list_id(campaign, sponsor, from_address),
    )


def compile_variants(
    campaign: CampaignFile,
    sponsor: Sponsor,
    *,
    unsubscribe_mailto: str = "",
    language: str = "en",
) -> list[CompiledCampaign]:
    """The campaign compiled once per A/B variant (``sponsorcast.variants``), or once; a
    variant that does not compile raises TemplateError naming it."""
    if not campaign.variants:
        return [
            compile_campaign(
                campaign, sponsor, unsubscribe_mailto=unsubscribe_mailto, language=language
            )
        ]
    compiled = []
    for variant in campaign.variants:
        try:
            compiled.append(
                compile_campaign(
                    with_variant(campaign, variant),
                    sponsor,
                    unsubscribe_mailto=unsubscribe_mailto,
                    language=language,
                )
            )
        except TemplateError as exc:
            raise type(exc)(
                f"variant '{variant.name}': {exc.reason}",
                path=exc.path,
                line=exc.line,
                hint=exc.hint,
            ) from None
    return compiled


def _layout(
    campaign: CampaignFile, sponsor: Sponsor, language: str, base_vars: Mapping[str, Any]
) -> EmailLayout:
    """The default layout, or the project's layout file rendered once with its slots open."""
    if campaign.layout_html is None:
        return build_layout(
            language=campaign.language or language,
            sponsor_name=sponsor.name or sponsor.id,
            postal_address=sponsor.postal_address or "",
            logo_url=sponsor.logo_url,
        )
    name = campaign.layout or sponsor.layout or "layout"
    template = _compile(campaign.layout_html, True, name, lambda line: line)
    context = {**base_vars, "language": campaign.language or language, **slot_values()}
    try:
        rendered = template.render(context)
    except Exception as exc:
        raise TemplateError(f"the layout cannot be rendered: {exc}", path=name) from None
    layout, problem = file_layout(rendered)
    if layout is None:
        raise TemplateError(f"{problem}.", path=name)
    return layout


def list_id(campaign: CampaignFile, sponsor: Sponsor, from_address: str | None) -> str:
    """``"Spring launch (Acme)" <spring-launch.acme.acme.example>``: campaign and sponsor under
    the sender's domain (RFC 2919), so a mail client can file and filter the list."""
    domain = parseaddr(from_address or "")[1].rpartition("@")[2].lower() or "sponsorcast.invalid"
    label = re.sub(r"[^A-Za-z0-9.-]", "-", f"{campaign.id}.{sponsor.id}").strip("-.")
    name = phrase(f"{campaign.name or campaign.id} ({sponsor.name or sponsor.id})", 120)
    return f"{name} <{label}.{domain}>"


def mailto_unsubscribe(address: str) -> str:
    """``mailto:`` URL asking to be unsubscribed (address may be ``Name <a@b>`` or a mailto:)."""

    if address.lower().startswith("mailto:"):
        return address
    _name, addr = parseaddr(address)
    return f"mailto:{quote(addr, safe='@')}?subject=unsubscribe"


def html_file_line(lines: Mapping[int, int], html_line: int, body_line: int) -> int:
    """The file line of a problem on ``html_line`` of the HTML template."""
    if html_line in lines:
        return lines[html_line] + body_line - 1
    earlier = [k for k in lines if k <= html_line]
    return (lines[max(earlier)] if earlier else 1) + body_line - 1


def _compile(source: str, autoescape: bool, path: Any, file_line: Any) -> Template:
    env = jinja_environment(autoescape)
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(
            f"template syntax error: {exc.message}.", path=path, line=file_line(exc.lineno or 1)
        ) from None
    _refuse_unsafe(tree, path, file_line)
    return env.from_string(sandbox.guard_loops(tree))


def _refuse_unsafe(tree: nodes.Template, path: Any, file_line: Any) -> None:
    """Refuse, before anything renders, template code that reaches for Python internals."""
    refused: list[tuple[int, int, str]] = []
    for order, node in enumerate(tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter))):
        if isinstance(node, nodes.Filter):
            # {{ x | attr('__class__') }}
            if node.name != "attr" or not node.args or not isinstance(node.args[0], nodes.Const):
                continue
            attr = str(node.args[0].value)
        elif isinstance(node, nodes.Getattr):
            attr = node.attr
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
        ):
            attr = node.arg.value
        else:
            continue
        if attr.startswith("_"):
            refused.append((node.lineno, -order, attr))
    if refused:
        # The first line; on it, the innermost access (``__class__`` in ``''.__class__.__mro__``).
        lineno, _order, attr = min(refused)
        raise SandboxRefused(
            f"access to '{attr}' is not allowed: templates run in a sandbox and cannot reach "
            "Python internals.",
            path=path,
            line=file_line(lineno),
        )
    for loader_node in tree.find_all(
        (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)
    ):
        raise TemplateError(
            "extends, import and include are not available in campaign templates, except "
            '{% include "partials/name.md" %} with the file name written out.',
            path=path,
            line=file_line(loader_node.lineno),
        )
