"""Header injection: nothing with a control character or a second mailbox reaches a header.

Each attack is tried through the CLI; each must be refused before anything is snapshotted
(exit 2 for a campaign file or lead data, 3 for sponsorcast.toml), naming the file and line,
with the store and the outbox unchanged.
"""

from __future__ import annotations

import email
import email.policy
from email.headerregistry import AddressHeader, HeaderRegistry

import pytest
import sqlalchemy as sa

from sponsorcast.headers import display_mailbox, header_problem, mailbox_problem
from sponsorcast.store import Store
from tests.support.project import Project

LEADS = "email,first_name,company\nada@example.com,Ada,Acme\nbob@example.com,Bob,Beta\n"


def campaign(front: str, body: str = "Hi {{ first_name }}.") -> str:
    return f"---\n{front}\naudience:\n  type: all\n---\n{body}\n"


def _import(project: Project, text: str = LEADS) -> None:
    (project.path / "leads.csv").write_text(text, encoding="utf-8")
    r = project.run("leads", "import", "leads.csv")
    assert r.exit_code == 0, r.stderr


def _nothing_snapshotted(project: Project, store: Store) -> None:
    with store.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM campaign")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM delivery")).scalar() == 0
    assert not (project.path / "outbox").exists() or not any(
        (project.path / "outbox").rglob("*.eml")
    )


@pytest.mark.parametrize(
    ("front", "line", "says"),
    [
        (
            'subject: Hi\nfrom: "Evil <a@example.com>\\rBcc: victim@evil.com"',
            3,
            "'from' 'Evil <a@example.com>\\rBcc: victim@evil.com' cannot be a sender address: it contains "
            "U+000D (CARRIAGE RETURN), which could end the header line.",
        ),
        (
            'subject: Hi\nreply_to: "Evil <a@example.com>\\rBcc: victim@evil.com"',
            3,
            "'reply_to' 'Evil <a@example.com>\\rBcc: victim@evil.com' cannot be a sender address: it "
            "contains U+000D (CARRIAGE RETURN), which could end the header line.",
        ),
        (
            "subject: Hi\nfrom: a@example.com, victim@evil.com",
            3,
            "'from' 'a@example.com, victim@evil.com' cannot be a sender address: it must be exactly one "
            "address, not 2.",
        ),
        (
            'subject: "Hi \\L Bcc: victim@evil.com"',
            2,
            "the subject cannot go into an email header: it contains U+2028 (LINE SEPARATOR), which "
            "could end the header line.",
        ),
        (
            'subject: "Hi \\N there"',
            2,
            "the subject cannot go into an email header: it contains U+0085 (NEXT LINE), which could end "
            "the header line.",
        ),
        (
            'subject: "Hi \\v there"',
            2,
            "the subject cannot go into an email header: it contains U+000B (VERTICAL TAB), which could "
            "end the header line.",
        ),
        (
            'subject: "Hi \\f there"',
            2,
            "the subject cannot go into an email header: it contains U+000C (FORM FEED), which could end "
            "the header line.",
        ),
        (
            'subject: "Hi \\P there"',
            2,
            "the subject cannot go into an email header: it contains U+2029 (PARAGRAPH SEPARATOR), which "
            "could end the header line.",
        ),
    ],
)
def test_campaign_file_header_attacks_are_refused_before_the_snapshot(
    project: Project, store: Store, front: str, line: int, says: str
) -> None:
    _import(project)
    (project.path / "evil.md").write_text(campaign(front), encoding="utf-8")
    for command in (["send", "evil.md", "--yes"], ["render", "evil.md", "--check"]):
        r = project.run(*command)
        assert r.exit_code == 2, (command, r.stdout, r.stderr)
        assert f"evil.md:{line}: {says}" in " ".join((r.stderr + r.stdout).split()), r.stderr
    _nothing_snapshotted(project, store)


def test_control_character_from_lead_data_in_the_subject_is_refused(
    project: Project, store: Store
) -> None:
    _import(project, 'email,first_name\nada@example.com,Ada\nbob@example.com,"Bob\x1b[2J"\n')
    (project.path / "spring.md").write_text(
        campaign("subject: Hello {{ first_name }}"), encoding="utf-8"
    )
    r = project.run("send", "spring.md", "--yes")
    assert r.exit_code == 2
    assert (
        "spring.md:2: the subject cannot go into an email header: it contains U+001B (ESCAPE), "
        "which could end the header line for 1 recipient; nothing was sent"
    ) in " ".join(r.stderr.split())
    _nothing_snapshotted(project, store)


