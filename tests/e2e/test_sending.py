"""Sending end to end: real ``sponsorcast send`` processes against the Resend stand-in on 127.0.0.1.

These are the exactly-once guarantees of SPEC §4 under fire: SIGKILL at random moments,
5xx and lost answers, overlapping processes, rate limits, quota, bad keys, bad addresses."""

from __future__ import annotations

import random
import signal
import time
from typing import Any

import pytest
import sqlalchemy as sa

from sponsorcast.store import Store
from tests.support.e2e import (
    add_leads,
    assert_exactly_once,
    emails,
    ledger,
    received,
    resend_project,
    run,
    spawn,
    summary,
)
from tests.support.fakeresend import FakeResend
from tests.support.pg import both_store_backends  # noqa: F401 - every test here runs on SQLite and on PostgreSQL
from tests.support.project import Project


@pytest.mark.slow
def test_exactly_once_under_sigkill_5xx_and_lost_answers(
    project: Project, store: Store, fake_resend: FakeResend
) -> None:
    resend_project(project, fake_resend)
    people = emails(3000)
    add_leads(store, people)
    fake_resend.configure(latency=0.05, fail_rate=0.1, lose_rate=0.1, seed=7, rate=40)
    rng = random.Random(1)
    kills = 0
    for _ in range(4):  # killed at random moments
        proc = spawn(project, fake_resend, "send", "spring.md", "--yes")
        time.sleep(rng.uniform(0.6, 1.6))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=30)
    assert kills >= 2, "the run was too fast to be killed mid-send"
    for _ in range(15):  # resumed until done
        code, out, err = run(project, fake_resend, "send", "spring.md", "--yes")
        if code == 0 and ("is already sent" in out or "sent " in out):
            with store.read() as conn:
                if conn.execute(sa.text("SELECT status FROM campaign")).scalar() == "sent":
                    break
    else:
        pytest.fail(f"never finished: {code} {out} {err}")
    assert fake_resend.counters["lost"] > 0 and fake_resend.counters["server_errors"] > 0
    assert_exactly_once(fake_resend, store, people)


