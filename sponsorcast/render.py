"""Rendering (SPEC §2): a campaign compiled once, then one pure function per recipient.

``compile_campaign`` does the expensive work once per campaign: it turns the Markdown body
into HTML (markdown-it-py) with the Jinja placeholders protected, and compiles the
templates — subject, text part, HTML part (and subject + text as one, the fast path) — in
Jinja2's immutable sandbox with ``StrictUndefined``; code reaching for ``_``-names is refused
at compile time. ``render_message`` fills them for one recipient; it is deterministic
(no clock, no randomness), so a re-sent batch is byte-for-byte the same. ``check_recipients``
runs it over a whole audience and lists each distinct problem once.

Choices (documented in the README): a rendered subject's line breaks (from a lead's data) are
collapsed into one space; a subject that renders empty is an error; ``None`` values print as
an empty string; without tracking, ``unsubscribe_url`` is a ``mailto:`` link to the
``tracking.unsubscribe_mailto`` address, else the reply-to, else the from address, with the
subject "unsubscribe".
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.exceptions import TemplateError as JinjaError
from jinja2.runtime import new_context

from sponsorcast import sandbox
from sponsorcast.campaign import CampaignFile, load_campaign
from sponsorcast.errors import SandboxRefused, TemplateError, TemplateLimitExceeded
from sponsorcast.headers import LINE_SEPARATORS, header_problem
from sponsorcast.store.tables import lead_t

if TYPE_CHECKING:
    from pathlib import Path

    from jinja2 import Environment, Template

    from sponsorcast.audience import Audience
    from sponsorcast.config import Config
    from sponsorcast.store import Store
    from sponsorcast.store.models import Sponsor

FALLBACK_NAME = "there"

# ``{{ … }}``, ``{% … %}`` and ``{# … #}``, protected from Markdown (which would mangle them
# in link targets) and put back into the HTML afterwards.
_JINJA_TAG = r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}"
# A line holding only statements or comments, or any single tag.
_JINJA_PROTECT = re.compile(
    r"(?m)^(?P<block>[ \t]*(?:(?:\{%[^\n]*?%\}|\{#[^\n]*?#\})[ \t]*)+)$|" + f"(?s:{_JINJA_TAG})"
)
_ANCHOR_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)("([^"]*)"|'([^']*)')""", re.IGNORECASE)
_URL_SAFE = re.compile(r"(?:[A-Za-z0-9;/?:@&=+$,\-_.!~*'()#]|%[0-9A-Fa-f]{2})*")
_SPLIT = "\x00"  # between subject and body in ``head_template``; never in a valid file
_HTML_HEAD = (
    '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
)
# What urllib.parse.quote(value, safe="/") leaves alone (Jinja's urlencode of a string).
_URL_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-~/]+")
_EMPTY_PARAGRAPH = re.compile(r"<p>\s*</p>\n?")
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


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


@dataclass(frozen=True)
class RenderedMessage:
    """One recipient's email: subject, plain-text part, HTML part and extra headers."""

    subject: str
    text: str
    html: str
    headers: dict[str, str]


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
    head_template: Template | None  # subject + _SPLIT + body in one template, when safe
    base_vars: dict[str, Any]  # Jinja's globals, sponsor and campaign: the same for everyone
    html_lines: Mapping[int, int]  # HTML template line -> body line
    html_has_links: bool
    html_has_blocks: bool
    footer_html: str  # the HTML footer up to the unsubscribe link

    @property
    def default_links(self) -> StaticLinks:
        """Links for when tracking is not configured (unsubscribe by ``mailto:``)."""
        return StaticLinks(self.unsubscribe_mailto)


class _Vars(dict[str, Any]):
    """A dict of template variables that knows its own name, for clearer undefined errors."""

    __slots__ = ("label",)

    def __init__(self, label: str, data: Mapping[str, Any]) -> None:
        super().__init__(data)
        self.label = label