def test_line_breaks_from_lead_data_fold_into_one_space(project: Project, store: Store) -> None:
    _import(project, 'email,first_name\nada@example.com,"Ada\u2028Bcc: x@evil.com"\n')
    (project.path / "spring.md").write_text(
        campaign("subject: Hello {{ first_name }}"), encoding="utf-8"
    )
    r = project.run("send", "spring.md", "--yes")
    assert r.exit_code == 0, r.stderr
    eml = next((project.path / "outbox").rglob("*.eml")).read_text()
    assert "Subject: Hello Ada Bcc: x@evil.com\n" in eml.replace("\r\n", "\n")
    assert "\nBcc:" not in eml.replace("\r\n", "\n")


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (
            'from = "Evil <a@example.com>\\rBcc: victim@evil.com"',
            "'sponsors.default.from' 'Evil <a@example.com>\\rBcc: victim@evil.com' cannot be a sender "
            "address: it contains U+000D (CARRIAGE RETURN), which could end the header line.",
        ),
        (
            'from = "a@example.com, victim@evil.com"',
            "'sponsors.default.from' 'a@example.com, victim@evil.com' cannot be a sender address: it must "
            "be exactly one address, not 2.",
        ),
    ],
)
def test_config_sender_attacks_exit_3(project: Project, store: Store, line: str, says: str) -> None:
    _import(project)
    toml = project.path / "sponsorcast.toml"
    toml.write_text(toml.read_text().replace('from = "Example Events <hello@example.com>"', line))
    (project.path / "spring.md").write_text(campaign("subject: Hi"), encoding="utf-8")
    r = project.run("send", "spring.md", "--yes")
    assert r.exit_code == 3
    assert says in " ".join(r.stderr.split())
    _nothing_snapshotted(project, store)


def test_sponsors_add_refuses_two_mailboxes(project: Project, store: Store) -> None:
    r = project.run("sponsors", "add", "acme", "--name", "Acme", "--from", "a@acme.com, b@evil.com")
    assert r.exit_code == 2
    assert "--from 'a@acme.com, b@evil.com' cannot be a sender address" in r.stderr
    with store.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM sponsor WHERE id = 'acme'")).scalar() == 0


@pytest.mark.parametrize(
    "value",
    [
        "Acme <hello@acme.com>",
        "hello@acme.com",
        '"Acme, Inc." <a@acme.com>',
        "Bücher <info@bücher.de>",
        "Acme <hello@acme.test>",
    ],
)
def test_ordinary_mailboxes_pass(value: str) -> None:
    assert mailbox_problem(value) is None


@pytest.mark.parametrize(
    "value",
    [
        "Group: a@x.com;",
        "Undisclosed:;",
        "x <a@b.com> y",
        "nobody",
        "a@b.com\x00",
        "A\u2029 <a@b.com>",
    ],
)
def test_other_mailbox_tricks_are_refused(value: str) -> None:
    assert mailbox_problem(value) is not None


def test_emoji_and_non_breaking_spaces_are_fine_in_a_subject() -> None:
    assert header_problem("Welcome 👨\u200d👩\u200d👧\xa0to DevCon") is None


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("Ada Lovelace", "Ada Lovelace <ada@example.com>"),
        ("Lovelace, Ada", '"Lovelace, Ada" <ada@example.com>'),
        ('Ada "The Countess" L.', '"Ada \\"The Countess\\" L." <ada@example.com>'),
        ("Evil\r\nBcc: victim@evil.com", '"Evil Bcc: victim@evil.com" <ada@example.com>'),
        ("Mallory <m@evil.com>, x", '"Mallory <m@evil.com>, x" <ada@example.com>'),
        ("Back\\slash\u2028", '"Back\\\\slash" <ada@example.com>'),
        ("   ", "ada@example.com"),
        (None, "ada@example.com"),
        ("x" * 300, "x" * 100 + " <ada@example.com>"),
    ],
)
def test_a_leads_name_in_to_is_one_display_name(name: str | None, header: str) -> None:
    assert display_mailbox(name, "ada@example.com") == header
    parsed = HeaderRegistry()("to", header)
    assert isinstance(parsed, AddressHeader)
    assert [a.addr_spec for a in parsed.addresses] == ["ada@example.com"]
    assert not parsed.defects


def test_the_to_header_of_a_sent_email_carries_the_name_encoded(
    project: Project, store: Store
) -> None:
    _import(
        project,
        "email,name,company\nzoe@example.com,Zoë Müller,Acme\n"
        'eve@example.com,"Eve\rBcc: victim@evil.com",Beta\n',
    )
    (project.path / "c.md").write_text(campaign("subject: Hi"), encoding="utf-8")
    r = project.run("send", "c.md", "--yes")
    assert r.exit_code == 0, r.stderr
    files = sorted((project.path / "outbox" / "c").iterdir())
    assert [f.name for f in files] == [
        "0001-zoe@example.com.eml",
        "0002-eve@example.com.eml",
    ]
    raw = files[0].read_bytes()
    assert b"To: =?utf-8?" in raw  # RFC 2047 encoded, not raw UTF-8 bytes
    zoe = email.message_from_bytes(raw, policy=email.policy.default)
    assert [(a.display_name, a.addr_spec) for a in zoe["To"].addresses] == [
        ("Zoë Müller", "zoe@example.com")
    ]
    eve = email.message_from_bytes(files[1].read_bytes(), policy=email.policy.default)
    assert [a.addr_spec for a in eve["To"].addresses] == ["eve@example.com"]
    assert eve["Bcc"] is None
    r = project.run("render", "c.md", "--to", "zoe@example.com")
    assert 'To:       "Zoë Müller" <zoe@example.com>\n' in r.stdout
