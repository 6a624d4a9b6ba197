"""``run-due`` for cron: due campaigns start at the right instant, late ones are missed, edited ones
refused, quota pauses resumed; and with real processes against the Resend stand-in: overlapping
runs, SIGKILL mid-batch (dead holder taken over at once, foreign lease after expiry), --max-seconds.

The clock is ``SPONSORCAST_NOW`` (CLI) or ``now=`` (library): no test sleeps to wait for a time.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sponsorcast.errors import AuthError, ExitCode, QuotaExceeded
from sponsorcast.schedule import run_due, schedule_campaign
from sponsorcast.store import Store
from sponsorcast.store.models import SendBatch, utcnow
from sponsorcast.store.tables import lead_t
from tests.support.fakeresend import FakeResend
from tests.support.project import PROJECT_TOML, REPO, Project
from tests.support.sending import MemoryTransport, add_leads

ROOT = REPO
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d "
CAMPAIGN = """\
---
id: {id}
name: Spring
subject: "{{{{ first_name }}}}, see us at booth 12"
audience:
  type: all
send_at: {send_at}
---
Hi {{{{ first_name }}}}, thanks for stopping by.
"""
SEND_AT = "2030-12-01T09:00:00Z"
T0 = datetime(2030, 12, 1, 9, 0, tzinfo=UTC)


def write_campaign(project: Project, cid: str = "spring", send_at: str = SEND_AT) -> Path:
    path = project.path / f"{cid}.md"
    path.write_text(CAMPAIGN.format(id=cid, send_at=send_at), encoding="utf-8")
    return path


def at(delta: timedelta) -> dict[str, str]:
    """The env that sets the CLI's clock to T0 + delta."""
    return {"SPONSORCAST_NOW": (T0 + delta).isoformat()}


BEFORE = at(-timedelta(days=30))


def unstamped(stderr: str) -> str:
    """stderr with each line's timestamp checked and removed."""
    lines = stderr.splitlines(keepends=True)
    assert all(re.match(STAMP, line) for line in lines), stderr
    return "".join(re.sub("^" + STAMP, "", line) for line in lines)


def status(store: Store, cid: str = "spring") -> str:
    with store.read() as conn:
        return str(
            conn.execute(
                sa.text("SELECT status FROM campaign WHERE id = :i"), {"i": cid}
            ).scalar_one()
        )


def events(store: Store, cid: str = "spring") -> list[tuple[str, str]]:
    import json

    with store.read() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT type, payload FROM event WHERE campaign_id = :i AND type LIKE 'campaign.%' ORDER BY id"
            ),
            {"i": cid},
        ).all()
    return [(t, (json.loads(p) if isinstance(p, str) else p)["cause"]) for t, p in rows]


def outbox(project: Project, cid: str = "spring") -> int:
    folder = project.path / "outbox" / cid
    return len(list(folder.glob("*.eml"))) if folder.exists() else 0


# --------------------------------------------------------------------------- in-process, outbox


def test_nothing_due_prints_nothing_and_exits_0(project: Project, store: Store) -> None:
    assert project.run("run-due").__dict__ == {"exit_code": 0, "stdout": "", "stderr": ""}
    add_leads(store, 3)
    write_campaign(project)
    assert project.run("schedule", "spring.md", env=BEFORE).exit_code == 0
    # scheduled, not yet due; and a draft and a sent campaign are not run-due's business either
    result = project.run("run-due", "--max-seconds", "240", env=at(-timedelta(seconds=1)))
    assert result.__dict__ == {"exit_code": 0, "stdout": "", "stderr": ""}
    assert status(store) == "scheduled" and outbox(project) == 0


