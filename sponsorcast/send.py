"""Sending (SPEC §4): validate and render everything, snapshot, then claim, send and record.

How exactly-once holds, whatever is killed where:

1. ``start`` renders every recipient (a template error sends nothing), then in ONE write
   transaction inserts the campaign row, one delivery row per recipient (suppressed ones as
   ``suppressed``) with its batch number, and one ``send_batch`` row per batch with an
   idempotency key that is fixed from then on (campaign id + a nonce of this snapshot + batch).
2. A worker claims a batch in one write transaction: a ``pending`` batch, or a ``claimed`` one
   whose lease expired (or whose holder on this host is dead). A batch that was never attempted
   may still change (suppressions re-checked, ``--limit`` splits it); then its emails are
   rendered and kept in the batch row (compressed), with their hash and ``first_attempt_at``
   — all committed BEFORE the request. Every later attempt sends those kept emails, not a
   new render: a lead re-imported, a sponsor renamed or a config edited since cannot change
   the body, so the provider sees the identical request under the same key and never sends
   twice. The kept emails are dropped once the batch is answered.
3. The request goes out under the batch's key; the answer is recorded in one transaction.
   No answer (lost, 5xx past retries, Ctrl-C): the batch goes back to ``pending`` and the next
   run re-sends it under its key. Past the provider's 24 h key window it is reported instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from sponsorcast.audience import RECIPIENT_COLUMNS, recipient, select_recipients
from sponsorcast.config import Config
from sponsorcast.errors import BadInput, ConfigError, TemplateError
from sponsorcast.store import Store, get_sponsor
from sponsorcast.store.lifecycle import (
    get_campaign_row,
    record_event,
    status_counts,
    transition,
)
from sponsorcast.store.models import (
    BatchStatus,
    CampaignStatus,
    DeliveryStatus,
    Sponsor,
    utcnow,
)
from sponsorcast.store.tables import batch_t, campaign_t, delivery_t, lead_t
from sponsorcast.suppression import suppressed_condition
from sponsorcast.transport import freeze_emails, thaw_emails

if TYPE_CHECKING:
    from sponsorcast.campaign import CampaignFile
    from sponsorcast.render import CompiledCampaign
    from sponsorcast.transport import OutgoingEmail, Transport

KEY_WINDOW = timedelta(hours=24)  # how long Resend keeps idempotency keys
QUOTA_CAUSE = "provider quota reached"  # a status_reason starting so: run-due resumes the campaign
AUTH_CAUSE = "provider refused the API key"
# Statuses from which a campaign that never started sending is snapshotted afresh.
NOT_STARTED = (
    CampaignStatus.DRAFT,
    CampaignStatus.SCHEDULED,
    CampaignStatus.MISSED,
    CampaignStatus.PAUSED,
    CampaignStatus.FAILED,
)
RETRY = "closed a batch with nothing to send; claim the next"
REQUEUE_LIMIT = 3  # times one run puts back a batch that was provably not sent


@dataclass(frozen=True)
class Plan:
    """A campaign file checked against its sponsor and the store, ready to send or preview."""

    campaign: CampaignFile
    sponsor: Sponsor
    compiled: CompiledCampaign
    existing_status: str | None
    recipients: int
    suppressed: int


@dataclass
class Progress:
    """Counts a running send reports after each batch."""

    total: int
    sent: int = 0
    failed: int = 0
    batches: int = 0


@dataclass
class RunReport:
    """What one run did to one campaign."""

    campaign_id: str
    status: str
    transport: str
    sends_for_real: bool
    total: int
    sent_now: int = 0
    failed_now: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    unknown_batches: int = 0  # batches without an answer, left to re-send in a later run
    unknown_now: int = 0  # deliveries given up in this run (outcome unknown; marked failed)
    elapsed: float = 0.0
    already_finished: bool = False
    stopped_reason: str | None = None

    @property
    def emails_per_second(self) -> float:
        """Emails accepted per second of this run."""
        return self.sent_now / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def ok(self) -> bool:
        """True when nothing failed and nothing is left over."""
        return (
            self.failed_now == 0
            and self.unknown_batches == 0
            and self.status in (CampaignStatus.SENT, CampaignStatus.SENDING)
            and self.stopped_reason is None
        )


ProgressCallback = Callable[[Progress], None]


# --------------------------------------------------------------------------- planning


def plan_send(store: Store, config: Config, path: Path) -> Plan:
    """Load and validate a campaign file for sending; refuses a file changed after sending began."""
    from sponsorcast.campaign import load_campaign
    from sponsorcast.render import compile_campaign

    campaign = load_campaign(path)
    sponsor = get_sponsor(store, campaign.sponsor)
    check_sponsor(sponsor, campaign)
    compiled = compile_campaign(
        campaign, sponsor, unsubscribe_mailto=config.tracking.unsubscribe_mailto
    )
    with store.read() as conn:
        row = conn.execute(
            sa.select(
                campaign_t.c.status,
                campaign_t.c.content_hash,
                campaign_t.c.source_path,
                campaign_t.c.started_at,
            ).where(campaign_t.c.id == campaign.id)
        ).first()
        if row is not None:
            _refuse_changed(
                campaign, row.status, row.content_hash, started=row.started_at is not None
            )
            counts = status_counts(conn, campaign.id)
            total = sum(counts.values())
            suppressed = counts.get(DeliveryStatus.SUPPRESSED, 0)
        else:
            total, suppressed = _audience_size(conn, campaign)
    return Plan(campaign, sponsor, compiled, row.status if row else None, total, suppressed)


def check_sponsor(sponsor: Sponsor, campaign: CampaignFile) -> None:
    """A sponsor must be allowed to send and must have a from address."""
    if not sponsor.messaging_enabled:
        raise BadInput(
            f"Sponsor '{sponsor.id}' is not enabled for messaging; nothing was sent.",
            hint=f"Set messaging_enabled = true under [sponsors.{sponsor.id}] in sponsorcast.toml.",
        )
    if not (campaign.from_address or sponsor.from_address):
        raise ConfigError(
            f"Sponsor '{sponsor.id}' has no from address; nothing was sent.",
            hint=f"Set 'from' under [sponsors.{sponsor.id}] in sponsorcast.toml, or 'from:' in {campaign.path}.",
        )
    from sponsorcast.headers import mailbox_problem

    for key, value in (("from", sponsor.from_address), ("reply_to", sponsor.reply_to)):
        problem = mailbox_problem(value) if value else None
        if problem is not None:
            raise BadInput(
                f"Sponsor '{sponsor.id}' has {key} {value!r}, which cannot be a sender "
                f"address: {problem}; nothing was sent."
            )


def _refuse_changed(
    campaign: CampaignFile, status: str, stored_hash: str, *, started: bool = True
) -> None:
    # before sending began (draft, scheduled, missed, paused/failed before the start) no
    # recipient got anything yet: the new version replaces the stored one
    if (
        stored_hash
        and stored_hash != campaign.content_hash
        and (started or status not in NOT_STARTED)
    ):
        raise BadInput(
            f"{campaign.path} changed after campaign '{campaign.id}' was {status}; "
            "recipients must not get two versions of one campaign, so nothing was sent.",
            hint="Restore the file, or give the new version another id (front-matter 'id:').",
        )


def _audience_size(conn: sa.Connection, campaign: CampaignFile) -> tuple[int, int]:
    sel = select_recipients(campaign.sponsor, campaign.audience, ("email", "sponsor_id")).subquery()
    supp = suppressed_condition(sel.c.sponsor_id, sel.c.email)
    row = conn.execute(
        sa.select(
            sa.func.count(), sa.func.coalesce(sa.func.sum(sa.case((supp, 1), else_=0)), 0)
        ).select_from(sel)
    ).one()
    return int(row[0]), int(row[1])


# --------------------------------------------------------------------------- validation


def validate_all(store: Store, plan: Plan, config: Config) -> int:
    """Render every recipient of the audience; any problem raises TemplateError, nothing sent."""
    from sponsorcast.render import RecipientSource, check_audience

    report = check_audience(plan.compiled, RecipientSource(config, store=store))
    if report.problems:
        first = report.problems[0]
        more = (
            f" (and {len(report.problems) - 1} more problem(s))" if len(report.problems) > 1 else ""
        )
        raise TemplateError(
            f"{first.message} for {first.count} recipient(s){more}; nothing was sent",
            path=first.path,
            line=first.line,
            hint=f"'sponsorcast render {plan.campaign.path} --check' lists every problem.",
        )
    return int(report.checked)


# --------------------------------------------------------------------------- snapshot


def snapshot(store: Store, plan: Plan, batch_size: int, *, cause: str = "send") -> bool:
    """Turn the audience into delivery rows and batches in one transaction.

    Returns False when another process snapshotted this campaign first (nothing written).
    """
    campaign = plan.campaign
    now = utcnow()
    nonce = secrets.token_hex(4)
    try:
        with store.write() as conn:
            # FOR UPDATE: on PostgreSQL two run-due processes starting one campaign queue here
            # (SQLite's write transaction already serialises them; SQLAlchemy omits it there)
            existing = conn.execute(
                sa.select(campaign_t.c.status, campaign_t.c.started_at)
                .where(campaign_t.c.id == campaign.id)
                .with_for_update()
            ).first()
            if existing is not None and (
                existing.status not in NOT_STARTED or existing.started_at is not None
            ):
                return False
            if existing is not None and _has_deliveries(conn, campaign.id):
                return False
            values = campaign_values(campaign, plan.sponsor)
            if existing is None:
                conn.execute(
                    campaign_t.insert().values(
                        id=campaign.id,
                        status=CampaignStatus.DRAFT,
                        created_at=now,
                        total_recipients=0,
                        **values,
                    )
                )
                record_event(
                    conn,
                    campaign.id,
                    "campaign.draft",
                    {"from": None, "to": CampaignStatus.DRAFT, "cause": cause},
                )
            else:
                if values["send_at"] is None:  # keep the time it was scheduled for
                    del values["send_at"]
                conn.execute(
                    campaign_t.update().where(campaign_t.c.id == campaign.id).values(**values)
                )
            total = _insert_deliveries(conn, campaign, batch_size)
            _insert_batches(conn, campaign.id, f"sc-{campaign.id}-{nonce}-b")
            conn.execute(
                campaign_t.update()
                .where(campaign_t.c.id == campaign.id)
                .values(total_recipients=total)
            )
            transition(conn, campaign.id, CampaignStatus.SENDING, cause, extra={"started_at": now})
    except sa.exc.IntegrityError:
        # PostgreSQL: a concurrent process inserted the campaign row first
        return False
    return True


def _has_deliveries(conn: sa.Connection, campaign_id: str) -> bool:
    return (
        conn.execute(
            sa.select(delivery_t.c.id).where(delivery_t.c.campaign_id == campaign_id).limit(1)
        ).first()
        is not None
    )


def campaign_values(
    campaign: CampaignFile, sponsor: Sponsor, *, send_at: datetime | None = None
) -> dict[str, Any]:
    """The campaign row's snapshot columns for a campaign file (``send_at`` overrides the file's)."""
    if send_at is None and campaign.send_at is not None and campaign.send_at.tzinfo is not None:
        send_at = campaign.send_at
    return {
        "sponsor_id": sponsor.id,
        "name": campaign.name,
        "subject": campaign.subject,
        "body": campaign.body,
        "audience": campaign.audience.as_dict(),
        "from_address": campaign.from_address,
        "reply_to": campaign.reply_to,
        "tags": dict(campaign.tags),
        "source_path": str(campaign.path),
        "send_at": send_at,
        "content_hash": campaign.content_hash,
    }


def _insert_deliveries(conn: sa.Connection, campaign: CampaignFile, batch_size: int) -> int:
    c = lead_t.c
    supp = suppressed_condition(c.sponsor_id, c.email)
    is_supp = sa.case((supp, 1), else_=0)
    rank = sa.func.row_number().over(partition_by=is_supp, order_by=c.id)
    source = (
        sa.select(
            sa.literal(campaign.id).label("campaign_id"),
            c.id.label("lead_id"),
            c.email.label("recipient"),
            sa.case(
                (supp, sa.literal(DeliveryStatus.SUPPRESSED)),
                else_=sa.literal(DeliveryStatus.PENDING),
            ).label("status"),
            sa.literal(0).label("attempts"),
            sa.case((supp, sa.null()), else_=(rank - 1) // batch_size).label("batch"),
            sa.literal(0).label("open_count"),
            sa.literal(0).label("click_count"),
        )
        .where(select_recipients(campaign.sponsor, campaign.audience).whereclause)  # type: ignore[arg-type]
        .order_by(c.id)
    )
    cols = [
        "campaign_id",
        "lead_id",
        "recipient",
        "status",
        "attempts",
        "batch",
        "open_count",
        "click_count",
    ]
    conn.execute(delivery_t.insert().from_select(cols, source))
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(delivery_t.c.campaign_id == campaign.id)
        ).scalar_one()
    )


def _insert_batches(conn: sa.Connection, campaign_id: str, key_prefix: str) -> None:
    numbers = (
        sa.select(delivery_t.c.batch)
        .where(delivery_t.c.campaign_id == campaign_id, delivery_t.c.batch.is_not(None))
        .distinct()
        .subquery()
    )
    source = sa.select(
        sa.literal(campaign_id).label("campaign_id"),
        numbers.c.batch.label("number"),
        sa.literal(BatchStatus.PENDING).label("status"),
        (sa.literal(key_prefix) + sa.cast(numbers.c.batch, sa.String)).label("idempotency_key"),
        sa.literal(0).label("attempts"),
    )
    conn.execute(
        batch_t.insert().from_select(
            ["campaign_id", "number", "status", "idempotency_key", "attempts"], source
        )
    )


# --------------------------------------------------------------------------- claims


@dataclass
class Claim:
    """A batch this process holds, rendered and ready to send."""

    number: int
    key: str
    emails: list[OutgoingEmail]


@dataclass
class _Claimer:
    """Claims batches of one campaign for one process (owner id: host, pid, nonce)."""

    store: Store
    config: Config
    campaign_id: str
    renderer: BatchRenderer
    owner: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    )
    skip: set[int] = field(default_factory=set)
    limit_left: int | None = None
    unknown: int = 0  # deliveries this process gave up on (outcome unknown, marked failed)
    # this process's workers take turns at the store: on SQLite a waiting writer would
    # otherwise sleep in the busy handler's coarse steps instead of starting at once
    lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(self) -> Claim | str | None:
        """Claim the next batch; a string says why the campaign stopped; None: nothing claimable."""
        with self.lock:
            return self._claim()

    def _claim(self) -> Claim | str | None:
        now = utcnow()
        with self.store.write() as conn:
            status = conn.execute(
                sa.select(campaign_t.c.status).where(campaign_t.c.id == self.campaign_id)
            ).scalar_one()
            if status == CampaignStatus.SENT:  # another process finished it
                return None
            if status != CampaignStatus.SENDING:
                return f"campaign is {status}"
            if self.limit_left is not None and self.limit_left <= 0:
                return None
            row = self._next_batch(conn, now)
            if row is None:
                return None
            number = row.number
            frozen: bytes | None = None
            if row.first_attempt_at is None:
                self._prepare_first_attempt(conn, number)
                members = list(self._members(conn, number))
                if not members:
                    conn.execute(
                        batch_t.update()
                        .where(*self._batch(number))
                        .values(status=BatchStatus.DONE, finished_at=now, lease_owner=None)
                    )
                    return RETRY
                emails = self.renderer.render_batch(members)
                frozen = freeze_emails(emails)
            elif now - row.first_attempt_at > KEY_WINDOW:
                self._give_up(conn, number, stale=True)
                return RETRY
            elif row.payload is not None:
                # the exact emails of the first attempt, whatever changed in the leads,
                # the sponsor or the config since: the provider sees the identical body
                emails = thaw_emails(bytes(row.payload))
            else:  # attempted by a version that kept only the hash: re-render and compare
                emails = self.renderer.render_batch(list(self._members(conn, number)))
            digest = payload_hash(emails)
            if row.payload_hash and row.payload_hash != digest:
                self._give_up(conn, number, stale=False)
                return RETRY
            values: dict[str, Any] = {} if frozen is None else {"payload": frozen}
            conn.execute(
                batch_t.update()
                .where(*self._batch(number))
                .values(
                    status=BatchStatus.CLAIMED,
                    lease_owner=self.owner,
                    lease_expires_at=now + timedelta(seconds=self.config.lease_seconds),
                    attempts=batch_t.c.attempts + 1,
                    first_attempt_at=row.first_attempt_at or now,
                    payload_hash=digest,
                    **values,
                )
            )
            conn.execute(
                delivery_t.update()
                .where(
                    delivery_t.c.campaign_id == self.campaign_id,
                    delivery_t.c.batch == number,
                    delivery_t.c.status == DeliveryStatus.PENDING,
                )
                .values(status=DeliveryStatus.SENDING, attempts=delivery_t.c.attempts + 1)
            )
            if self.limit_left is not None:
                self.limit_left -= len(emails)
            return Claim(number=number, key=row.idempotency_key, emails=emails)

    def _batch(self, number: int) -> tuple[sa.ColumnElement[bool], ...]:
        return (batch_t.c.campaign_id == self.campaign_id, batch_t.c.number == number)

    def _next_batch(self, conn: sa.Connection, now: datetime) -> Any:
        claimable = sa.or_(
            batch_t.c.status == BatchStatus.PENDING,
            sa.and_(batch_t.c.status == BatchStatus.CLAIMED, batch_t.c.lease_expires_at < now),
        )
        query = (
            sa.select(
                batch_t.c.number,
                batch_t.c.idempotency_key,
                batch_t.c.first_attempt_at,
                batch_t.c.payload_hash,
                batch_t.c.payload,
            )
            .where(batch_t.c.campaign_id == self.campaign_id, claimable)
            .order_by(batch_t.c.number)
            .limit(1)
        )
        if self.skip:
            query = query.where(batch_t.c.number.not_in(self.skip))
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        row = conn.execute(query).first()
        if row is not None:
            return row
        return self._dead_holders_batch(conn)

    def _dead_holders_batch(self, conn: sa.Connection) -> Any:
        """A batch leased by a process on this host that no longer exists can be taken now."""
        host = socket.gethostname()
        query = (
            sa.select(
                batch_t.c.number,
                batch_t.c.idempotency_key,
                batch_t.c.first_attempt_at,
                batch_t.c.payload_hash,
                batch_t.c.payload,
                batch_t.c.lease_owner,
            )
            .where(
                batch_t.c.campaign_id == self.campaign_id,
                batch_t.c.status == BatchStatus.CLAIMED,
                batch_t.c.lease_owner.like(f"{host}:%"),
            )
            .order_by(batch_t.c.number)
        )
        if conn.dialect.name == "postgresql":
            # two workers on this host must not both take one dead process's batch
            query = query.with_for_update(skip_locked=True)
        rows = conn.execute(query).all()
        for row in rows:
            if row.number in self.skip or row.lease_owner == self.owner:
                continue
            if not _pid_alive(row.lease_owner):
                return row
        return None

    def _prepare_first_attempt(self, conn: sa.Connection, number: int) -> None:
        """Before a batch's first request it may still change: suppressions and --limit."""
        in_batch = (delivery_t.c.campaign_id == self.campaign_id, delivery_t.c.batch == number)
        conn.execute(
            delivery_t.update()
            .where(
                *in_batch,
                delivery_t.c.status == DeliveryStatus.PENDING,
                suppressed_condition(self.renderer.sponsor.id, delivery_t.c.recipient),
            )
            .values(status=DeliveryStatus.SUPPRESSED, batch=None)
        )
        if self.limit_left is None:
            return
        ids = (
            conn.execute(sa.select(delivery_t.c.id).where(*in_batch).order_by(delivery_t.c.id))
            .scalars()
            .all()
        )
        if len(ids) <= self.limit_left:
            return
        cut = ids[self.limit_left]
        new_number = (
            int(
                conn.execute(
                    sa.select(sa.func.max(batch_t.c.number)).where(
                        batch_t.c.campaign_id == self.campaign_id
                    )
                ).scalar_one()
            )
            + 1
        )
        key = conn.execute(
            sa.select(batch_t.c.idempotency_key).where(*self._batch(number))
        ).scalar_one()
        conn.execute(
            batch_t.insert().values(
                campaign_id=self.campaign_id,
                number=new_number,
                status=BatchStatus.PENDING,
                idempotency_key=f"{key}s{new_number}",
                attempts=0,
            )
        )
        conn.execute(
            delivery_t.update().where(*in_batch, delivery_t.c.id >= cut).values(batch=new_number)
        )

    def _members(self, conn: sa.Connection, number: int) -> Iterator[dict[str, Any]]:
        # every member, whatever its status: after the first attempt a batch never changes
        cols = [lead_t.c[name] for name in RECIPIENT_COLUMNS]
        rows = conn.execute(
            sa.select(delivery_t.c.id.label("delivery_id"), delivery_t.c.recipient, *cols)
            .join(lead_t, lead_t.c.id == delivery_t.c.lead_id)
            .where(delivery_t.c.campaign_id == self.campaign_id, delivery_t.c.batch == number)
            .order_by(delivery_t.c.id)
        ).mappings()
        for row in rows:
            yield dict(row)

    def _give_up(self, conn: sa.Connection, number: int, *, stale: bool) -> None:
        reason = (
            "outcome unknown: no answer from the provider within its 24 h idempotency window; "
            "not re-sent (check the provider's log)"
            if stale
            else "outcome unknown: lead or sponsor data changed since the first attempt, so the "
            "identical payload cannot be re-sent; not re-sent (check the provider's log)"
        )
        conn.execute(
            batch_t.update()
            .where(*self._batch(number))
            .values(
                status=BatchStatus.UNKNOWN, lease_owner=None, finished_at=utcnow(), payload=None
            )
        )
        self.unknown += conn.execute(
            delivery_t.update()
            .where(
                delivery_t.c.campaign_id == self.campaign_id,
                delivery_t.c.batch == number,
                delivery_t.c.status.in_((DeliveryStatus.PENDING, DeliveryStatus.SENDING)),
            )
            .values(status=DeliveryStatus.FAILED, last_error=reason)
        ).rowcount
        record_event(conn, self.campaign_id, "batch.unknown", {"batch": number, "reason": reason})
        self.skip.add(number)

    # ------------------------------------------------------------------ recording

    def record(
        self, claim: Claim, accepted: Mapping[int, str], rejected: Mapping[int, str]
    ) -> None:
        """Write the provider's answer for a batch in one transaction."""
        now = utcnow()
        with self.lock, self.store.write() as conn:
            if accepted:
                conn.execute(
                    delivery_t.update()
                    .where(delivery_t.c.id == sa.bindparam("d_id"), _unsent)
                    .values(
                        status=DeliveryStatus.SENT,
                        provider_message_id=sa.bindparam("msg"),
                        sent_at=now,
                        last_error=None,
                    ),
                    [{"d_id": d, "msg": m} for d, m in accepted.items()],
                )
            if rejected:
                conn.execute(
                    delivery_t.update()
                    .where(delivery_t.c.id == sa.bindparam("d_id"), _unsent)
                    .values(status=DeliveryStatus.FAILED, last_error=sa.bindparam("err")),
                    [{"d_id": d, "err": e[:1000]} for d, e in rejected.items()],
                )
            conn.execute(
                batch_t.update()
                .where(*self._batch(claim.number))
                .values(
                    status=BatchStatus.DONE,
                    finished_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                    payload=None,
                )
            )

    def release(self, claim: Claim, reason: str, partial: object | None = None) -> None:
        """Outcome unknown: hand the batch back, to be re-sent under its key by a later run.

        ``partial`` (one-by-one mode) holds the emails accepted before the failure: they are
        recorded as sent now; the re-send repeats them under their own keys, which the
        provider answers from its idempotency cache.
        """
        from sponsorcast.transport import BatchOutcome

        now = utcnow()
        with self.lock, self.store.write() as conn:
            if isinstance(partial, BatchOutcome) and partial.accepted:
                conn.execute(
                    delivery_t.update()
                    .where(
                        delivery_t.c.id == sa.bindparam("d_id"),
                        delivery_t.c.status == DeliveryStatus.SENDING,
                    )
                    .values(
                        status=DeliveryStatus.SENT,
                        provider_message_id=sa.bindparam("msg"),
                        sent_at=now,
                    ),
                    [{"d_id": d, "msg": m} for d, m in partial.accepted.items()],
                )
            conn.execute(
                batch_t.update()
                .where(
                    *self._batch(claim.number),
                    batch_t.c.lease_owner == self.owner,
                    batch_t.c.status == BatchStatus.CLAIMED,
                )
                .values(status=BatchStatus.PENDING, lease_owner=None, lease_expires_at=None)
            )
            conn.execute(
                delivery_t.update()
                .where(
                    delivery_t.c.campaign_id == self.campaign_id,
                    delivery_t.c.batch == claim.number,
                    delivery_t.c.status == DeliveryStatus.SENDING,
                )
                .values(last_error=reason[:1000])
            )