@pytest.mark.slow
def test_two_processes_started_together_send_each_email_once(
    project: Project, store: Store, fake_resend: FakeResend
) -> None:
    resend_project(project, fake_resend, extra="")
    people = emails(1500)
    add_leads(store, people)
    fake_resend.configure(latency=0.05)
    procs = [spawn(project, fake_resend, "send", "spring.md", "--yes") for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [
        (p.returncode, o.decode(), e.decode()) for p, (o, e) in zip(procs, results, strict=False)
    ]
    assert_exactly_once(fake_resend, store, people)
    with store.read() as conn:
        starts = conn.execute(
            sa.text("SELECT count(*) FROM event WHERE type = 'campaign.sending'")
        ).scalar()
    assert starts == 1


@pytest.mark.slow
def test_steady_run_with_limiter_sees_no_429(
    project: Project, store: Store, fake_resend: FakeResend
) -> None:
    resend_project(project, fake_resend, rate_limit='"auto"', extra="")
    (project.path / "sponsorcast.toml").write_text(
        (project.path / "sponsorcast.toml")
        .read_text()
        .replace("max_attempts = 3", "max_attempts = 3\nbatch_size = 20")
    )
    people = emails(400)  # 20 requests
    add_leads(store, people)
    fake_resend.configure(rate=5, latency=0.02)
    code, out, err = run(project, fake_resend, "send", "spring.md", "--yes")
    assert code == 0, err
    shown = summary(out)
    assert (shown["status"], shown["sent now"], shown["failed now"]) == ("sent", "400", "0")
    assert fake_resend.counters["rate_limited"] == 0
    assert_exactly_once(fake_resend, store, people)


@pytest.mark.slow
def test_burst_of_429s_loses_and_duplicates_nothing(
    project: Project, store: Store, fake_resend: FakeResend
) -> None:
    # a burst of 429s (as when another process on the same team takes the quota) while the
    # provider allows 10/s: every batch still goes out once
    resend_project(project, fake_resend, rate_limit="50", extra="")
    (project.path / "sponsorcast.toml").write_text(
        (project.path / "sponsorcast.toml")
        .read_text()
        .replace("max_attempts = 3", "max_attempts = 5\nbatch_size = 25")
    )
    people = emails(250)
    add_leads(store, people)
    fake_resend.configure(rate=10, limit_next=6)
    for _ in range(5):
        code, _out, err = run(project, fake_resend, "send", "spring.md", "--yes")
        if code == 0:
            break
    assert code == 0, err
    assert fake_resend.counters["rate_limited"] > 0
    assert_exactly_once(fake_resend, store, people)


@pytest.mark.slow
def test_quota_pauses_then_a_later_run_finishes(
    project: Project, store: Store, fake_resend: FakeResend
) -> None:
    resend_project(project, fake_resend)
    people = emails(450)
    add_leads(store, people)
    fake_resend.configure(quota=200)
    code, _out, err = run(project, fake_resend, "send", "spring.md", "--yes")
    assert code == 1
    assert "quota" in err.lower()
    with store.read() as conn:
        assert conn.execute(sa.text("SELECT status FROM campaign")).scalar() == "paused"
    assert len(fake_resend.accepted) == 200
    fake_resend.configure(quota=None)
    code, out, err = run(project, fake_resend, "send", "spring.md", "--yes")
    assert code == 0, err
    shown = summary(out)
    assert (shown["status"], shown["sent now"], shown["total sent"]) == ("sent", "250", "450")
    assert_exactly_once(fake_resend, store, people)


def test_401_exits_3_with_nothing_failed(
    project: Project, store: Store, fake_resend: FakeResend
) -> None:
    resend_project(project, fake_resend)
    add_leads(store, emails(30))
    code, out, err = run(
        project, fake_resend, "send", "spring.md", "--yes", key="re_wrong_key_12345"
    )
    assert code == 3
    assert "re_wrong_key_12345" not in out + err
    assert err.startswith("Error: ")
    assert {s for s, _ in ledger(store).values()} <= {"pending", "sending"}
    assert fake_resend.accepted == []


def test_one_invalid_address_fails_only_that_delivery(
    project: Project, store: Store, fake_resend: FakeResend
) -> None:
    resend_project(project, fake_resend)
    people = emails(9)
    add_leads(store, [*people[:4], "broken@nodot", *people[4:]])
    code, out, err = run(project, fake_resend, "send", "spring.md", "--yes")
    assert code == 1
    shown = summary(out)
    assert (shown["sent now"], shown["failed now"]) == ("9", "1")
    assert "1 delivery failed in this run" in " ".join(err.split())
    book = ledger(store)
    assert book.pop("broken@nodot")[0] == "failed"
    assert {s for s, _ in book.values()} == {"sent"}
    assert sorted(received(fake_resend)) == sorted(people)
    with store.read() as conn:
        err_msg = conn.execute(
            sa.text("SELECT last_error FROM delivery WHERE status = 'failed'")
        ).scalar()
    assert err_msg and err_msg.startswith("Invalid `to` field")


def test_resend_request_matches_openapi_and_headers(
    project: Project, store: Store, fake_resend: FakeResend
) -> None:
    resend_project(
        project, fake_resend, extra='\n[tracking]\nunsubscribe_mailto = "unsub@example.com"\n'
    )
    add_leads(store, emails(2))
    fake_resend.configure(keep_bodies=True)
    code, out, err = run(project, fake_resend, "send", "spring.md", "--yes")
    assert code == 0, err
    assert summary(out)["sent now"] == "2"
    first = sorted(fake_resend.accepted, key=lambda a: a.to[0])[0]
    assert first.subject == "F0, see us at booth 12"
    assert first.from_address == "Example Events <hello@example.com>"
    assert first.headers["List-Unsubscribe"] == "<mailto:unsub@example.com?subject=unsubscribe>"
    assert {"name": "campaign", "value": "spring"} in first.tags
    assert first.text and "Hi F0, thanks for stopping by." in first.text
    assert first.html and "1 Example Street, Springfield" in first.html


@pytest.mark.slow
def test_ctrl_c_exits_130_and_the_next_run_resumes(
    project: Project, store: Store, fake_resend: FakeResend
) -> None:
    resend_project(project, fake_resend)
    people = emails(2000)
    add_leads(store, people)
    fake_resend.configure(latency=0.1, rate=20)
    proc = spawn(project, fake_resend, "send", "spring.md", "--yes")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(fake_resend.accepted) < 200:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err.decode()
    assert "Interrupted" in err.decode()
    with store.read() as conn:
        status, reason = conn.execute(sa.text("SELECT status, status_reason FROM campaign")).one()
    assert (status, reason) == ("paused", "interrupted (Ctrl-C)")
    assert len(fake_resend.accepted) < 2000
    with store.read() as conn:
        sent_before = (
            conn.execute(sa.text("SELECT id FROM delivery WHERE status = 'sent'")).scalars().all()
        )
    code, out2, err2 = run(project, fake_resend, "send", "spring.md", "--yes")
    assert code == 0, err2
    shown = summary(out2)
    assert shown["status"] == "sent" and int(shown["sent now"]) + len(set(sent_before)) == 2000
    assert_exactly_once(fake_resend, store, people)


def _bodies_by_key(fake: FakeResend) -> dict[str | None, set[str]]:
    seen: dict[str | None, set[str]] = {}
    for key, body in fake.sends:
        seen.setdefault(key, set()).add(body)
    return seen


def _change_reimport(project: Project, fake: FakeResend) -> None:
    rows = "".join(f"person{i}@example.com,Changed{i}\n" for i in range(150))
    (project.path / "update.csv").write_text("email,first_name\n" + rows, encoding="utf-8")
    code, out, err = run(project, fake, "leads", "import", "update.csv")
    assert code == 0 and "updated" in out and "150" in out, (out, err)


def _change_sponsor(project: Project, fake: FakeResend) -> None:
    toml = project.path / "sponsorcast.toml"
    toml.write_text(
        toml.read_text()
        .replace('name = "Example Events"', 'name = "Renamed Events"')
        .replace("1 Example Street", "2 Other Road")
    )


def _change_suppression(project: Project, fake: FakeResend) -> None:
    code, _out, err = run(
        project, fake, "suppress", "add", "person0@example.com", "--sponsor", "default"
    )
    assert code == 0, err


def _change_config(project: Project, fake: FakeResend) -> None:
    toml = project.path / "sponsorcast.toml"
    toml.write_text(toml.read_text() + '\n[tracking]\nunsubscribe_mailto = "stop@example.com"\n')


@pytest.mark.slow
@pytest.mark.parametrize(
    ("failure", "change"),
    [
        ("5xx", _change_reimport),
        ("lost", _change_sponsor),
        ("5xx", _change_suppression),
        ("lost", _change_config),
    ],
    ids=["5xx-reimport", "lost-sponsor-edit", "5xx-suppression", "lost-config-edit"],
)
def test_resume_resends_the_first_attempts_bytes_whatever_changed(
    project: Project, store: Store, fake_resend: FakeResend, failure: str, change: Any
) -> None:
    resend_project(project, fake_resend)
    toml = project.path / "sponsorcast.toml"
    toml.write_text(
        toml.read_text().replace("max_attempts = 3", "max_attempts = 2\nbatch_size = 50")
    )
    people = emails(150)  # three batches
    add_leads(store, people)
    if failure == "5xx":
        fake_resend.configure(fail_next=6)  # both attempts of every batch
    else:  # accepted, but no answer reaches the sender, twice for each batch
        toml.write_text(toml.read_text().replace("max_attempts = 2", "max_attempts = 1"))
        fake_resend.configure(lose_next=3)
    code, out, err = run(project, fake_resend, "send", "spring.md", "--yes")
    assert code == 1, (out, err)
    assert "3 batches got no answer" in err
    first = _bodies_by_key(fake_resend)
    assert len(first) == 3 and all(len(b) == 1 for b in first.values())
    toml.write_text(toml.read_text().replace("max_attempts = 1", "max_attempts = 2"))
    change(project, fake_resend)
    code, out, err = run(project, fake_resend, "send", "spring.md", "--yes")
    assert code == 0, (out, err)
    assert _bodies_by_key(fake_resend) == first  # the same keys, each with its first body
    assert_exactly_once(fake_resend, store, people)
    with store.read() as conn:
        status, kept = conn.execute(
            sa.text(
                "SELECT c.status, (SELECT count(*) FROM send_batch WHERE payload IS NOT NULL) FROM campaign c"
            )
        ).one()
    assert (status, kept) == ("sent", 0)


@pytest.mark.slow
def test_a_run_ending_with_unconfirmed_deliveries_exits_1_and_counts_them(
    project: Project, store: Store, fake_resend: FakeResend
) -> None:
    resend_project(project, fake_resend)
    add_leads(store, emails(5))
    fake_resend.configure(fail_next=3)
    code, _out, err = run(project, fake_resend, "send", "spring.md", "--yes")
    assert code == 1 and "1 batch got no answer" in err
    with store.write() as conn:  # no answer for longer than the provider keeps keys
        conn.execute(
            sa.text("UPDATE send_batch SET first_attempt_at = '2020-01-01 00:00:00.000000'")
        )
    code, out, err = run(project, fake_resend, "send", "spring.md", "--yes")
    assert code == 1, (out, err)
    assert (
        "Warning: 5 deliveries failed in this run, 5 of them with an outcome the provider "
        "never confirmed; 'sponsorcast deliveries spring --status failed' lists them."
    ) in " ".join(err.split())
    assert fake_resend.accepted == []
    listed = run(project, fake_resend, "campaigns", "list", "--json")[1]
    assert '"failed": 5' in listed


def test_the_provider_receives_the_list_headers_the_layout_and_a_clean_text_part(
    project: Project, store: Store, fake_resend: FakeResend
) -> None:
    resend_project(project, fake_resend, extra='unsubscribe_mailto = "optout@example.com"\n')
    add_leads(store, ["ada@example.org"])
    fake_resend.configure(keep_bodies=True)
    code, _out, err = run(project, fake_resend, "send", "spring.md", "--yes")
    assert code == 0, err
    (accepted,) = fake_resend.accepted
    assert accepted.headers["List-Id"] == '"Spring (Example Events)" <spring.default.example.com>'
    assert accepted.headers["List-Unsubscribe"] == "<mailto:optout@example.com?subject=unsubscribe>"
    assert accepted.html is not None and accepted.text is not None
    assert accepted.html.startswith('<!DOCTYPE html>\n<html lang="en" dir="ltr">')
    assert 'class="sc-container"' in accepted.html
    assert accepted.text.startswith("Hi ") and "**" not in accepted.text
