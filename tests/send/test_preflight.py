"""Preflight: what a run needs is checked before any delivery row is written; a pause is a pause.

Each trap through the CLI, asserting the sentence, the exit code and that the store is as it was.
"""

from __future__ import annotations

import sqlalchemy as sa

from sponsorcast.store import Store
from tests.support.project import PROJECT_TOML, Project

LEADS = "email,first_name,intent_level\nada@example.com,Ada,warm\nbob@example.com,Bob,cold\n"
CAMPAIGN = "---\nsubject: Hi {{ first_name }}\naudience:\n  type: {audience}\n---\nHello {{ first_name }}.\n"


def _setup(project: Project, audience: str = "all", *, toml: str = PROJECT_TOML) -> None:
    (project.path / "sponsorcast.toml").write_text(toml, encoding="utf-8")
    (project.path / "leads.csv").write_text(LEADS, encoding="utf-8")
    assert project.run("leads", "import", "leads.csv").exit_code == 0
    (project.path / "c.md").write_text(CAMPAIGN.format(audience=audience), encoding="utf-8")


def _rows(store: Store) -> tuple[int, int, int]:
    with store.read() as conn:
        return tuple(
            conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("campaign", "delivery", "send_batch")
        )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def test_resend_without_a_key_is_refused_before_the_snapshot(
    project: Project, store: Store
) -> None:
    _setup(project, toml=PROJECT_TOML.replace('kind = "outbox"', 'kind = "resend"'))
    for args in (
        ["send", "c.md", "--yes"],
        ["send", "c.md", "--dry-run"],
        ["schedule", "c.md", "--at", "2099-01-01 09:00"],
    ):
        r = project.run(*args, env={"RESEND_API_KEY": ""})
        assert r.exit_code == 3, args
        assert r.stderr.startswith(
            "Error: RESEND_API_KEY is not set, and the resend transport needs it; nothing was sent."
        )
    assert _rows(store) == (0, 0, 0)


def test_tracking_without_its_secret_is_refused_before_the_snapshot(
    project: Project, store: Store
) -> None:
    _setup(project, toml=PROJECT_TOML + '\n[tracking]\npublic_url = "https://t.example.com"\n')
    r = project.run("send", "c.md", "--yes", env={"SPONSORCAST_SECRET": ""})
    assert r.exit_code == 3
    assert r.stderr.startswith(
        "Error: SPONSORCAST_SECRET is not set; it signs tracking and unsubscribe links."
    )
    assert _rows(store) == (0, 0, 0)
    # imported after the fix, a lead is still in: nothing was frozen by the failed attempt
    (project.path / "late.csv").write_text("email\ncat@example.com\n", encoding="utf-8")
    assert project.run("leads", "import", "late.csv").exit_code == 0
    ok = project.run("send", "c.md", "--yes", env={"SPONSORCAST_SECRET": "s" * 32})
    assert ok.exit_code == 0, ok.stderr
    assert _rows(store)[1] == 3


def test_a_sponsor_without_a_postal_address_is_refused(project: Project, store: Store) -> None:
    toml = PROJECT_TOML + '\n[sponsors.acme]\nname = "Acme"\nfrom = "Acme <hi@acme.com>"\n'
    (project.path / "sponsorcast.toml").write_text(toml, encoding="utf-8")
    (project.path / "leads.csv").write_text(LEADS, encoding="utf-8")
    assert project.run("leads", "import", "leads.csv", "--sponsor", "acme").exit_code == 0
    (project.path / "c.md").write_text(
        CAMPAIGN.format(audience="all").replace("---\n", "---\nsponsor: acme\n", 1),
        encoding="utf-8",
    )
    r = project.run("send", "c.md", "--yes")
    assert r.exit_code == 3
    assert _one_line(r.stderr).startswith(
        "Error: Sponsor 'acme' has no postal address, which every email's footer carries; "
        "nothing was sent."
    )
    assert _rows(store) == (0, 0, 0)


def test_an_empty_audience_is_not_a_sent_campaign(project: Project, store: Store) -> None:
    _setup(project, audience="hot")
    for args in (["send", "c.md", "--yes"], ["schedule", "c.md", "--at", "2099-01-01 09:00"]):
        r = project.run(*args)
        assert r.exit_code == 1, args
        assert _one_line(r.stderr).startswith(
            "Error: Campaign 'c' has nobody to send to: audience 'hot' matches no lead of sponsor "
            "'default'; nothing was sent and the campaign was not recorded."
        )
    assert _rows(store) == (0, 0, 0)


def test_an_audience_of_only_suppressed_leads_is_refused_too(
    project: Project, store: Store
) -> None:
    _setup(project, audience="cold")
    assert project.run("suppress", "add", "bob@example.com").exit_code == 0
    r = project.run("send", "c.md", "--yes")
    assert r.exit_code == 1
    assert "every one of the 1 lead of audience 'cold' is suppressed" in _one_line(r.stderr)
    assert _rows(store) == (0, 0, 0)


def test_send_does_not_undo_a_pause_a_person_made(project: Project, store: Store) -> None:
    _setup(project)
    limited = project.run("send", "c.md", "--yes", "--limit", "1")
    assert limited.exit_code == 0
    assert _one_line(limited.stdout).endswith(
        "Stopped at --limit 1: the rest stays 'sending'; the next 'sponsorcast send c.md' or "
        "'sponsorcast run-due' continues it."
    )
    assert project.run("campaigns", "pause", "c").exit_code == 0
    r = project.run("send", "c.md", "--yes")
    assert r.exit_code == 1
    assert _one_line(r.stderr) == (
        "Error: Campaign 'c' was paused (paused by user); send does not undo a pause, so nothing "
        "was sent. Hint: 'sponsorcast campaigns resume c' first, then send again."
    )
    with store.read() as conn:
        assert conn.execute(sa.text("SELECT status FROM campaign")).scalar() == "paused"
        assert (
            conn.execute(sa.text("SELECT count(*) FROM delivery WHERE status = 'sent'")).scalar()
            == 1
        )
    assert project.run("campaigns", "resume", "c").exit_code == 0
    assert project.run("send", "c.md", "--yes").exit_code == 0


def test_doctor_checks_every_sponsor_in_the_store(project: Project) -> None:
    _setup(project)
    r = project.run("sponsors", "add", "acme", "--name", "Acme", "--from", "hi@acme.com")
    assert r.exit_code == 0, r.stderr
    d = project.run("doctor", "--json")
    assert d.exit_code == 3
    import json

    checks = {c["check"]: c for c in json.loads(d.stdout)}
    assert checks["sponsor acme"]["ok"] is False
    assert checks["sponsor acme"]["detail"] == "no postal address (required in every footer)"
    assert checks["sponsor default"]["ok"] is True