# executemany cannot expand IN lists, hence the OR
_unsent = sa.or_(
    delivery_t.c.status == DeliveryStatus.SENDING, delivery_t.c.status == DeliveryStatus.PENDING
)


def _pid_alive(owner: str | None) -> bool:
    try:
        pid = int((owner or "").split(":")[1])
    except (IndexError, ValueError):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def payload_hash(emails: Sequence[OutgoingEmail]) -> str:
    """The sha256 of what a batch sends: every field its provider request is built from."""
    digest = hashlib.sha256()
    for e in emails:
        fields = (
            e.from_address,
            e.to,
            e.subject,
            e.html,
            e.text,
            e.reply_to or "",
            repr(sorted(e.headers.items())),
            repr(e.tags),
        )
        digest.update("\x1f".join(fields).encode())
        digest.update(b"\x1e")
    return digest.hexdigest()


# --------------------------------------------------------------------------- rendering


@dataclass
class BatchRenderer:
    """Renders a batch's members into provider emails: a pure function of the snapshot."""

    config: Config
    campaign_id: str
    campaign_tags: Mapping[str, str]
    sponsor: Sponsor
    compiled: CompiledCampaign
    from_address: str
    reply_to: str | None
    subject_prefix: str = ""
    campaign_links: tuple[str, ...] = ()  # the body's links, in order: click tokens index them

    def render_batch(self, members: Sequence[Mapping[str, Any]]) -> list[OutgoingEmail]:
        """One OutgoingEmail per member (``delivery_id`` and ``recipient`` plus lead columns)."""
        return [self.render_one(m) for m in members]

    def render_one(self, member: Mapping[str, Any]) -> OutgoingEmail:
        """Render one member."""
        from sponsorcast.render import render_message
        from sponsorcast.transport import OutgoingEmail

        delivery_id = int(member.get("delivery_id") or 0)
        links: Any = self.compiled.default_links
        headers: dict[str, str] = {}
        if self.config.tracking.public_url and delivery_id > 0:
            from sponsorcast import tracking

            links, headers = tracking.links_for(
                self.config, self.campaign_id, delivery_id, self.campaign_links
            )
        message = render_message(self.compiled, recipient(member), links)
        tags = {**self.campaign_tags, "campaign": _tag_value(self.campaign_id)}
        if delivery_id > 0:
            tags["delivery"] = str(delivery_id)
        return OutgoingEmail(
            delivery_id=delivery_id,
            from_address=self.from_address,
            to=str(member.get("recipient") or member["email"]),
            subject=self.subject_prefix + message.subject,
            html=message.html,
            text=message.text,
            reply_to=self.reply_to,
            headers={**message.headers, **headers},
            tags=tuple(tags.items()),
        )


