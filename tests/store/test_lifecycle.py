"""The campaign lifecycle, directly: guarded transitions, each recorded once, and who may go where."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from sponsorcast.errors import BadInput, NotFound
from sponsorcast.store import Store
from sponsorcast.store.lifecycle import (
    campaign_history,
    pause_campaign,
    resume_campaign,
    transition,
)
from sponsorcast.store.models import CampaignStatus
from sponsorcast.store.tables import campaign_t

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _campaign(
    store: Store, status: CampaignStatus, *, started: bool = False, send_at: bool = True
) -> None:
    with store.write() as conn:
        conn.execute(
            campaign_t.insert().values(
                id="c",
                sponsor_id="default",
                name="C",
                subject="Hi",
                body="Hi",
                audience={"type": "all"},
                tags={},
                status=status,
                content_hash="h",
                total_recipients=0,
                created_at=NOW,
                started_at=NOW if started else None,
                send_at=NOW if send_at else None,
            )
        )


def _status(store: Store) -> str:
    with store.read() as conn:
        return str(conn.execute(sa.select(campaign_t.c.status)).scalar_one())


def test_a_guarded_transition_moves_once_and_records_the_event(store: Store) -> None:
    _campaign(store, CampaignStatus.SENDING, started=True)
    with store.write() as conn:
        assert transition(conn, "c", CampaignStatus.SENT, "done", expect=(CampaignStatus.SENDING,))
        # a second process racing to the same move finds the status changed: no-op
        assert not transition(
            conn, "c", CampaignStatus.SENT, "done", expect=(CampaignStatus.SENDING,)
        )
    with store.read() as conn:
        history = campaign_history(conn, "c")
        finished = conn.execute(sa.select(campaign_t.c.finished_at)).scalar_one()
    assert [(h["from"], h["status"], h["cause"]) for h in history] == [("sending", "sent", "done")]
    assert finished is not None


def test_transition_of_an_unknown_campaign_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="Unknown campaign 'ghost'"), store.write() as conn:
        transition(conn, "ghost", CampaignStatus.SENT, "x")


@pytest.mark.parametrize(
    ("status", "started", "send_at", "after_resume"),
    [
        (CampaignStatus.SENDING, True, True, CampaignStatus.SENDING),  # started: back to sending
        (
            CampaignStatus.SCHEDULED,
            False,
            True,
            CampaignStatus.SCHEDULED,
        ),  # never started, has a time
    ],
)
def test_pause_then_resume_returns_where_it_was(
    store: Store, status: CampaignStatus, started: bool, send_at: bool, after_resume: CampaignStatus
) -> None:
    _campaign(store, status, started=started, send_at=send_at)
    with store.write() as conn:
        pause_campaign(conn, "c")
    assert _status(store) == "paused"
    with store.write() as conn:
        assert resume_campaign(conn, "c") == after_resume
    assert _status(store) == after_resume


def test_a_paused_campaign_without_a_time_resumes_as_a_draft(store: Store) -> None:
    _campaign(store, CampaignStatus.PAUSED, send_at=False)
    with store.write() as conn:
        assert resume_campaign(conn, "c") == CampaignStatus.DRAFT


@pytest.mark.parametrize(
    "status", [CampaignStatus.DRAFT, CampaignStatus.SENT, CampaignStatus.CANCELLED]
)
def test_only_sending_or_scheduled_campaigns_pause(store: Store, status: CampaignStatus) -> None:
    _campaign(store, status)
    with pytest.raises(BadInput) as info, store.write() as conn:
        pause_campaign(conn, "c")
    assert info.value.message == (
        f"Campaign 'c' is {status}; only a sending or scheduled campaign can be paused."
    )
    assert _status(store) == status


def test_a_missed_campaign_is_not_resumed_into_missing_again(store: Store) -> None:
    _campaign(store, CampaignStatus.MISSED)
    with (
        pytest.raises(BadInput, match="missed its send time; resuming would not send it"),
        store.write() as conn,
    ):
        resume_campaign(conn, "c")
    assert _status(store) == "missed"
