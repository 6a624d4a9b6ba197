"""Follow-ups in files (``follows:``/``after:``): each recipient comes due after their own
email of the parent, is judged by the follow-up's audience then, and is sent once at most;
on SQLite and PostgreSQL, with an injected clock for run-due."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import datetime, timedelta

import sqlalchemy as sa

from sponsorcast.schedule import run_due
from sponsorcast.send.followups import add_due
from sponsorcast.store import Store
from sponsorcast.store.tables import campaign_t, delivery_t
from sponsorcast.tracking import record_click
from tests.support.ledger import campaign_status, delivery_rows, outbox_leads
from tests.support.pg import both_store_backends  # noqa: F401 - each test on SQLite and PostgreSQL
from tests.support.project import Project
from tests.support.sending import add_leads
from tests.support.tracking import add_sponsor

SPRING = "---\nsubject: Hello {{ first_name }}\n---\nOur launch.\n"
AGAIN = (
    "---\nsubject: Did you see it, {{ first_name }}?\nfollows: spring\nafter: 3d\n"
    "audience:\n  type: custom\n  filter:\n    not_clicked: spring\n"
    "    follow_up_status: new\n---\nIn case you missed it.\n"
)


def _sent_at(store: Store, campaign: str) -> datetime:
    with store.read() as conn:
        return conn.execute(  # type: ignore[no-any-return]
            sa.select(sa.func.max(delivery_t.c.sent_at)).where(delivery_t.c.campaign_id == campaign)
        ).scalar_one()


def _parent(project: Project, store: Store) -> datetime:
    """Five leads sent 'spring'; lead1 clicks, lead2 unsubscribes, lead3 replies (a CRM import)."""
    add_leads(store, 5)
    (project.path / "spring.md").write_text(SPRING, encoding="utf-8")
    assert project.run("send", "spring.md", "--yes").exit_code == 0
    with store.read() as conn:
        clicked = conn.execute(
            sa.select(delivery_t.c.id).where(delivery_t.c.recipient == "lead1@example.com")
        ).scalar_one()
    assert record_click(store, clicked, "https://example.com/launch")
    assert (
        project.run("suppress", "add", "lead2@example.com", "--sponsor", "default").exit_code == 0
    )
    (project.path / "crm.csv").write_text(
        "email,status\nlead3@example.com,replied\n", encoding="utf-8"
    )
    assert (
        project.run("leads", "import", "crm.csv", "--map", "status=follow_up_status").exit_code == 0
    )
    return _sent_at(store, "spring")


def test_each_recipient_comes_due_after_their_email_and_is_judged_then(
    project: Project, store: Store
) -> None:
    sent = _parent(project, store)
    (project.path / "again.md").write_text(AGAIN, encoding="utf-8")
    first = project.run("send", "again.md", "--yes")  # snapshotted; nobody is due yet
    assert first.exit_code == 0, first.stderr
    assert (campaign_status(store, "again"), delivery_rows(store, "again")) == ("sending", {})
    config = project.config
    run_due(store, config, now=sent + timedelta(days=1))
    assert delivery_rows(store, "again") == {}
    shown = project.run("campaigns", "show", "again")
    assert "waiting" in shown.stdout and "5" in shown.stdout

    logged: list[str] = []
    run_due(store, config, now=sent + timedelta(days=3, hours=1), log=logged.append)
    assert delivery_rows(store, "again") == {
        "lead0": ("sent", None),
        "lead1": ("skipped", "no longer in the audience when due"),  # clicked
        "lead2": ("suppressed", None),  # unsubscribed from this sponsor
        "lead3": ("skipped", "no longer in the audience when due"),  # replied, per the CRM
        "lead4": ("sent", None),
    }
    assert (
        "Campaign 'again': 5 recipients came due (2 skipped: no longer in its audience)." in logged
    )
    assert campaign_status(store, "again") == "sent"  # the parent is sent and everyone came due
    run_due(store, config, now=sent + timedelta(days=9))
    assert outbox_leads(project.path, "again") == Counter({"lead0": 1, "lead4": 1})  # nobody twice


def test_overlapping_due_additions_add_each_recipient_once(project: Project, store: Store) -> None:
    sent = _parent(project, store)
    (project.path / "again.md").write_text(AGAIN, encoding="utf-8")
    assert project.run("send", "again.md", "--yes").exit_code == 0
    config = project.config
    results: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def add() -> None:
        try:
            start.wait()
            results.append(add_due(store, config, "again", 10, sent + timedelta(days=4)).added)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=add) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and sorted(results) == [0, 0, 0, 5]
    assert len(delivery_rows(store, "again")) == 5


def test_a_follow_up_of_a_follow_up(project: Project, store: Store) -> None:
    sent = _parent(project, store)
    (project.path / "again.md").write_text(AGAIN, encoding="utf-8")
    assert project.run("send", "again.md", "--yes").exit_code == 0
    run_due(store, project.config, now=sent + timedelta(days=3, hours=1))
    third = AGAIN.replace("follows: spring", "follows: again").replace("3d", "1d")
    third = third.replace("not_clicked: spring", "not_clicked: again")
    (project.path / "third.md").write_text(third, encoding="utf-8")
    assert project.run("send", "third.md", "--yes").exit_code == 0
    again_sent = _sent_at(store, "again")
    run_due(store, project.config, now=again_sent + timedelta(hours=23))
    assert delivery_rows(store, "third") == {}
    run_due(store, project.config, now=again_sent + timedelta(days=1, hours=1))
    # only those the second email went to: lead0 and lead4
    assert delivery_rows(store, "third") == {"lead0": ("sent", None), "lead4": ("sent", None)}
    assert campaign_status(store, "third") == "sent"


def test_bad_follow_ups_are_refused_and_nothing_is_stored(project: Project, store: Store) -> None:
    add_leads(store, 2)
    add_sponsor(store, "acme")
    (project.path / "spring.md").write_text(SPRING, encoding="utf-8")
    assert project.run("send", "spring.md", "--yes").exit_code == 0
    (project.path / "acme.md").write_text(
        SPRING.replace("---\nsubject", "---\nsponsor: acme\nsubject"), encoding="utf-8"
    )
    with store.write() as conn:  # a campaign of another sponsor, already in the store
        conn.execute(
            campaign_t.insert().values(
                id="acme", sponsor_id="acme", status="sent", content_hash="h", total_recipients=0
            )
        )
    cases = [
        (AGAIN.replace("follows: spring", "follows: nope"), "which the store does not have"),
        (AGAIN.replace("follows: spring", "follows: acme"), "of sponsor 'acme'"),
        (AGAIN.replace("follows: spring", "follows: again"), "cannot follow itself"),
        (AGAIN.replace("after: 3d", "after: soon"), "'soon' is not a duration"),
        (AGAIN.replace("after: 3d\n", ""), "needs both 'follows: CAMPAIGN_ID' and 'after: 3d'"),
    ]
    for text, words in cases:
        (project.path / "again.md").write_text(text, encoding="utf-8")
        r = project.run("send", "again.md", "--yes")
        assert (r.exit_code, r.stdout) == (2, ""), text
        assert r.stderr.startswith("Error: ") and words in r.stderr, r.stderr
        with store.read() as conn:
            assert (
                conn.execute(sa.select(campaign_t.c.id).where(campaign_t.c.id == "again")).first()
                is None
            )


def test_a_scheduled_follow_up_starts_with_those_already_due(
    project: Project, store: Store
) -> None:
    sent = _parent(project, store)
    start = (sent + timedelta(days=4)).isoformat()
    (project.path / "again.md").write_text(AGAIN, encoding="utf-8")
    scheduled = project.run("schedule", "again.md", "--at", start)
    assert scheduled.exit_code == 0, scheduled.stderr
    run_due(store, project.config, now=sent + timedelta(days=2))  # not its time yet
    assert campaign_status(store, "again") == "scheduled"
    run_due(store, project.config, now=sent + timedelta(days=4, minutes=1))
    assert {k: v[0] for k, v in delivery_rows(store, "again").items()} == {
        "lead0": "sent",
        "lead1": "skipped",
        "lead2": "suppressed",
        "lead3": "skipped",
        "lead4": "sent",
    }
    assert campaign_status(store, "again") == "sent"


def test_a_dry_run_and_the_parents_stats_tell_where_the_follow_up_stands(
    project: Project, store: Store
) -> None:
    _parent(project, store)
    (project.path / "again.md").write_text(AGAIN.replace("3d", "1s"), encoding="utf-8")
    time.sleep(1.2)  # everyone's email of 'spring' is a second old: all are due
    dry = project.run("send", "again.md", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    fields = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in dry.stdout.splitlines()
        if line.count("│") == 3
    }
    assert (
        fields["due now"],
        fields["would be sent"],
        fields["would be suppressed"],
        fields["would be skipped (no longer in the audience)"],
        fields["due later"],
    ) == ("5", "2", "1", "2", "0")
    assert delivery_rows(store, "again") == {}  # a dry run writes nothing
    assert project.run("send", "again.md", "--yes").exit_code == 0
    stats = json.loads(project.run("stats", "spring", "--json").stdout)
    assert stats["follow_ups"] == [
        {"campaign": "again", "sent": 2, "suppressed": 1, "skipped": 2, "waiting": 0}
    ]
    shown = project.run("stats", "spring")
    assert "Follow-ups" in shown.stdout and "again" in shown.stdout
