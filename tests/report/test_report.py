"""A campaign's report: numbers counted by hand from a known history, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sponsorcast.report import campaign_report
from sponsorcast.report.rows import campaign_json
from sponsorcast.store import Store
from tests.support.pg import both_store_backends  # noqa: F401 - each test on SQLite and PostgreSQL
from tests.support.project import Project
from tests.support.reports import BOUNCE, seed_history
from tests.support.tracking import T0

# 48 hours from 09:00 on T0's day, then days from T0+48h: 51 buckets up to p3's open at T0+4d1h
HOURLY = [(T0 + timedelta(hours=h), 1) for h in range(48)]
DAILY = [(T0 + timedelta(hours=48 + 24 * d), 24) for d in range(3)]
FIRSTS = {  # bucket index: (first opens, first clicks)
    0: (1, 1),  # p0 opened 09:10, clicked 09:15
    1: (1, 1),  # p1 opened 10:30, clicked 10:35
    48: (1, 1),  # p2 opened and clicked on day 3 (T0+50h)
    50: (1, 0),  # p3 opened at T0+4d1h
}


def expected_timeline() -> list[dict[str, Any]]:
    return [
        {
            "start": start.isoformat(),
            "hours": hours,
            "first_opens": FIRSTS.get(i, (0, 0))[0],
            "first_clicks": FIRSTS.get(i, (0, 0))[1],
        }
        for i, (start, hours) in enumerate(HOURLY + DAILY)
    ]


def link(text: str, url: str, unique: int, total: int, personalised: bool = False) -> Any:
    return {
        "campaign": "spring",
        "text": text,
        "url": url,
        "unique_clicks": unique,
        "total_clicks": total,
        "personalised": personalised,
    }


EXPECTED_LINKS = [
    link("Book a demo", "https://example.com/demo?src=mail&x=1", 1, 2),  # p0 twice
    link("https://example.com/agenda", "https://example.com/agenda", 1, 1),  # p2 (webhook)
    link("Your page", "https://example.com/p?c={{ company | urlencode }}", 1, 1, True),  # p1
    link("raw", "https://example.com/raw", 0, 0),
    link("", "https://example.com/plain", 0, 0),
]

FUNNEL = {
    "total_recipients": 6,
    "pending": 0,
    "sent": 6,
    "delivered": 5,  # all but p4: p0–p3 by their opens, p5 by its complaint
    "failed": 0,
    "bounced": 1,
    "complained": 1,
    "suppressed": 0,
    "cancelled": 0,
    "skipped": 0,
    "opened": 4,  # p0–p3
    "clicked": 3,  # p0–p2
    "unsubscribed": 1,  # p3
}

RATES = {  # of 6 sent, one decimal
    "delivery_rate": 83.3,
    "open_rate": 66.7,
    "click_rate": 50.0,
    "bounce_rate": 16.7,
    "complaint_rate": 16.7,
    "unsubscribe_rate": 16.7,
}


def test_campaign_report_numbers(store: Store) -> None:
    seed_history(store)
    data = campaign_json(campaign_report(store, "spring", now=T0 + timedelta(days=5)))
    assert data == {
        "campaign": "spring",
        "name": "Spring",
        "subject": "Hello",
        "status": "sent",
        "sponsor": {"id": "default", "name": "ACME Robotics"},
        "started_at": T0.isoformat(),
        "finished_at": None,
        "funnel": FUNNEL,
        "rates": RATES,
        "timeline": expected_timeline(),
        "links": EXPECTED_LINKS,
        "problems": [
            {"kind": "bounced", "reason": BOUNCE, "recipients": 1},
            {"kind": "complained", "reason": "", "recipients": 1},
        ],
        "anonymous": False,
        "generated_at": (T0 + timedelta(days=5)).isoformat(),
    }


def test_report_json_through_the_cli(project: Project, store: Store) -> None:
    seed_history(store)
    result = project.run("report", "spring", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["funnel"], data["rates"], data["links"]) == (FUNNEL, RATES, EXPECTED_LINKS)
    assert data["timeline"] == expected_timeline()


def test_links_command(project: Project, store: Store) -> None:
    seed_history(store)
    as_json = project.run("links", "spring", "--json")
    assert as_json.exit_code == 0, as_json.stderr
    assert json.loads(as_json.stdout) == EXPECTED_LINKS
    as_csv = project.run("links", "spring", "--csv")
    assert as_csv.stdout.splitlines() == [
        "campaign,text,url,unique_clicks,total_clicks,personalised",
        "spring,Book a demo,https://example.com/demo?src=mail&x=1,1,2,False",
        "spring,https://example.com/agenda,https://example.com/agenda,1,1,False",
        "spring,Your page,https://example.com/p?c={{ company | urlencode }},1,1,True",
        "spring,raw,https://example.com/raw,0,0,False",
        "spring,,https://example.com/plain,0,0,False",
    ]
    table = project.run("links", "spring")
    assert table.exit_code == 0
    assert "Book a demo" in table.stdout and "https://example.com/agenda" in table.stdout
    missing = project.run("links", "sprin")
    assert missing.exit_code == 2 and "Unknown campaign 'sprin'" in missing.stderr


def test_stats_shows_the_timeline_and_top_links(project: Project, store: Store) -> None:
    seed_history(store)
    result = project.run("stats", "spring")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    opens = next(line for line in lines if line.strip().startswith("opens"))
    clicks = next(line for line in lines if line.strip().startswith("clicks"))
    # one character a bucket: a full block where one recipient acted, blank elsewhere
    assert opens.split(None, 2)[1] == "1" and clicks.split(None, 2)[1] == "1"
    chart = opens.split(None, 2)[2]
    assert chart[0] == chart[1] == "█" and chart[48] == chart[50] == "█"
    assert chart.count("█") == 4 and set(chart) == {"█", " "}
    assert "48 hours, then 3 days" in result.stdout
    top = result.stdout[result.stdout.index("Top links") :]
    assert top.index("Book a demo") < top.index("agenda") < top.index("Your page")
    assert "https://example.com/raw" not in top  # never clicked


def test_recipients_csv_keeps_awkward_cells_whole(project: Project, store: Store) -> None:
    import csv

    from sponsorcast.store.tables import delivery_t, lead_t

    seed_history(store)
    awkward = {
        "p1@example.org": ('Ada "the Countess", Lovelace', "Line\nbreak & Co"),
        "p2@example.org": ("+1 555 0100", "@handle"),
        "p3@example.org": ("Zoë Ångström", None),
    }
    with store.write() as conn:
        for email, (name, company) in awkward.items():
            conn.execute(
                lead_t.update().where(lead_t.c.email == email).values(name=name, company=company)
            )
        conn.execute(
            delivery_t.update()
            .where(delivery_t.c.recipient == "p5@example.org")
            .values(last_error='-5 said "no", twice')
        )
    result = project.run("report", "spring", "--csv", "out")
    assert result.exit_code == 0, result.stderr
    with (project.path / "out" / "recipients.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["recipient"] for row in rows] == [f"p{i}@example.org" for i in range(6)]
    by = {row["recipient"]: row for row in rows}
    assert (by["p0@example.org"]["name"], by["p0@example.org"]["company"]) == (
        "'=cmd|'/c calc'!A1",
        "ACME & Co",
    )
    assert (by["p1@example.org"]["name"], by["p1@example.org"]["company"]) == (
        'Ada "the Countess", Lovelace',
        "Line\nbreak & Co",
    )
    assert (by["p2@example.org"]["name"], by["p2@example.org"]["company"]) == (
        "'+1 555 0100",
        "'@handle",
    )
    assert (by["p3@example.org"]["name"], by["p3@example.org"]["company"]) == ("Zoë Ångström", "")
    assert by["p5@example.org"]["last_error"] == '\'-5 said "no", twice'
    p0 = by["p0@example.org"]
    assert (p0["status"], p0["open_count"], p0["click_count"]) == ("delivered", "2", "2")
    # times: ISO 8601 in UTC with the offset, an empty cell where there is none
    assert datetime.fromisoformat(p0["sent_at"]) == T0
    assert datetime.fromisoformat(p0["opened_at"]) == T0 + timedelta(minutes=10)
    assert datetime.fromisoformat(p0["first_click_at"]) == T0 + timedelta(minutes=15)
    assert p0["unsubscribed_at"] == "" and by["p4@example.org"]["opened_at"] == ""
    assert datetime.fromisoformat(by["p3@example.org"]["unsubscribed_at"]) == T0 + timedelta(
        days=4, hours=2
    )
