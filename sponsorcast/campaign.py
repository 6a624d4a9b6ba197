"""Campaign files: ``.md`` with YAML front matter, or ``.yaml``/``.yml`` with ``body:``.

``load_campaign`` validates a file into one frozen ``CampaignFile``; every error is a
``CampaignFileError`` naming the file and, where there is one, the line. Line numbers are
kept (``key_lines``, ``body_line``) so that template errors found later point into the file.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from sponsorcast.audience import Audience, parse_audience
from sponsorcast.config import LANGUAGE_TAG
from sponsorcast.durations import parse_duration
from sponsorcast.errors import BadInput, CampaignFileError
from sponsorcast.headers import header_problem, mailbox_problem
from sponsorcast.variants import ABTest, Variant, parse_variants

CAMPAIGN_SUFFIXES = (".md", ".yaml", ".yml")
KEYS = (
    "id",
    "name",
    "sponsor",
    "subject",
    "preheader",
    "from",
    "reply_to",
    "audience",
    "send_at",
    "tags",
    "language",
    "line_breaks",
    "layout",
    "rolling",
    "follows",
    "after",
    "expires",
    "variants",
    "test",
)
YAML_ONLY_KEYS = ("body",)
SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,127}$")
TAG_TEXT = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
# A date and a time, optionally seconds, fraction and offset; the date alone is not enough.
_DATETIME_TEXT = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|z|[+-]\d{2}(:?\d{2})?)?$"
)
# A time relative to when it is read: ``now``, ``in 2h`` / ``+90m`` / ``in 2 days``,
# ``today 17:00``, ``tomorrow 09:00``. Resolved in the configured zone by the scheduler.
RELATIVE_TIME = re.compile(
    r"^\s*(?:now|(?:in\s+|\+)(?:\d+\s*(?:s|secs?|seconds?|m|mins?|minutes?|h|hours?|d|days?|w|weeks?)\s*)+"
    r"|(?:today|tomorrow)\s+(?:at\s+)?\d{1,2}:\d{2})\s*$",
    re.IGNORECASE,
)
# Files in a campaigns directory that are not campaigns.
_SKIPPED_NAMES = {"readme.md"}


@dataclass(frozen=True, kw_only=True)
class CampaignFile:
    """A validated campaign file; ``send_at`` is naive when the file gave no UTC offset, and
    None with ``send_at_text`` set when it is relative (``tomorrow 09:00``)."""

    id: str
    name: str = ""
    sponsor: str = "default"
    subject: str
    body: str
    audience: Audience = field(default_factory=Audience)
    from_address: str | None = None
    reply_to: str | None = None
    send_at: datetime | None = None
    send_at_text: str | None = None  # a relative send_at, as written
    preheader: str = ""  # a template, like the subject: the inbox preview text
    language: str | None = None  # the HTML part's lang; None: the project's
    line_breaks: bool = True  # a single line break in the body is a line break in the email
    layout: str | None = (
        None  # a layout file of the project's (layouts/x.html); None: the sponsor's
    )
    layout_html: str | None = None  # that file's text, read when the campaign is loaded to send
    rolling: bool = False  # leads that join the audience later are sent it too
    follows: str | None = None  # a follow-up of this campaign: each recipient due ``after`` theirs
    after: str | None = None  # the duration, as written (``3d``)
    expires: str | None = None  # a follow-up holds a capped recipient back this long at most
    variants: tuple[Variant, ...] = ()  # an A/B test's variants (``sponsorcast.variants``)
    test: ABTest | None = None
    variant: str | None = None  # set on the copy one variant sends (``with_variant``)
    from_name: str | None = None  # that variant's display name for the from address
    tags: dict[str, str] = field(default_factory=dict)
    path: Path = Path("<campaign>")
    content_hash: str = ""
    body_line: int = 1
    key_lines: dict[str, int] = field(default_factory=dict)


def campaign_files(path: Path) -> list[Path]:
    """The campaign files a command-line argument names: the file itself, or a directory's."""
    if path.is_dir():
        files = sorted(
            p
            for p in path.iterdir()
            if p.is_file()
            and p.suffix.lower() in CAMPAIGN_SUFFIXES
            and not p.name.startswith((".", "_"))
            and p.name.lower() not in _SKIPPED_NAMES
        )
        if not files:
            raise BadInput(f"{path} holds no campaign files (*.md, *.yaml, *.yml).")
        return files
    if not path.exists():
        raise missing_file(path)
    if path.suffix.lower() not in CAMPAIGN_SUFFIXES:
        raise CampaignFileError("a campaign file must end in .md, .yaml or .yml.", path=path)
    return [path]


