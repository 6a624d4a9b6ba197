"""Rendering: golden emails, the sandbox, fallbacks, escaping, links, and ``render`` / ``--check``.

Golden files live in tests/data/golden/; after a deliberate change of the output, regenerate
them with ``SPONSORCAST_UPDATE_GOLDEN=1 .venv/bin/pytest tests/render/test_render.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from sponsorcast import render as render_module
from sponsorcast.audience import Audience, tags_to_text
from sponsorcast.campaign import load_campaign
from sponsorcast.errors import CampaignFileError, SandboxRefused, TemplateError
from sponsorcast.render import (
    StaticLinks,
    check_recipients,
    compile_campaign,
    markdown_to_html,
    render_message,
)
from sponsorcast.render import compile as compile_module
from sponsorcast.render import markdown as markdown_module
from sponsorcast.render import parallel as parallel_module
from sponsorcast.render import recipients as recipients_module
from sponsorcast.store import Store
from sponsorcast.store.models import Sponsor
from sponsorcast.store.tables import lead_t
from tests.support.project import DATA, PROJECT_TOML, REPO, Project

CAMPAIGNS = DATA / "campaigns"
GOLDEN = DATA / "golden"
LEADS_CSV = REPO / "tests" / "leads.csv"
SPONSOR = Sponsor(
    id="default",
    name="Example Events",
    from_address="Example Events <hello@example.com>",
    postal_address="1 Example Street, Springfield",
)
ADA = {
    "id": 1,
    "email": "ada@example.com",
    "name": "Ada Lovelace",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "company": "Analytical Engines & Co",
    "title": "CTO",
    "intent_score": 92,
    "tags": ["enterprise"],
    "fields": {"booth": "12", "badge_url": "https://badge.test/b?id=7&k=x y", "name": "NOT ME"},
}


def _golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("SPONSORCAST_UPDATE_GOLDEN") == "1":
        path.write_text(actual, encoding="utf-8")
    assert actual == path.read_text(encoding="utf-8")


def _unstyled(html: str) -> str:
    """The HTML without its inline styles: the structure these tests are about."""
    return re.sub(r' style="[^"]*"', "", html)


def _compiled(name: str = "golden.md", sponsor: Sponsor = SPONSOR) -> Any:
    return compile_campaign(load_campaign(CAMPAIGNS / name), sponsor)


# ----------------------------------------------------------------------------- golden emails


def test_golden_email() -> None:
    compiled = _compiled()
    message = render_message(compiled, ADA, compiled.default_links)
    _golden("golden.subject.txt", message.subject + "\n")
    _golden("golden.text.txt", message.text)
    _golden("golden.html", message.html)
    assert message.headers == {
        "List-Id": '"Golden sample (Example Events)" <golden.default.example.com>',
        "List-Unsubscribe": "<mailto:hello@example.com?subject=unsubscribe>",
    }


def test_golden_personalised_links_survive_markdown() -> None:
    html = _unstyled(render_message(_compiled(), ADA, StaticLinks("https://u.test/x")).html)
    # {{ company | urlencode }} inside a link target, and {{ fields.badge_url }} with spaces in
    # the placeholder: both stay links, with the value encoded once and HTML-escaped in href.
    assert '<a href="https://x.test/?c=Analytical%20Engines%20%26%20Co">Book a demo</a>' in html
    assert '<a href="https://badge.test/b?id=7&amp;k=x%20y">Your badge</a>' in html
    assert '<a href="https://x.test/agenda?who=ada%40example.com&amp;lang=en">Agenda</a>' in html
    assert "%7B%7B" not in html and "{{" not in html


def test_golden_fallbacks_for_a_lead_without_name_or_company() -> None:
    compiled = _compiled()
    lead = {
        "email": "linus@example.com",
        "name": None,
        "first_name": "",
        "company": None,
        "fields": {"booth": "7", "badge_url": "https://badge.test/l"},
    }
    message = render_message(compiled, lead, compiled.default_links)
    _golden("fallbacks.subject.txt", message.subject + "\n")
    _golden("fallbacks.text.txt", message.text)
    assert message.subject == "there, Example Events saved you a seat"
    assert message.text.startswith("Hello there!\n\nThanks for visiting Example Events.\n")
    assert '<a href="https://x.test/?c=">Book a demo</a>' in _unstyled(message.html)


def test_markdown_is_converted_once_with_placeholders_restored() -> None:
    html, lines = markdown_to_html(
        "Hi {{ name }}\n\n[a]({{ url }}) [b](https://x.test/?q={{ q|urlencode }})\n"
    )
    assert _unstyled(html) == (
        "<p>Hi {{ name }}</p>\n"
        '<p><a href="{{ url }}">a</a> <a href="https://x.test/?q={{ q|urlencode }}">b</a></p>\n'
    )
    assert lines == {1: 1, 2: 3}


def test_statement_lines_wrap_whole_html_blocks() -> None:
    body = (
        "Hi\n\n{% for t in tags %}\n- {{ t }}\n{% endfor %}\n\n"
        "{% if company %}\nThanks {{ company }}!\n\nMore.\n{% else %}\nHi anyway.\n{% endif %}\n"
    )
    html, _lines = markdown_to_html(body)
    assert _unstyled(html) == (
        "<p>Hi</p>\n<ul>\n{% for t in tags %}\n<li>{{ t }}</li>\n{% endfor %}\n</ul>\n"
        "{% if company %}\n<p>Thanks {{ company }}!</p>\n<p>More.</p>\n{% else %}\n<p>Hi anyway.</p>\n"
        "{% endif %}\n"
    )
    compiled = compile_campaign(replace(load_campaign(CAMPAIGNS / "golden.md"), body=body), SPONSOR)
    message = render_message(compiled, {**ADA, "tags": ["a", "b"]}, compiled.default_links)
    assert (
        "<ul>\n\n<li>a</li>\n\n<li>b</li>\n\n</ul>\n\n<p>Thanks Analytical Engines &amp; Co!</p>"
        in _unstyled(message.html)
    )
    # in the text part, lines holding only statements leave nothing behind: one tight list
    assert message.text.startswith(
        "Hi\n\n- a\n- b\n\nThanks Analytical Engines & Co!\n\nMore.\n\n-- \n"
    )


def test_values_are_html_escaped_in_html_but_not_in_text() -> None:
    compiled = _compiled()
    lead = {**ADA, "first_name": "<script>alert(1)</script>", "company": '<b>"Evil" & Co</b>'}
    message = render_message(compiled, lead, compiled.default_links)
    assert "<script>" not in message.html
    assert "<h1>Hello &lt;script&gt;alert(1)&lt;/script&gt;!</h1>" in _unstyled(message.html)
    assert "with the &lt;b&gt;&#34;Evil&#34; &amp; Co&lt;/b&gt; team" in message.html
    assert (
        "<title>&lt;script&gt;alert(1)&lt;/script&gt;, Example Events saved you a seat</title>"
        in message.html
    )
    assert message.text.startswith("Hello <script>alert(1)</script>!")
    assert message.subject == "<script>alert(1)</script>, Example Events saved you a seat"


def test_rendering_is_deterministic() -> None:
    compiled = _compiled()
    first = render_message(compiled, ADA, compiled.default_links)
    again = render_message(_compiled(), dict(ADA), compiled.default_links)
    assert first == again


def test_fields_are_top_level_but_never_override_standard_names() -> None:
    compiled = _compiled()
    text = render_message(compiled, ADA, compiled.default_links).text
    assert "Booth 12 · score 92" in text  # {{ booth }} is fields.booth
    compiled = compile_campaign(
        replace(load_campaign(CAMPAIGNS / "golden.md"), body="{{ name }}/{{ fields.name }}\n"),
        SPONSOR,
    )
    assert render_message(compiled, ADA, compiled.default_links).text.startswith(
        "Ada Lovelace/NOT ME\n"
    )


def test_subject_line_breaks_from_data_are_collapsed_and_empty_subject_is_an_error() -> None:
    base = load_campaign(CAMPAIGNS / "golden.md")
    compiled = compile_campaign(replace(base, subject="Hi {{ company }}!"), SPONSOR)
    links = compiled.default_links
    assert render_message(compiled, {**ADA, "company": "A\r\n  B\nC"}, links).subject == "Hi A B C!"
    compiled = compile_campaign(replace(base, subject="{{ company }}"), SPONSOR)
    with pytest.raises(TemplateError) as info:
        render_message(compiled, {**ADA, "company": ""}, links)
    assert str(info.value) == f"{CAMPAIGNS / 'golden.md'}:4: the subject renders empty."


def test_undefined_variable_names_file_and_line() -> None:
    compiled = _compiled("check/bad.md")
    with pytest.raises(TemplateError) as info:
        render_message(compiled, ADA, compiled.default_links)
    assert str(info.value) == f"{CAMPAIGNS / 'check/bad.md'}:2: undefined variable 'fist_name'"


@dataclass(frozen=True)
class TrackingLinks:
    """A stand-in for the tracking engineer's Links: rewrites links, adds a pixel."""

    unsubscribe_url: str = "https://t.test/u/TOKEN"
    pixel_url: str | None = "https://t.test/o/TOKEN.gif"

    def click(self, url: str) -> str:
        from urllib.parse import quote

        return "https://t.test/c/TOKEN?u=" + quote(url, safe="")