def test_fires_at_the_right_instant_in_another_timezone(project: Project, store: Store) -> None:
    (project.path / "sponsorcast.toml").write_text('timezone = "America/New_York"\n' + PROJECT_TOML)
    add_leads(store, 3)
    write_campaign(project)
    # 09:00 in New York on 1 December is 14:00 UTC (EST, UTC-5)
    result = project.run("schedule", "spring.md", "--at", "2030-12-01 09:00", env=BEFORE)
    assert result.exit_code == 0, result.stderr
    early = project.run("run-due", env={"SPONSORCAST_NOW": "2030-12-01T13:59:59Z"})
    assert early.__dict__ == {"exit_code": 0, "stdout": "", "stderr": ""}
    assert status(store) == "scheduled"
    early_local = project.run(
        "run-due", env={"SPONSORCAST_NOW": "2030-12-01 08:59:59"}
    )  # local, New York
    assert early_local.stderr == "" and status(store) == "scheduled"
    on_time = project.run("run-due", env={"SPONSORCAST_NOW": "2030-12-01T14:00:00Z"})
    assert on_time.exit_code == 0 and on_time.stdout == ""
    text = unstamped(on_time.stderr)
    assert re.fullmatch(
        r"Campaign 'spring': starting, 3 recipients\.\n"
        r"Campaign 'spring': 3 sent, 0 failed in this run \(\d+\.\d emails/s\); status sent "
        r"\(outbox transport: nothing was sent\)\.\n",
        text,
    ), text
    assert status(store) == "sent" and outbox(project) == 3
    assert ("campaign.sending", "run-due") in events(store)
    again = project.run("run-due", env={"SPONSORCAST_NOW": "2030-12-01T14:05:00Z"})
    assert again.__dict__ == {"exit_code": 0, "stdout": "", "stderr": ""}


def test_too_late_is_missed_not_sent_until_sent_by_hand(project: Project, store: Store) -> None:
    add_leads(store, 4)
    path = write_campaign(project)
    project.run("schedule", "spring.md", env=BEFORE)
    result = project.run("run-due", env=at(timedelta(hours=24, minutes=5)))
    assert result.exit_code == 1 and result.stdout == ""
    assert unstamped(result.stderr) == (
        "Campaign 'spring' MISSED: 1d 5m past its send time 2030-12-01T09:00:00+00:00, more than "
        f"--max-lateness 1d; not started. Send it by hand with 'sponsorcast send {path.resolve()}', "
        "or schedule it again.\n"
    )
    assert status(store) == "missed" and outbox(project) == 0
    assert events(store)[-1] == (
        "campaign.missed",
        (
            "run-due: 1d 5m past its send time "
            "2030-12-01T09:00:00+00:00 (more than --max-lateness 1d)"
        ),
    )
    # reported once: the next runs stay quiet (cron would otherwise mail it every five minutes)
    assert project.run("run-due", env=at(timedelta(hours=25))).__dict__ == {
        "exit_code": 0,
        "stdout": "",
        "stderr": "",
    }
    listed = project.run("campaigns", "list", "--json")
    assert '"status": "missed"' in listed.stdout
    sent = project.run("send", "spring.md", "--yes")
    assert sent.exit_code == 0, sent.stderr
    assert status(store) == "sent" and outbox(project) == 4


def test_max_lateness_option_lets_a_late_campaign_start(project: Project, store: Store) -> None:
    add_leads(store, 2)
    write_campaign(project)
    project.run("schedule", "spring.md", env=BEFORE)
    result = project.run("run-due", "--max-lateness", "2d", env=at(timedelta(hours=30)))
    assert result.exit_code == 0
    assert "Campaign 'spring': starting, 2 recipients, 1d 6h after its send time." in result.stderr
    assert status(store) == "sent" and outbox(project) == 2
    bad = project.run("run-due", "--max-lateness", "soon")
    assert (bad.exit_code, bad.stderr.splitlines()[0]) == (2, "Error: 'soon' is not a duration.")


