"""The send engine: snapshot, batches, claims, recording, resumes — with an in-process transport.

End-to-end runs over HTTP against the Resend stand-in are in ``test_send_e2e.py``."""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sponsorcast.errors import (
    AuthError,
    BatchRejected,
    ConfigError,
    QuotaExceeded,
    TemplateError,
)
from sponsorcast.report.stats import campaign_stats
from sponsorcast.send import plan_send, send_campaign
from sponsorcast.store import Store
from sponsorcast.store.models import Delivery, Suppression, utcnow
from sponsorcast.store.tables import batch_t, delivery_t
from tests.support.pg import both_store_backends  # noqa: F401 - every test here runs on SQLite and on PostgreSQL
from tests.support.project import Project
from tests.support.sending import CAMPAIGN, MemoryTransport, add_leads


@pytest.fixture
def spring(project: Project) -> Path:
    path = project.path / "spring.md"
    path.write_text(CAMPAIGN, encoding="utf-8")
    return path


def _send(project: Project, store: Store, path: Path, transport: MemoryTransport, **kw: Any):  # type: ignore[no-untyped-def]
    config = project.config
    plan = plan_send(store, config, path)
    return send_campaign(store, config, plan, transport=transport, **kw)


def _statuses(store: Store) -> dict[str, int]:
    with store.read() as conn:
        rows = conn.execute(
            sa.select(delivery_t.c.status, sa.func.count()).group_by(delivery_t.c.status)
        ).all()
    return dict(rows)


def test_every_recipient_once_in_batches(project: Project, store: Store, spring: Path) -> None:
    add_leads(store, 250)
    t = MemoryTransport()
    report = _send(project, store, spring, t)
    assert report.status == "sent" and report.sent_now == 250 and report.ok
    assert sorted(to for to, _ in t.delivered) == sorted(f"lead{i}@example.com" for i in range(250))
    assert len(set(t.keys)) == 3  # 100 + 100 + 50
    assert _statuses(store) == {"sent": 250}
    with store.read() as conn:
        ids = conn.execute(sa.select(Delivery.provider_message_id)).scalars().all()  # type: ignore[call-overload]
    assert len(set(ids)) == 250 and None not in ids
    again = _send(project, store, spring, t)
    assert again.already_finished and len(t.delivered) == 250


def test_personalised_payload(project: Project, store: Store, spring: Path) -> None:
    add_leads(store, 1)
    t = MemoryTransport()
    _send(project, store, spring, t)
    body = json.loads(next(iter(t.answers.values()))[0])[0]
    assert body["subject"] == "L0, hello from Example Events"
    assert body["from"] == "Example Events <hello@example.com>"
    assert "Hi L0 of Co0!" in body["text"]
    assert {"name": "campaign", "value": "spring"} in body["tags"]
    assert body["headers"]["List-Unsubscribe"].startswith("<mailto:")


def test_lost_answer_is_resent_under_same_key_not_twice(
    project: Project, store: Store, spring: Path
) -> None:
    add_leads(store, 150)
    t = MemoryTransport(lose_next=1)
    first = _send(project, store, spring, t)
    assert first.unknown_batches == 1 and first.status == "sending" and not first.ok
    lost_key = t.keys[0]
    second = _send(project, store, spring, t)
    assert second.status == "sent"
    assert t.keys.count(lost_key) == 2  # re-sent under the same key...
    assert len(t.delivered) == 150  # ...and nobody got two emails
    assert _statuses(store) == {"sent": 150}


def test_suppressed_addresses_are_counted_not_sent(
    project: Project, store: Store, spring: Path
) -> None:
    add_leads(store, 5)
    with store.write() as conn:
        conn.execute(
            Suppression.__table__.insert().values(  # type: ignore[attr-defined]
                email="lead1@example.com", sponsor_id="*", reason="bounced", created_at=utcnow()
            )
        )
        conn.execute(
            Suppression.__table__.insert().values(  # type: ignore[attr-defined]
                email="lead2@example.com",
                sponsor_id="default",
                reason="unsubscribed",
                created_at=utcnow(),
            )
        )
        conn.execute(
            Suppression.__table__.insert().values(  # type: ignore[attr-defined]
                email="lead3@example.com",
                sponsor_id="other",
                reason="unsubscribed",
                created_at=utcnow(),
            )
        )
    t = MemoryTransport()
    report = _send(project, store, spring, t)
    assert sorted(to for to, _ in t.delivered) == [
        "lead0@example.com",
        "lead3@example.com",
        "lead4@example.com",
    ]
    assert report.counts == {"sent": 3, "suppressed": 2}


