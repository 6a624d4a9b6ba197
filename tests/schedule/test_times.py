"""Times people write and read: relative send times, and every shown time in the project's zone."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from sponsorcast.config import Config
from sponsorcast.errors import BadInput
from sponsorcast.schedule import parse_send_time
from sponsorcast.store import Store
from tests.support.project import PROJECT_TOML, Project
from tests.support.sending import add_leads

BERLIN = Config(timezone="Europe/Berlin")
LATE_EVENING = datetime(2026, 12, 1, 22, 30, tzinfo=UTC)  # 23:30 in Berlin, still Dec 1


@pytest.mark.parametrize(
    ("text", "now", "expected"),
    [
        ("tomorrow 09:00", LATE_EVENING, datetime(2026, 12, 2, 8, 0, tzinfo=UTC)),
        # 00:30 on Dec 2 in Berlin: tomorrow there is Dec 3, whatever the UTC date says
        (
            "tomorrow 09:00",
            datetime(2026, 12, 1, 23, 30, tzinfo=UTC),
            datetime(2026, 12, 3, 8, 0, tzinfo=UTC),
        ),
        ("Tomorrow at 9:05", LATE_EVENING, datetime(2026, 12, 2, 8, 5, tzinfo=UTC)),
        ("today 23:45", LATE_EVENING, datetime(2026, 12, 1, 22, 45, tzinfo=UTC)),
        ("in 2h", LATE_EVENING, datetime(2026, 12, 2, 0, 30, tzinfo=UTC)),
        ("+90m", LATE_EVENING, datetime(2026, 12, 2, 0, 0, tzinfo=UTC)),
        ("in 1 day 2 hours", LATE_EVENING, datetime(2026, 12, 3, 0, 30, tzinfo=UTC)),
        ("in 30 minutes", LATE_EVENING, datetime(2026, 12, 1, 23, 0, tzinfo=UTC)),
        ("now", LATE_EVENING, LATE_EVENING),
        # summer time: 09:00 in Berlin is 07:00 UTC
        (
            "tomorrow 09:00",
            datetime(2026, 7, 1, 12, 0, tzinfo=UTC),
            datetime(2026, 7, 2, 7, 0, tzinfo=UTC),
        ),
    ],
)
def test_relative_send_times(text: str, now: datetime, expected: datetime) -> None:
    assert parse_send_time(text, BERLIN, now=now) == expected


def test_a_relative_time_that_does_not_exist_is_refused() -> None:
    with pytest.raises(BadInput, match="'tomorrow 24:00' is not a time of day"):
        parse_send_time("tomorrow 24:00", BERLIN, now=LATE_EVENING)
    # the night the clocks skip 02:00–03:00 in Berlin
    with pytest.raises(BadInput, match="does not exist in Europe/Berlin"):
        parse_send_time("tomorrow 02:30", BERLIN, now=datetime(2026, 3, 28, 12, tzinfo=UTC))


def _berlin(project: Project) -> None:
    (project.path / "sponsorcast.toml").write_text(
        'timezone = "Europe/Berlin"\n' + PROJECT_TOML, encoding="utf-8"
    )


CAMPAIGN = """\
---
subject: "Hi {{ first_name }}"
send_at: tomorrow 09:00
---
Hello {{ first_name }}.
"""


def test_a_campaign_file_with_a_relative_send_at_is_scheduled_for_that_day(
    project: Project, store: Store
) -> None:
    _berlin(project)
    add_leads(store, 2)
    (project.path / "spring.md").write_text(CAMPAIGN, encoding="utf-8")
    env = {"SPONSORCAST_NOW": "2026-12-01T22:30:00Z"}
    result = project.run("schedule", "spring.md", env=env)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(
        "Scheduled 'spring' for 2026-12-02T09:00:00+01:00 (Europe/Berlin) to 2 recipients"
    )
    shown = project.run("campaigns", "show", "spring", "--json")
    assert json.loads(shown.stdout)["send_at"] == "2026-12-02T08:00:00+00:00"
    due = project.run("run-due", env={"SPONSORCAST_NOW": "2026-12-02T08:01:00Z"})
    assert due.exit_code == 0, due.stderr
    assert json.loads(project.run("campaigns", "show", "spring", "--json").stdout)["status"] == (
        "sent"
    )


def test_tables_show_times_in_the_project_zone_labelled_and_json_keeps_utc(
    project: Project, store: Store
) -> None:
    _berlin(project)
    add_leads(store, 1)
    (project.path / "spring.md").write_text(CAMPAIGN, encoding="utf-8")
    result = project.run(
        "schedule",
        "spring.md",
        "--at",
        "2026-12-24 18:00",
        env={"SPONSORCAST_NOW": "2026-12-01T10:00:00Z"},
    )
    assert result.exit_code == 0, result.stderr
    listing = project.run("campaigns", "list")
    assert "2026-12-24 18:00:00 CET" in listing.stdout
    show = project.run("campaigns", "show", "spring")
    assert "│ send_at          │ 2026-12-24 18:00:00 CET" in show.stdout
    data = json.loads(project.run("campaigns", "list", "--json").stdout)
    assert data[0]["send_at"] == "2026-12-24T17:00:00+00:00"
    summer = project.run(
        "schedule",
        "spring.md",
        "--at",
        "2027-07-01 09:00",
        env={"SPONSORCAST_NOW": "2026-12-01T10:00:00Z"},
    )
    assert summer.exit_code == 0, summer.stderr
    assert "2027-07-01 09:00:00 CEST" in project.run("campaigns", "list").stdout
