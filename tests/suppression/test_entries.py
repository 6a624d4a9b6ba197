"""The suppression list: CLI add/remove/list, bad input, and the SQL condition sending uses."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from sponsorcast import suppression
from sponsorcast.errors import BadInput
from sponsorcast.store import Store
from sponsorcast.store.tables import delivery_t, suppression_t
from tests.support.tracking import add_sponsor, seed, suppressed_leads, table_rows


def entries(store: Store) -> list[tuple[str, str, str]]:
    return [(r["email"], r["sponsor_id"], r["reason"]) for r in table_rows(store, suppression_t)]


def test_add_list_remove_through_the_cli(project: Any, store: Store) -> None:
    add_sponsor(store, "acme")
    r = project.run("suppress", "add", " Ann@Example.org ", "bob@example.org")
    assert (r.exit_code, r.stdout) == (
        0,
        "Suppressed 2 addresses for all sponsors; 0 already were.\n",
    )
    r = project.run(
        "suppress", "add", "ann@example.org", "--sponsor", "acme", "--reason", "unsubscribed"
    )
    assert (r.exit_code, r.stdout) == (
        0,
        "Suppressed 1 address for sponsor 'acme'; 0 already were.\n",
    )
    r = project.run("suppress", "add", "bob@example.org")
    assert r.stdout == "Suppressed 0 addresses for all sponsors; 1 already were.\n"
    assert entries(store) == [
        ("ann@example.org", "*", "manual"),
        ("bob@example.org", "*", "manual"),
        ("ann@example.org", "acme", "unsubscribed"),
    ]

    listed = json.loads(project.run("suppress", "list", "--json").stdout)
    assert [(e["email"], e["sponsor"], e["reason"]) for e in listed] == [
        ("ann@example.org", "*", "manual"),
        ("ann@example.org", "acme", "unsubscribed"),
        ("bob@example.org", "*", "manual"),
    ]
    assert set(listed[0]) == {"email", "sponsor", "reason", "created_at"}
    csv_out = project.run("suppress", "list", "--csv").stdout.splitlines()
    assert csv_out[0] == "email,sponsor,reason,created_at"
    assert [line.rsplit(",", 1)[0] for line in csv_out[1:]] == [
        "ann@example.org,*,manual",
        "ann@example.org,acme,unsubscribed",
        "bob@example.org,*,manual",
    ]
    table = project.run("suppress", "list").stdout
    assert "Suppressed addresses (3)" in table and "unsubscribed" in table

    r = project.run("suppress", "remove", "ann@example.org", "--sponsor", "acme")
    assert (r.exit_code, r.stdout) == (0, "Removed 1 address from the suppression list.\n")
    r = project.run("suppress", "remove", "bob@example.org", "carol@example.org")
    assert r.stdout == "Removed 1 address from the suppression list.\n"
    assert "Not on the list: carol@example.org." in r.stderr
    assert entries(store) == [("ann@example.org", "*", "manual")]


def test_list_for_a_sponsor_shows_what_applies_to_it(store: Store) -> None:
    add_sponsor(store, "acme")
    add_sponsor(store, "zeta")
    suppression.add(store, ["all@example.org"])
    suppression.add(store, ["a@example.org"], sponsor_id="acme", reason="unsubscribed")
    suppression.add(store, ["z@example.org"], sponsor_id="zeta")
    assert [r["email"] for r in suppression.list_suppressions(store, sponsor_id="acme")] == [
        "a@example.org",
        "all@example.org",
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["add", "not-an-email"], "'not-an-email' is not a valid email address"),
        (["add", "ok@example.org", "bad@"], "'bad@' is not a valid email address"),
        (
            ["add", "ok@example.org", "--reason", "spite"],
            "Unknown reason 'spite' (choose from unsubscribed, bounced, complained, manual).",
        ),
        (["add", "ok@example.org", "--sponsor", "ghost"], "Unknown sponsor 'ghost'"),
        (["remove", "nope"], "'nope' is not a valid email address"),
        (["list", "--sponsor", "ghost"], "Unknown sponsor 'ghost'"),
    ],
)
def test_bad_input_exits_2_and_changes_nothing(
    project: Any, store: Store, args: list[str], message: str
) -> None:
    suppression.add(store, ["keep@example.org"])
    before = table_rows(store, suppression_t)
    r = project.run("suppress", *args)
    assert r.exit_code == 2
    assert r.stderr.startswith("Error: " + message)
    assert table_rows(store, suppression_t) == before


def test_suppressed_condition_over_leads_and_deliveries(store: Store) -> None:
    add_sponsor(store, "acme")
    seed(store, ["ann@example.org", "Bob@Example.org", "cat@example.org"], status="pending")
    seed(
        store,
        ["ann@example.org", "bob@example.org"],
        campaign="acme-news",
        sponsor="acme",
        status="pending",
    )
    suppression.add(store, ["bob@example.org"])  # all sponsors
    suppression.add(store, ["ann@example.org"], sponsor_id="acme", reason="unsubscribed")
    assert suppressed_leads(store, "default") == ["Bob@Example.org"]
    assert suppressed_leads(store, "acme") == ["ann@example.org", "bob@example.org"]
    # at claim time, over delivery.recipient, with the sponsor as a column of a join
    from sponsorcast.store.models import Campaign

    campaign_t = Campaign.__table__  # type: ignore[attr-defined]
    with store.read() as conn:
        rows = conn.execute(
            sa.select(delivery_t.c.campaign_id, delivery_t.c.recipient)
            .join(campaign_t, campaign_t.c.id == delivery_t.c.campaign_id)
            .where(
                suppression.suppressed_condition(campaign_t.c.sponsor_id, delivery_t.c.recipient)
            )
            .order_by(delivery_t.c.campaign_id, delivery_t.c.recipient)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("acme-news", "ann@example.org"),
        ("acme-news", "bob@example.org"),
        ("spring", "Bob@Example.org"),
    ]
    with store.read() as conn:
        assert suppression.is_suppressed(conn, " BOB@example.org", "default")
        assert not suppression.is_suppressed(conn, "ann@example.org", "default")


def test_validate_emails_needs_one() -> None:
    with pytest.raises(BadInput, match="at least one"):
        suppression.validate_emails([])