def test_suppression_added_after_snapshot_is_honoured_at_claim(
    project: Project, store: Store, spring: Path
) -> None:
    add_leads(store, 3)
    t = MemoryTransport(fail_next=[QuotaExceeded("daily quota", name="daily_quota_exceeded")])
    with pytest.raises(QuotaExceeded):
        _send(project, store, spring, t)
    with store.read() as conn:
        assert conn.execute(sa.text("SELECT status FROM campaign")).scalar() == "paused"
    # the batch was attempted: its payload is fixed, so a new suppression cannot change it...
    # ...but one that was never attempted is re-checked: use a fresh campaign to show it
    with store.write() as conn:
        conn.execute(
            Suppression.__table__.insert().values(  # type: ignore[attr-defined]
                email="lead0@example.com", sponsor_id="*", reason="complained", created_at=utcnow()
            )
        )
    other = project.path / "other.md"
    other.write_text(CAMPAIGN.replace("name: Spring", "name: Other"), encoding="utf-8")
    add_leads(store, 2, prefix="late")
    t2 = MemoryTransport()
    _send(project, store, other, t2)
    assert "lead0@example.com" not in [to for to, _ in t2.delivered]
    assert len(t2.delivered) == 4


def test_quota_pauses_and_a_later_run_finishes(
    project: Project, store: Store, spring: Path
) -> None:
    add_leads(store, 250)
    t = MemoryTransport(fail_next=[QuotaExceeded("daily quota", name="daily_quota_exceeded")])
    with pytest.raises(QuotaExceeded):
        _send(project, store, spring, t)
    with store.read() as conn:
        status, reason = conn.execute(sa.text("SELECT status, status_reason FROM campaign")).one()
    assert status == "paused" and reason.startswith("provider quota reached")
    assert len(t.delivered) < 250
    report = _send(project, store, spring, t)
    assert report.status == "sent"
    assert sorted(to for to, _ in t.delivered) == sorted(f"lead{i}@example.com" for i in range(250))


def test_auth_error_marks_nothing_failed(project: Project, store: Store, spring: Path) -> None:
    add_leads(store, 10)
    t = MemoryTransport(
        fail_next=[AuthError("The provider refused the API key (401 missing_api_key).")]
    )
    with pytest.raises(AuthError):
        _send(project, store, spring, t)
    statuses = _statuses(store)
    assert "failed" not in statuses and sum(statuses.values()) == 10


def test_one_invalid_address_fails_only_that_delivery(
    project: Project, store: Store, spring: Path
) -> None:
    add_leads(store, 5)
    t = MemoryTransport(reject={"lead2@example.com"})
    report = _send(project, store, spring, t)
    assert report.counts == {"sent": 4, "failed": 1} and not report.ok
    with store.read() as conn:
        err = conn.execute(
            sa.text("SELECT last_error FROM delivery WHERE recipient = 'lead2@example.com'")
        ).scalar()
    assert err == "Invalid `to` field: lead2@example.com"


def test_whole_batch_rejected_fails_its_deliveries(
    project: Project, store: Store, spring: Path
) -> None:
    add_leads(store, 3)
    t = MemoryTransport(
        fail_next=[
            BatchRejected(
                "422", status=422, name="invalid_from_address", reason="Invalid `from` field."
            )
        ]
    )
    report = _send(project, store, spring, t)
    assert report.counts == {"failed": 3} and report.status == "sent"


def test_limit_sends_exactly_n_then_resumes(project: Project, store: Store, spring: Path) -> None:
    add_leads(store, 250)
    t = MemoryTransport()
    first = _send(project, store, spring, t, limit=130)
    assert len(t.delivered) == 130 and first.status == "sending"
    second = _send(project, store, spring, t)
    assert second.status == "sent"
    assert sorted(to for to, _ in t.delivered) == sorted(f"lead{i}@example.com" for i in range(250))


def test_template_error_sends_nothing_and_writes_nothing(project: Project, store: Store) -> None:
    add_leads(store, 3)
    path = project.path / "bad.md"
    path.write_text(CAMPAIGN.replace("{{ company }}", "{{ compnay }}"), encoding="utf-8")
    t = MemoryTransport()
    with pytest.raises(TemplateError, match="compnay"):
        _send(project, store, path, t)
    assert t.delivered == [] and _statuses(store) == {}