def test_tracking_links_rewrite_every_href_and_add_the_pixel() -> None:
    compiled = _compiled()
    message = render_message(compiled, ADA, TrackingLinks())
    html = _unstyled(message.html)
    assert (
        '<a href="https://t.test/c/TOKEN?u=https%3A%2F%2Fx.test%2F%3Fc%3DAnalytical%2520Engines%2520%2526%2520Co">'
        "Book a demo</a>" in html
    )
    # the href was unescaped (&amp; -> &) before click() saw it
    assert "u=https%3A%2F%2Fbadge.test%2Fb%3Fid%3D7%26k%3Dx%2520y" in html
    # the unsubscribe link (body and footer) is never turned into a click redirect
    assert html.count('<a href="https://t.test/u/TOKEN">') == 2
    assert '<img src="https://t.test/o/TOKEN.gif" width="1" height="1" alt=""' in html
    assert "Unsubscribe: https://t.test/u/TOKEN\n" in message.text
    assert message.headers == {
        "List-Id": '"Golden sample (Example Events)" <golden.default.example.com>',
        "List-Unsubscribe": "<https://t.test/u/TOKEN>, <mailto:hello@example.com?subject=unsubscribe>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def test_check_recipients_counts_each_distinct_problem_once() -> None:
    compiled = _compiled("check/bad.md")
    leads = [
        {**ADA, "email": "a@x.test", "company": "Compilers Inc", "fields": {}},
        {**ADA, "email": "b@x.test", "company": "Other", "fields": {}},
        {**ADA, "email": "c@x.test", "company": "Compilers Inc", "fields": {"booth": "1"}},
    ]
    report = check_recipients(compiled, leads)
    path = str(CAMPAIGNS / "check/bad.md")
    assert report.checked == 3 and not report.ok
    assert [p.as_dict() for p in report.problems] == [
        {
            "file": path,
            "line": 2,
            "message": "undefined variable 'fist_name'",
            "recipients": 3,
            "example": "a@x.test",
        },
        {
            "file": path,
            "line": 7,
            "message": "undefined variable 'fields.booth'",
            "recipients": 1,
            "example": "a@x.test",
        },
        {
            "file": path,
            "line": 9,
            "message": "undefined variable 'sponsor.nmae'",
            "recipients": 2,
            "example": "b@x.test",
        },
    ]


# ----------------------------------------------------------------------------- sandbox


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "escape_mro.md",
            "access to '__class__' is not allowed: templates run in a sandbox and cannot reach Python internals.",
        ),
        (
            "escape_globals.md",
            "access to '__init__' is not allowed: templates run in a sandbox and cannot reach Python internals.",
        ),
        (
            "escape_self.md",
            "access to '_TemplateReference__context' is not allowed: templates run in a sandbox and cannot reach Python internals.",
        ),
        (
            "escape_format.md",
            "refused by the sandbox: access to attribute '__class__' of 'int' object is unsafe.",
        ),
    ],
)
@pytest.mark.parametrize("check", [False, True])
def test_sandbox_escapes_are_refused(tmp_path: Path, name: str, message: str, check: bool) -> None:
    project = _bare_project(tmp_path)
    path = CAMPAIGNS / "invalid" / name
    args = ["render", str(path), "--leads", str(LEADS_CSV)] + (["--check"] if check else [])
    result = project.run(*args)
    assert result.exit_code == 2
    if check:  # reported like every invalid file, so a directory check names them all
        assert (
            result.stdout
            == f"{path}: invalid\n  {path}:6: {message}\n1 campaign file checked: 1 problem in 1.\n"
        )
    else:
        assert result.stdout == ""
        assert result.stderr.splitlines()[0] == f"Error: {path}:6: {message}"
    assert "Hi" not in result.stdout  # nothing rendered


