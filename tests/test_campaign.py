"""Campaign files: parsing .md and .yaml into one typed object, and every way a file is wrong."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from sponsorcast.audience import Audience
from sponsorcast.campaign import CampaignFile, campaign_files, load_campaign
from sponsorcast.errors import BadInput, CampaignFileError, TemplateError
from sponsorcast.render import compile_campaign
from sponsorcast.store.models import Sponsor
from tests.support.project import DATA, REPO, Project

CAMPAIGNS = DATA / "campaigns"
INVALID = CAMPAIGNS / "invalid"
SPONSOR = Sponsor(id="default", name="Example Events", postal_address="1 Example Street")


def test_markdown_campaign_is_parsed_with_lines() -> None:
    path = REPO / "campaigns" / "welcome.md"
    campaign = load_campaign(path)
    assert isinstance(campaign, CampaignFile)
    assert (campaign.id, campaign.name, campaign.sponsor) == ("welcome", "Welcome", "default")
    assert campaign.subject == "{{ first_name }}, thanks for visiting {{ sponsor.name }}"
    assert campaign.audience == Audience(type="all")
    assert campaign.tags == {"campaign": "welcome"}
    assert campaign.send_at is None and campaign.from_address is None and campaign.reply_to is None
    assert campaign.key_lines == {"name": 2, "subject": 3, "preheader": 4, "audience": 5, "tags": 7}
    assert campaign.body_line == 9
    assert campaign.body.startswith("Hi {{ first_name }},\n")
    assert campaign.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert campaign.path == path


def test_yaml_campaign_with_block_body() -> None:
    campaign = load_campaign(CAMPAIGNS / "spring.yaml")
    assert campaign.id == "spring-yaml"
    assert campaign.audience == Audience(type="custom", filter={"intent_score_min": 50})
    assert campaign.send_at == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert campaign.send_at.utcoffset() == timedelta(hours=1)
    assert campaign.body == "Hi {{ first_name }},\n\nThis line uses {{ nope }}.\n"
    assert campaign.body_line == 10  # the line after "body: |"
    assert campaign.key_lines["body"] == 9


def test_yaml_template_error_points_at_the_file_line() -> None:
    from sponsorcast.render import render_message

    compiled = compile_campaign(load_campaign(CAMPAIGNS / "spring.yaml"), SPONSOR)
    with pytest.raises(TemplateError) as info:
        render_message(compiled, {"email": "a@example.com"}, compiled.default_links)
    assert str(info.value) == f"{CAMPAIGNS / 'spring.yaml'}:12: undefined variable 'nope'"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "2026-12-01T09:00:00+01:00",
            datetime(2026, 12, 1, 9, tzinfo=timezone(timedelta(hours=1))),
        ),
        ("2026-12-01T08:00:00Z", datetime(2026, 12, 1, 8, tzinfo=UTC)),
        ("2026-12-01 09:30", datetime(2026, 12, 1, 9, 30)),  # naive: local time
        ('"2026-12-01T09:00"', datetime(2026, 12, 1, 9, 0)),
    ],
)
def test_send_at_aware_or_naive(tmp_path: Path, value: str, expected: datetime) -> None:
    path = tmp_path / "c.md"
    path.write_text(f"---\nsubject: Hi\nsend_at: {value}\n---\nBody\n", encoding="utf-8")
    send_at = load_campaign(path).send_at
    assert send_at == expected
    assert send_at is not None and (send_at.tzinfo is None) == (expected.tzinfo is None)


def test_id_defaults_to_the_file_stem_and_sponsor_to_default(tmp_path: Path) -> None:
    path = tmp_path / "spring-launch.md"
    path.write_text(
        "---\nsubject: Hi\nsponsor: acme\nfrom: Acme <hi@acme.test>\n---\nBody\n", encoding="utf-8"
    )
    campaign = load_campaign(path)
    assert (campaign.id, campaign.name, campaign.sponsor) == (
        "spring-launch",
        "spring-launch",
        "acme",
    )
    assert campaign.from_address == "Acme <hi@acme.test>"


def test_crlf_and_bom_files_are_read(tmp_path: Path) -> None:
    path = tmp_path / "win.md"
    path.write_bytes("\ufeff---\r\nsubject: Hi\r\n---\r\nLine one\r\nLine two\r\n".encode())
    campaign = load_campaign(path)
    assert (
        campaign.subject == "Hi"
        and campaign.body == "Line one\nLine two\n"
        and campaign.body_line == 4
    )


def test_file_stem_that_is_not_a_slug(tmp_path: Path) -> None:
    path = tmp_path / "Spring Launch.md"
    path.write_text("---\nsubject: Hi\n---\nBody\n", encoding="utf-8")
    with pytest.raises(CampaignFileError) as info:
        load_campaign(path)
    assert (
        info.value.line == 2 and "'Spring Launch' is not a valid campaign id" in info.value.message
    )
    assert info.value.hint == "Rename the file or set 'id:' in the front matter."


# file, line, message — every campaign-file error names the file and the line.
INVALID_CASES = [
    (
        "yaml_error.md",
        4,
        "invalid YAML: found unexpected end of stream (while scanning a quoted scalar on line 3).",
    ),
    ("not_mapping.md", 2, "the front matter must be a mapping of keys (subject:, audience:, …)."),
    (
        "unknown_key.md",
        3,
        "unknown key 'subjcet' (allowed: id, name, sponsor, subject, preheader, from, reply_to, audience, send_at, tags, language, line_breaks, layout, rolling, follows, after, expires, variants, test).",
    ),
    (
        "body_in_md.md",
        3,
        "unknown key 'body' (allowed: id, name, sponsor, subject, preheader, from, reply_to, audience, send_at, tags, language, line_breaks, layout, rolling, follows, after, expires, variants, test).",
    ),
    (
        "unknown_audience.md",
        3,
        "unknown audience type 'vip' (known: all, hot, warm, cold, new, contacted, custom).",
    ),
    ("bad_send_at.md", 3, "send_at 'next tuesday' is not a date and time."),
    ("date_send_at.md", 3, "send_at '2026-12-01' is a date without a time."),
    ("no_subject.md", 2, "the 'subject' key is missing or empty."),
    ("subject_newline.md", 3, "the subject contains a line break; subjects must be one line."),
    ("bad_id.md", 2, "id 'Spring Launch' must be a slug: lower-case letters, digits, '-' or '_'."),
    (
        "no_front_matter.md",
        1,
        "a .md campaign must start with YAML front matter between '---' lines.",
    ),
    ("unclosed.md", 1, "the front matter has no closing '---' line."),
    (
        "bad_tags.md",
        3,
        "tag value 'spring launch!' may only hold ASCII letters, digits, '_' and '-' (at most 256 characters).",
    ),
    (
        "no_body.yaml",
        1,
        "the 'body' key is missing (a .yaml campaign carries its text under body:).",
    ),
    ("duplicate_key.md", 3, "the key 'subject' appears twice (first on line 2)."),
    ("empty_body.md", 4, "the body is empty."),
    (
        "bad_from.md",
        3,
        "'from' 'not an address' cannot be a sender address: it is not an address like 'Name <hello@example.com>'.",
    ),
    ("latin1.md", 2, "the file is not UTF-8 text."),
]


@pytest.mark.parametrize(
    ("name", "line", "message"), INVALID_CASES, ids=[c[0] for c in INVALID_CASES]
)
def test_invalid_campaign_file(name: str, line: int, message: str) -> None:
    path = INVALID / name
    with pytest.raises(CampaignFileError) as info:
        load_campaign(path)
    assert (info.value.path, info.value.line, info.value.reason) == (str(path), line, message)
    assert str(info.value) == f"{path}:{line}: {message}"


def _store_dump(project: Project) -> list[tuple[object, ...]]:
    con = sqlite3.connect(project.path / "sponsorcast.db")
    try:
        tables = [
            r[0]
            for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
        ]
        return [(t, *row) for t in tables for row in con.execute(f'SELECT * FROM "{t}"')]
    finally:
        con.close()


@pytest.mark.parametrize(
    ("name", "line", "message"), INVALID_CASES, ids=[c[0] for c in INVALID_CASES]
)
def test_invalid_campaign_file_through_the_cli(
    project: Project, name: str, line: int, message: str
) -> None:
    before = _store_dump(project)
    result = project.run("render", str(INVALID / name))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines()[0] == f"Error: {INVALID / name}:{line}: {message}"
    assert _store_dump(project) == before


def test_invalid_campaign_file_in_check_mode_exits_2_and_names_it(project: Project) -> None:
    before = _store_dump(project)
    result = project.run("render", str(INVALID / "unknown_key.md"), "--check", "--format", "github")
    assert result.exit_code == 2
    path = INVALID / "unknown_key.md"
    assert result.stdout == (
        f"::error file={path},line=3::unknown key 'subjcet' (allowed: id, name, sponsor, subject, "
        "preheader, from, reply_to, audience, send_at, tags, language, line_breaks, layout, rolling, follows, after, expires, variants, test).\n"
        "1 campaign file checked: 1 problem in 1.\n"
    )
    assert _store_dump(project) == before


def test_hint_is_shown_for_body_key_in_markdown(project: Project) -> None:
    result = project.run("render", str(INVALID / "body_in_md.md"))
    assert (
        result.stderr.splitlines()[1]
        == "Hint: In a .md file the body is the text after the closing '---' line."
    )


def test_unreadable_file(tmp_path: Path, project: Project) -> None:
    folder = tmp_path / "folder.md"
    folder.mkdir()
    with pytest.raises(CampaignFileError) as info:
        load_campaign(folder)
    assert info.value.reason.startswith("cannot read the file: ")
    missing = project.run("render", str(tmp_path / "missing.md"))
    assert missing.exit_code == 2
    assert missing.stderr.strip() == f"Error: {tmp_path / 'missing.md'}: no such file."


def test_campaign_files_lists_a_directory_sorted(tmp_path: Path) -> None:
    for name in ("b.yaml", "a.md", "c.yml", "README.md", "notes.txt", ".hidden.md", "_draft.md"):
        (tmp_path / name).write_text("x", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    assert campaign_files(tmp_path) == [tmp_path / "a.md", tmp_path / "b.yaml", tmp_path / "c.yml"]
    with pytest.raises(CampaignFileError, match=r"must end in \.md, \.yaml or \.yml"):
        campaign_files(tmp_path / "notes.txt")
    assert campaign_files(tmp_path / "a.md") == [tmp_path / "a.md"]
    with pytest.raises(BadInput, match="holds no campaign files"):
        campaign_files(tmp_path / "sub")


def test_repository_sample_campaigns_are_valid() -> None:
    for path in campaign_files(REPO / "campaigns"):
        campaign = load_campaign(path)
        compile_campaign(campaign, SPONSOR)
