"""Rendering: a campaign file becomes each recipient's email, and every recipient is checked.

Rule of this package: per-campaign work happens once (Markdown, compiling templates), only
substitution happens per recipient, and every template runs in the bounded sandbox. It reads
recipients but never writes the store, and it knows nothing of sending.

- ``sandbox``: Jinja's sandbox with limits on size, time and depth
- ``environment``: the Jinja environment (strict undefined, filters)
- ``markdown``: Markdown to an HTML template, Jinja tags kept intact
- ``compile``: a campaign's templates compiled once, unsafe code refused
- ``message``: one recipient's subject, text part, HTML part and headers
- ``check``: every recipient rendered, each distinct problem counted once
- ``recipients``: where recipients come from (the store, or a CSV)
- ``parallel``: large audiences checked in shards, one process per CPU
- ``preview``: ``render`` of one recipient, and of whole campaign files
"""

from __future__ import annotations

from sponsorcast.render.check import (
    CheckReport,
    Found,
    Problem,
    check_recipients,
    collect_problems,
    merge_found,
    report_of,
)
from sponsorcast.render.compile import (
    SUBJECT_BODY_SPLIT,
    CompiledCampaign,
    Links,
    StaticLinks,
    compile_campaign,
    compile_variants,
    html_file_line,
    mailto_unsubscribe,
)
from sponsorcast.render.environment import (
    NamedVars,
    encode_url,
    jinja_environment,
)
from sponsorcast.render.markdown import (
    ANCHOR_HREF,
    markdown_to_html,
)
from sponsorcast.render.message import (
    FALLBACK_NAME,
    RenderedMessage,
    render_html,
    render_message,
    render_subject,
    render_subject_and_text,
    render_text,
    template_vars,
)
from sponsorcast.render.parallel import (
    check_audience,
    check_variants,
    shard_worker,
)
from sponsorcast.render.preview import (
    CheckResult,
    Preview,
    check_campaign_file,
    preview_campaign,
    sending_warnings,
)
from sponsorcast.render.recipients import (
    FORK_MIN_RECIPIENTS,
    MAX_SHARDS,
    PARALLEL_MIN_RECIPIENTS,
    RecipientSource,
    fork_usable,
)

__all__ = [
    "ANCHOR_HREF",
    "FALLBACK_NAME",
    "FORK_MIN_RECIPIENTS",
    "MAX_SHARDS",
    "PARALLEL_MIN_RECIPIENTS",
    "SUBJECT_BODY_SPLIT",
    "CheckReport",
    "CheckResult",
    "CompiledCampaign",
    "Found",
    "Links",
    "NamedVars",
    "Preview",
    "Problem",
    "RecipientSource",
    "RenderedMessage",
    "StaticLinks",
    "check_audience",
    "check_campaign_file",
    "check_recipients",
    "check_variants",
    "collect_problems",
    "compile_campaign",
    "compile_variants",
    "encode_url",
    "fork_usable",
    "html_file_line",
    "jinja_environment",
    "mailto_unsubscribe",
    "markdown_to_html",
    "merge_found",
    "preview_campaign",
    "render_html",
    "render_message",
    "render_subject",
    "render_subject_and_text",
    "render_text",
    "report_of",
    "sending_warnings",
    "shard_worker",
    "template_vars",
]