# ----------------------------------------------------------------------------- the render command


def _bare_project(tmp_path: Path) -> Project:
    """A project directory with a config but no store file."""
    (tmp_path / "sponsorcast.toml").write_text(PROJECT_TOML, encoding="utf-8")
    return Project(path=tmp_path, runner=CliRunner())


def _insert_leads(store: Store, rows: list[dict[str, Any]]) -> None:
    with store.write() as conn:
        conn.execute(
            lead_t.insert(),
            [
                {
                    "sponsor_id": "default",
                    "follow_up_status": "new",
                    "fields": {},
                    "name": None,
                    "first_name": None,
                    "company": None,
                    "intent_level": None,
                    **row,
                    "tags": tags_to_text(row.get("tags", [])),
                }
                for row in rows
            ],
        )


def _write_check_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "campaigns"
    folder.mkdir()
    for name in ("good.md", "bad.md"):
        (folder / name).write_text(
            (CAMPAIGNS / "check" / name).read_text(encoding="utf-8"), encoding="utf-8"
        )
    return folder


def test_check_directory_with_leads_csv_text(tmp_path: Path) -> None:
    project = _bare_project(tmp_path)
    _write_check_dir(tmp_path)
    result = project.run("render", "campaigns", "--check", "--leads", str(LEADS_CSV))
    assert result.exit_code == 1
    assert result.stdout == (
        "campaigns/bad.md: 3 recipients checked, 3 problems\n"
        "  campaigns/bad.md:2: undefined variable 'fist_name' (3 of 3 recipients, e.g. ada@example.com)\n"
        "  campaigns/bad.md:7: undefined variable 'fields.booth' (1 of 3 recipients, e.g. grace@example.com)\n"
        "  campaigns/bad.md:9: undefined variable 'sponsor.nmae' (2 of 3 recipients, e.g. ada@example.com)\n"
        "campaigns/good.md: 6 recipients checked, ok\n"
        "2 campaign files checked: 3 problems in 1.\n"
    )
    assert not (tmp_path / "sponsorcast.db").exists()