class _Undefined(StrictUndefined):
    """StrictUndefined with messages that name the variable as the author wrote it."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        if self._undefined_obj is _MISSING:
            return f"undefined variable '{self._undefined_name}'"
        if isinstance(self._undefined_obj, _Vars):
            return f"undefined variable '{self._undefined_obj.label}.{self._undefined_name}'"
        return f"'{type(self._undefined_obj).__name__}' value has no attribute '{self._undefined_name}'"


def _missing_marker() -> Any:
    from jinja2.utils import missing

    return missing


_MISSING = _missing_marker()


def _finalize(value: Any) -> Any:
    return "" if value is None else value


def _pct(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode())


def _urlencode(value: Any) -> str:
    """Jinja's ``urlencode``, same output, without its per-byte Python loop for strings."""
    if isinstance(value, str):
        return _URL_UNSAFE.sub(_pct, value)
    from jinja2.filters import do_urlencode

    return do_urlencode(value)


@lru_cache(maxsize=2)
def _environment(autoescape: bool) -> Environment:
    env = sandbox.LimitedSandbox(
        autoescape=autoescape,
        undefined=_Undefined,
        finalize=_finalize,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.filters["urlencode"] = _urlencode
    return env


def _encode_url(url: str) -> str:
    if _URL_SAFE.fullmatch(url):  # the usual case, and much cheaper than mdurl
        return url
    from mdurl import encode

    return str(encode(url))


@lru_cache(maxsize=1)
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


def markdown_to_html(body: str) -> tuple[str, dict[int, int]]:
    """Markdown → HTML template source, Jinja tags kept intact (done once per campaign).

    Each tag is swapped for an inert token before Markdown runs and put back afterwards. A line
    holding only statements (``{% for … %}``, ``{% endif %}``) becomes an HTML comment line,
    which Markdown passes through as a block of its own: a loop or condition around list items
    or paragraphs then wraps whole HTML elements instead of cutting a paragraph in two.

    Returns the HTML and, for each HTML line holding a Jinja tag, the body line it came from.
    """
    tags: list[tuple[str, int]] = []
    prefix = "SCJINJA"
    while prefix in body:
        prefix += "Q"

    def protect(match: re.Match[str]) -> str:
        line = body.count("\n", 0, match.start()) + 1
        if match.group("block") is not None:
            tags.append((match.group("block").strip(), line))
            return f"<!--{prefix}B{len(tags) - 1}Z-->"
        tags.append((match.group(0), line))
        return f"{prefix}{len(tags) - 1}Z"

    protected = _JINJA_PROTECT.sub(protect, body)
    rendered: str = _markdown().render(protected)
    pieces: list[str] = []
    lines: dict[int, int] = {}
    html_line = 1
    last = 0
    # (inside a code block Markdown escapes the comment: &lt;!--…--&gt;)
    restore = rf"<!--{prefix}B(\d+)Z-->|&lt;!--{prefix}B(\d+)Z--&gt;|{prefix}(\d+)Z"
    for match in re.finditer(restore, rendered):
        before = rendered[last : match.start()]
        html_line += before.count("\n")
        tag, body_line = tags[int(match.group(1) or match.group(2) or match.group(3))]
        lines.setdefault(html_line, body_line)
        pieces.append(before)
        pieces.append(tag)
        html_line += tag.count("\n")
        last = match.end()
    pieces.append(rendered[last:])
    return _hoist_list_loops("".join(pieces)), lines


# A for loop whose whole body is one list: the loop goes inside the list, so that the items
# it repeats make one list, not one list per item. The list holds no nested list.
_LIST_LOOP = re.compile(
    r"^(\{%-?\s*for\b[^\n]*?%\})\n(<(ul|ol)(?: start=\"\d+\")?>)\n"
    r"((?:(?!<ul|<ol|</ul|</ol|\{%-?\s*(?:end)?for\b)[^\n]*\n)*?)"
    r"(</\3>)\n(\{%-?\s*endfor\s*-?%\})$",
    re.MULTILINE,
)


def _hoist_list_loops(html: str) -> str:
    # Lines are kept: only the order of four lines changes, so error lines stay right.
    return _LIST_LOOP.sub(r"\2\n\1\n\4\6\n\5", html)


def compile_campaign(
    campaign: CampaignFile, sponsor: Sponsor, *, unsubscribe_mailto: str = ""
) -> CompiledCampaign:
    """Compile a campaign's templates once; raises TemplateError with the file line."""
    path = campaign.path
    subject_line = campaign.key_lines.get("subject", 1)
    body_offset = campaign.body_line - 1

    subject_template = _compile(campaign.subject, False, path, lambda line: subject_line)
    text_body = _text_source(campaign.body)
    text_template = _compile(text_body, False, path, lambda line: line + body_offset)
    html_source, html_lines = markdown_to_html(campaign.body)
    html_template = _compile(
        html_source, True, path, lambda line: _html_file_line(html_lines, line, campaign.body_line)
    )

    from_address = campaign.from_address or sponsor.from_address
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
    if "{%" not in campaign.subject and _SPLIT not in campaign.subject + campaign.body:
        try:
            env = _environment(False)
            head_template = env.from_string(
                sandbox.guard_loops(env.parse(campaign.subject + _SPLIT + text_body))
            )
        except TemplateSyntaxError:  # cannot happen when both parts compiled; stay on the safe path
            head_template = None
    base_vars = {
        **_environment(False).globals,
        "sponsor": _Vars("sponsor", sponsor_vars),
        "campaign": _Vars("campaign", campaign_vars),
    }
    return CompiledCampaign(
        campaign=campaign,
        sponsor_vars=sponsor_vars,
        campaign_vars=campaign_vars,
        from_address=from_address,
        reply_to=reply_to,
        postal_address=sponsor.postal_address or "",
        unsubscribe_mailto=mailto_unsubscribe(unsubscribe_mailto or reply_to or from_address or ""),
        subject_template=subject_template,
        text_template=text_template,
        html_template=html_template,
        head_template=head_template,
        base_vars=base_vars,
        html_lines=html_lines,
        html_has_links=bool(re.search(r"<a\b", html_source, re.IGNORECASE)),
        html_has_blocks="{%" in html_source,
        footer_html='<hr>\n<p style="color:#666666;font-size:12px">'
        + (html_lib.escape(sponsor.postal_address) + "<br>\n" if sponsor.postal_address else ""),
    )


_STATEMENT_LINE = re.compile(r"(?m)^[ \t]*((?:(?:\{%[^\n]*?%\}|\{#[^\n]*?#\})[ \t]*)+)\n")


def _text_source(body: str) -> str:
    """The text part's template: a line holding only statements leaves no empty line behind.

    Its newline moves into a Jinja comment (``{#⏎#}``), so the output loses it while the
    template keeps its line count and errors keep their file lines.
    """
    if re.search(r"\{%-?\s*raw\b", body):  # inside {% raw %} a comment would be printed
        return body
    return _STATEMENT_LINE.sub(lambda m: m.group(1).rstrip() + "{#\n#}", body)


def mailto_unsubscribe(address: str) -> str:
    """``mailto:`` URL asking to be unsubscribed (address may be ``Name <a@b>`` or a mailto:)."""
    from email.utils import parseaddr
    from urllib.parse import quote

    if address.lower().startswith("mailto:"):
        return address
    _name, addr = parseaddr(address)
    return f"mailto:{quote(addr, safe='@')}?subject=unsubscribe"


def _html_file_line(lines: Mapping[int, int], html_line: int, body_line: int) -> int:
    """The file line of a problem on ``html_line`` of the HTML template."""
    if html_line in lines:
        return lines[html_line] + body_line - 1
    earlier = [k for k in lines if k <= html_line]
    return (lines[max(earlier)] if earlier else 1) + body_line - 1


def _compile(source: str, autoescape: bool, path: Any, file_line: Any) -> Template:
    env = _environment(autoescape)
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
            "extends, include and import are not available in campaign templates.",
            path=path,
            line=file_line(loader_node.lineno),
        )


