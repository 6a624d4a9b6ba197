"""Rendering one recipient's email: subject, plain-text part, HTML part and headers."""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from jinja2.exceptions import SecurityError
from jinja2.exceptions import TemplateError as JinjaError
from jinja2.runtime import new_context

from sponsorcast.errors import SandboxRefused, TemplateError, TemplateLimitExceeded
from sponsorcast.headers import LINE_SEPARATORS, header_problem
from sponsorcast.render import sandbox

if TYPE_CHECKING:
    from jinja2 import Template

from sponsorcast.render.compile import (
    SUBJECT_BODY_SPLIT,
    CompiledCampaign,
    Links,
    StaticLinks,
    html_file_line,
)
from sponsorcast.render.environment import NamedVars, encode_url
from sponsorcast.render.markdown import ANCHOR_HREF

FALLBACK_NAME = "there"


# A link's URL in the text part: the text renderer writes every one as "text (URL)" or alone.
_TEXT_URL = re.compile(r"(?<=\()https?://[^\s)]+(?=\))|(?<![(\w])https?://[^\s)]*[^\s).,;:!?'\"]")


_EMPTY_PARAGRAPH = re.compile(r"<p>\s*</p>\n?")


_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


@dataclass(frozen=True)
class RenderedMessage:
    """One recipient's email: subject, plain-text part, HTML part and extra headers."""

    subject: str
    text: str
    html: str
    headers: dict[str, str]


def template_vars(
    compiled: CompiledCampaign, recipient: Mapping[str, Any], unsubscribe_url: str
) -> dict[str, Any]:
    """The variables a template sees for one recipient."""
    get = recipient.get
    fields = get("fields") or {}
    base = compiled.base_vars
    # Later keys win: an extra column never hides a standard variable.
    return {
        **base,
        **fields,
        "sponsor": base["sponsor"],
        "campaign": base["campaign"],
        "name": get("name") or FALLBACK_NAME,
        "first_name": get("first_name") or FALLBACK_NAME,
        "last_name": get("last_name") or "",
        "company": get("company") or "",
        "title": get("title") or "",
        "email": get("email") or "",
        "intent_level": get("intent_level") or "",
        "intent_score": get("intent_score"),
        "follow_up_status": get("follow_up_status") or "",
        "event": get("event") or "",
        "tags": list(get("tags") or ()),
        "fields": NamedVars("fields", fields),
        "unsubscribe_url": unsubscribe_url,
    }


def render_message(
    compiled: CompiledCampaign, recipient: Mapping[str, Any], links: Links
) -> RenderedMessage:
    """Render one recipient's email; raises TemplateError (file and line) on any problem."""
    context = template_vars(compiled, recipient, links.unsubscribe_url)
    subject, text = render_subject_and_text(compiled, context)
    if compiled.text_has_links and not isinstance(links, StaticLinks):
        text = _track_text_links(text, links)
    html = render_html(compiled, context, links, subject)
    return RenderedMessage(subject=subject, text=text, html=html, headers=_headers(compiled, links))


def render_subject_and_text(compiled: CompiledCampaign, context: dict[str, Any]) -> tuple[str, str]:
    """Subject and text part; one template run in the usual case (see ``head_template``)."""
    head = compiled.head_template
    if head is not None:
        try:
            raw = _produce(head, context)
        except Exception:
            raw = ""
        if raw.count(SUBJECT_BODY_SPLIT) == 1:
            subject, body = raw.split(SUBJECT_BODY_SPLIT)
            return _subject_text(compiled, subject), _text_part(compiled, body, context)
    return render_subject(compiled, context), render_text(compiled, context)


def render_subject(compiled: CompiledCampaign, context: dict[str, Any]) -> str:
    line = compiled.campaign.key_lines.get("subject")
    return _subject_text(
        compiled, _run(compiled.subject_template, context, compiled, lambda _l: line)
    )


def _subject_text(compiled: CompiledCampaign, raw: str) -> str:
    if not raw.isprintable():
        # a lead's data may carry line breaks: one space each; any other control is refused
        raw = LINE_SEPARATORS.sub(" ", raw)
        problem = header_problem(raw)
        if problem is not None:
            raise TemplateError(
                f"the subject cannot go into an email header: {problem}",
                path=compiled.campaign.path,
                line=compiled.campaign.key_lines.get("subject"),
            )
    subject = raw.strip()
    if not subject:
        line = compiled.campaign.key_lines.get("subject")
        raise TemplateError("the subject renders empty.", path=compiled.campaign.path, line=line)
    return subject


def render_text(compiled: CompiledCampaign, context: dict[str, Any]) -> str:
    body_line = compiled.campaign.body_line
    body = _run(
        compiled.text_template,
        context,
        compiled,
        lambda line: html_file_line(compiled.text_lines, line, body_line),
    )
    return _text_part(compiled, body, context)


def render_preheader(compiled: CompiledCampaign, context: dict[str, Any]) -> str:
    """The inbox preview text for one recipient, on one line; empty without a preheader."""
    if compiled.preheader_template is None:
        return compiled.preheader_text
    line = compiled.campaign.key_lines.get("preheader")
    raw = _run(compiled.preheader_template, context, compiled, lambda _l: line)
    return " ".join(LINE_SEPARATORS.sub(" ", raw).split())


def _track_text_links(text: str, links: Links) -> str:
    """Each link URL of the text part through the click redirect, as in the HTML part."""
    unsubscribe = links.unsubscribe_url

    def track(match: re.Match[str]) -> str:
        url = match.group(0)
        return url if url == unsubscribe else links.click(url)

    body, sep, footer = text.rpartition("\n\n-- \n")  # the footer's unsubscribe URL stays
    return _TEXT_URL.sub(track, body) + sep + footer if sep else text


