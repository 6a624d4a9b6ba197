"""The report's files parsed back: HTML tables and charts, CSV headers, nothing external, no address."""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from sponsorcast.report import make_campaign_report
from sponsorcast.store import Store
from tests.support.project import Project
from tests.support.reports import LOGO, RECIPIENTS, seed_history
from tests.support.tracking import BODY, T0, add_sponsor, seed

# the columns docs/reports.md states for each CSV file
HEADERS = {
    "funnel.csv": ["stage", "recipients", "percent_of_sent"],
    "timeline.csv": ["start", "hours", "first_opens", "first_clicks"],
    "links.csv": ["campaign", "text", "url", "unique_clicks", "total_clicks", "personalised"],
    "problems.csv": ["kind", "reason", "recipients"],
    "recipients.csv": [
        "recipient",
        "name",
        "company",
        "status",
        "sent_at",
        "delivered_at",
        "opened_at",
        "open_count",
        "first_click_at",
        "click_count",
        "unsubscribed_at",
        "last_error",
    ],
}
STATIC_LINKS = {
    "https://example.com/demo?src=mail&x=1",
    "https://example.com/agenda",
    "https://example.com/raw",
    "https://example.com/plain",
}


class Page(HTMLParser):
    """The parts of a report a test looks at: tables by class, SVGs, every src and href."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self.svgs = 0
        self.rects = 0
        self.urls: list[str] = []
        self.tags: set[str] = set()
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.add(tag)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v is not None]
        if tag == "svg":
            self.svgs += 1
        elif tag == "rect":
            self.rects += 1
        elif tag == "table":
            self._table = a.get("class") or ""
            self.tables[self._table] = []
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "tbody":
            self._in_body = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def test_html_report_of_a_campaign(tmp_path: Path, store: Store) -> None:
    seed_history(store)
    target = tmp_path / "spring.html"
    make_campaign_report(store, "spring", html=target, now=T0 + timedelta(days=5))
    page = parse(target)
    assert page.svgs == 2 and page.rects > 0  # the funnel and the timeline, with bars
    assert "script" not in page.tags and "link" not in page.tags
    # nothing outside the file but the logo and the campaign's own static links
    assert set(page.urls) <= STATIC_LINKS | {LOGO} and LOGO in page.urls
    text = target.read_text(encoding="utf-8")
    assert "url(" not in text and "@import" not in text and "ACME Robotics" in text
    assert page.tables["funnel"][:5] == [
        ["Audience", "6", ""],
        ["Sent", "6", ""],
        ["Delivered", "5", "83.3 %"],
        ["Opened", "4", "66.7 %"],
        ["Clicked", "3", "50.0 %"],
    ]
    assert [row[0] for row in page.tables["funnel"][5:]] == [
        "Bounced", "Complained", "Unsubscribed", "Suppressed", "Failed", "Cancelled", "Not sent yet"
    ]  # fmt: skip
    assert page.tables["links"] == [
        ["Book a demo", "https://example.com/demo?src=mail&x=1", "1", "2"],
        ["https://example.com/agenda", "https://example.com/agenda", "1", "1"],
        ["Your page", "https://example.com/p?c={{ company | urlencode }}", "1", "1"],
        ["raw", "https://example.com/raw", "0", "0"],
        ["—", "https://example.com/plain", "0", "0"],
    ]
    assert page.tables["problems"] == [
        ["bounced", "550 5.1.1 <p4@example.org>: Recipient address rejected", "1"],
        ["complained", "(no reason given)", "1"],
    ]
    recipients = page.tables["recipients"]
    # clickers first (p0 twice), then by opens, then by address
    assert [row[0] for row in recipients] == RECIPIENTS
    assert recipients[0][1] == "=cmd|'/c calc'!A1" and recipients[0][6] == "2"


def test_csv_files_of_a_campaign(tmp_path: Path, store: Store) -> None:
    seed_history(store)
    folder = tmp_path / "out"
    _, made = make_campaign_report(store, "spring", csv_dir=folder)
    assert sorted(p.name for p in made.files) == sorted(HEADERS)
    for name, header in HEADERS.items():
        assert read_csv(folder / name)[0] == header, name
    funnel = read_csv(folder / "funnel.csv")
    assert funnel[1:6] == [
        ["total_recipients", "6", ""],
        ["pending", "0", ""],
        ["sent", "6", ""],
        ["delivered", "5", "83.3"],
        ["failed", "0", ""],
    ]
    timeline = read_csv(folder / "timeline.csv")[1:]
    assert len(timeline) == 51 and timeline[0] == [T0.isoformat(), "1", "1", "1"]
    assert timeline[48] == [(T0 + timedelta(hours=48)).isoformat(), "24", "1", "1"]
    recipients = read_csv(folder / "recipients.csv")[1:]
    assert [row[0] for row in recipients] == RECIPIENTS  # delivery order
    assert recipients[0][1] == "'=cmd|'/c calc'!A1"  # a formula, kept as text
    assert recipients[4][3] == "bounced" and "Recipient address rejected" in recipients[4][-1]
    docs = Path(__file__).resolve().parents[2] / "docs" / "reports.md"
    for name, header in HEADERS.items():
        stated = f"`{name}`: " + ", ".join(f"`{c}`" for c in header)
        assert stated in docs.read_text(encoding="utf-8"), name


def test_anonymous_report_holds_no_address(tmp_path: Path, project: Project, store: Store) -> None:
    seed_history(store)
    result = project.run(
        "report", "spring", "--anonymous", "--html", "a.html", "--csv", "a", "--json"
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["problems"][0]["reason"] == "550 5.1.1 <[address]>: Recipient address rejected"
    written = [project.path / "a.html", *sorted((project.path / "a").iterdir())]
    assert "recipients.csv" not in [p.name for p in written]
    for text in [result.stdout, *(p.read_text(encoding="utf-8") for p in written)]:
        assert "@example.org" not in text
        assert not any(address in text for address in RECIPIENTS)
    assert "recipients" not in parse(project.path / "a.html").tables


def test_anonymous_pools_clicks_on_urls_that_are_not_campaign_links(
    tmp_path: Path, store: Store
) -> None:
    from sponsorcast import tracking
    from tests.support.tracking import event

    seed_history(store)
    odd = event(
        "email.clicked",
        "spring-msg-5",
        T0,
        click={"link": "https://elsewhere.example/?who=p5@example.org"},
    )
    tracking.apply_event(store, odd, "odd-click")
    named, _ = make_campaign_report(store, "spring")
    assert [(link.url, link.text, link.total) for link in named.links if not link.own] == [
        ("https://elsewhere.example/?who=p5@example.org", "", 1)
    ]
    pooled, _ = make_campaign_report(store, "spring", anonymous=True)
    assert [(link.url, link.unique, link.total) for link in pooled.links if not link.own] == [
        ("(links not in the campaign)", 1, 1)
    ]
    # the HTML shows such a URL as text, never as a link
    target = tmp_path / "r.html"
    make_campaign_report(store, "spring", html=target)
    assert "https://elsewhere.example/?who=p5@example.org" not in parse(target).urls


def test_sponsor_report(project: Project, store: Store) -> None:
    seed_history(store)
    autumn = seed(store, ["p0@example.org", "z@example.org"], campaign="autumn", body=BODY)
    from sponsorcast import tracking

    tracking.record_open(store, autumn[0], now=T0 + timedelta(hours=1))
    add_sponsor(store, "globex")
    seed(store, ["g@example.org"], campaign="globex-news", sponsor="globex")
    result = project.run("report", "--sponsor", "default", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [row["campaign"] for row in data["campaigns"]] == ["autumn", "spring"]
    assert data["campaigns"][0] == {
        "campaign": "autumn",
        "name": "Autumn",
        "status": "sent",
        "started_at": T0.isoformat(),
        "total_recipients": 2,
        "sent": 2,
        "delivered": 1,
        "opened": 1,
        "clicked": 0,
        "bounced": 0,
        "complained": 0,
        "unsubscribed": 0,
        "delivery_rate": 50.0,
        "open_rate": 50.0,
        "click_rate": 0.0,
        "bounce_rate": 0.0,
        "unsubscribe_rate": 0.0,
    }
    assert data["funnel"] == {
        "total_recipients": 8,
        "pending": 0,
        "sent": 8,
        "delivered": 6,
        "failed": 0,
        "bounced": 1,
        "complained": 1,
        "suppressed": 0,
        "cancelled": 0,
        "skipped": 0,
        "opened": 5,
        "clicked": 3,
        "unsubscribed": 1,
    }
    assert data["rates"] == {
        "delivery_rate": 75.0,
        "open_rate": 62.5,
        "click_rate": 37.5,
        "bounce_rate": 12.5,
        "complaint_rate": 12.5,
        "unsubscribe_rate": 12.5,
    }
    assert [(row["campaign"], row["text"], row["total_clicks"]) for row in data["links"]] == [
        ("spring", "Book a demo", 2),
        ("spring", "https://example.com/agenda", 1),
        ("spring", "Your page", 1),
    ]
    html = project.run("report", "--sponsor", "default", "--html", "s.html", "--csv", "s")
    assert html.exit_code == 0, html.stderr
    page = parse(project.path / "s.html")
    assert [row[0] for row in page.tables["campaigns"]] == ["Autumn autumn", "Spring spring"]
    assert page.svgs == 2  # the campaigns side by side, the combined funnel
    assert read_csv(project.path / "s" / "campaigns.csv")[0][:3] == ["campaign", "name", "status"]
    assert "globex" not in (project.path / "s.html").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "Give either a CAMPAIGN_ID or --sponsor SPONSOR"),
        (("spring", "--sponsor", "default"), "Give either a CAMPAIGN_ID or --sponsor SPONSOR"),
        (("spring", "--html", "."), "is a folder; give the name of the file to write"),
        (("spring", "--html", "no/such/dir/r.html"), "the folder no/such/dir does not exist"),
        (("spring", "--csv", "taken.txt"), "is a file; give a folder"),
        (("sprung",), "Unknown campaign 'sprung'"),
        (("--sponsor", "nobody"), "Unknown sponsor 'nobody'"),
    ],
)
def test_bad_report_arguments(project: Project, store: Store, args: Any, message: str) -> None:
    seed_history(store)
    (project.path / "taken.txt").write_text("mine\n", encoding="utf-8")
    before = sorted(p.name for p in project.path.iterdir())
    # asked for a file too, where the case itself does not: it must not be written either
    extra = () if "--html" in args or "--csv" in args else ("--html", "r.html")
    result = project.run("report", *args, *extra)
    assert result.exit_code == 2, result.stdout
    assert message in result.stderr and result.stderr.count("\n") <= 2
    assert sorted(p.name for p in project.path.iterdir()) == before  # nothing written
    assert (project.path / "taken.txt").read_text(encoding="utf-8") == "mine\n"


def test_hostile_names_and_reasons_stay_text_in_the_html(tmp_path: Path, store: Store) -> None:
    import sqlalchemy as sa

    from sponsorcast.store.tables import delivery_t, lead_t

    seed_history(store)
    with store.write() as conn:
        conn.execute(
            lead_t.update()
            .where(lead_t.c.email == "p1@example.org")
            .values(name="<script>alert(1)</script>", company='"><img src=x onerror=alert(2)>')
        )
        conn.execute(
            delivery_t.update()
            .where(delivery_t.c.recipient == "p4@example.org")
            .values(last_error="<a href='https://evil.example/'>click</a>")
        )
        assert conn.execute(sa.select(sa.func.count()).select_from(lead_t)).scalar() == 6
    target = tmp_path / "r.html"
    make_campaign_report(store, "spring", html=target)
    page = parse(target)
    assert "script" not in page.tags and "https://evil.example/" not in page.urls
    assert set(page.urls) <= STATIC_LINKS | {LOGO}  # no image or link came in with the data
    row = next(r for r in page.tables["recipients"] if r[0] == "p1@example.org")
    assert row[1:3] == ["<script>alert(1)</script>", '"><img src=x onerror=alert(2)>']
    assert ["bounced", "<a href='https://evil.example/'>click</a>", "1"] in page.tables["problems"]