def test_edited_file_is_refused_until_rescheduled(project: Project, store: Store) -> None:
    add_leads(store, 2)
    path = write_campaign(project)
    project.run("schedule", "spring.md", env=BEFORE)
    path.write_text(path.read_text().replace("booth 12", "booth 14"), encoding="utf-8")
    for _ in range(2):  # every run refuses, the campaign stays scheduled
        result = project.run("run-due", env=at(timedelta(minutes=1)))
        assert result.exit_code == 1 and result.stdout == ""
        assert unstamped(result.stderr) == (
            f"Campaign 'spring' REFUSED: {path.resolve()} (or a partial or layout it uses) changed "
            f"after it was scheduled; not started. Run 'sponsorcast schedule {path.resolve()}' to "
            "schedule the new version, or restore the file.\n"
        )
        assert status(store) == "scheduled" and outbox(project) == 0
    rescheduled = project.run(
        "schedule", "spring.md", "--at", "2030-12-01T09:10:00Z", env=at(timedelta(minutes=2))
    )
    assert rescheduled.exit_code == 0, rescheduled.stderr
    result = project.run("run-due", env=at(timedelta(minutes=10)))
    assert result.exit_code == 0, result.stderr
    assert status(store) == "sent" and outbox(project) == 2
    first = (project.path / "outbox" / "spring" / "0001-lead0@example.com.eml").read_text()
    assert "booth 14" in first


def test_deleted_file_is_refused(project: Project, store: Store) -> None:
    add_leads(store, 1)
    path = write_campaign(project)
    project.run("schedule", "spring.md", env=BEFORE)
    path.unlink()
    result = project.run("run-due", env=at(timedelta(minutes=1)))
    assert result.exit_code == 1
    assert "REFUSED: its file " in result.stderr and "no longer exists" in result.stderr
    assert status(store) == "scheduled"


def test_one_campaign_failing_to_start_does_not_stop_the_others(
    project: Project, store: Store
) -> None:
    add_leads(store, 2)
    with store.write() as conn:
        conn.execute(sa.text('UPDATE lead SET fields = \'{"booth": "7"}\''))
    (project.path / "first.md").write_text(
        CAMPAIGN.format(id="first", send_at="2030-12-01T08:00:00Z").replace(
            "booth 12", "booth {{ booth }}"
        )
    )
    write_campaign(project, "second")
    assert project.run("schedule", "first.md", env=BEFORE).exit_code == 0
    assert project.run("schedule", "second.md", env=BEFORE).exit_code == 0
    # a lead without the 'booth' column arrives after scheduling: 'first' no longer renders
    add_leads(store, 1, prefix="late")
    result = project.run("run-due", env=at(timedelta(minutes=1)))
    assert result.exit_code == 1
    lines = unstamped(result.stderr).splitlines()
    assert lines[0].startswith("Campaign 'first' FAILED to start, nothing was sent: ")
    assert "undefined variable 'booth' for 1 recipient" in lines[0]
    assert lines[1] == "Campaign 'second': starting, 3 recipients, 1m after its send time."
    assert status(store, "first") == "failed" and status(store, "second") == "sent"
    assert outbox(project, "first") == 0 and outbox(project, "second") == 3


def test_resend_without_key_exits_3_and_starts_nothing(project: Project, store: Store) -> None:
    (project.path / "sponsorcast.toml").write_text(
        PROJECT_TOML.replace('kind = "outbox"', 'kind = "resend"')
    )
    add_leads(store, 1)
    write_campaign(project)
    refused = project.run("schedule", "spring.md", env={**BEFORE, "RESEND_API_KEY": ""})
    assert refused.exit_code == 3
    assert refused.stderr.startswith(
        "Error: RESEND_API_KEY is not set, and the resend transport needs it; nothing was sent."
    )
    with store.read() as conn:  # the preflight comes before anything is recorded
        assert conn.execute(sa.text("SELECT count(*) FROM campaign")).scalar() == 0
    scheduled = project.run("schedule", "spring.md", env={**BEFORE, "RESEND_API_KEY": "re_k"})
    assert scheduled.exit_code == 0, scheduled.stderr
    result = project.run("run-due", env={**at(timedelta(minutes=1)), "RESEND_API_KEY": ""})
    assert result.exit_code == 3
    assert (
        unstamped(result.stderr)
        == "RESEND_API_KEY is not set; nothing was started or resumed (spring).\n"
    )
    assert status(store) == "scheduled"