def test_check_directory_with_leads_csv_github(tmp_path: Path) -> None:
    project = _bare_project(tmp_path)
    _write_check_dir(tmp_path)
    result = project.run(
        "render", "campaigns", "--check", "--leads", str(LEADS_CSV), "--format", "github"
    )
    assert result.exit_code == 1
    assert result.stdout == (
        "::error file=campaigns/bad.md,line=2::undefined variable 'fist_name' (3 of 3 recipients, e.g. ada@example.com)\n"
        "::error file=campaigns/bad.md,line=7::undefined variable 'fields.booth' (1 of 3 recipients, e.g. grace@example.com)\n"
        "::error file=campaigns/bad.md,line=9::undefined variable 'sponsor.nmae' (2 of 3 recipients, e.g. ada@example.com)\n"
        "2 campaign files checked: 3 problems in 1.\n"
    )
    assert not (tmp_path / "sponsorcast.db").exists()


def test_check_directory_with_leads_csv_json(tmp_path: Path) -> None:
    project = _bare_project(tmp_path)
    _write_check_dir(tmp_path)
    result = project.run(
        "render", "campaigns", "--check", "--leads", str(LEADS_CSV), "--format", "json"
    )
    assert result.exit_code == 1

    def problem(line: int, message: str, count: int, example: str) -> dict[str, Any]:
        return {
            "file": "campaigns/bad.md",
            "line": line,
            "message": message,
            "recipients": count,
            "example": example,
        }

    assert json.loads(result.stdout) == {
        "ok": False,
        "problems": 3,
        "campaigns": [
            {
                "file": "campaigns/bad.md",
                "campaign": "bad",
                "valid": True,
                "recipients": 3,
                "problems": [
                    problem(2, "undefined variable 'fist_name'", 3, "ada@example.com"),
                    problem(7, "undefined variable 'fields.booth'", 1, "grace@example.com"),
                    problem(9, "undefined variable 'sponsor.nmae'", 2, "ada@example.com"),
                ],
                "warnings": [],
            },
            {
                "file": "campaigns/good.md",
                "campaign": "good",
                "valid": True,
                "recipients": 6,
                "problems": [],
                "warnings": [],
            },
        ],
    }
    assert not (tmp_path / "sponsorcast.db").exists()


def test_check_against_the_store(project: Project, store: Store) -> None:
    _insert_leads(
        store,
        [
            {
                "email": "a@x.test",
                "name": "A",
                "first_name": "A",
                "company": "Compilers Inc",
                "intent_level": "hot",
            },
            {
                "email": "b@x.test",
                "name": "B",
                "first_name": "B",
                "company": "Other",
                "intent_level": "hot",
            },
            {
                "email": "c@x.test",
                "name": "C",
                "first_name": "C",
                "company": "Cold",
                "intent_level": "cold",
            },
        ],
    )
    good = project.run("render", str(CAMPAIGNS / "check" / "good.md"), "--check")
    assert (good.exit_code, good.stdout) == (
        0,
        (
            f"{CAMPAIGNS / 'check' / 'good.md'}: 3 recipients checked, ok\n1 campaign file checked: no problems.\n"
        ),
    )
    bad = project.run("render", str(CAMPAIGNS / "check" / "bad.md"), "--check", "--format", "json")
    assert bad.exit_code == 1
    counts = [
        (p["line"], p["recipients"]) for p in json.loads(bad.stdout)["campaigns"][0]["problems"]
    ]
    assert counts == [(2, 2), (7, 1), (9, 1)]  # audience hot: a and b only


