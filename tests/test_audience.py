"""Audiences as SQL: each type and filter key selects exactly the leads it names (six known leads)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from sponsorcast.audience import parse_audience, select_recipients
from sponsorcast.errors import BadInput
from sponsorcast.leads import CsvSource, import_leads
from sponsorcast.store import Store
from tests.support.pg import both_store_backends  # noqa: F401 - on SQLite and on PostgreSQL
from tests.support.project import DATA

# tests/data/leads_audience.csv, read by hand:
#   h1 hot 95 new  enterprise,decision_maker devcon   h2 hot 70 contacted enterprise devcon
#   w1 warm 55 new research summit                    w2 warm 40 replied research,enterprise
#   c1 cold 10 new  summit                            n1 (no level) new decision_maker
CASES = [
    ("all", ["c1", "h1", "h2", "n1", "w1", "w2"]),
    ("hot", ["h1", "h2"]),
    ("warm", ["w1", "w2"]),
    ("cold", ["c1"]),
    ("new", ["c1", "h1", "n1", "w1"]),
    ("contacted", ["h2", "w2"]),
    ({"type": "custom", "filter": {"intent_score_min": 50}}, ["h1", "h2", "w1"]),
    (
        {"type": "custom", "filter": {"intent_score_min": 40, "intent_score_max": 70}},
        ["h2", "w1", "w2"],
    ),
    ({"type": "custom", "filter": {"tags": ["enterprise"]}}, ["h1", "h2", "w2"]),
    ({"type": "custom", "filter": {"tags": ["enterprise", "research"]}}, ["w2"]),
    (
        {"type": "custom", "filter": {"tags_any": ["research", "decision_maker"]}},
        ["h1", "n1", "w1", "w2"],
    ),
    ({"type": "custom", "filter": {"event": "summit"}}, ["c1", "w1"]),
    (
        {
            "type": "custom",
            "filter": {"intent_level": ["hot", "cold"], "follow_up_status": ["new"]},
        },
        ["c1", "h1"],
    ),
]


@pytest.fixture
def audience_store(store: Store) -> Store:
    import_leads(store, CsvSource(DATA / "leads_audience.csv"))
    return store


@pytest.mark.parametrize(("raw", "expected"), CASES, ids=[str(c[0]) for c in CASES])
def test_each_audience_selects_what_it_says(
    audience_store: Store, raw: object, expected: list[str]
) -> None:
    audience = parse_audience(raw)
    with audience_store.read() as conn:
        emails = conn.execute(select_recipients("default", audience, ("email",))).scalars().all()
    assert sorted(e.split("@")[0] for e in emails) == expected


def test_another_sponsors_leads_are_never_selected(audience_store: Store) -> None:
    with audience_store.read() as conn:
        assert (
            conn.execute(select_recipients("acme", parse_audience("all"), ("email",))).all() == []
        )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            "vip",
            "unknown audience type 'vip' (known: all, hot, warm, cold, new, contacted, custom).",
        ),
        (
            {"type": "custom", "filter": {"intent_score_min": 80, "intent_score_max": 20}},
            "audience filter intent_score_min is above intent_score_max.",
        ),
        ({"type": "custom", "filter": {"colour": "red"}}, "audience filter"),
    ],
)
def test_bad_audiences_are_refused(raw: object, message: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_audience(raw)
    assert message.lower() in info.value.message.lower()


def test_a_tag_with_like_wildcards_matches_only_itself(store: Store, tmp_path: Path) -> None:
    csv = tmp_path / "wild.csv"
    rows = (
        "email,tags\na@example.com,100%\nb@example.com,1000\nc@example.com,a_b\nd@example.com,axb\n"
    )
    csv.write_text(rows, encoding="utf-8")
    import_leads(store, CsvSource(csv))
    with store.read() as conn:
        for tag, expected in (("100%", ["a"]), ("a_b", ["c"])):
            audience = parse_audience({"type": "custom", "filter": {"tags": [tag]}})
            emails = (
                conn.execute(select_recipients("default", audience, ("email",))).scalars().all()
            )
            assert [e.split("@")[0] for e in emails] == expected
    with store.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM lead")).scalar() == 4
