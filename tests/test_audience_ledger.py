"""Audiences over the ledger: received / opened / clicked (and not) a campaign, and no email
within a window; as SQL on SQLite and PostgreSQL, through the library and the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from sponsorcast.audience import audience_filter, parse_audience
from sponsorcast.errors import BadInput
from sponsorcast.leads import CsvSource, import_leads
from sponsorcast.store import Store
from sponsorcast.store.tables import delivery_t, lead_t
from tests.support.pg import both_store_backends  # noqa: F401 - on SQLite and on PostgreSQL
from tests.support.project import DATA, Project
from tests.support.tracking import add_sponsor, seed

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

# The six leads of tests/data/leads_audience.csv, and what the ledger holds, by hand:
#   spring (default): h1 sent 20 days ago, opened, clicked; h2 sent 3 days ago, opened;
#                     w1 sent 1 day ago, opened by a machine only; w2 pending (not received);
#                     c1 and n1 not in it
#   summer (default): c1 sent 30 days ago, opened
#   acme-news (acme): n1 sent 1 day ago (another sponsor's email does not count)
LEDGER_CASES = [
    ({"received": "spring"}, ["h1", "h2", "w1"]),
    ({"not_received": "spring"}, ["c1", "n1", "w2"]),
    ({"opened": "spring"}, ["h1", "h2"]),
    ({"not_opened": "spring"}, ["c1", "n1", "w1", "w2"]),
    ({"clicked": "spring"}, ["h1"]),
    ({"not_clicked": "spring"}, ["c1", "h2", "n1", "w1", "w2"]),
    ({"opened": ["spring", "summer"]}, ["c1", "h1", "h2"]),  # any of them
    ({"received": "spring", "not_clicked": "spring"}, ["h2", "w1"]),
    ({"not_opened": "spring", "intent_level": "warm"}, ["w1", "w2"]),
    ({"not_contacted_within": "14d"}, ["c1", "h1", "n1", "w2"]),
    ({"not_contacted_within": "2d"}, ["c1", "h1", "h2", "n1", "w2"]),
    ({"not_contacted_within": "2d", "received": "spring"}, ["h1", "h2"]),
]


@pytest.fixture
def ledger_store(store: Store) -> Store:
    import_leads(store, CsvSource(DATA / "leads_audience.csv"))
    add_sponsor(store, "acme")
    seed(store, [f"{p}@example.com" for p in ("h1", "h2", "w1", "w2")], campaign="spring")
    seed(store, ["c1@example.com"], campaign="summer")
    seed(store, ["n1@example.com"], campaign="acme-news", sponsor="acme")
    times = {"h1": 20, "h2": 3, "w1": 1, "c1": 30, "n1": 1}
    with store.write() as conn:
        for person, days in times.items():
            conn.execute(
                delivery_t.update()
                .where(delivery_t.c.recipient == f"{person}@example.com")
                .values(sent_at=NOW - timedelta(days=days))
            )
        conn.execute(
            delivery_t.update()
            .where(delivery_t.c.recipient == "w2@example.com")
            .values(status="pending", sent_at=None, provider_message_id=None)
        )
        for person in ("h1", "h2", "c1"):
            conn.execute(
                delivery_t.update()
                .where(delivery_t.c.recipient == f"{person}@example.com")
                .values(opened_at=NOW, open_count=1, human_opened_at=NOW)
            )
        # w1's only open was a machine's (a scanner, a privacy proxy): not an open for audiences
        conn.execute(
            delivery_t.update()
            .where(delivery_t.c.recipient == "w1@example.com")
            .values(opened_at=NOW, open_count=1)
        )
        conn.execute(
            delivery_t.update()
            .where(delivery_t.c.recipient == "h1@example.com")
            .values(first_click_at=NOW, click_count=2)
        )
    return store


@pytest.mark.parametrize(("flt", "expected"), LEDGER_CASES, ids=[str(c[0]) for c in LEDGER_CASES])
def test_each_ledger_key_selects_what_it_says(
    ledger_store: Store, flt: dict[str, object], expected: list[str]
) -> None:
    audience = parse_audience({"type": "custom", "filter": flt})
    with ledger_store.read() as conn:
        query = sa.select(lead_t.c.email).where(audience_filter("default", audience, now=NOW))
        emails = conn.execute(query).scalars().all()
    assert sorted(e.split("@")[0] for e in emails) == expected


def test_the_cli_filters_by_the_ledger(project: Project, ledger_store: Store) -> None:
    # leads count reads an up-to-date SQLite store without SQLAlchemy; list goes through it
    counted = project.run("leads", "count", "--filter", "not_opened=spring", "--json")
    assert json.loads(counted.stdout) == {"count": 4}
    recent = project.run("leads", "count", "--filter", "not_contacted_within=100d", "--json")
    # w2 was never sent anything, n1 only by another sponsor; the rest within 30 days
    assert json.loads(recent.stdout) == {"count": 2}
    listed = project.run("leads", "list", "--filter", "clicked=spring,summer", "--json")
    assert [lead["email"] for lead in json.loads(listed.stdout)] == ["h1@example.com"]
    (project.path / "again.md").write_text(
        "---\nsubject: Did you see it?\naudience:\n  type: custom\n  filter:\n"
        "    received: spring\n    not_clicked: spring\n---\nHello {{ first_name }}\n",
        encoding="utf-8",
    )
    dry = project.run("send", "again.md", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert "recipients │ 2" in dry.stdout  # h2 and w1


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--filter", "opened=nope"), "names campaign 'nope', which the store does not have"),
        (("--filter", "received=acme-news"), "campaign 'acme-news' of sponsor 'acme'"),
        (("--filter", "not_contacted_within=soon"), "'soon' is not a duration"),
    ],
)
def test_bad_ledger_filters_are_refused(
    project: Project, ledger_store: Store, args: tuple[str, ...], words: str
) -> None:
    for command in ("count", "list"):
        r = project.run("leads", command, *args)
        assert (r.exit_code, r.stdout) == (2, ""), (command, r.stderr)
        assert r.stderr.startswith("Error: ") and words in r.stderr, r.stderr


def test_ledger_keys_are_validated_in_campaign_files() -> None:
    with pytest.raises(BadInput, match="must be a string or a list of strings"):
        parse_audience({"type": "custom", "filter": {"opened": 7}})
    with pytest.raises(BadInput, match="must be a duration such as 14d"):
        parse_audience({"type": "custom", "filter": {"not_contacted_within": 14}})
    with pytest.raises(BadInput, match="'0d' must be longer than zero"):
        parse_audience({"type": "custom", "filter": {"not_contacted_within": "0d"}})
    assert parse_audience({"type": "custom", "filter": {"opened": " spring "}}).filter == {
        "opened": ["spring"]
    }