def test_changed_file_after_sending_began_is_refused(
    project: Project, store: Store, spring: Path
) -> None:
    add_leads(store, 2)
    _send(project, store, spring, MemoryTransport(lose_next=1))
    spring.write_text(CAMPAIGN.replace("hello", "hi again"), encoding="utf-8")
    r = project.run("send", "spring.md", "--yes")
    assert r.exit_code == 2
    assert (
        "spring.md (or a partial or layout it uses) changed after campaign 'spring' was sending"
        in (r.stderr)
    )


def test_missing_from_address_is_config_error(project: Project, store: Store) -> None:
    add_leads(store, 1)
    path = project.path / "x.md"
    path.write_text(CAMPAIGN.replace("audience:", "sponsor: nofrom\naudience:"), encoding="utf-8")
    project.run("sponsors", "add", "nofrom", "--name", "No From")
    with pytest.raises(ConfigError, match="has no from address"):
        _send(project, store, path, MemoryTransport())
    r = project.run("send", "x.md", "--yes")
    assert r.exit_code == 3 and "Set 'from' under [sponsors.nofrom]" in r.stderr


def test_cli_refuses_without_yes_off_terminal(project: Project, store: Store, spring: Path) -> None:
    add_leads(store, 2)
    r = project.run("send", "spring.md")
    assert r.exit_code == 2
    assert "Refusing to send without --yes when not on a terminal" in r.stderr
    assert _statuses(store) == {}


def test_cli_dry_run_writes_nothing(project: Project, store: Store, spring: Path) -> None:
    add_leads(store, 4)
    r = project.run("send", "spring.md", "--dry-run")
    assert r.exit_code == 0, r.stderr
    assert "nothing was sent and nothing was written" in r.stdout
    assert "recipients" in r.stdout and "4" in r.stdout
    with store.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM campaign")).scalar() == 0


def test_batch_keys_are_stable_and_recorded(project: Project, store: Store, spring: Path) -> None:
    add_leads(store, 120)
    t = MemoryTransport()
    _send(project, store, spring, t)
    with store.read() as conn:
        keys = (
            conn.execute(sa.select(batch_t.c.idempotency_key).order_by(batch_t.c.number))
            .scalars()
            .all()
        )
    assert keys == t.keys and all(k.startswith("sc-spring-") for k in keys)


def test_cli_send_to_outbox_then_again_says_finished(
    project: Project, store: Store, spring: Path
) -> None:
    add_leads(store, 3)
    r = project.run("send", "spring.md", "--yes")
    assert r.exit_code == 0, r.stderr
    assert "Outbox transport: emails were written as .eml files; nothing was sent." in r.stdout
    assert sorted(p.name for p in (project.path / "outbox" / "spring").iterdir()) == [
        "0001-lead0@example.com.eml",
        "0002-lead1@example.com.eml",
        "0003-lead2@example.com.eml",
    ]
    to = email.message_from_bytes(
        (project.path / "outbox" / "spring" / "0002-lead1@example.com.eml").read_bytes(),
        policy=email.policy.default,
    )["To"]
    assert str(to) == "Lead 1 <lead1@example.com>"
    r = project.run("send", "spring.md", "--yes")
    assert r.exit_code == 0
    assert r.stdout == "Campaign 'spring' is already sent; nothing was sent.\n"


def test_cli_test_send_is_prefixed_and_not_recorded(
    project: Project, store: Store, spring: Path
) -> None:
    add_leads(store, 2)
    r = project.run("send", "spring.md", "--test", "me@example.org", "--test", "you@example.org")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == (
        "Test email written to the outbox to 2 addresses (me@example.org, you@example.org), "
        "rendered for lead0@example.com. Nothing was recorded.\n"
    )
    files = sorted((project.path / "outbox" / "spring-test").iterdir())
    assert [f.name for f in files] == ["test-1-me@example.org.eml", "test-2-you@example.org.eml"]
    subjects = sorted(email.message_from_bytes(f.read_bytes())["Subject"] for f in files)
    tos = sorted(email.message_from_bytes(f.read_bytes())["To"] for f in files)
    assert subjects == ["[TEST] L0, hello from Example Events"] * 2
    assert tos == ["me@example.org", "you@example.org"]
    with store.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM delivery")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM campaign")).scalar() == 0