def template_vars(
    compiled: CompiledCampaign, recipient: Mapping[str, Any], unsubscribe_url: str
) -> dict[str, Any]:
    """The variables a template sees for one recipient (SPEC §2)."""
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
        "fields": _Vars("fields", fields),
        "unsubscribe_url": unsubscribe_url,
    }


def render_message(
    compiled: CompiledCampaign, recipient: Mapping[str, Any], links: Links
) -> RenderedMessage:
    """Render one recipient's email; raises TemplateError (file and line) on any problem."""
    context = template_vars(compiled, recipient, links.unsubscribe_url)
    subject, text = _subject_and_text(compiled, context)
    html = _html(compiled, context, links, subject)
    return RenderedMessage(subject=subject, text=text, html=html, headers=_headers(compiled, links))


def _subject_and_text(compiled: CompiledCampaign, context: dict[str, Any]) -> tuple[str, str]:
    """Subject and text part; one template run in the usual case (see ``head_template``)."""
    head = compiled.head_template
    if head is not None:
        try:
            raw = _produce(head, context)
        except Exception:
            raw = ""
        if raw.count(_SPLIT) == 1:
            subject, body = raw.split(_SPLIT)
            return _subject_text(compiled, subject), _text_part(compiled, body, context)
    return _subject(compiled, context), _text(compiled, context)