# --------------------------------------------------------------------------- library, injected clock


def _schedule(project: Project, store: Store, cid: str, send_at: str = SEND_AT) -> None:
    path = write_campaign(project, cid, send_at)
    schedule_campaign(store, project.config, path, now=T0 - timedelta(days=1))


def test_quota_pause_is_resumed_but_user_and_auth_pauses_are_not(
    project: Project, store: Store
) -> None:
    from sponsorcast.store.lifecycle import pause_campaign, resume_campaign

    add_leads(store, 250)
    _schedule(project, store, "quota")
    _schedule(project, store, "user")
    _schedule(project, store, "auth", "2030-12-01T10:00:00Z")
    with store.write() as conn:
        pause_campaign(conn, "user")  # a person holds it back before its time
    config = project.config
    lines: list[str] = []

    def run(minutes: int, transport: MemoryTransport, quota_retry: timedelta = timedelta(0)) -> Any:
        lines.clear()
        return run_due(
            store,
            config,
            now=T0 + timedelta(minutes=minutes),
            transport=transport,
            log=lines.append,
            quota_retry=quota_retry,
        )

    t1 = MemoryTransport(
        fail_next=[QuotaExceeded("daily quota used up", name="daily_quota_exceeded")]
    )
    report = run(1, t1)
    assert (report.exit_code, [o.action for o in report.outcomes]) == (ExitCode.FAILED, ["paused"])
    assert lines[-1] == (
        "Campaign 'quota' PAUSED: the provider's quota is used up (daily quota used up); "
        "run-due tries it again 30m after the pause."
    )
    assert status(store, "quota") == "paused" and status(store, "user") == "paused"
    # within the retry interval (real clock) the provider is not asked again, and cron hears nothing
    quiet = MemoryTransport()
    report = run(2, quiet, quota_retry=timedelta(minutes=30))
    assert (report.outcomes, lines, quiet.keys) == ([], [], [])
    assert status(store, "quota") == "paused"
    # an hour later the quota pause is retried, meets a refused key: the run stops there
    t2 = MemoryTransport(fail_next=[AuthError("The provider refused the API key (401).")])
    report = run(61, t2)
    assert (report.exit_code, [o.action for o in report.outcomes]) == (ExitCode.CONFIG, ["auth"])
    assert lines[0] == "Campaign 'quota': resuming after the provider's quota pause."
    assert lines[-1].startswith("Campaign 'quota': the provider refused the credentials: ")
    assert status(store, "auth") == "scheduled", "a refused key must not touch the other campaigns"
    assert status(store, "quota") == "paused"
    # the key works again: 'auth' is due and starts; the auth pause and the user pause are left alone
    t3 = MemoryTransport()
    report = run(62, t3)
    assert (report.exit_code, [(o.campaign_id, o.action) for o in report.outcomes]) == (
        ExitCode.OK,
        [("auth", "started")],
    )
    assert status(store, "quota") == "paused" and status(store, "user") == "paused"
    # a person resumes both: the next run finishes them
    with store.write() as conn:
        assert resume_campaign(conn, "quota") == "sending"
        assert resume_campaign(conn, "user") == "scheduled"
    t4 = MemoryTransport()
    report = run(63, t4)
    assert report.exit_code == ExitCode.OK
    assert [(o.campaign_id, o.action) for o in report.outcomes] == [
        ("quota", "resumed"),
        ("user", "started"),
    ]
    assert {cid: status(store, cid) for cid in ("quota", "user", "auth")} == {
        "quota": "sent",
        "user": "sent",
        "auth": "sent",
    }
    with store.read() as conn:
        per_campaign = conn.execute(
            sa.text(
                "SELECT campaign_id, count(DISTINCT recipient) FROM delivery WHERE status = 'sent' GROUP BY campaign_id"
            )
        ).all()
    assert dict(per_campaign) == {"quota": 250, "auth": 250, "user": 250}
    assert len(t1.delivered + t2.delivered + t3.delivered + t4.delivered) == 750


