"""``schedule`` / ``unschedule``, time and duration parsing, and the campaign lifecycle commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sponsorcast.config import Config
from sponsorcast.errors import BadInput
from sponsorcast.schedule import format_duration, parse_duration, parse_send_time, schedule_campaign
from sponsorcast.send import plan_send, run_campaign, send_campaign
from sponsorcast.store import Store
from tests.support.project import PROJECT_TOML, Project
from tests.support.sending import MemoryTransport, add_leads

CAMPAIGN = """\
---
name: Spring
subject: "{{ first_name }}, hello from {{ sponsor.name }}"
audience:
  type: all
send_at: 2030-12-01T09:00:00+01:00
---
Hi {{ first_name }} of {{ company }}!
"""
NY = Config(timezone="America/New_York")
NOW = "2030-06-01T12:00:00Z"


def campaign_row(store: Store, campaign_id: str = "spring") -> dict[str, Any] | None:
    with store.read() as conn:
        row = (
            conn.execute(sa.text("SELECT * FROM campaign WHERE id = :id"), {"id": campaign_id})
            .mappings()
            .first()
        )
    return dict(row) if row else None


def history(store: Store, campaign_id: str = "spring") -> list[tuple[str, str | None, str]]:
    """(type, from, cause) of the campaign's lifecycle events, oldest first."""
    with store.read() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT type, payload FROM event WHERE campaign_id = :id AND type LIKE 'campaign.%' ORDER BY id"
            ),
            {"id": campaign_id},
        ).all()
    out = []
    for type_, payload in rows:
        data = json.loads(payload) if isinstance(payload, str) else payload
        out.append((type_, data["from"], data["cause"]))
    return out


def table_counts(store: Store) -> tuple[int, ...]:
    with store.read() as conn:
        return tuple(
            conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("campaign", "delivery", "send_batch", "event")
        )


@pytest.fixture
def spring(project: Project) -> Path:
    path = project.path / "spring.md"
    path.write_text(CAMPAIGN, encoding="utf-8")
    return path


def ny_project(project: Project) -> None:
    (project.path / "sponsorcast.toml").write_text(
        'timezone = "America/New_York"\n' + PROJECT_TOML, encoding="utf-8"
    )


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2030-12-01T09:00:00+01:00", datetime(2030, 12, 1, 8, 0, tzinfo=UTC)),
        ("2030-12-01T09:00Z", datetime(2030, 12, 1, 9, 0, tzinfo=UTC)),
        ("2030-12-01 09:00", datetime(2030, 12, 1, 14, 0, tzinfo=UTC)),  # EST, UTC-5
        ("2030-07-01T09:00:30", datetime(2030, 7, 1, 13, 0, 30, tzinfo=UTC)),  # EDT, UTC-4
        (
            "2026-11-01T01:30:00-05:00",
            datetime(2026, 11, 1, 6, 30, tzinfo=UTC),
        ),  # the 2nd 01:30, named
    ],
)
def test_parse_time_offsets_and_local_times(text: str, expected: datetime) -> None:
    value = parse_send_time(text, NY)
    assert value == expected and value.tzinfo == UTC


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2030-12-01", "The time '2030-12-01' is not a date and time."),
        ("tomorrow 9am", "The time 'tomorrow 9am' is not a date and time."),
        ("2030-13-01 09:00", "The time '2030-13-01 09:00' is not a valid date and time."),
        (
            "2026-03-08 02:30",
            "The time 2026-03-08 02:30 does not exist in America/New_York (the clocks skip it).",
        ),
        (
            "2026-11-01 01:30",
            (
                "The time 2026-11-01 01:30 happens twice in America/New_York (the clocks go back); "
                "it is ambiguous."
            ),
        ),
    ],
)
def test_parse_time_refuses_what_it_cannot_place(text: str, message: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_send_time(text, NY)
    assert info.value.message == message


def test_ambiguous_time_hint_names_both_offsets() -> None:
    with pytest.raises(BadInput) as info:
        parse_send_time("2026-11-01 01:30", NY)
    assert (
        info.value.hint
        == "Give the UTC offset, e.g. 2026-11-01T01:30-04:00 (possible offsets: -04:00 or -05:00)."
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90m", 5400),
        ("24h", 86400),
        ("2d", 172800),
        ("1h30m", 5400),
        ("45s", 45),
        ("600", 600),
        ("1w", 604800),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "abc", "5x", "h", "-5m", "0", "0h", "1h junk"])
def test_parse_duration_refuses_garbage(text: str) -> None:
    with pytest.raises(BadInput):
        parse_duration(text)