def _subject(compiled: CompiledCampaign, context: dict[str, Any]) -> str:
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


def _text(compiled: CompiledCampaign, context: dict[str, Any]) -> str:
    offset = compiled.campaign.body_line - 1
    body = _run(compiled.text_template, context, compiled, lambda line: line + offset)
    return _text_part(compiled, body, context)


def _text_part(compiled: CompiledCampaign, body: str, context: dict[str, Any]) -> str:
    body = _BLANK_LINES.sub("\n\n", body).strip("\n")
    footer = "\n\n-- \n"
    if compiled.postal_address:
        footer += compiled.postal_address + "\n"
    footer += f"Unsubscribe: {context['unsubscribe_url']}\n"
    return body + footer


def _html(compiled: CompiledCampaign, context: dict[str, Any], links: Links, subject: str) -> str:
    body_line = compiled.campaign.body_line
    body = _run(
        compiled.html_template,
        context,
        compiled,
        lambda line: _html_file_line(compiled.html_lines, line, body_line),
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
            url = _encode_url(html_lib.unescape(raw).strip())
            if not static and url != unsubscribe:
                url = links.click(url)
            return f'{match.group(1)}"{html_lib.escape(url, quote=True)}"'

        body = _ANCHOR_HREF.sub(rewrite, body)
    esc = html_lib.escape
    pixel = links.pixel_url
    pixel_html = (
        f'<img src="{esc(pixel, quote=True)}" width="1" height="1" alt="" style="display:block;border:0">\n'
        if pixel
        else ""
    )
    return (
        f"{_HTML_HEAD}<title>{esc(subject)}</title>\n</head>\n<body>\n{body.rstrip()}\n"
        f'{compiled.footer_html}<a href="{esc(unsubscribe, quote=True)}">Unsubscribe</a></p>\n'
        f"{pixel_html}</body>\n</html>\n"
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
        return {"List-Unsubscribe": value, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    return {"List-Unsubscribe": f"<{url}>"}


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


def check_recipients(
    compiled: CompiledCampaign,
    recipients: Iterable[Mapping[str, Any]],
    links: Links | None = None,
) -> CheckReport:
    """Render every recipient; each distinct problem once, with how many it hits."""
    checked, found = _collect_problems(compiled, recipients, links)
    return _report(compiled.campaign, checked, found)


# (file, line, message) -> [recipients hit, order key of the first one, its email]
_Found = dict[tuple[str, "int | None", str], list[Any]]


def _collect_problems(
    compiled: CompiledCampaign, recipients: Iterable[Mapping[str, Any]], links: Links | None = None
) -> tuple[int, _Found]:
    links = links or compiled.default_links
    found: _Found = {}
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
            _html(compiled, context, links, _subject_and_text(compiled, context)[0])
            continue
        except SandboxRefused:
            raise
        except TemplateError:
            pass
        # Something is wrong: render part by part so each part's problem is counted.
        subject = "subject"
        try:
            subject = _subject(compiled, context)
        except SandboxRefused:
            raise
        except TemplateError as exc:
            note(exc, recipient)
        try:
            _text(compiled, context)
            _html(compiled, context, links, subject)
        except SandboxRefused:
            raise
        except TemplateError as exc:
            note(exc, recipient)
    return checked, found


def _report(campaign: CampaignFile, checked: int, found: _Found) -> CheckReport:
    problems = [
        Problem(path=k[0], line=k[1], message=k[2], count=v[0], example=v[2] or None)
        for k, v in sorted(found.items(), key=lambda item: (item[0][1] or 0, item[0][2]))
    ]
    return CheckReport(
        campaign_id=campaign.id, path=str(campaign.path), checked=checked, problems=problems
    )


def _merge(into: _Found, other: _Found) -> None:
    for key, (count, order, email) in other.items():
        entry = into.get(key)
        if entry is None:
            into[key] = [count, order, email]
        else:
            entry[0] += count
            if order < entry[1]:
                entry[1], entry[2] = order, email


# --------------------------------------------------------------------------- preview and check
# What the ``render`` command does, over the store or over a leads CSV (SPEC §3).


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


class RecipientSource:
    """Where recipients and sponsors come from: the store, or a leads CSV (in memory)."""

    def __init__(
        self, config: Config, leads_csv: Path | None = None, store: Store | None = None
    ) -> None:
        self.config = config
        self.leads_csv = leads_csv
        self._store: Store | None = store
        self._loaded: set[str] = set()

    def store(self) -> Store:
        """The store: the configured one (never created here), or a private in-memory one."""
        from sponsorcast.store import open_store

        if self._store is None:
            if self.leads_csv is None:
                self._store = open_store(
                    self.config.store_url, sponsors=self.config.sponsors, create=False
                )
            else:
                # The CSV goes into a throwaway in-memory store so the audience is the same SQL
                # as for a real send; the configured store is never opened, let alone created.
                self._store = open_store("sqlite:///:memory:", sponsors=self.config.sponsors)
        return self._store

    def sponsor(self, sponsor_id: str) -> Sponsor:
        """The campaign's sponsor (from the store, or from the config with ``--leads``)."""
        from sponsorcast.errors import NotFound
        from sponsorcast.store import get_sponsor

        try:
            return get_sponsor(self.store(), sponsor_id)
        except NotFound as exc:
            if self.leads_csv is not None:
                raise NotFound(
                    exc.message,
                    hint=f"With --leads, sponsors come from the config: add [sponsors.{sponsor_id}].",
                ) from None
            raise

    def _load_csv(self, sponsor_id: str) -> None:
        if self.leads_csv is None or sponsor_id in self._loaded:
            return
        from sponsorcast.audience import PERSON_COLUMNS, tags_to_text
        from sponsorcast.leads import read_csv_recipients
        from sponsorcast.store.tables import lead_t

        insert = lead_t.insert().prefix_with("OR REPLACE")
        columns = (*PERSON_COLUMNS, "event", "fields")
        with self.store().write() as conn:
            chunk: list[dict[str, Any]] = []
            for row in read_csv_recipients(self.leads_csv):
                values = {k: row.get(k) for k in columns}
                values["sponsor_id"] = sponsor_id
                values["email"] = (row.get("email") or "").strip().lower()
                values["follow_up_status"] = row.get("follow_up_status") or "new"
                values["tags"] = tags_to_text(row.get("tags") or [])
                chunk.append(values)
                if len(chunk) >= 1000:
                    conn.execute(insert, chunk)
                    chunk = []
            if chunk:
                conn.execute(insert, chunk)
        self._loaded.add(sponsor_id)

    def recipients(self, sponsor_id: str, audience: Audience) -> Iterator[dict[str, Any]]:
        """Stream the audience's recipients, in lead order."""
        from sponsorcast.audience import iter_recipients, select_recipients

        self._load_csv(sponsor_id)
        with self.store().read() as conn:
            yield from iter_recipients(conn, select_recipients(sponsor_id, audience))

    def find(
        self, sponsor_id: str, audience: Audience, email: str | None
    ) -> tuple[dict[str, Any], str | None]:
        """One recipient to preview: ``email``'s lead or the audience's first; and a note."""
        import sqlalchemy as sa

        from sponsorcast.audience import RECIPIENT_COLUMNS, recipient, select_recipients
        from sponsorcast.errors import NotFound
        from sponsorcast.store.tables import lead_t

        self._load_csv(sponsor_id)
        query = select_recipients(sponsor_id, audience)
        hint = (
            "Import leads with 'sponsorcast leads import', or preview against a CSV with --leads."
        )
        with self.store().read() as conn:
            if email is None:
                row = conn.execute(query.limit(1)).mappings().first()
                if row is None:
                    raise NotFound(
                        f"The audience ({audience.type}) of sponsor '{sponsor_id}' has no leads to preview.",
                        hint=hint,
                    )
                return recipient(dict(row)), None
            wanted = email.strip().lower()
            row = (
                conn.execute(query.where(sa.func.lower(lead_t.c.email) == wanted).limit(1))
                .mappings()
                .first()
            )
            if row is not None:
                return recipient(dict(row)), None
            cols = [lead_t.c[name] for name in RECIPIENT_COLUMNS]
            any_row = (
                conn.execute(
                    sa.select(*cols)
                    .where(
                        lead_t.c.sponsor_id == sponsor_id,
                        sa.func.lower(lead_t.c.email) == wanted,
                    )
                    .limit(1)
                )
                .mappings()
                .first()
            )
            if any_row is None:
                raise NotFound(f"No lead {email} for sponsor '{sponsor_id}'.", hint=hint)
            return recipient(
                dict(any_row)
            ), f"{email} is not in this campaign's audience ({audience.type})."

    def shards(self, sponsor_id: str, audience: Audience) -> int:
        """In how many processes to check this audience: 1 unless it is large and in the store."""
        import os

        cpus = (
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1
        )
        if self.leads_csv is not None or cpus < 2:
            return 1  # an in-memory CSV store cannot be shared with other processes
        from sponsorcast.audience import count_recipients

        with self.store().read() as conn:
            total = conn.execute(count_recipients(sponsor_id, audience)).scalar_one()
        return min(cpus, MAX_SHARDS) if total >= PARALLEL_MIN_RECIPIENTS else 1

    def close(self) -> None:
        """Release the store."""
        if self._store is not None:
            self._store.dispose()
            self._store = None


def preview_campaign(path: Path, source: RecipientSource, to: str | None = None) -> Preview:
    """Render one campaign file for one recipient (``to``, else the audience's first)."""
    campaign = load_campaign(path)
    compiled = compile_campaign(
        campaign,
        source.sponsor(campaign.sponsor),
        unsubscribe_mailto=source.config.tracking.unsubscribe_mailto,
    )
    lead, note = source.find(campaign.sponsor, campaign.audience, to)
    message = render_message(compiled, lead, compiled.default_links)
    name = lead.get("name")
    to_header = f"{name} <{lead['email']}>" if name else str(lead["email"])
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
    from sponsorcast.errors import InputFileError, NotFound

    try:
        campaign = load_campaign(path)
        compiled = compile_campaign(
            campaign,
            source.sponsor(campaign.sponsor),
            unsubscribe_mailto=source.config.tracking.unsubscribe_mailto,
        )
        warnings = sending_warnings(compiled)
        return CheckResult(check_audience(compiled, source), warnings=warnings)
    except (InputFileError, NotFound) as exc:
        if isinstance(exc, InputFileError) and exc.path not in (None, str(path)):
            raise  # the leads CSV, not the campaign: the whole check is invalid
        line = exc.line if isinstance(exc, InputFileError) else None
        reason = exc.reason if isinstance(exc, InputFileError) else exc.message
        problem = Problem(path=str(path), line=line, message=reason, count=0)
        return CheckResult(
            CheckReport(campaign_id=path.stem, path=str(path), problems=[problem]), invalid=True
        )


def check_audience(compiled: CompiledCampaign, source: RecipientSource) -> CheckReport:
    """Render every recipient of the campaign's audience; split over CPUs when it is large."""
    campaign = compiled.campaign
    shards = source.shards(campaign.sponsor, campaign.audience)
    if shards > 1:
        return _check_in_parallel(compiled, source, shards)
    return check_recipients(compiled, source.recipients(campaign.sponsor, campaign.audience))


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
    return warnings


# A check of a large audience in the store is split over the CPUs: lead id modulo the number
# of shards, each shard streamed and rendered by its own process (the main one does shard 0).
PARALLEL_MIN_RECIPIENTS = 50_000  # below this, starting a process costs more than it saves
MAX_SHARDS = 4


def _check_in_parallel(
    compiled: CompiledCampaign, source: RecipientSource, shards: int
) -> CheckReport:
    import json
    import os
    import subprocess
    import sys

    campaign = compiled.campaign
    sponsor = source.sponsor(campaign.sponsor)
    job = _ShardJob(
        store_url=source.config.store_url,
        sponsor={
            k: getattr(sponsor, k)
            for k in ("id", "name", "from_address", "reply_to", "postal_address")
        },
        path=str(campaign.path),
        content_hash=campaign.content_hash,
        unsubscribe_mailto=source.config.tracking.unsubscribe_mailto,
        shards=shards,
    )
    # Plain subprocesses rather than multiprocessing: nothing depends on how the main module
    # was started (``python -m sponsorcast`` has no __main__ guard for spawn to respect), and no
    # database connection is inherited through fork.
    debug = os.environ.get("SPONSORCAST_DEBUG") == "1"
    workers: list[tuple[int, subprocess.Popen[bytes]]] = []
    for shard in range(1, shards):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from sponsorcast.render import shard_worker; shard_worker()",
                json.dumps({**job.__dict__, "shard": shard}),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=None if debug else subprocess.DEVNULL,  # a crash is handled: see below
        )
        workers.append((shard, proc))
    try:
        checked, found = _check_shard(job, 0, compiled=compiled, store=source.store())
        for shard, proc in workers:
            output, _ = proc.communicate()
            try:
                answer = json.loads(output) if proc.returncode == 0 else None
            except ValueError:
                answer = None
            if answer is None:  # the worker died: do its share here rather than fail
                more, their = _check_shard(job, shard, compiled=compiled, store=source.store())
            elif "error" in answer:
                raise _ShardFailure(**answer["error"]).error()
            else:
                more = answer["checked"]
                their = {
                    (p, line, msg): [n, order, email]
                    for p, line, msg, n, order, email in answer["found"]
                }
            checked += more
            _merge(found, their)
    finally:
        for _shard, proc in workers:
            if proc.returncode is None:  # not reaped: the main shard failed first
                proc.kill()
                proc.communicate()  # reaps it and closes its pipes
    return _report(campaign, checked, found)


@dataclass(frozen=True)
class _ShardFailure:
    """A sponsorcast error in a shard process, carried back as data."""

    kind: str
    reason: str
    path: str | None
    line: int | None
    hint: str | None

    def error(self) -> Exception:
        from sponsorcast import errors

        cls = getattr(errors, self.kind, None)
        if isinstance(cls, type) and issubclass(cls, errors.InputFileError):
            return cls(self.reason, path=self.path, line=self.line, hint=self.hint)
        if isinstance(cls, type) and issubclass(cls, errors.SponsorcastError):
            return cls(self.reason, hint=self.hint)
        return errors.BadInput(self.reason, hint=self.hint)


def shard_worker() -> None:
    """Entry point of a shard process: the job as JSON in argv[1], the result as JSON on stdout."""
    import json
    import sys

    from sponsorcast.errors import InputFileError, SponsorcastError

    data = json.loads(sys.argv[1])
    shard = data.pop("shard")
    try:
        checked, found = _check_shard(_ShardJob(**data), shard)
        answer: dict[str, Any] = {
            "checked": checked,
            "found": [[*key, *value] for key, value in found.items()],
        }
    except InputFileError as exc:
        answer = {
            "error": {
                "kind": type(exc).__name__,
                "reason": exc.reason,
                "path": exc.path,
                "line": exc.line,
                "hint": exc.hint,
            }
        }
    except SponsorcastError as exc:
        answer = {
            "error": {
                "kind": type(exc).__name__,
                "reason": exc.message,
                "path": None,
                "line": None,
                "hint": exc.hint,
            }
        }
    sys.stdout.write(json.dumps(answer))


@dataclass(frozen=True)
class _ShardJob:
    """What a shard process needs to check its part of an audience."""

    store_url: str
    sponsor: dict[str, Any]
    path: str
    content_hash: str
    unsubscribe_mailto: str
    shards: int


def _check_shard(
    job: _ShardJob,
    shard: int,
    *,
    compiled: CompiledCampaign | None = None,
    store: Store | None = None,
) -> tuple[int, _Found]:
    """Check the audience's leads whose id modulo ``job.shards`` is ``shard``."""
    from pathlib import Path

    from sponsorcast.audience import iter_recipients, select_recipients
    from sponsorcast.errors import BadInput
    from sponsorcast.store import open_store
    from sponsorcast.store.models import Sponsor

    own_store = store is None
    if compiled is None:
        campaign = load_campaign(Path(job.path))
        if campaign.content_hash != job.content_hash:
            raise BadInput(f"{job.path} changed while it was being checked; run the check again.")
        compiled = compile_campaign(
            campaign, Sponsor(**job.sponsor), unsubscribe_mailto=job.unsubscribe_mailto
        )
    if store is None:
        store = open_store(job.store_url, migrate=False, create=False)
    campaign = compiled.campaign
    query = select_recipients(campaign.sponsor, campaign.audience).where(
        lead_t.c.id % job.shards == shard
    )
    try:
        with store.read() as conn:
            return _collect_problems(compiled, iter_recipients(conn, query))
    finally:
        if own_store:
            store.dispose()