def test_long_runs_log_progress(
    project: Project, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sponsorcast.schedule.cron

    monkeypatch.setattr(
        sponsorcast.schedule.cron, "PROGRESS_EVERY", 0.0
    )  # a line per batch instead of per minute
    add_leads(store, 250)
    _schedule(project, store, "spring")
    lines: list[str] = []
    report = run_due(store, project.config, now=T0, transport=MemoryTransport(), log=lines.append)
    assert report.exit_code == ExitCode.OK
    assert lines[0] == "Campaign 'spring': starting, 250 recipients."
    assert len(lines) == 5 and all(" so far in this run (" in line for line in lines[1:4])
    assert re.match(
        r"Campaign 'spring': 250 sent, 0 failed so far in this run \(\d+\.\d emails/s\)\.$",
        lines[3],
    )
    assert lines[4].startswith("Campaign 'spring': 250 sent, 0 failed in this run (")


# --------------------------------------------------------------------------- real processes, stand-in


def resend_project(
    project: Project,
    fake: FakeResend,
    *,
    batch_size: int = 100,
    concurrency: int = 4,
    store_url: str = "sqlite:///sponsorcast.db",
) -> None:
    (project.path / "sponsorcast.toml").write_text(
        f"""\
[store]
url = "{store_url}"

[transport]
kind = "resend"

[resend]
base_url = "{fake.url}"
rate_limit = 100
batch_size = {batch_size}
concurrency = {concurrency}
max_attempts = 3
timeout = 10

[send]
lease_seconds = 2

[sponsors.default]
name = "Example Events"
from = "Example Events <hello@example.com>"
postal_address = "1 Example Street, Springfield"
""",
        encoding="utf-8",
    )


def people(n: int) -> list[str]:
    return [f"person{i}@example.com" for i in range(n)]


def add_people(store: Store, emails: list[str]) -> None:
    now = utcnow()
    with store.write() as conn:
        conn.execute(
            lead_t.insert(),
            [
                {
                    "sponsor_id": "default",
                    "email": e,
                    "first_name": f"F{i}",
                    "follow_up_status": "new",
                    "tags": "",
                    "fields": {},
                    "created_at": now,
                    "updated_at": now,
                }
                for i, e in enumerate(emails)
            ],
        )


def spawn(
    project: Project, fake: FakeResend, *args: str, now: timedelta = timedelta(minutes=1)
) -> subprocess.Popen[bytes]:
    """``sponsorcast run-due …`` as a real process in the project, its clock at T0 + now."""
    env = {
        **os.environ,
        "RESEND_API_KEY": fake.api_key,
        "PYTHONPATH": str(ROOT),
        "SPONSORCAST_CONFIG": "",
        "SPONSORCAST_DB": "",
        "RESEND_BASE_URL": fake.url,
        "COLUMNS": "100",
        **at(now),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "sponsorcast", "run-due", *args],
        cwd=project.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out.decode(), err.decode()


def assert_each_once(fake: FakeResend, store: Store, expected: list[str]) -> None:
    counts = Counter(to for a in fake.accepted for to in a.to)
    assert sorted(counts) == sorted(expected), "someone was not emailed"
    assert max(counts.values()) == 1, f"duplicates: {[e for e, n in counts.items() if n > 1][:5]}"
    with store.read() as conn:
        book: dict[str, str] = dict(
            conn.execute(
                sa.text("SELECT recipient, provider_message_id FROM delivery WHERE status = 'sent'")
            ).all()
        )
    assert book == {a.to[0]: a.id for a in fake.accepted}, "the ledger disagrees with the provider"


def scheduled_for_real(
    project: Project, store: Store, fake: FakeResend, n: int, **kw: Any
) -> list[str]:
    resend_project(project, fake, **kw)
    emails = people(n)
    add_people(store, emails)
    write_campaign(project)
    # Through the library, not the in-process CLI: opening a second store in this process reads the
    # file's header with a plain open()/close(), which drops this process's POSIX locks on it (those
    # of the fixture's live SQLite connections too); another process then believes it is the last
    # one, deletes the WAL under them, and this process reads stale pages and corrupts the file.
    config = project.config_with({"RESEND_API_KEY": fake.api_key})
    schedule_campaign(store, config, project.path / "spring.md", now=T0 - timedelta(days=1))
    return emails


def wait_for(condition: Any, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            pytest.fail("timed out waiting")
        time.sleep(0.02)


def test_three_concurrent_runs_start_once_and_send_each_email_once(
    project: Project, store: Store, fake_resend: FakeResend
) -> None:
    emails = scheduled_for_real(project, store, fake_resend, 600)
    fake_resend.configure(latency=0.1)
    procs = [spawn(project, fake_resend) for _ in range(3)]
    results = [finish(p) for p in procs]
    assert [code for code, _, _ in results] == [0, 0, 0], results
    assert all(out == "" for _, out, _ in results)
    assert_each_once(fake_resend, store, emails)
    assert fake_resend.counters["conflicts"] == 0
    assert status(store) == "sent"
    starts = [e for e in events(store) if e[0] == "campaign.sending"]
    assert starts == [("campaign.sending", "run-due")]
    assert sum(err.count("starting, 600 recipients") for _, _, err in results) == 1


def _kill_mid_batch(project: Project, store: Store, fake: FakeResend) -> tuple[int, list[str]]:
    """Start run-due, SIGKILL it while its first batch is at the provider; (batch number, its recipients)."""
    fake.configure(latency=1.5)
    proc = spawn(project, fake)
    wait_for(lambda: fake.counters["requests"] >= 1)  # the first request is being answered (slowly)
    time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    fake.configure(latency=0.0)
    wait_for(lambda: fake.counters["emails"] >= 50)  # the provider accepted the batch all the same
    with store.read() as conn:
        claimed = conn.execute(
            sa.text("SELECT number, lease_owner FROM send_batch WHERE status = 'claimed'")
        ).all()
        assert len(claimed) == 1 and f":{proc.pid}:" in claimed[0][1], (claimed, proc.pid)
        number = claimed[0][0]
        members = (
            conn.execute(sa.text("SELECT recipient FROM delivery WHERE batch = :b"), {"b": number})
            .scalars()
            .all()
        )
        assert set(
            conn.execute(
                sa.text("SELECT status FROM delivery WHERE batch = :b"), {"b": number}
            ).scalars()
        ) == {"sending"}
    return number, list(members)


@pytest.mark.slow
def test_sigkill_mid_batch_dead_holder_is_taken_over_at_once(
    project: Project, store: Store, fake_resend: FakeResend
) -> None:
    emails = scheduled_for_real(project, store, fake_resend, 200, batch_size=50, concurrency=1)
    number, members = _kill_mid_batch(project, store, fake_resend)
    assert fake_resend.counters["replays"] == 0
    # the holder is a dead process on this host: the next run takes its batch at once, lease or not
    code, out, err = finish(spawn(project, fake_resend, now=timedelta(minutes=5)))
    assert (code, out) == (0, ""), err
    assert status(store) == "sent"
    assert fake_resend.counters["replays"] == 1, "the interrupted batch was re-sent under its key"
    assert_each_once(fake_resend, store, emails)
    assert all(
        a.idempotency_key and a.idempotency_key.endswith(f"-b{number}")
        for a in fake_resend.accepted
        if a.to[0] in members
    )


@pytest.mark.slow
def test_sigkill_mid_batch_foreign_lease_is_taken_over_after_expiry(
    project: Project, store: Store, fake_resend: FakeResend
) -> None:
    emails = scheduled_for_real(project, store, fake_resend, 200, batch_size=50, concurrency=1)
    number, _members = _kill_mid_batch(project, store, fake_resend)
    batch = SendBatch.__table__  # type: ignore[attr-defined]
    with store.read() as conn:
        claimed_at, expires_at = conn.execute(
            sa.select(batch.c.first_attempt_at, batch.c.lease_expires_at).where(
                batch.c.number == number
            )
        ).one()
    assert abs((expires_at - claimed_at).total_seconds() - 2.0) < 0.5  # [send] lease_seconds = 2
    # as if the killed run lived on another host: its pid cannot be checked, only its lease,
    # which has not expired yet (held "for a minute")
    with store.write() as conn:
        conn.execute(
            batch.update()
            .where(batch.c.number == number)
            .values(
                lease_owner="other-host:4242:abcdef",
                lease_expires_at=utcnow() + timedelta(seconds=60),
            )
        )
    code, out, err = finish(spawn(project, fake_resend, now=timedelta(minutes=5)))
    assert (code, out) == (0, ""), err
    assert status(store) == "sending"  # the other batches went out; the leased one waits
    assert (
        "150 sent, 0 failed" in err
        and "50 left (batches held by another run; the next run continues)" in err
    )
    with store.read() as conn:
        assert (
            conn.execute(sa.select(batch.c.status).where(batch.c.number == number)).scalar()
            == "claimed"
        )
    # the minute has passed (the clock moved instead of the test sleeping): the lease expired
    with store.write() as conn:
        conn.execute(
            batch.update()
            .where(batch.c.number == number)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    code, _out, err = finish(spawn(project, fake_resend, now=timedelta(minutes=10)))
    assert code == 0, err
    assert status(store) == "sent", err
    assert fake_resend.counters["replays"] == 1, "the interrupted batch was re-sent under its key"
    assert_each_once(fake_resend, store, emails)


@pytest.mark.slow
def test_max_seconds_stops_claiming_in_time_and_the_next_run_completes(
    project: Project, store: Store, fake_resend: FakeResend
) -> None:
    emails = scheduled_for_real(project, store, fake_resend, 1000, batch_size=100, concurrency=1)
    fake_resend.configure(latency=0.7)
    code, out, err = finish(spawn(project, fake_resend, "--max-seconds", "2"))
    assert (code, out) == (0, ""), err
    first = fake_resend.accepted
    assert 100 <= len(first) <= 400, len(first)
    times = sorted(a.time for a in first)
    # the last batch was claimed before the 2 s budget ran out, and answered 0.7 s later
    assert times[-1] - times[0] <= 2.0 + 0.3, times[-1] - times[0]
    assert (
        unstamped(err)
        .splitlines()[-1]
        .endswith("left (time limit reached; the next run continues).")
    )
    assert status(store) == "sending"
    fake_resend.configure(latency=0.0)
    code, out, err = finish(
        spawn(project, fake_resend, "--max-seconds", "30", now=timedelta(minutes=5))
    )
    assert code == 0, err
    assert status(store) == "sent"
    assert_each_once(fake_resend, store, emails)


@pytest.mark.slow
def test_ctrl_c_exits_130_pauses_and_resume_finishes_once(
    project: Project, store: Store, fake_resend: FakeResend
) -> None:
    emails = scheduled_for_real(project, store, fake_resend, 200, batch_size=50, concurrency=1)
    fake_resend.configure(latency=1.0)
    proc = spawn(project, fake_resend)
    wait_for(lambda: fake_resend.counters["requests"] >= 1)
    proc.send_signal(signal.SIGINT)
    code, out, err = finish(proc)
    assert (code, out) == (130, ""), err
    assert err.endswith(
        "Error: Interrupted; nothing in flight was lost, run the command again to resume.\n"
    )
    assert status(store) == "paused" and events(store)[-1] == (
        "campaign.paused",
        "interrupted (Ctrl-C)",
    )
    fake_resend.configure(latency=0.0)
    # a person stopped it: cron does not carry on by itself...
    code, out, err = finish(spawn(project, fake_resend, now=timedelta(minutes=5)))
    assert (code, out, err) == (0, "", "") and status(store) == "paused"
    # ...until they resume it
    with store.write() as conn:
        from sponsorcast.store.lifecycle import resume_campaign

        assert resume_campaign(conn, "spring") == "sending"
    code, out, err = finish(spawn(project, fake_resend, now=timedelta(minutes=10)))
    assert code == 0, err
    assert status(store) == "sent"
    assert_each_once(fake_resend, store, emails)


@pytest.mark.slow
def test_three_concurrent_runs_on_postgresql(
    project: Project, pg_url: str, fake_resend: FakeResend
) -> None:
    # several hosts sharing one PostgreSQL store: the row lock and SKIP LOCKED claims
    resend_project(project, fake_resend, store_url=pg_url)
    store = project.store()
    try:
        emails = people(600)
        add_people(store, emails)
        write_campaign(project)
        config = project.config_with({"RESEND_API_KEY": fake_resend.api_key})
        schedule_campaign(store, config, project.path / "spring.md", now=T0 - timedelta(days=1))
        fake_resend.configure(latency=0.1)
        results = [finish(p) for p in [spawn(project, fake_resend) for _ in range(3)]]
        assert [code for code, _, _ in results] == [0, 0, 0], results
        assert_each_once(fake_resend, store, emails)
        assert status(store) == "sent"
        assert [e for e in events(store) if e[0] == "campaign.sending"] == [
            ("campaign.sending", "run-due")
        ]
    finally:
        store.dispose()


@pytest.mark.slow
def test_a_follow_up_killed_mid_batch_and_run_twice_at_once_sends_each_once(
    project: Project, store: Store, fake_resend: FakeResend
) -> None:
    emails = scheduled_for_real(project, store, fake_resend, 200, batch_size=50, concurrency=1)
    code, _out, err = finish(spawn(project, fake_resend, now=timedelta(minutes=5)))
    assert code == 0, err
    assert status(store) == "sent"
    follow_up = CAMPAIGN.format(id="again", send_at=SEND_AT).replace(
        "audience:", "follows: spring\nafter: 1d\naudience:"
    )
    (project.path / "again.md").write_text(follow_up, encoding="utf-8")
    config = project.config_with({"RESEND_API_KEY": fake_resend.api_key})
    schedule_campaign(store, config, project.path / "again.md", now=T0 - timedelta(days=1))
    # the parent's emails went out at the real time, years before T0: all of them are due
    fake_resend.configure(latency=1.5)
    before = fake_resend.counters["requests"]
    killed = spawn(project, fake_resend, now=timedelta(minutes=10))
    try:
        wait_for(lambda: fake_resend.counters["requests"] > before)
    except BaseException:
        killed.kill()
        print(killed.communicate(timeout=10))
        raise
    time.sleep(0.1)
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=10)
    fake_resend.configure(latency=0.05)
    racing = [spawn(project, fake_resend, now=timedelta(minutes=20)) for _ in range(2)]
    for proc in racing:
        code, _out, err = finish(proc)
        assert code == 0, err
    # a lease of 2 s on a batch held by a process that died: one more run after it has passed
    time.sleep(2.5)
    code, _out, err = finish(spawn(project, fake_resend, now=timedelta(minutes=30)))
    assert code == 0, err
    per_campaign = Counter(
        (to, next(t["value"] for t in a.tags if t["name"] == "campaign"))
        for a in fake_resend.accepted
        for to in a.to
    )
    assert set(per_campaign.values()) == {1}, "somebody got one campaign twice"
    assert {to for to, c in per_campaign if c == "again"} == set(emails)
    with store.read() as conn:
        states = conn.execute(
            sa.text(
                "SELECT status, count(*) FROM delivery WHERE campaign_id = 'again' GROUP BY status"
            )
        ).all()
        again = conn.execute(sa.text("SELECT status FROM campaign WHERE id = 'again'")).scalar()
    assert dict(states) == {"sent": 200} and again == "sent"