def test_repository_campaigns_pass_the_ci_check() -> None:
    project = Project(path=REPO, runner=CliRunner())
    result = project.run(
        "render", "campaigns/", "--check", "--leads", "tests/leads.csv", "--format", "github"
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "::error" not in result.stdout


def test_preview_first_recipient_from_the_store(project: Project, store: Store) -> None:
    _insert_leads(
        store,
        [
            {
                "email": "ada@example.com",
                "name": "Ada Lovelace",
                "first_name": "Ada",
                "company": "<script>",
            },
            {"email": "linus@example.com", "name": "Linus", "first_name": "Linus"},
        ],
    )
    result = project.run("render", str(REPO / "campaigns" / "welcome.md"))
    assert result.exit_code == 0, result.stderr
    head = result.stdout.split("----- text part -----")[0]
    assert head == (
        f"Campaign: welcome ({REPO / 'campaigns' / 'welcome.md'})\n"
        "To:       Ada Lovelace <ada@example.com>\n"
        "From:     Example Events <hello@example.com>\n"
        "Subject:  Ada, thanks for visiting Example Events\n\n"
    )
    assert "we hope &lt;script&gt; enjoyed the show" in result.stdout  # the HTML part
    assert "we hope <script> enjoyed the show" in result.stdout  # the text part


def test_preview_to_an_address_and_html_to_a_file(project: Project, store: Store) -> None:
    _insert_leads(
        store,
        [
            {
                "email": "ada@example.com",
                "name": "Ada Lovelace",
                "first_name": "Ada",
                "intent_level": "hot",
            },
            {
                "email": "linus@example.com",
                "name": "Linus",
                "first_name": "Linus",
                "intent_level": "cold",
            },
        ],
    )
    out = project.path / "preview.html"
    result = project.run(
        "render",
        str(CAMPAIGNS / "golden.md"),
        "--to",
        "LINUS@example.com",
        "--html",
        str(out),
        "--format",
        "json",
    )
    # golden.md needs fields.badge_url, which these leads lack: an error naming file and line
    assert result.exit_code == 2
    assert (
        result.stderr.splitlines()[0]
        == f"Error: {CAMPAIGNS / 'golden.md'}:13: undefined variable 'fields.badge_url'"
    )
    assert not out.exists()

    result = project.run(
        "render",
        str(CAMPAIGNS / "check" / "good.md"),
        "--to",
        "LINUS@example.com",
        "--html",
        str(out),
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["to"] == "Linus <linus@example.com>" and data["subject"] == "Hi Linus"
    assert out.read_text(encoding="utf-8") == data["html"]


def test_preview_to_a_lead_outside_the_audience_warns(project: Project, store: Store) -> None:
    _insert_leads(
        store,
        [
            {"email": "c@x.test", "name": "C", "first_name": "C", "intent_level": "cold"},
            {"email": "h@x.test", "name": "H", "first_name": "H", "intent_level": "hot"},
        ],
    )
    path = project.path / "hot.md"
    path.write_text(
        "---\nsubject: Hi {{ first_name }}\naudience: hot\n---\nBody\n", encoding="utf-8"
    )
    result = project.run("render", str(path), "--to", "c@x.test")
    assert result.exit_code == 0
    assert "Warning: c@x.test is not in this campaign's audience (hot)." in result.stderr
    assert "Subject:  Hi C\n" in result.stdout
    unknown = project.run("render", str(path), "--to", "nobody@x.test")
    assert unknown.exit_code == 2
    assert unknown.stderr.splitlines()[0] == "Error: No lead nobody@x.test for sponsor 'default'."


def test_preview_with_an_empty_audience_is_an_error(project: Project) -> None:
    result = project.run("render", str(REPO / "campaigns" / "welcome.md"))
    assert result.exit_code == 2
    assert (
        result.stderr.splitlines()[0]
        == "Error: The audience (all) of sponsor 'default' has no leads to preview."
    )


def test_render_without_a_store_does_not_create_one(tmp_path: Path) -> None:
    project = _bare_project(tmp_path)
    result = project.run("render", str(REPO / "campaigns" / "welcome.md"), "--check")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: The store ")
    assert not (tmp_path / "sponsorcast.db").exists()


def test_preview_with_leads_csv_leaves_no_store(tmp_path: Path) -> None:
    project = _bare_project(tmp_path)
    result = project.run(
        "render",
        str(REPO / "campaigns" / "welcome.md"),
        "--leads",
        str(LEADS_CSV),
        "--to",
        "linus@example.com",
    )
    assert result.exit_code == 0, result.stderr
    assert "Subject:  Linus, thanks for visiting Example Events\n" in result.stdout
    assert (
        "Thanks for stopping by our booth.\n" in result.stdout
    )  # no company: the if-branch is skipped
    assert list(tmp_path.iterdir()) == [tmp_path / "sponsorcast.toml"]


def test_unknown_sponsor_with_leads_names_the_config_table(tmp_path: Path) -> None:
    project = _bare_project(tmp_path)
    path = tmp_path / "acme.md"
    path.write_text("---\nsubject: Hi\nsponsor: acme\n---\nBody\n", encoding="utf-8")
    result = project.run("render", str(path), "--leads", str(LEADS_CSV))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "Error: Unknown sponsor 'acme' (known: default).",
        "Hint: With --leads, sponsors come from the config: add [sponsors.acme].",
    ]


def test_check_compiles_each_campaign_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _bare_project(tmp_path)
    _write_check_dir(tmp_path)
    calls: list[str] = []
    real_compile, real_markdown = compile_module.compile_campaign, markdown_module.convert_body

    def counting_compile(campaign: Any, sponsor: Any, **kw: Any) -> Any:
        calls.append("compile:" + campaign.id)
        return real_compile(campaign, sponsor, **kw)

    def counting_markdown(body: str, **kw: Any) -> Any:
        calls.append("markdown")
        return real_markdown(body, **kw)

    monkeypatch.setattr(compile_module, "compile_campaign", counting_compile)
    monkeypatch.setattr(compile_module, "convert_body", counting_markdown)
    result = project.run("render", "campaigns", "--check", "--leads", str(LEADS_CSV))
    assert result.exit_code == 1
    assert calls == [
        "compile:bad",
        "markdown",
        "compile:good",
        "markdown",
    ]  # 9 recipients, 2 compiles


def test_check_conflicting_options(project: Project) -> None:
    result = project.run("render", str(REPO / "campaigns"), "--check", "--to", "a@x.test")
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == "Error: --to previews one recipient; it cannot be combined with --check."
    )