def test_cli_test_as_renders_for_the_chosen_lead(
    project: Project, store: Store, spring: Path
) -> None:
    add_leads(store, 3)
    r = project.run("send", "spring.md", "--test", "me@example.org", "--as", "LEAD2@example.com")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == (
        "Test email written to the outbox to 1 address (me@example.org), rendered for "
        "lead2@example.com. Nothing was recorded.\n"
    )
    assert r.stderr == ""
    (eml,) = (project.path / "outbox" / "spring-test").iterdir()
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert (message["Subject"], str(message["To"])) == (
        "[TEST] L2, hello from Example Events",
        "me@example.org",
    )


def test_cli_test_as_a_lead_outside_the_audience_warns(
    project: Project, store: Store, spring: Path
) -> None:
    add_leads(store, 1)
    add_leads(store, 1, prefix="other", sponsor="default")
    with store.write() as conn:
        conn.execute(sa.text("UPDATE lead SET intent_level = 'cold' WHERE email LIKE 'other%'"))
    spring.write_text(CAMPAIGN.replace("type: all", "type: hot"), encoding="utf-8")
    with store.write() as conn:
        conn.execute(sa.text("UPDATE lead SET intent_level = 'hot' WHERE email LIKE 'lead%'"))
    r = project.run("send", "spring.md", "--test", "me@example.org", "--as", "other0@example.com")
    assert r.exit_code == 0, r.stderr
    assert r.stderr == "Warning: other0@example.com is not in this campaign's audience (hot).\n"
    r = project.run("send", "spring.md", "--test", "me@example.org", "--as", "nobody@example.com")
    assert r.exit_code == 2
    assert r.stderr.splitlines()[0] == (
        "Error: --as nobody@example.com: sponsor 'default' has no lead with that address."
    )
    r = project.run("send", "spring.md", "--as", "other0@example.com")
    assert r.exit_code == 2
    assert r.stderr == "Error: --as chooses whose email a --test shows; add --test YOUR_ADDRESS.\n"
    with store.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM campaign")).scalar() == 0


def test_cli_test_send_rejects_a_bad_address(project: Project, store: Store, spring: Path) -> None:
    r = project.run("send", "spring.md", "--test", "not-an-address")
    assert r.exit_code == 2
    assert "--test address 'not-an-address' is not valid" in r.stderr


def test_cli_unknown_campaign_file_exit_2(project: Project) -> None:
    r = project.run("send", "nope.md", "--yes")
    assert r.exit_code == 2
    assert "nope.md" in r.stderr and r.stderr.count("\n") <= 2


def test_cli_deliveries_json_csv_and_status_filter(
    project: Project, store: Store, spring: Path
) -> None:
    add_leads(store, 3)
    with store.write() as conn:
        conn.execute(
            Suppression.__table__.insert().values(  # type: ignore[attr-defined]
                email="lead1@example.com", sponsor_id="*", reason="manual", created_at=utcnow()
            )
        )
    assert project.run("send", "spring.md", "--yes").exit_code == 0
    r = project.run("deliveries", "spring", "--json")
    rows = json.loads(r.stdout)
    assert [(d["recipient"], d["status"]) for d in rows] == [
        ("lead0@example.com", "sent"),
        ("lead1@example.com", "suppressed"),
        ("lead2@example.com", "sent"),
    ]
    assert set(rows[0]) == {
        "id",
        "recipient",
        "status",
        "attempts",
        "last_error",
        "provider_message_id",
        "batch",
        "sent_at",
        "delivered_at",
        "opened_at",
        "open_count",
        "first_click_at",
        "click_count",
        "unsubscribed_at",
        "variant",
    }
    assert rows[0]["provider_message_id"] == "outbox-1"
    r = project.run("deliveries", "spring", "--status", "suppressed", "--csv")
    lines = r.stdout.splitlines()
    assert lines[0].startswith(
        "id,recipient,status,attempts,last_error,provider_message_id,batch,sent_at"
    )
    assert len(lines) == 2 and ",lead1@example.com,suppressed,0,," in lines[1]
    r = project.run("deliveries", "spring", "--status", "lost")
    assert r.exit_code == 2 and "Unknown delivery status 'lost'" in r.stderr
    r = project.run("deliveries", "ghost")
    assert r.exit_code == 2 and "Unknown campaign 'ghost'" in r.stderr