def test_format_duration() -> None:
    assert format_duration(timedelta(seconds=30)) == "30s"
    assert format_duration(timedelta(days=2, hours=3, minutes=4, seconds=5)) == "2d 3h 4m"
    assert format_duration(timedelta(hours=25)) == "1d 1h"


# --------------------------------------------------------------------------- schedule


def test_schedule_from_file_stores_snapshot_and_event(
    project: Project, store: Store, spring: Path
) -> None:
    add_leads(store, 3)
    result = project.run("schedule", "spring.md", env={"SPONSORCAST_NOW": NOW})
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "Scheduled 'spring' for "
        + datetime(2030, 12, 1, 8, tzinfo=UTC).astimezone().isoformat()
        + " (the system time zone) to 3 recipients; every recipient rendered. 'sponsorcast run-due' "
        "sends it once that time has come.\n"
    )
    row = campaign_row(store)
    assert row is not None
    assert row["status"] == "scheduled"
    assert row["send_at"].startswith("2030-12-01 08:00:00")
    assert row["subject"] == "{{ first_name }}, hello from {{ sponsor.name }}"
    assert row["source_path"] == str(spring.resolve())
    assert row["content_hash"] and row["total_recipients"] == 3 and row["started_at"] is None
    assert [(t, f) for t, f, _ in history(store)] == [
        ("campaign.draft", None),
        ("campaign.scheduled", "draft"),
    ]
    assert table_counts(store)[1:3] == (0, 0)  # no deliveries, no batches until run-due


def test_schedule_at_local_time_in_configured_zone(
    project: Project, store: Store, spring: Path
) -> None:
    ny_project(project)
    add_leads(store, 1)
    result = project.run(
        "schedule", "spring.md", "--at", "2030-12-01 09:00", env={"SPONSORCAST_NOW": NOW}
    )
    assert result.exit_code == 0, result.stderr
    assert "for 2030-12-01T09:00:00-05:00 (America/New_York)" in result.stdout
    row = campaign_row(project.store())
    assert row is not None and row["send_at"].startswith("2030-12-01 14:00:00")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--at", "2030-01-01T00:00:00Z"),
            (
                "Error: The send time 2030-01-01T00:00:00+00:00 is in the past (now is 2030-06-01T12:00:00+00:00); "
                "nothing was scheduled.\nHint: Give a later time with --at, or send it now with 'sponsorcast send "
                "spring.md'.\n"
            ),
        ),
        (
            ("--at", "next week"),
            (
                "Error: The --at time 'next week' is not a date and time.\nHint: Write a date and time, e.g. "
                "2026-12-01T09:00:00+01:00, or 2026-12-01 09:00 for local time, or 'tomorrow 09:00', "
                "'today 17:30', 'in 2h'.\n"
            ),
        ),
    ],
)
def test_schedule_bad_times_exit_2_and_change_nothing(
    project: Project, store: Store, spring: Path, args: tuple[str, ...], message: str
) -> None:
    add_leads(store, 2)
    before = table_counts(store)
    result = project.run("schedule", "spring.md", *args, env={"SPONSORCAST_NOW": NOW, "TZ": "UTC"})
    assert result.exit_code == 2
    assert result.stderr == message
    assert result.stdout == ""
    assert table_counts(store) == before


def test_schedule_without_any_time_is_an_error(project: Project, store: Store) -> None:
    (project.path / "nodate.md").write_text(
        CAMPAIGN.replace("send_at: 2030-12-01T09:00:00+01:00\n", "")
    )
    before = table_counts(store)
    result = project.run("schedule", "nodate.md")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "Error: nodate.md has no send_at and no --at was given; "
        "there is no time to schedule it for.\n"
    )
    assert table_counts(store) == before


def test_schedule_refuses_a_campaign_that_does_not_render(project: Project, store: Store) -> None:
    add_leads(store, 2)
    (project.path / "broken.md").write_text(CAMPAIGN.replace("{{ company }}", "{{ booth }}"))
    before = table_counts(store)
    result = project.run("schedule", "broken.md", env={"SPONSORCAST_NOW": NOW})
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: broken.md:8: undefined variable 'booth' for 2 recipients; nothing was "
        "scheduled\nHint: 'sponsorcast render broken.md --check' lists every problem.\n"
    )
    assert table_counts(store) == before


def test_bad_sponsorcast_now_is_an_error(project: Project, spring: Path) -> None:
    result = project.run("run-due", env={"SPONSORCAST_NOW": "soon"})
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: The SPONSORCAST_NOW 'soon' is not a date and time.")