def _tag_value(value: str) -> str:
    return "".join(ch if ch.isascii() and (ch.isalnum() or ch in "_-") else "_" for ch in value)[
        :256
    ]


def make_renderer(
    store: Store, config: Config, campaign_id: str, *, subject_prefix: str = ""
) -> BatchRenderer:
    """A renderer for a campaign from its stored snapshot (not the file, which may have moved on)."""
    from sponsorcast.render import compile_campaign

    with store.read() as conn:
        row = get_campaign_row(conn, campaign_id)
    sponsor = get_sponsor(store, row["sponsor_id"])
    campaign = stored_campaign(row)
    check_sponsor(sponsor, campaign)
    return BatchRenderer(
        config=config,
        campaign_id=campaign_id,
        campaign_tags={str(k): str(v) for k, v in (row["tags"] or {}).items()},
        sponsor=sponsor,
        compiled=compile_campaign(
            campaign, sponsor, unsubscribe_mailto=config.tracking.unsubscribe_mailto
        ),
        from_address=str(row["from_address"] or sponsor.from_address),
        reply_to=row["reply_to"] or sponsor.reply_to,
        subject_prefix=subject_prefix,
        campaign_links=_links_of(config, campaign.body),
    )


def _links_of(config: Config, body: str) -> tuple[str, ...]:
    if not config.tracking.public_url:
        return ()
    from sponsorcast.tracking import campaign_links

    return tuple(campaign_links(body))