def test_cli_stats_json_keys(project: Project, store: Store, spring: Path) -> None:
    add_leads(store, 4)
    assert project.run("send", "spring.md", "--yes").exit_code == 0
    data = json.loads(project.run("stats", "spring", "--json").stdout)
    assert list(data) == [
        "campaign",
        "status",
        "status_reason",
        "total_recipients",
        "pending",
        "sent",
        "delivered",
        "failed",
        "bounced",
        "complained",
        "suppressed",
        "cancelled",
        "skipped",
        "opened",
        "clicked",
        "unsubscribed",
        "open_rate",
        "click_rate",
        "started_at",
        "finished_at",
        "emails_per_second",
        "timeline",
        "links",
        "follow_ups",
        "variants",
        "test",
    ]
    assert (data["campaign"], data["status"], data["total_recipients"], data["sent"]) == (
        "spring",
        "sent",
        4,
        4,
    )
    r = project.run("stats", "ghost", "--json")
    assert r.exit_code == 2


def test_cli_campaign_lifecycle(project: Project, store: Store, spring: Path) -> None:
    add_leads(store, 150)
    t = MemoryTransport(lose_next=1)
    _send(project, store, spring, t, limit=100)  # one batch, its answer lost: still sending
    listed = json.loads(project.run("campaigns", "list", "--json").stdout)
    assert listed == [
        {
            "id": "spring",
            "name": "Spring",
            "sponsor": "default",
            "status": "sending",
            "total_recipients": 150,
            "sent": 0,
            "failed": 0,
            "send_at": None,
        }
    ]
    assert project.run("campaigns", "pause", "spring").exit_code == 0
    r = project.run("campaigns", "pause", "spring")
    assert r.exit_code == 2 and "is paused" in r.stderr
    r = project.run("campaigns", "delete", "spring")
    assert r.exit_code == 2 and "has sent emails and cannot be deleted" in r.stderr
    r = project.run("campaigns", "cancel", "spring")
    assert r.exit_code == 0, r.stderr
    # the attempted batch (100) keeps its state; the 50 never attempted are cancelled
    assert r.stdout == "Cancelled campaign 'spring'; 50 pending deliveries will not be sent.\n"
    show = json.loads(project.run("campaigns", "show", "spring", "--json").stdout)
    assert [h["status"] for h in show["history"]] == ["draft", "sending", "paused", "cancelled"]
    assert [h["cause"] for h in show["history"]][2:] == ["paused by user", "cancelled by user"]
    assert show["deliveries"]["cancelled"] == 50
    assert json.loads(project.run("stats", "spring", "--json").stdout)["cancelled"] == 50


def test_cli_delete_only_when_nothing_was_sent(
    project: Project, store: Store, spring: Path
) -> None:
    from sponsorcast.send import take_snapshot

    add_leads(store, 3)
    take_snapshot(
        store, plan_send(store, project.config, spring), 100
    )  # snapshotted, never attempted
    r = project.run("campaigns", "delete", "spring")
    assert r.exit_code == 0 and r.stdout == "Deleted campaign 'spring'.\n"
    with store.read() as conn:
        for table in ("campaign", "delivery", "send_batch", "event"):
            assert conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() == 0
    # once a request went out (here refused with 401) the ledger is kept: conservative on purpose
    t = MemoryTransport(fail_next=[AuthError("The provider refused the API key (401).")])
    with pytest.raises(AuthError):
        _send(project, store, spring, t)
    r = project.run("campaigns", "delete", "spring")
    assert r.exit_code == 2 and "cannot be deleted" in r.stderr


def test_unknown_outcome_past_24h_is_reported_not_resent(
    project: Project, store: Store, spring: Path
) -> None:
    from datetime import timedelta

    add_leads(store, 150)
    t = MemoryTransport(lose_next=1)
    _send(project, store, spring, t, limit=100)
    lost_key = t.keys[0]
    with store.write() as conn:
        conn.execute(
            batch_t.update()
            .where(batch_t.c.idempotency_key == lost_key)
            .values(first_attempt_at=utcnow() - timedelta(hours=25))
        )
    report = _send(project, store, spring, t)
    assert t.keys.count(lost_key) == 1  # never re-sent: the provider forgot the key
    assert report.counts == {"failed": 100, "sent": 50}
    with store.read() as conn:
        reason = conn.execute(
            sa.text("SELECT DISTINCT last_error FROM delivery WHERE status = 'failed'")
        ).scalar()
        events = conn.execute(
            sa.text("SELECT count(*) FROM event WHERE type = 'batch.unknown'")
        ).scalar()
    assert reason is not None
    assert reason.startswith("outcome unknown: no answer from the provider within its 24 h")
    assert events == 1