def test_store_is_unchanged_by_check(project: Project, store: Store) -> None:
    _insert_leads(store, [{"email": "a@x.test", "name": "A", "first_name": "A"}])
    db = project.path / "sponsorcast.db"

    def dump() -> list[Any]:
        con = sqlite3.connect(db)
        try:
            return [
                list(con.execute(f"SELECT * FROM {t}"))
                for t in ("lead", "sponsor", "campaign", "delivery")
            ]
        finally:
            con.close()

    before = dump()
    project.run("render", str(CAMPAIGNS / "check"), "--check")
    project.run("render", str(CAMPAIGNS / "invalid" / "escape_mro.md"), "--check")
    assert dump() == before
    with store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(lead_t)).scalar_one() == 1


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "spawned"])
def test_check_split_over_processes_reports_the_same(
    project: Project, store: Store, monkeypatch: pytest.MonkeyPatch, fork: bool
) -> None:
    companies = ["Compilers Inc", "Other", None]
    _insert_leads(
        store,
        [
            {
                "email": f"l{i}@x.test",
                "name": f"L{i}",
                "first_name": f"L{i}",
                "company": companies[i % 3],
                "intent_level": "hot",
            }
            for i in range(12)
        ],
    )
    args = ("render", str(CAMPAIGNS / "check"), "--check", "--format", "json")
    single = project.run(*args)
    monkeypatch.setattr(render_module.RecipientSource, "shards", lambda self, sponsor, audience: 3)
    monkeypatch.setattr(parallel_module, "fork_usable", lambda: fork)
    log = project.path / "chunks.log"
    real = parallel_module._check_shard

    def logged(job: Any, chunks: Any, **kw: Any) -> Any:
        result = real(job, chunks, **kw)
        with log.open("a") as out:  # forked shards run this too: one line each, appended
            out.write(json.dumps([os.getpid(), job.path, result[2]]) + "\n")
        return result

    monkeypatch.setattr(parallel_module, "_check_shard", logged)
    split = project.run(*args)
    assert (split.exit_code, split.stdout) == (single.exit_code, single.stdout)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    by_file: dict[str, list[int]] = {}
    for _pid, path, done in lines:
        by_file.setdefault(path, []).extend(done)
    # 12 leads with ids 1..12 over 3 shards: 24 chunks wanted, so one lead id a chunk
    if fork:  # every process takes chunks as it goes: each chunk checked once, none twice
        assert {path: sorted(done) for path, done in by_file.items()} == {
            path: list(range(12)) for path in by_file
        }
        assert len(by_file) == 2 and os.getpid() in {pid for pid, _path, _done in lines}
    else:  # a spawned shard gets every third chunk; only this process's own call logs here
        assert by_file == {path: [0, 3, 6, 9] for path in by_file} and len(by_file) == 2
    problems = json.loads(split.stdout)["campaigns"][0]["problems"]
    assert [(p["line"], p["recipients"], p["example"]) for p in problems] == [
        (2, 12, "l0@x.test"),
        (7, 4, "l0@x.test"),
        (9, 8, "l1@x.test"),
    ]