def stored_campaign(row: Mapping[Any, Any]) -> CampaignFile:
    """The campaign as snapshotted in the store, in the shape rendering takes."""
    from sponsorcast.audience import parse_audience
    from sponsorcast.campaign import CampaignFile

    return CampaignFile(
        id=row["id"],
        name=row["name"],
        sponsor=row["sponsor_id"],
        subject=row["subject"],
        body=row["body"],
        audience=parse_audience(row["audience"]),
        from_address=row["from_address"],
        reply_to=row["reply_to"],
        send_at=row["send_at"],
        tags=dict(row["tags"] or {}),
        path=Path(row["source_path"] or f"{row['id']}.md"),
        content_hash=row["content_hash"],
        body_line=1,
        key_lines={},
    )


# --------------------------------------------------------------------------- running


async def run_batches(
    store: Store,
    config: Config,
    campaign_id: str,
    transport: Transport,
    *,
    limit: int | None = None,
    deadline: float | None = None,
    progress: ProgressCallback | None = None,
) -> RunReport:
    """Claim, send and record batches of a ``sending`` campaign until none is left."""
    from sponsorcast.errors import AuthError, BatchRejected, OutcomeUnknown, QuotaExceeded

    renderer = make_renderer(store, config, campaign_id)
    claimer = _Claimer(store, config, campaign_id, renderer, limit_left=limit)
    with store.read() as conn:
        total = get_campaign_row(conn, campaign_id)["total_recipients"]
    report = RunReport(
        campaign_id, CampaignStatus.SENDING, transport.name, transport.sends_for_real, total
    )
    prog = Progress(total=total)
    started = time.monotonic()
    stop: list[BaseException] = []
    requeued: dict[int, int] = {}
    concurrency = config.resend.concurrency if transport.sends_for_real else 1

    async def worker() -> None:
        while not stop:
            if deadline is not None and time.monotonic() >= deadline:
                report.stopped_reason = report.stopped_reason or "time limit reached"
                return
            claim = await asyncio.to_thread(claimer.claim)
            if claim is RETRY:
                continue
            if claim is None:
                return
            if isinstance(claim, str):
                report.stopped_reason = claim
                return
            if stop:  # another worker hit quota or auth while this one was claiming
                await asyncio.to_thread(claimer.release, claim, "stopped before sending")
                return
            try:
                outcome = await transport.send_batch(claim.emails, claim.key)
            except BatchRejected as exc:
                outcome_rejected = {e.delivery_id: exc.reason for e in claim.emails}
                await asyncio.to_thread(claimer.record, claim, {}, outcome_rejected)
                report.failed_now += len(outcome_rejected)
                prog.failed += len(outcome_rejected)
                continue
            except OutcomeUnknown as exc:
                requeued[claim.number] = requeued.get(claim.number, 0) + 1
                # provably not sent (429s, refused connections): worth another go in this run
                if exc.maybe_sent or requeued[claim.number] > REQUEUE_LIMIT:
                    claimer.skip.add(claim.number)
                    report.unknown_batches += 1
                await asyncio.to_thread(claimer.release, claim, str(exc), exc.partial)
                continue
            except (QuotaExceeded, AuthError) as exc:
                await asyncio.to_thread(claimer.release, claim, str(exc), exc.partial)
                stop.append(exc)
                return
            except BaseException:
                # cancelled (Ctrl-C) or a bug: the request may have gone out; re-send later
                await asyncio.shield(asyncio.to_thread(claimer.release, claim, "interrupted"))
                raise
            await asyncio.to_thread(claimer.record, claim, outcome.accepted, outcome.rejected)
            report.sent_now += len(outcome.accepted)
            report.failed_now += len(outcome.rejected)
            prog.sent += len(outcome.accepted)
            prog.failed += len(outcome.rejected)
            prog.batches += 1
            if progress is not None:
                progress(prog)

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        report.elapsed = time.monotonic() - started
        report.failed_now += claimer.unknown
        report.unknown_now = claimer.unknown
    if stop:
        exc = stop[0]
        cause = QUOTA_CAUSE if isinstance(exc, QuotaExceeded) else AUTH_CAUSE
        with store.write() as conn:
            transition(
                conn,
                campaign_id,
                CampaignStatus.PAUSED,
                f"{cause}: {exc}",
                expect=(CampaignStatus.SENDING,),
            )
        raise exc
    report.status = finish_if_done(store, campaign_id)
    with store.read() as conn:
        report.counts = status_counts(conn, campaign_id)
    return report