def test_changed_lead_after_lost_answer_resends_the_first_attempts_emails(
    project: Project, store: Store, spring: Path
) -> None:
    add_leads(store, 3)
    t = MemoryTransport(lose_next=1)
    first = _send(project, store, spring, t)
    assert first.unknown_batches == 1 and not first.ok
    with store.write() as conn:
        conn.execute(
            sa.text("UPDATE lead SET first_name = 'Renamed' WHERE email = 'lead0@example.com'")
        )
    report = _send(project, store, spring, t)
    # the same key again, with the kept body (MemoryTransport asserts it is identical)
    assert t.keys == [t.keys[0], t.keys[0]]
    assert report.counts == {"sent": 3} and report.ok
    assert sorted(to for to, _ in t.delivered) == [
        "lead0@example.com",
        "lead1@example.com",
        "lead2@example.com",
    ]
    with store.read() as conn:
        kept = conn.execute(sa.text("SELECT payload FROM send_batch")).scalar()
    assert kept is None  # dropped once the batch was answered


def test_batch_attempted_by_an_older_version_is_still_compared_by_hash(
    project: Project, store: Store, spring: Path
) -> None:
    add_leads(store, 3)
    t = MemoryTransport(lose_next=1)
    _send(project, store, spring, t)
    with store.write() as conn:  # what a store written before payloads were kept looks like
        conn.execute(sa.text("UPDATE send_batch SET payload = NULL"))
        conn.execute(
            sa.text("UPDATE lead SET first_name = 'Renamed' WHERE email = 'lead0@example.com'")
        )
    report = _send(project, store, spring, t)
    assert len(t.keys) == 1  # the changed batch is not sent again, under any key
    assert report.counts == {"failed": 3}
    assert report.failed_now == 3 and report.unknown_now == 3 and not report.ok
    with store.read() as conn:
        reason = conn.execute(sa.text("SELECT DISTINCT last_error FROM delivery")).scalar()
        status, cause = conn.execute(sa.text("SELECT status, status_reason FROM campaign")).one()
    assert reason is not None and "lead or sponsor data changed since the first attempt" in reason
    assert (status, cause) == ("sent", "every batch answered; 3 deliveries failed")


def test_a_batch_answered_twice_is_counted_once(
    project: Project, store: Store, spring: Path
) -> None:
    # a lease that expires mid-request lets a second worker re-send the batch under its key;
    # both get the provider's answer, and only the first may count in the run's figures
    from sponsorcast.send import Claim, Claimer, make_renderer, take_snapshot

    add_leads(store, 3)
    take_snapshot(store, plan_send(store, project.config, spring), 100)
    claimer = Claimer(
        store, project.config, "spring", make_renderer(store, project.config, "spring")
    )
    claim = claimer.claim()
    assert isinstance(claim, Claim)
    answer = {e.delivery_id: f"msg-{e.delivery_id}" for e in claim.emails}
    assert claimer.record(claim, answer, {}) == (3, 0)
    assert claimer.record(claim, answer, {}) == (0, 0)
    assert _statuses(store) == {"sent": 3}


def test_the_summary_the_progress_and_stats_give_one_emails_per_second(
    project: Project, store: Store, spring: Path
) -> None:
    add_leads(store, 250)  # three batches, each answered after 0.1 s
    seen: list[float] = []
    report = _send(
        project,
        store,
        spring,
        MemoryTransport(latency=0.1),
        progress=lambda p: seen.append(p.emails_per_second),
    )
    assert report.sent_now == 250 and len(seen) == 3
    assert seen[-1] == report.emails_per_second  # the last progress figure is the summary's
    stats = campaign_stats(store, "spring")["emails_per_second"]
    # the same interval, first claim to last answer, read from the batches' stored times
    assert stats == pytest.approx(report.emails_per_second, rel=0.05)
    assert 250 / 0.1 > report.emails_per_second > 250 / 1.5  # at least one 0.1 s answer
