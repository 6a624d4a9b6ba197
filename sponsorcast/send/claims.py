"""Claiming batches under leases, keeping each attempted batch's emails, recording answers.

A worker claims a ``pending`` batch, or a ``claimed`` one whose lease expired (or whose
holder on this host is dead), in one write transaction. A batch never attempted may still
change (suppressions re-checked, ``--limit`` splits it); then its emails are rendered and
kept in the batch row, with their hash and ``first_attempt_at``, all committed before the
request. Every later attempt re-sends the kept emails under the same key."""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from sponsorcast.audience import RECIPIENT_COLUMNS
from sponsorcast.config import Config
from sponsorcast.send.batches import BatchRenderer
from sponsorcast.send.brakes import BrakeWatch
from sponsorcast.send.caps import DailyCap
from sponsorcast.send.frequency import FrequencyHold
from sponsorcast.store import Store
from sponsorcast.store.lifecycle import (
    record_event,
    transition,
)
from sponsorcast.store.models import (
    BatchStatus,
    CampaignStatus,
    DeliveryStatus,
    utcnow,
)
from sponsorcast.store.tables import batch_t, campaign_t, delivery_t, lead_t
from sponsorcast.suppression import suppressed_condition
from sponsorcast.transport import BatchOutcome, freeze_emails, thaw_emails

if TYPE_CHECKING:
    from sponsorcast.transport import OutgoingEmail


KEY_WINDOW = timedelta(hours=24)  # how long Resend keeps idempotency keys


class ClaimAgain(Enum):
    """A claim closed a batch that had nothing left to send: claim the next one."""

    NEXT = "next"


@dataclass(frozen=True)
class Stopped:
    """The campaign is no longer sending (paused, cancelled…); ``reason`` says how."""

    reason: str
    capped: bool = False  # by the daily cap: a normal end, continued on a later day


@dataclass
class Claim:
    """A batch this process holds, rendered and ready to send."""

    number: int
    key: str
    emails: list[OutgoingEmail]


@dataclass
class Claimer:
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
    brakes: BrakeWatch | None = None
    cap: DailyCap | None = None
    frequency: FrequencyHold | None = None
    held: int = 0  # recipients the frequency cap skipped (or, in a follow-up, put back to wait)
    braked: str | None = None  # the reason, once this process's claim pulled the brake
    unknown: int = 0  # deliveries this process gave up on (outcome unknown, marked failed)
    # this process's workers take turns at the store: on SQLite a waiting writer would
    # otherwise sleep in the busy handler's coarse steps instead of starting at once
    lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(self) -> Claim | ClaimAgain | Stopped | None:
        """Claim the next batch; ``Stopped`` says why the campaign stopped; None: nothing claimable."""
        with self.lock:
            return self._claim()

    def _claim(self) -> Claim | ClaimAgain | Stopped | None:
        now = utcnow()
        reason = None
        if self.brakes is not None:
            # counted in a read transaction: the write lock is not held over a campaign's counts
            with self.store.read() as conn:
                reason = self.brakes.check(conn, self.campaign_id)
        with self.store.write() as conn:
            status = conn.execute(
                sa.select(campaign_t.c.status).where(campaign_t.c.id == self.campaign_id)
            ).scalar_one()
            if status == CampaignStatus.SENT:  # another process finished it
                return None
            if status != CampaignStatus.SENDING:
                return Stopped(f"campaign is {status}")
            if self.limit_left is not None and self.limit_left <= 0:
                return None
            if reason is not None:
                transition(
                    conn,
                    self.campaign_id,
                    CampaignStatus.PAUSED,
                    reason,
                    expect=(CampaignStatus.SENDING,),
                )
                self.braked = reason
                return Stopped(reason)
            row = self._next_batch(conn, now)
            if row is None:
                return None
            number = row.number
            frozen: bytes | None = None
            if row.first_attempt_at is None:
                left = self.limit_left
                if self.cap is not None:
                    today, why = self.cap.left(conn, now)
                    if today <= 0:
                        return Stopped(why, capped=True)
                    left = today if left is None else min(left, today)
                self._prepare_first_attempt(conn, number, left, now)
                members = list(self._members(conn, number))
                if not members:
                    conn.execute(
                        batch_t.update()
                        .where(*self._batch(number))
                        .values(status=BatchStatus.DONE, finished_at=now, lease_owner=None)
                    )
                    return ClaimAgain.NEXT
                emails = self.renderer.render_batch(members)
                frozen = freeze_emails(emails)
            elif now - row.first_attempt_at > KEY_WINDOW:
                self._give_up(conn, number, stale=True)
                return ClaimAgain.NEXT
            elif row.payload is not None:
                # the exact emails of the first attempt, whatever changed in the leads,
                # the sponsor or the config since: the provider sees the identical body
                emails = thaw_emails(bytes(row.payload))
            else:  # attempted by a version that kept only the hash: re-render and compare
                emails = self.renderer.render_batch(list(self._members(conn, number)))
            digest = payload_hash(emails)
            if row.payload_hash and row.payload_hash != digest:
                self._give_up(conn, number, stale=False)
                return ClaimAgain.NEXT
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

    def _prepare_first_attempt(
        self, conn: sa.Connection, number: int, left: int | None, now: datetime
    ) -> None:
        """Before a batch's first request it may still change: suppressions, the frequency
        cap, and a split when fewer than its emails may go (``--limit``, the daily cap)."""
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
        if self.frequency is not None:
            self.held += self.frequency.apply(conn, self.campaign_id, number, now)
        if left is None:
            return
        ids = (
            conn.execute(sa.select(delivery_t.c.id).where(*in_batch).order_by(delivery_t.c.id))
            .scalars()
            .all()
        )
        if len(ids) <= left:
            return
        cut = ids[left]
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
            sa.select(
                delivery_t.c.id.label("delivery_id"),
                delivery_t.c.recipient,
                delivery_t.c.variant,
                *cols,
            )
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
    ) -> tuple[int, int]:
        """Write the provider's answer for a batch in one transaction.

        Returns how many deliveries this answer moved to ``sent`` and to ``failed``: a batch
        whose lease expired may be answered twice (the second time from the provider's
        idempotency cache), and only the first answer counts.
        """
        now = utcnow()
        with self.lock, self.store.write() as conn:
            ids = [*accepted, *rejected]
            open_ids = (
                set(
                    conn.execute(
                        sa.select(delivery_t.c.id).where(delivery_t.c.id.in_(ids), _unsent)
                    ).scalars()
                )
                if ids
                else set()
            )
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
        return len(open_ids & set(accepted)), len(open_ids & set(rejected))

    def release(self, claim: Claim, reason: str, partial: object | None = None) -> None:
        """Outcome unknown: hand the batch back, to be re-sent under its key by a later run.

        ``partial`` (one-by-one mode) holds the emails accepted before the failure: they are
        recorded as sent now; the re-send repeats them under their own keys, which the
        provider answers from its idempotency cache.
        """

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