def test_reschedule_of_an_edited_file_updates_it(
    project: Project, store: Store, spring: Path
) -> None:
    add_leads(store, 2)
    assert project.run("schedule", "spring.md", env={"SPONSORCAST_NOW": NOW}).exit_code == 0
    first = campaign_row(store)
    spring.write_text(CAMPAIGN.replace("hello from", "greetings from"), encoding="utf-8")
    result = project.run(
        "schedule", "spring.md", "--at", "2030-12-02T10:00:00Z", env={"SPONSORCAST_NOW": NOW}
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("Rescheduled 'spring' for ")
    row = campaign_row(store)
    assert first is not None and row is not None
    assert row["subject"] == "{{ first_name }}, greetings from {{ sponsor.name }}"
    assert row["content_hash"] != first["content_hash"]
    assert row["send_at"].startswith("2030-12-02 10:00:00")
    assert history(store)[-1][0:2] == ("campaign.scheduled", "scheduled")
    assert history(store)[-1][2].startswith("rescheduled for 2030-12-02")


def test_schedule_after_sending_began_is_refused(
    project: Project, store: Store, spring: Path
) -> None:
    add_leads(store, 2)
    _send_by_hand(project, store, spring)
    before = table_counts(store)
    result = project.run("schedule", "spring.md", env={"SPONSORCAST_NOW": NOW})
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "Error: Campaign 'spring' is sent: sending already began, so it cannot be scheduled again."
    )
    assert table_counts(store) == before


def test_unschedule_goes_back_to_draft(project: Project, store: Store, spring: Path) -> None:
    add_leads(store, 1)
    project.run("schedule", "spring.md", env={"SPONSORCAST_NOW": NOW})
    result = project.run("unschedule", "spring")
    assert (result.exit_code, result.stdout) == (0, "Unscheduled 'spring'; it is a draft again.\n")
    row = campaign_row(store)
    assert row is not None and row["status"] == "draft" and row["send_at"] is None
    assert history(store)[-1] == ("campaign.draft", "scheduled", "unscheduled by user")
    again = project.run("unschedule", "spring")
    assert again.exit_code == 2
    assert again.stderr.startswith(
        "Error: Campaign 'spring' is draft; only a scheduled or missed campaign can be unscheduled."
    )
    unknown = project.run("unschedule", "nope")
    assert (unknown.exit_code, unknown.stderr.splitlines()[0]) == (
        2,
        "Error: Unknown campaign 'nope'.",
    )


def test_schedule_library_takes_an_injected_clock(
    project: Project, store: Store, spring: Path
) -> None:
    add_leads(store, 1)
    late_now = datetime(2031, 1, 1, tzinfo=UTC)
    with pytest.raises(BadInput, match="is in the past"):
        schedule_campaign(store, project.config, spring, now=late_now)
    done = schedule_campaign(store, project.config, spring, now=datetime(2030, 1, 1, tzinfo=UTC))
    assert done.send_at == datetime(2030, 12, 1, 8, tzinfo=UTC) and done.previous_status is None


# --------------------------------------------------------------------------- lifecycle


def _send_by_hand(
    project: Project, store: Store, path: Path, transport: MemoryTransport | None = None
) -> Any:
    config = project.config
    return send_campaign(
        store, config, plan_send(store, config, path), transport=transport or MemoryTransport()
    )


def test_pause_stops_the_running_sender_at_its_next_claim(
    project: Project, store: Store, spring: Path
) -> None:
    # one worker, so that "the next claim" is well defined (several workers have several in flight)
    (project.path / "sponsorcast.toml").write_text(PROJECT_TOML + "\n[resend]\nconcurrency = 1\n")
    add_leads(store, 500)
    config = project.config
    plan = plan_send(store, config, spring)
    from sponsorcast.send import take_snapshot, validate_all

    validate_all(store, plan, config)
    assert take_snapshot(store, plan, 100)

    class PausingTransport(MemoryTransport):
        async def send_batch(self, emails: Any, idempotency_key: str) -> Any:
            outcome = await super().send_batch(emails, idempotency_key)
            if len(self.keys) == 2:  # a user runs `campaigns pause` while batch 2 is in flight
                assert project.run("campaigns", "pause", "spring").exit_code == 0
            return outcome

    t = PausingTransport()
    report = run_campaign(store, config, "spring", transport=t)
    assert report.status == "paused" and report.stopped_reason == "campaign is paused"
    assert len(t.delivered) == 200  # batch 2 finished, no batch 3 was claimed
    resumed = project.run("campaigns", "resume", "spring")
    assert (resumed.exit_code, resumed.stdout) == (0, "Campaign 'spring' is sending again.\n")
    report = run_campaign(store, config, "spring", transport=t)
    assert (
        report.status == "sent"
        and len(t.delivered) == 500
        and len({to for to, _ in t.delivered}) == 500
    )
    causes = [(t_, c) for t_, _, c in history(store)]
    assert causes[-3:] == [
        ("campaign.paused", "paused by user"),
        ("campaign.sending", "resumed by user"),
        ("campaign.sent", "every batch sent"),
    ]