def finish_if_done(store: Store, campaign_id: str) -> str:
    """Mark the campaign ``sent`` when no batch is left to send; returns its status."""
    with store.write() as conn:
        left = conn.execute(
            sa.select(sa.func.count()).where(
                batch_t.c.campaign_id == campaign_id,
                batch_t.c.status.in_((BatchStatus.PENDING, BatchStatus.CLAIMED)),
            )
        ).scalar_one()
        if left == 0:
            failed = conn.execute(
                sa.select(sa.func.count()).where(
                    delivery_t.c.campaign_id == campaign_id,
                    delivery_t.c.status == DeliveryStatus.FAILED,
                )
            ).scalar_one()
            cause = (
                f"every batch answered; {failed} delivery(ies) failed"
                if failed
                else "every batch sent"
            )
            transition(
                conn, campaign_id, CampaignStatus.SENT, cause, expect=(CampaignStatus.SENDING,)
            )
        return str(get_campaign_row(conn, campaign_id)["status"])


def run_campaign(
    store: Store,
    config: Config,
    campaign_id: str,
    *,
    transport: Transport | None = None,
    limit: int | None = None,
    deadline: float | None = None,
    progress: ProgressCallback | None = None,
) -> RunReport:
    """Run a ``sending`` campaign to the end (or the deadline) in this process."""
    from sponsorcast.transport import make_transport

    async def main() -> RunReport:
        t = transport or make_transport(config, campaign_id)
        try:
            return await run_batches(
                store, config, campaign_id, t, limit=limit, deadline=deadline, progress=progress
            )
        finally:
            await t.aclose()

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        with store.write() as conn:
            transition(
                conn,
                campaign_id,
                CampaignStatus.PAUSED,
                "interrupted (Ctrl-C)",
                expect=(CampaignStatus.SENDING,),
            )
        raise


