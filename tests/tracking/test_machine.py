"""Machine opens: scanners and privacy proxies open nothing for the ledger audiences."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sponsorcast.store import Store
from sponsorcast.store.tables import event_t
from sponsorcast.tracking import record_open
from sponsorcast.tracking.events import apply_event
from sponsorcast.tracking.machine import machine_open
from tests.support.pg import both_store_backends  # noqa: F401 - each test on SQLite and PostgreSQL
from tests.support.tracking import T0, delivery, event, seed, table_rows

SAFARI = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"


@pytest.mark.parametrize(
    ("seconds", "agent", "machine"),
    [
        (3, SAFARI, True),  # seconds after sending: a gateway scanning the mail
        (600, SAFARI, False),
        (600, "Mozilla/5.0", True),  # a bare Mozilla/5.0: Apple's privacy proxy
        (600, "Barracuda Sentinel (EE)", True),
        (600, "python-requests/2.31", True),
        (
            600,
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
            False,
        ),
        (600, None, False),
    ],
)
def test_which_opens_are_a_machines(seconds: int, agent: str | None, machine: bool) -> None:
    assert machine_open(T0, T0 + timedelta(seconds=seconds), agent) is machine


def test_a_machine_open_is_counted_but_is_not_a_persons(store: Store) -> None:
    first, second = seed(store, ["a@example.org", "b@example.org"])  # sent at T0 and T0 + 1 s
    assert record_open(store, first, now=T0 + timedelta(seconds=4), user_agent=SAFARI)
    assert record_open(store, second, now=T0 + timedelta(hours=2), user_agent=SAFARI)
    a, b = delivery(store, first), delivery(store, second)
    assert (a["opened_at"], a["open_count"], a["human_opened_at"]) == (
        T0 + timedelta(seconds=4),
        1,
        None,
    )
    assert (b["opened_at"], b["human_opened_at"]) == (T0 + timedelta(hours=2),) * 2
    # the person opens it later: from then on it is a person's open too
    assert record_open(store, first, now=T0 + timedelta(hours=5), user_agent=SAFARI)
    a = delivery(store, first)
    assert (a["opened_at"], a["open_count"], a["human_opened_at"]) == (
        T0 + timedelta(seconds=4),
        2,
        T0 + timedelta(hours=5),
    )
    opens = [r["payload"] for r in table_rows(store, event_t) if r["type"] == "open"]
    assert opens == [
        {"source": "pixel", "machine": True},
        {"source": "pixel", "machine": False},
        {"source": "pixel", "machine": False},
    ]


def test_a_providers_open_seconds_after_sending_is_a_machines(store: Store) -> None:
    (first,) = seed(store, ["a@example.org"])
    quick = event("email.opened", "spring-msg-0", created=T0 + timedelta(seconds=2))
    assert apply_event(store, quick, "evt-1").outcome == "applied"
    assert delivery(store, first)["human_opened_at"] is None
    later = event("email.opened", "spring-msg-0", created=T0 + timedelta(minutes=30))
    assert apply_event(store, later, "evt-2").outcome == "applied"
    row = delivery(store, first)
    assert (row["opened_at"], row["human_opened_at"], row["open_count"]) == (
        T0 + timedelta(seconds=2),
        T0 + timedelta(minutes=30),
        2,
    )
