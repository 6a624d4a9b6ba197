"""Campaign numbers after a scripted series of events equal hand-counted ones."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from sponsorcast import tracking
from sponsorcast.errors import NotFound
from sponsorcast.report.stats import STATS_KEYS, campaign_stats
from sponsorcast.store import Store
from sponsorcast.store.tables import delivery_t
from tests.support.tracking import T0, event, seed


def _link(text: str, url: str, personalised: bool = False) -> dict[str, Any]:
    return {
        "campaign": "spring",
        "text": text,
        "url": url,
        "unique_clicks": 0,
        "total_clicks": 0,
        "personalised": personalised,
    }


def test_stats_after_scripted_events(store: Store) -> None:
    ids = seed(store, [f"p{i}@example.org" for i in range(10)])  # 10 sent at T0 … T0+9s
    more = seed(store, ["q0@example.org", "q1@example.org", "q2@example.org"], campaign="other")
    with store.write() as conn:
        # p7: suppressed at snapshot, p8 still pending, p9 failed (never accepted)
        for did, status in ((ids[7], "suppressed"), (ids[8], "pending"), (ids[9], "failed")):
            conn.execute(
                delivery_t.update()
                .where(delivery_t.c.id == did)
                .values(status=status, sent_at=None, provider_message_id=None)
            )
    script = [
        ("email.delivered", 0),
        ("email.delivered", 1),
        ("email.delivered", 2),
        ("email.delivered", 3),
        ("email.opened", 0),
        ("email.opened", 0),
        ("email.opened", 1),  # p0 twice, p1 once
        ("email.clicked", 0),
        ("email.clicked", 0),  # p0 clicked twice
        ("email.clicked", 4),  # p4: click before delivered
        ("email.complained", 2),  # p2 delivered, then complained
        ("email.bounced", 5),  # p5 hard bounce
        ("email.delivery_delayed", 6),  # p6: only delayed
        ("email.delivered", 1),  # late duplicate state
    ]
    for n, (kind, who) in enumerate(script):
        tracking.apply_event(
            store, event(kind, f"spring-msg-{who}", T0 + timedelta(minutes=n)), f"ev{n}"
        )
    tracking.unsubscribe(store, ids[3])
    tracking.apply_event(
        store, event("email.opened", "other-msg-0"), "ev-other"
    )  # another campaign
    with store.write() as conn:
        conn.execute(
            sa.text(
                "UPDATE campaign SET status = 'sent', finished_at = started_at WHERE id = 'spring'"
            )
        )

    stats = campaign_stats(store, "spring")
    assert list(stats) == list(STATS_KEYS)
    assert stats == {
        "campaign": "spring",
        "status": "sent",
        "status_reason": None,
        "total_recipients": 10,
        "pending": 1,  # p8
        "sent": 7,  # p0–p6 were accepted
        "delivered": 5,  # p0, p1, p2, p3, p4 (by its click)
        "failed": 1,  # p9
        "bounced": 1,  # p5
        "complained": 1,  # p2
        "suppressed": 1,  # p7
        "cancelled": 0,
        "skipped": 0,
        "opened": 2,  # p0, p1 (recipients, not 3 events)
        "clicked": 2,  # p0, p4
        "unsubscribed": 1,  # p3
        "open_rate": 28.6,  # 2 / 7
        "click_rate": 28.6,
        "started_at": T0,
        "finished_at": T0,
        "emails_per_second": 0.7,  # 7 sent while the batch ran, from T0 to its answer at T0 + 10 s
        # first opens p0 (T0+4m), p1 (T0+6m); first clicks p0 (T0+7m), p4 (T0+9m): one hour
        "timeline": [{"start": T0.isoformat(), "hours": 1, "first_opens": 2, "first_clicks": 2}],
        # the webhooks name no link: every link of the body, in order, none clicked
        "links": [
            _link("Book a demo", "https://example.com/demo?src=mail&x=1"),
            _link("https://example.com/agenda", "https://example.com/agenda"),
            _link("raw", "https://example.com/raw"),
            _link("", "https://example.com/plain"),
            _link("Your page", "https://example.com/p?c={{ company | urlencode }}", True),
        ],
        "follow_ups": [],
        "variants": [],
        "test": None,
    }
    assert campaign_stats(store, "other")["opened"] == 1 and len(more) == 3


def test_stats_of_a_campaign_with_nothing_sent(store: Store) -> None:
    seed(store, ["a@example.org", "b@example.org"], status="pending", started_at=None)
    stats = campaign_stats(store, "spring")
    assert (
        stats["pending"],
        stats["sent"],
        stats["open_rate"],
        stats["click_rate"],
        stats["emails_per_second"],
        stats["started_at"],
    ) == (2, 0, 0.0, 0.0, None, None)


def test_stats_unknown_campaign(store: Store) -> None:
    with pytest.raises(NotFound, match="Unknown campaign 'nope'"):
        campaign_stats(store, "nope")


def test_stats_json_through_the_cli(project: Any, store: Store) -> None:
    ids = seed(store, ["a@example.org", "b@example.org", "c@example.org", "d@example.org"])
    tracking.apply_event(store, event("email.delivered", "spring-msg-0"), "e1")
    # Resend's click event names the link as the email had it
    clicked = event("email.clicked", "spring-msg-1", click={"link": "https://example.com/agenda"})
    tracking.apply_event(store, clicked, "e2")
    tracking.record_open(store, ids[0], now=T0 + timedelta(minutes=30))
    tracking.unsubscribe(store, ids[2])
    result = project.run("stats", "spring", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "campaign": "spring",
        "status": "sent",
        "status_reason": None,
        "total_recipients": 4,
        "pending": 0,
        "sent": 4,
        "delivered": 2,
        "failed": 0,
        "bounced": 0,
        "complained": 0,
        "suppressed": 0,
        "cancelled": 0,
        "skipped": 0,
        "opened": 1,
        "clicked": 1,
        "unsubscribed": 1,
        "open_rate": 25.0,
        "click_rate": 25.0,
        "started_at": "2026-11-20T09:00:00+00:00",
        "finished_at": None,
        "emails_per_second": 1.0,  # 4 sent from T0 to the batch's answer at T0 + 4 s
        "timeline": [  # a's open at 09:30 and b's click at 09:00
            {"start": "2026-11-20T09:00:00+00:00", "hours": 1, "first_opens": 1, "first_clicks": 1}
        ],
        "links": [
            {
                **_link("https://example.com/agenda", "https://example.com/agenda"),
                "unique_clicks": 1,
                "total_clicks": 1,
            },
            _link("Book a demo", "https://example.com/demo?src=mail&x=1"),
            _link("raw", "https://example.com/raw"),
            _link("", "https://example.com/plain"),
            _link("Your page", "https://example.com/p?c={{ company | urlencode }}", True),
        ],
        "follow_ups": [],
        "variants": [],
        "test": None,
    }
    missing = project.run("stats", "nope", "--json")
    assert missing.exit_code == 2
    assert json.loads(missing.stdout) == {
        "error": {
            "message": "Unknown campaign 'nope'.",
            "hint": "'sponsorcast campaigns list' shows the campaigns in the store.",
            "exit_code": 2,
            "type": "NotFound",
        }
    }
    assert missing.stderr.startswith("Error: Unknown campaign 'nope'.\n")