def send_campaign(
    store: Store,
    config: Config,
    plan: Plan,
    *,
    transport: Transport | None = None,
    limit: int | None = None,
    progress: ProgressCallback | None = None,
) -> RunReport:
    """``send``: snapshot (first time) or resume, then run to the end."""
    campaign_id = plan.campaign.id
    if plan.existing_status in (CampaignStatus.SENT, CampaignStatus.CANCELLED):
        with store.read() as conn:
            counts = status_counts(conn, campaign_id)
        return RunReport(
            campaign_id,
            plan.existing_status,
            config.transport,
            config.transport == "resend",
            sum(counts.values()),
            counts=counts,
            already_finished=True,
        )
    fresh = plan.existing_status is None
    if plan.existing_status in NOT_STARTED:
        with store.read() as conn:  # paused or failed before the start: nothing snapshotted yet
            fresh = get_campaign_row(conn, campaign_id)["started_at"] is None
    if fresh:
        validate_all(store, plan, config)
        snapshot(
            store, plan, config.resend.batch_size if config.resend.endpoint == "batch" else 100
        )
    with store.write() as conn:
        status = get_campaign_row(conn, campaign_id)["status"]
        if status in (CampaignStatus.PAUSED, CampaignStatus.FAILED):
            transition(
                conn, campaign_id, CampaignStatus.SENDING, "resumed by send", expect=(status,)
            )
    return run_campaign(
        store, config, campaign_id, transport=transport, limit=limit, progress=progress
    )


