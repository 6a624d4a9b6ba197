"""Guard-rails of a sending campaign: bounce and complaint brakes, daily caps and warm-up,
and the warning about addresses that bounced for another sponsor; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from sponsorcast.config import BrakeConfig
from sponsorcast.errors import CampaignPaused
from sponsorcast.send import brakes as brakes_module
from sponsorcast.send import claims as claims_module
from sponsorcast.send import plan_send, send_campaign
from sponsorcast.store import Store
from sponsorcast.store.tables import campaign_t, delivery_t
from sponsorcast.tracking.events import apply_event
from sponsorcast.transport import BatchOutcome, OutgoingEmail
from tests.support.clock import Clock
from tests.support.pg import both_store_backends  # noqa: F401 - each test on SQLite and PostgreSQL
from tests.support.project import Project
from tests.support.sending import CAMPAIGN, MemoryTransport, add_leads
from tests.support.tracking import add_sponsor, event, seed

GUARDED = '\n[resend]\nbatch_size = 10\nconcurrency = 1\n[send]\nbounce_brake = "3%"\nbrake_min_sample = 50\n'
POSTAL = 'postal_address = "1 Example Street, Springfield"'


def _configure(project: Project, tables: str, sponsor: str = "") -> None:
    """The project's config (on whichever store) with more tables and sponsor keys."""
    toml = project.path / "sponsorcast.toml"
    text = toml.read_text(encoding="utf-8")
    assert POSTAL in text
    toml.write_text(text.replace(POSTAL, POSTAL + sponsor) + tables, encoding="utf-8")


@dataclass
class BouncingProvider(MemoryTransport):
    """Accepts every email; every ``every``-th recipient bounces, reported (as a webhook
    would) while the next batch is on its way."""

    store: Store | None = None
    every: int = 5
    owed: list[str] = field(default_factory=list)  # message ids that will bounce
    count: int = 0

    async def send_batch(
        self, emails: Sequence[OutgoingEmail], idempotency_key: str
    ) -> BatchOutcome:
        assert self.store is not None
        for message_id in self.owed:
            apply_event(
                self.store,
                event("email.bounced", message_id, bounce={"type": "Permanent"}),
                f"bounce-{message_id}",
            )
        self.owed = []
        outcome = await super().send_batch(emails, idempotency_key)
        for e in emails:
            self.count += 1
            if self.every and self.count % self.every == 0:
                self.owed.append(outcome.accepted[e.delivery_id])
        return outcome


def _status(store: Store, campaign: str) -> tuple[str, str | None]:
    with store.read() as conn:
        row = conn.execute(
            sa.select(campaign_t.c.status, campaign_t.c.status_reason).where(
                campaign_t.c.id == campaign
            )
        ).one()
    return row.status, row.status_reason


def _counts(store: Store, campaign: str) -> dict[str, int]:
    with store.read() as conn:
        rows = conn.execute(
            sa.select(delivery_t.c.status, sa.func.count())
            .where(delivery_t.c.campaign_id == campaign)
            .group_by(delivery_t.c.status)
        ).all()
    return {status: n for status, n in rows}