def test_cancel_marks_pending_deliveries_cancelled(
    project: Project, store: Store, spring: Path
) -> None:
    add_leads(store, 250)
    t = MemoryTransport()
    config = project.config
    send_campaign(store, config, plan_send(store, config, spring), transport=t, limit=100)
    result = project.run("campaigns", "cancel", "spring")
    assert (result.exit_code, result.stdout) == (
        0,
        "Cancelled campaign 'spring'; 150 pending deliveries will not be sent.\n",
    )
    shown = json.loads(project.run("campaigns", "show", "spring", "--json").stdout)
    assert shown["status"] == "cancelled" and shown["deliveries"] == {"sent": 100, "cancelled": 150}
    assert (
        shown["history"][-1]["status"] == "cancelled"
        and shown["history"][-1]["cause"] == "cancelled by user"
    )
    report = _send_by_hand(project, store, spring, t)
    assert report.already_finished and len(t.delivered) == 100
    again = project.run("campaigns", "cancel", "spring")
    assert (again.exit_code, again.stderr.splitlines()[0]) == (
        2,
        "Error: Campaign 'spring' is already cancelled.",
    )


def test_delete_only_a_campaign_that_sent_nothing(
    project: Project, store: Store, spring: Path
) -> None:
    add_leads(store, 2)
    project.run("schedule", "spring.md", env={"SPONSORCAST_NOW": NOW})
    result = project.run("campaigns", "delete", "spring")
    assert (result.exit_code, result.stdout) == (0, "Deleted campaign 'spring'.\n")
    assert campaign_row(store) is None and table_counts(store) == (0, 0, 0, 0)
    _send_by_hand(project, store, spring)
    before = table_counts(store)
    refused = project.run("campaigns", "delete", "spring")
    assert refused.exit_code == 2
    assert refused.stderr == (
        "Error: Campaign 'spring' has sent emails and cannot be deleted.\n"
        "Hint: Cancel it instead; its ledger is kept.\n"
    )
    assert table_counts(store) == before


def test_show_prints_the_history(project: Project, store: Store, spring: Path) -> None:
    add_leads(store, 2)
    project.run("schedule", "spring.md", env={"SPONSORCAST_NOW": NOW})
    project.run("campaigns", "pause", "spring")
    project.run("campaigns", "resume", "spring")
    result = project.run("campaigns", "show", "spring")
    assert result.exit_code == 0
    lines = [line for line in result.stdout.splitlines() if line.startswith("│ 20")]
    # the history table: one row per transition, with time, from, to and cause
    assert [line.split("│")[2:4] for line in lines] == [
        ["           ", " draft     "],
        [" draft     ", " scheduled "],
        [" scheduled ", " paused    "],
        [" paused    ", " scheduled "],
    ]
    assert "paused by user" in result.stdout and "resumed by user" in result.stdout


def test_paused_before_start_then_sent_by_hand_sends_everyone(
    project: Project, store: Store, spring: Path
) -> None:
    # a campaign paused while still scheduled has no deliveries yet: send must snapshot it
    add_leads(store, 120)
    project.run("schedule", "spring.md", env={"SPONSORCAST_NOW": NOW})
    assert project.run("campaigns", "pause", "spring").exit_code == 0
    t = MemoryTransport()
    report = _send_by_hand(project, store, spring, t)
    assert report.status == "sent" and len(t.delivered) == 120


def test_resume_of_a_missed_campaign_says_how_to_send_it(
    project: Project, store: Store, spring: Path
) -> None:
    add_leads(store, 1)
    project.run("schedule", "spring.md", env={"SPONSORCAST_NOW": NOW})
    assert project.run("run-due", env={"SPONSORCAST_NOW": "2030-12-05T00:00:00Z"}).exit_code == 1
    result = project.run("campaigns", "resume", "spring")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: Campaign 'spring' missed its send time; resuming would not send it.\n"
        f"Hint: Send it now with 'sponsorcast send {spring.resolve()}', or give it a new time with "
        "'sponsorcast schedule CAMPAIGN --at TIME'.\n"
    )