def missing_file(path: Path) -> CampaignFileError:
    """ "No such file", with the file the person probably meant: a campaign id given where a
    file is expected (``welcome`` → ``campaigns/welcome.md``), or a near miss of a name."""
    folder = path.parent if str(path.parent) not in ("", ".") else Path(".")
    candidates = [
        p for d in dict.fromkeys([folder, folder / "campaigns"]) if d.is_dir() for p in d.iterdir()
    ]
    files = {str(p): p for p in candidates if p.suffix.lower() in CAMPAIGN_SUFFIXES and p.is_file()}
    same_stem = [name for name, p in files.items() if p.stem == path.stem]
    if not path.suffix and same_stem:
        return CampaignFileError(
            "no such file.",
            path=path,
            hint=f"This command takes a campaign file, not a campaign id: did you mean {same_stem[0]}?",
        )
    close = difflib.get_close_matches(str(path), list(files), n=1, cutoff=0.75)
    hint = f"Did you mean {close[0]}?" if close else None
    return CampaignFileError("no such file.", path=path, hint=hint)


def load_campaign(path: Path) -> CampaignFile:
    """Read and validate one campaign file."""
    if not path.exists():
        raise missing_file(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CampaignFileError(
            f"cannot read the file: {exc.strerror or exc}.", path=path
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CampaignFileError("the file is not UTF-8 text.", path=path, line=line) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    is_markdown = path.suffix.lower() == ".md"
    if is_markdown:
        front, yaml_first_line, body, body_line = _split_front_matter(text, path)
    else:
        front, yaml_first_line, body, body_line = text, 1, None, 0
    data, lines, value_nodes = _parse_yaml(front, yaml_first_line, path)

    allowed = KEYS if is_markdown else KEYS + YAML_ONLY_KEYS
    for key, line in lines.items():
        if key not in allowed:
            hint = None
            if key == "body" and is_markdown:
                hint = "In a .md file the body is the text after the closing '---' line."
            raise CampaignFileError(
                f"unknown key '{key}' (allowed: {', '.join(allowed)}).",
                path=path,
                line=line,
                hint=hint,
            )

    def fail(message: str, key: str, hint: str | None = None) -> CampaignFileError:
        return CampaignFileError(
            message, path=path, line=lines.get(key, yaml_first_line), hint=hint
        )

    if not is_markdown:
        body_value = data.get("body")
        if body_value is None:
            raise fail(
                "the 'body' key is missing (a .yaml campaign carries its text under body:).", "body"
            )
        if not isinstance(body_value, str):
            raise fail("'body' must be text.", "body")
        body = body_value
        node = value_nodes["body"]
        # A block scalar (body: |) starts on the line after its indicator.
        body_line = (
            node.start_mark.line
            + yaml_first_line
            + (1 if getattr(node, "style", None) in ("|", ">") else 0)
        )
    assert body is not None
    if not body.strip():
        raise CampaignFileError("the body is empty.", path=path, line=body_line or None)

    campaign_id = _text(data, "id", fail)
    if campaign_id is None:
        campaign_id = path.stem
        if not SLUG.match(campaign_id):
            raise CampaignFileError(
                f"the file name '{path.stem}' is not a valid campaign id (lower-case letters, digits, "
                "'-' or '_').",
                path=path,
                line=yaml_first_line,
                hint="Rename the file or set 'id:' in the front matter.",
            )
    elif not SLUG.match(campaign_id):
        raise fail(
            f"id '{campaign_id}' must be a slug: lower-case letters, digits, '-' or '_'.", "id"
        )

    sponsor = _text(data, "sponsor", fail) or "default"
    if not re.match(r"^[a-z0-9][a-z0-9_-]{0,63}$", sponsor):
        raise fail(f"sponsor '{sponsor}' must be a sponsor id (a slug).", "sponsor")

    subject = _text(data, "subject", fail)
    if subject is None or not subject.strip():
        raise fail("the 'subject' key is missing or empty.", "subject")
    if "\n" in subject or "\r" in subject:
        raise fail("the subject contains a line break; subjects must be one line.", "subject")
    problem = header_problem(subject)
    if problem is not None:
        raise fail(f"the subject cannot go into an email header: {problem}.", "subject")

    preheader = (_text(data, "preheader", fail) or "").strip()
    if "\n" in preheader or "\r" in preheader or header_problem(preheader) is not None:
        raise fail(
            "the preheader must be one line of text without control characters.", "preheader"
        )
    language = _text(data, "language", fail)
    if language is not None and not LANGUAGE_TAG.match(language):
        raise fail(
            f"language {language!r} must be a language tag like en, de or pt-BR.", "language"
        )
    layout = _text(data, "layout", fail)
    line_breaks = data.get("line_breaks", True)
    if not isinstance(line_breaks, bool):
        raise fail("line_breaks must be true or false.", "line_breaks")
    rolling = data.get("rolling", False)
    if not isinstance(rolling, bool):
        raise fail("rolling must be true or false.", "rolling")
    follows, after = _follow_up(data, campaign_id, fail)
    expires = _expires(data, follows, fail)
    variants, test = parse_variants(data, fail)
    if test is not None and (follows or rolling):
        key = "follows" if follows else "rolling"
        raise fail(
            f"an A/B test cannot also be a {'follow-up' if follows else 'rolling campaign'}.", key
        )

    from_address = _address(data, "from", fail)
    reply_to = _address(data, "reply_to", fail)

    try:
        audience = parse_audience(data.get("audience"))
    except BadInput as exc:
        raise fail(_sentence(exc.message), "audience") from None

    send_at = _send_at(data, value_nodes, fail)
    tags = _tags(data.get("tags"), fail)
    name = _text(data, "name", fail) or campaign_id

    return CampaignFile(
        id=campaign_id,
        name=name,
        sponsor=sponsor,
        subject=subject.strip(),
        body=body,
        audience=audience,
        from_address=from_address,
        reply_to=reply_to,
        send_at=send_at if not isinstance(send_at, str) else None,
        send_at_text=send_at if isinstance(send_at, str) else None,
        preheader=preheader,
        language=language,
        line_breaks=line_breaks,
        layout=layout,
        rolling=rolling,
        follows=follows,
        after=after,
        expires=expires,
        variants=variants,
        test=test,
        tags=tags,
        path=path,
        content_hash=hashlib.sha256(raw).hexdigest(),
        body_line=body_line,
        key_lines=dict(lines),
    )


def _split_front_matter(text: str, path: Path) -> tuple[str, int, str, int]:
    """Split ``---`` front matter from the body: (yaml, its first line, body, body's first line)."""
    lines = text.split("\n")
    if not lines or lines[0].rstrip() != "---":
        raise CampaignFileError(
            "a .md campaign must start with YAML front matter between '---' lines.",
            path=path,
            line=1,
        )
    for index in range(1, len(lines)):
        if lines[index].rstrip() in ("---", "..."):
            front = "\n".join(lines[1:index])
            body = "\n".join(lines[index + 1 :])
            return front, 2, body, index + 2
    raise CampaignFileError("the front matter has no closing '---' line.", path=path, line=1)


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps the composed node tree so keys can be traced to lines."""


def _parse_yaml(
    text: str, first_line: int, path: Path
) -> tuple[dict[str, Any], dict[str, int], dict[str, yaml.Node]]:
    """Parse YAML, returning the mapping, each top-level key's file line and its value node."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}, {}, {}
        if not isinstance(node, yaml.MappingNode):
            line = node.start_mark.line + first_line
            raise CampaignFileError(
                "the front matter must be a mapping of keys (subject:, audience:, …).",
                path=path,
                line=line,
            )
        lines: dict[str, int] = {}
        values: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            line = key_node.start_mark.line + first_line
            if key in lines:
                raise CampaignFileError(
                    f"the key '{key}' appears twice (first on line {lines[key]}).",
                    path=path,
                    line=line,
                )
            lines[key] = line
            values[key] = value_node
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + first_line if mark is not None else first_line
        problem = exc.problem or exc.context or "syntax error"
        if exc.problem and exc.context and exc.context_mark is not None:
            # e.g. "found unexpected end of stream (while scanning a quoted scalar on line 3)"
            problem += f" ({exc.context} on line {exc.context_mark.line + first_line})"
        raise CampaignFileError(f"invalid YAML: {problem}.", path=path, line=line) from None
    except yaml.YAMLError as exc:
        raise CampaignFileError(f"invalid YAML: {exc}.", path=path, line=first_line) from None
    finally:
        loader.dispose()
    return data, lines, values


def _sentence(message: str) -> str:
    return message[0].lower() + message[1:] if message else message


def _text(data: dict[str, Any], key: str, fail: Any) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise fail(f"'{key}' must be text.", key)
    return str(value)


def _address(data: dict[str, Any], key: str, fail: Any) -> str | None:
    value = _text(data, key, fail)
    if value is None:
        return None
    problem = mailbox_problem(value.strip())
    if problem is not None:
        raise fail(f"'{key}' {value!r} cannot be a sender address: {problem}.", key)
    return value.strip()


def _send_at(data: dict[str, Any], nodes: dict[str, yaml.Node], fail: Any) -> datetime | str | None:
    if data.get("send_at") is None:
        return None
    node = nodes["send_at"]
    raw = node.value if isinstance(node, yaml.ScalarNode) else None
    hint = (
        "Write a date and time, e.g. 2026-12-01T09:00:00+01:00 (or without offset for local "
        "time), or a relative one: 'tomorrow 09:00', 'in 2h'."
    )
    if isinstance(raw, str) and RELATIVE_TIME.match(raw):
        return raw.strip()
    if not isinstance(raw, str) or not _DATETIME_TEXT.match(raw.strip()):
        shown = raw if isinstance(raw, str) else data.get("send_at")
        if isinstance(data.get("send_at"), date) and not isinstance(data.get("send_at"), datetime):
            raise fail(f"send_at {shown!r} is a date without a time.", "send_at", hint)
        raise fail(f"send_at {shown!r} is not a date and time.", "send_at", hint)
    try:
        return datetime.fromisoformat(raw.strip().replace("z", "Z"))
    except ValueError:
        raise fail(f"send_at {raw!r} is not a valid date and time.", "send_at", hint) from None


def _tags(raw: Any, fail: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise fail("'tags' must be a mapping of name: value.", "tags")
    tags: dict[str, str] = {}
    for name, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise fail(f"tag '{name}' must have a text value.", "tags")
        name_text, value_text = str(name), str(value)
        for what, text in (("name", name_text), ("value", value_text)):
            if not TAG_TEXT.match(text):
                raise fail(
                    f"tag {what} '{text}' may only hold ASCII letters, digits, '_' and '-' "
                    "(at most 256 characters).",
                    "tags",
                )
        tags[name_text] = value_text
    return tags


def _follow_up(data: dict[str, Any], campaign_id: str, fail: Any) -> tuple[str | None, str | None]:
    """``follows`` and ``after``: both or neither; a campaign id and a duration."""
    follows, after = data.get("follows"), data.get("after")
    if follows is None and after is None:
        return None, None
    if follows is None or after is None:
        key = "after" if follows is None else "follows"
        raise fail("a follow-up needs both 'follows: CAMPAIGN_ID' and 'after: 3d'.", key)
    if not isinstance(follows, str) or not SLUG.match(follows.strip()):
        raise fail("follows must be the id of a campaign, like spring-launch.", "follows")
    if follows.strip() == campaign_id:
        raise fail(f"campaign '{campaign_id}' cannot follow itself.", "follows")
    if not isinstance(after, str):
        raise fail("after must be a duration such as 3d or 36h.", "after")
    try:
        parse_duration(after)
    except BadInput as exc:
        raise fail(exc.message, "after") from None
    return follows.strip(), after.strip().lower()


def _expires(data: dict[str, Any], follows: str | None, fail: Any) -> str | None:
    """``expires`` of a follow-up: how long after a recipient came due the frequency cap may
    still hold them back before they are skipped."""
    expires = data.get("expires")
    if expires is None:
        return None
    if follows is None:
        raise fail("expires is for a follow-up (with follows: and after:).", "expires")
    if not isinstance(expires, str):
        raise fail("expires must be a duration such as 14d.", "expires")
    try:
        parse_duration(expires)
    except BadInput as exc:
        raise fail(exc.message, "expires") from None
    return expires.strip().lower()