def test_the_bounce_brake_pauses_at_the_threshold_after_the_minimum_sample(
    project: Project, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(project, GUARDED)
    monkeypatch.setattr(brakes_module, "CHECK_EVERY", 0.0)  # look before every claim
    add_leads(store, 100)
    path = project.path / "spring.md"
    path.write_text(CAMPAIGN, encoding="utf-8")
    provider = BouncingProvider(store=store)
    config = project.config
    with pytest.raises(CampaignPaused) as paused:
        send_campaign(store, config, plan_send(store, config, path), transport=provider)
    # claim k sees 10k sent and the bounces of batches before k-1 (2 each): 10 % of 20 sent
    # at claim 2 is over 3 % but under the sample of 50; claim 5 sees 8 of 50 and stops
    reason = "brake: 16 % of the emails sent bounced (8 of 50; the brake is at 3 %)"
    assert str(paused.value).startswith(f"Campaign 'spring' paused itself: {reason}.")
    assert _status(store, "spring") == ("paused", reason)
    assert _counts(store, "spring") == {"sent": 42, "bounced": 8, "pending": 50}
    assert len(provider.delivered) == 50

    again = project.run("send", "spring.md", "--yes")  # send does not undo a brake
    assert again.exit_code == 1 and "send does not undo a pause" in again.stderr
    plain = project.run("campaigns", "resume", "spring")
    assert (plain.exit_code, plain.stdout) == (2, "")
    assert plain.stderr.startswith(
        f"Error: Campaign 'spring' paused itself ({reason}); it resumes only with --force"
    )
    forced = project.run("campaigns", "resume", "spring", "--force")
    assert forced.exit_code == 0, forced.stderr
    provider.every = 0  # the rest of the list is clean
    report = send_campaign(store, config, plan_send(store, config, path), transport=provider)
    assert report.status == "sent"
    # the two bounces of the last batch before the pause arrive after the resume: they are
    # counted, but not held against the emails sent since (the brake did not pull again)
    assert _counts(store, "spring") == {"sent": 90, "bounced": 10}
    addresses = [a for a, _key in provider.delivered]
    assert len(addresses) == len(set(addresses)) == 100  # everyone once


def test_brake_reasons_from_counts() -> None:
    config = BrakeConfig(bounce_rate=0.03, complaint_rate=0.0005, min_sample=50)
    assert brakes_module.brake_reason({"sent": 49, "bounced": 1}, config) is None  # 2 %
    assert brakes_module.brake_reason({"delivered": 48, "bounced": 2}, config) == (
        "brake: 4 % of the emails sent bounced (2 of 50; the brake is at 3 %)"
    )
    complaints = {"delivered": 1999, "complained": 2}  # 0.1 % of 2,001
    assert brakes_module.brake_reason(complaints, config) == (
        "brake: 0.1 % of the emails sent were reported as spam (2 of 2,001; the brake is at 0.05 %)"
    )
    assert brakes_module.brake_reason({"sent": 30, "bounced": 19}, config) is None  # 49 sent


def test_warm_up_and_daily_cap_spread_a_campaign_over_days_nobody_twice(
    project: Project, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(project, "\n[resend]\nbatch_size = 10\n", "\ndaily_cap = 50\nwarmup = 15")
    clock = Clock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    monkeypatch.setattr(claims_module, "utcnow", clock)
    add_leads(store, 100)
    (project.path / "spring.md").write_text(CAMPAIGN, encoding="utf-8")

    day1 = project.run("send", "spring.md", "--yes")
    assert day1.exit_code == 0, day1.stderr
    assert day1.stdout.splitlines()[-1] == (
        "Held back: daily cap of sponsor 'default' reached: 15 emails of 15 today (warm-up "
        "day 1); the next send or run-due from 2026-12-02 continues."
    )
    assert _counts(store, "spring") == {"sent": 15, "pending": 85}  # 10 and a split 5
    clock.now += timedelta(hours=14)  # 23:00 the same day: nothing more
    assert project.run("run-due").exit_code == 0
    assert _counts(store, "spring")["sent"] == 15
    clock.now += timedelta(hours=2)  # day 2: 30
    assert project.run("run-due").exit_code == 0
    assert _counts(store, "spring") == {"sent": 45, "pending": 55}
    clock.now += timedelta(days=1)  # day 3: 60, capped at 50
    assert project.run("run-due").exit_code == 0
    assert _counts(store, "spring") == {"sent": 95, "pending": 5}
    clock.now += timedelta(days=1)  # day 4: the rest
    assert project.run("run-due").exit_code == 0
    assert _counts(store, "spring") == {"sent": 100}
    with store.read() as conn:
        per_day = conn.execute(
            sa.select(delivery_t.c.sent_at).where(delivery_t.c.campaign_id == "spring")
        ).scalars()
        days = sorted({t.astimezone(UTC).date().day for t in per_day})
    assert days == [1, 2, 3, 4]
    outbox = list((project.path / "outbox").rglob("*.eml"))
    assert len(outbox) == 100
    stats = json.loads(project.run("stats", "spring", "--json").stdout)
    assert (stats["status"], stats["sent"]) == ("sent", 100)


def test_send_warns_about_addresses_that_bounced_for_another_sponsor(
    project: Project, store: Store
) -> None:
    add_sponsor(store, "acme")
    add_leads(store, 20, prefix="p")
    bounced = [f"p{i}@example.com" for i in range(8)]
    seed(store, bounced, campaign="acme-spring", sponsor="acme", status="bounced")
    (project.path / "spring.md").write_text(CAMPAIGN, encoding="utf-8")
    r = project.run("send", "spring.md", "--dry-run")
    assert r.exit_code == 0, r.stderr
    assert r.stderr == (
        "Warning: 8 addresses of this audience (40.0%) bounced in other sponsors' campaigns; "
        "they may bounce again, and bounces past the brake pause the campaign ('sponsorcast "
        "suppress add' keeps them out).\n"
    )
    project.run("suppress", "add", *bounced[:2], "--sponsor", "default")
    fewer = project.run("send", "spring.md", "--dry-run")  # 6 of the 18 left
    assert "6 addresses of this audience (33.3%)" in fewer.stderr
    project.run("suppress", "add", *bounced[2:4], "--sponsor", "default")
    # 4 left: under the 5 addresses a warning needs
    assert project.run("send", "spring.md", "--dry-run").stderr == ""
    project.run("suppress", "add", *bounced[4:], "--sponsor", "default")
    assert project.run("send", "spring.md", "--dry-run").stderr == ""


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[send]\nbounce_brake = "150%"\n', "'send.bounce_brake' must be a share"),
        ("[send]\ncomplaint_brake = 0\n", "'send.complaint_brake' must be a share"),
        ("[send]\nbrake_min_sample = 0\n", "'send.brake_min_sample' must be at least 1"),
        ("[sponsors.default]\ndaily_cap = 0\n", "'sponsors.default.daily_cap' must be a whole"),
        ("[sponsors.default]\nwarmup = -5\n", "'sponsors.default.warmup' must be a whole"),
    ],
)
def test_bad_guard_rail_settings_are_refused(project: Project, text: str, words: str) -> None:
    (project.path / "sponsorcast.toml").write_text(
        '[store]\nurl = "sqlite:///other.db"\n' + text, encoding="utf-8"
    )
    r = project.run("campaigns", "list")
    assert (r.exit_code, r.stdout) == (3, "")
    assert r.stderr.startswith("Error: ") and words in r.stderr, r.stderr
    assert not (project.path / "other.db").exists()  # refused before any store was opened