def _text_part(compiled: CompiledCampaign, body: str, context: dict[str, Any]) -> str:
    body = _BLANK_LINES.sub("\n\n", body).strip("\n")
    footer = "\n\n-- \n"
    if compiled.postal_address:
        footer += compiled.postal_address + "\n"
    footer += f"Unsubscribe: {context['unsubscribe_url']}\n"
    return body + footer


def render_html(
    compiled: CompiledCampaign, context: dict[str, Any], links: Links, subject: str
) -> str:
    body_line = compiled.campaign.body_line
    body = _run(
        compiled.html_template,
        context,
        compiled,
        lambda line: html_file_line(compiled.html_lines, line, body_line),
    )
    if compiled.html_has_blocks:
        body = _EMPTY_PARAGRAPH.sub("", body)
    unsubscribe = context["unsubscribe_url"]
    if compiled.html_has_links:
        static = isinstance(links, StaticLinks)

        def rewrite(match: re.Match[str]) -> str:
            raw = match.group(3) if match.group(3) is not None else match.group(4)
            # A value put into a link target after Markdown ran is percent-encoded here the
            # way Markdown encodes the rest of the URL (spaces, non-ASCII; %XX is kept).
            url = encode_url(html_lib.unescape(raw).strip())
            if not static and url != unsubscribe:
                url = links.click(url)
            return f'{match.group(1)}"{html_lib.escape(url, quote=True)}"'

        body = ANCHOR_HREF.sub(rewrite, body)
    esc = html_lib.escape
    pixel = links.pixel_url
    pixel_html = (
        f'<img src="{esc(pixel, quote=True)}" width="1" height="1" alt="" style="display:block;border:0">\n'
        if pixel
        else ""
    )
    return compiled.layout.wrap(
        subject=subject,
        preheader=render_preheader(compiled, context),
        body=body,
        unsubscribe=unsubscribe,
        pixel=pixel_html,
    )


def _headers(compiled: CompiledCampaign, links: Links) -> dict[str, str]:
    url = links.unsubscribe_url
    if url.startswith(("https://", "http://")):
        value = f"<{url}>"
        if (
            compiled.unsubscribe_mailto
            and compiled.unsubscribe_mailto != "mailto:?subject=unsubscribe"
        ):
            value += f", <{compiled.unsubscribe_mailto}>"
        return {
            "List-Id": compiled.list_id,
            "List-Unsubscribe": value,
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
    return {"List-Id": compiled.list_id, "List-Unsubscribe": f"<{url}>"}


def _run(
    template: Template, context: dict[str, Any], compiled: CompiledCampaign, file_line: Any
) -> str:
    """Render a template without Jinja's traceback rewriting (cheap on errors, too)."""
    try:
        return _produce(template, context)
    except TemplateError:
        raise
    except (sandbox.LimitHit, RecursionError, MemoryError) as exc:
        reason = {
            RecursionError: "the template calls itself too deeply (a recursive macro?)",
            MemoryError: "the template needs more memory than there is",
        }.get(type(exc), str(exc))
        line = getattr(exc, "line", None) or _template_line(exc.__traceback__)
        raise TemplateLimitExceeded(
            reason, path=compiled.campaign.path, line=file_line(line)
        ) from None
    except SecurityError as exc:
        raise SandboxRefused(
            f"refused by the sandbox: {exc}",
            path=compiled.campaign.path,
            line=file_line(_template_line(exc.__traceback__)),
        ) from None
    except JinjaError as exc:
        raise TemplateError(
            _message(exc),
            path=compiled.campaign.path,
            line=file_line(_template_line(exc.__traceback__)),
        ) from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise TemplateError(
            f"{type(exc).__name__}: {exc}",
            path=compiled.campaign.path,
            line=file_line(_template_line(exc.__traceback__)),
        ) from None


def _produce(template: Template, context: dict[str, Any]) -> str:
    """Run a template, counting what it produces against the sandbox's limits."""
    sandbox.start_render()
    parts: list[str] = []
    size = 0
    # shared=True: the context already holds the globals (see template_vars)
    parts_made = template.root_render_func(_context(template, context))
    for part in parts_made:
        size += len(part)
        if size > sandbox.MAX_TEXT:
            frame = getattr(parts_made, "gi_frame", None)
            raise sandbox.LimitHit(
                f"the template produces more than {sandbox.MAX_TEXT:,} characters for one recipient",
                line=template.get_corresponding_lineno(frame.f_lineno) if frame else None,
            )
        parts.append(part)
        if not len(parts) & 63:
            sandbox.tick()
    return "".join(parts)


def _context(template: Template, context: dict[str, Any]) -> Any:
    # shared=True and no globals: ``context`` already holds them (``base_vars``), so Jinja
    # does not copy them into every context it makes.
    return new_context(
        template.environment, template.name, template.blocks, context, True, None, None
    )


def _message(exc: JinjaError) -> str:
    text = exc.message or type(exc).__name__
    return text.rstrip(".")


def _template_line(tb: TracebackType | None) -> int:
    """The template line of the innermost template frame in a raw traceback."""
    line = 1
    while tb is not None:
        template = tb.tb_frame.f_globals.get("__jinja_template__")
        if template is not None:
            line = template.get_corresponding_lineno(tb.tb_lineno)
        tb = tb.tb_next
    return line