def test_unreadable_leads_csv_is_bad_input(tmp_path: Path) -> None:
    project = _bare_project(tmp_path)
    (tmp_path / "bad.csv").write_text("Email,Name\nnot-an-email,X\n", encoding="utf-8")
    welcome = str(REPO / "campaigns" / "welcome.md")
    missing = project.run("render", welcome, "--check", "--leads", "missing.csv")
    assert (missing.exit_code, missing.stdout) == (2, "")
    assert missing.stderr.startswith("Error: missing.csv: ")
    bad = project.run("render", welcome, "--check", "--leads", "bad.csv")
    assert (bad.exit_code, bad.stdout) == (2, "")
    assert bad.stderr.startswith(
        "Error: bad.csv: row 2: 'not-an-email' is not a valid email address"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "sponsorcast.toml"]


def test_preview_whole_output_golden(tmp_path: Path) -> None:
    project = _bare_project(tmp_path)
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "campaigns" / "welcome.md").write_bytes(
        (REPO / "campaigns" / "welcome.md").read_bytes()
    )
    result = project.run("render", "campaigns/welcome.md", "--leads", str(LEADS_CSV))
    assert result.exit_code == 0, result.stderr
    _golden("welcome-preview.txt", result.stdout)
    assert result.stdout.startswith(
        "Campaign: welcome (campaigns/welcome.md)\nTo:       Ada Lovelace <ada@example.com>\n"
    )


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "spawned"])
def test_check_survives_a_shard_process_that_dies(
    project: Project, store: Store, monkeypatch: pytest.MonkeyPatch, fork: bool
) -> None:
    _insert_leads(
        store, [{"email": f"l{i}@x.test", "first_name": f"L{i}", "name": "x"} for i in range(6)]
    )
    args = ("render", str(CAMPAIGNS / "check" / "good.md"), "--check")
    monkeypatch.setattr(render_module.RecipientSource, "shards", lambda self, sponsor, audience: 3)
    monkeypatch.setattr(parallel_module, "fork_usable", lambda: fork)
    main = os.getpid()
    real = parallel_module._check_shard
    taken = project.path / "taken.log"
    calls: list[list[int]] = []

    def dies_in_a_child(job: Any, chunks: Any, **kw: Any) -> Any:
        if os.getpid() != main:  # a forked shard that takes a chunk, then crashes
            claimed = next(iter(chunks), None)
            with taken.open("a") as out:
                out.write(f"{claimed}\n")
            os._exit(1)
        if fork and not calls:  # let both children take their chunk first
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and (
                not taken.exists() or len(taken.read_text().split()) < 2
            ):
                time.sleep(0.01)
        result = real(job, chunks, **kw)
        calls.append(result[2])
        return result

    monkeypatch.setattr(parallel_module, "_check_shard", dies_in_a_child)
    monkeypatch.setattr("sys.executable", "/bin/false")  # every spawned shard exits 1 at once
    result = project.run(*args)
    assert (result.exit_code, result.stdout) == (
        0,
        (
            f"{CAMPAIGNS / 'check' / 'good.md'}: 6 recipients checked, ok\n1 campaign file checked: no problems.\n"
        ),
    )
    # 6 leads, 3 shards: a chunk per lead id. The main process checks what it takes, then
    # what the dead shards took or were given and never answered for.
    assert len(calls) == 2 and sorted(calls[0] + calls[1]) == list(range(6))
    if fork:
        lost = sorted(int(n) for n in taken.read_text().split())
        assert len(lost) == 2 and calls[1] == lost
    else:
        assert (calls[0], calls[1]) == ([0, 3], [1, 2, 4, 5])