def send_test(
    store: Store,
    config: Config,
    plan: Plan,
    addresses: Sequence[str],
    *,
    transport: Transport | None = None,
) -> int:
    """``send --test``: the first recipient's email to the given addresses, "[TEST]" subject, no ledger."""
    from email_validator import EmailNotValidError, validate_email

    from sponsorcast.transport import make_transport

    for address in addresses:
        try:
            validate_email(address, check_deliverability=False)
        except EmailNotValidError as exc:
            raise BadInput(f"--test address {address!r} is not valid: {exc}.") from None
    with store.read() as conn:
        first = (
            conn.execute(select_recipients(plan.campaign.sponsor, plan.campaign.audience).limit(1))
            .mappings()
            .first()
        )
    sample: dict[str, Any] = (
        dict(first) if first else {"email": addresses[0], "tags": "", "fields": {}}
    )
    renderer = BatchRenderer(
        config=config,
        campaign_id=plan.campaign.id,
        campaign_tags=dict(plan.campaign.tags),
        sponsor=plan.sponsor,
        compiled=plan.compiled,
        from_address=plan.campaign.from_address or str(plan.sponsor.from_address),
        reply_to=plan.campaign.reply_to or plan.sponsor.reply_to,
        subject_prefix="[TEST] ",
    )
    # test emails are not in the ledger: negative ids keep them apart in the batch
    emails = [
        renderer.render_one({**sample, "recipient": a, "delivery_id": -(i + 1)})
        for i, a in enumerate(addresses)
    ]
    key = f"sc-test-{plan.campaign.id}-{secrets.token_hex(6)}"

    async def main() -> int:
        t = transport or make_transport(config, plan.campaign.id + "-test")
        try:
            outcome = await t.send_batch(emails, key)
        finally:
            await t.aclose()
        if outcome.rejected:
            raise BadInput(
                "The provider rejected the test email: "
                + "; ".join(outcome.rejected.values())
                + "."
            )
        return len(emails)

    return asyncio.run(main())