def test_shards_are_forked_from_a_smaller_audience_and_only_without_threads(
    project: Project, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    _insert_leads(store, [{"email": f"l{i}@x.test", "name": "x"} for i in range(6)])
    cpus = len(os.sched_getaffinity(0))
    monkeypatch.setattr(recipients_module, "FORK_MIN_RECIPIENTS", 6)
    monkeypatch.setattr(recipients_module, "PARALLEL_MIN_RECIPIENTS", 7)
    source = render_module.RecipientSource(project.config)
    everyone = Audience(type="all")
    real_fork_usable = recipients_module.fork_usable
    try:
        assert real_fork_usable() is (threading.active_count() == 1)
        monkeypatch.setattr(recipients_module, "fork_usable", lambda: True)
        assert source.shards("default", everyone) == (min(cpus, 4) if cpus > 1 else 1)
        monkeypatch.setattr(recipients_module, "fork_usable", lambda: False)
        assert source.shards("default", everyone) == 1  # 6 is below the spawned minimum
    finally:
        source.close()
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert real_fork_usable() is False  # a fork would copy one thread only
    finally:
        stop.set()
        thread.join()


def test_errors_from_shard_processes_keep_their_kind_file_and_line() -> None:
    from sponsorcast.errors import BadInput

    failure = parallel_module._ShardFailure("SandboxRefused", "refused.", "c.md", 6, None)
    error = failure.error()
    assert isinstance(error, SandboxRefused) and str(error) == "c.md:6: refused."
    error = parallel_module._ShardFailure("CampaignFileError", "bad.", "c.md", 2, "fix it").error()
    assert isinstance(error, CampaignFileError) and (error.line, error.hint) == (2, "fix it")
    error = parallel_module._ShardFailure("NotFound", "gone.", None, None, None).error()
    assert (
        isinstance(error, BadInput) and type(error).__name__ == "NotFound" and str(error) == "gone."
    )


def test_check_warns_when_the_sponsor_cannot_send(tmp_path: Path) -> None:
    (tmp_path / "sponsorcast.toml").write_text('[transport]\nkind = "outbox"\n', encoding="utf-8")
    project = Project(path=tmp_path, runner=CliRunner())
    (tmp_path / "c.md").write_text(
        "---\nsubject: Hi {{ first_name }}\n---\nBody\n", encoding="utf-8"
    )
    text = project.run("render", "c.md", "--check", "--leads", str(LEADS_CSV))
    assert (text.exit_code, text.stdout) == (
        0,
        (
            "c.md: 6 recipients checked, ok\n"
            "  warning: sponsor 'default' has no from address and the file sets no 'from:': sending will be "
            "refused (set 'from' under [sponsors.default]).\n"
            "  warning: sponsor 'default' has no postal address: every footer needs one "
            "(set 'postal_address' under [sponsors.default]).\n"
            "  warning: no preheader: the inbox preview shows the first words of the body instead "
            "(set 'preheader:' in the front matter, a line like the subject).\n"
            "1 campaign file checked: no problems.\n"
        ),
    )
    github = project.run(
        "render", "c.md", "--check", "--leads", str(LEADS_CSV), "--format", "github"
    )
    assert github.exit_code == 0
    assert github.stdout.splitlines()[0] == (
        "::warning file=c.md::sponsor 'default' has no from address and the file sets no 'from:': "
        "sending will be refused (set 'from' under [sponsors.default])."
    )


@pytest.mark.postgres
def test_check_on_postgresql_split_over_processes(
    pg_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = pg_project.store()
    try:
        _insert_leads(
            store,
            [
                {
                    "email": f"l{i}@x.test",
                    "name": f"L{i}",
                    "first_name": f"L{i}",
                    "company": ["Compilers Inc", "Other", None][i % 3],
                    "intent_level": "hot",
                }
                for i in range(12)
            ],
        )
    finally:
        store.dispose()
    args = ("render", str(CAMPAIGNS / "check"), "--check", "--format", "github")
    single = pg_project.run(*args)
    monkeypatch.setattr(render_module.RecipientSource, "shards", lambda self, sponsor, audience: 3)
    split = pg_project.run(*args)
    assert split.exit_code == single.exit_code == 1
    assert split.stdout == single.stdout
    assert "(4 of 12 recipients, e.g. l0@x.test)" in split.stdout


def test_statement_lines_inside_a_code_block_are_restored() -> None:
    html, _lines = markdown_to_html("Code:\n\n```\n{% if x %}\n{{ y }}\n{% endif %}\n```\n")
    html = _unstyled(html)
    assert html == "<p>Code:</p>\n<pre><code>{% if x %}\n{{ y }}\n{% endif %}\n</code></pre>\n"


def test_statement_lines_keep_error_lines_in_the_text_part() -> None:
    body = "Hi\n{% if true %}\n  {% for t in tags %}\n- {{ t }}\n{% endfor %}\n{% endif %}\n{{ nope }}\n"
    campaign = replace(load_campaign(CAMPAIGNS / "golden.md"), body=body)
    compiled = compile_campaign(campaign, SPONSOR)
    with pytest.raises(TemplateError) as info:
        render_message(compiled, {**ADA, "tags": ["a"]}, compiled.default_links)
    assert info.value.line == campaign.body_line + 6
    raw = compile_campaign(
        replace(campaign, body="{% raw %}\n{{ x }}\n{% endraw %}\nok\n"), SPONSOR
    )
    assert render_message(raw, ADA, raw.default_links).text.startswith(
        "{{ x }}\n\nok\n"
    )  # no {# #}
