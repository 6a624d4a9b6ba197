"""Running a campaign: workers claim, send and record batches until none is left."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import TYPE_CHECKING

import sqlalchemy as sa

from sponsorcast.config import Config
from sponsorcast.errors import (
    AuthError,
    BatchRejected,
    CampaignPaused,
    OutcomeUnknown,
    QuotaExceeded,
)
from sponsorcast.send.abtest import ab_state, held_count
from sponsorcast.send.batches import make_renderer
from sponsorcast.send.brakes import BrakeWatch
from sponsorcast.send.caps import DailyCap
from sponsorcast.send.claims import ClaimAgain, Claimer, Stopped
from sponsorcast.send.followups import add_due, waiting
from sponsorcast.send.frequency import FrequencyHold
from sponsorcast.send.opening import open_send, shared_budget
from sponsorcast.send.pick import pick_if_due
from sponsorcast.send.plan import NOT_STARTED, Plan
from sponsorcast.send.reports import Progress, ProgressCallback, RunReport
from sponsorcast.send.rolling import add_new_leads
from sponsorcast.store import Store
from sponsorcast.store.lifecycle import (
    get_campaign_row,
    status_counts,
    transition,
)
from sponsorcast.store.models import (
    BatchStatus,
    CampaignStatus,
    DeliveryStatus,
    utcnow,
)
from sponsorcast.store.tables import batch_t, delivery_t
from sponsorcast.transport import make_transport
from sponsorcast.wording import count

if TYPE_CHECKING:
    from sponsorcast.send.keyprobe import KeyProbe
    from sponsorcast.transport import Transport


QUOTA_CAUSE = "provider quota reached"  # a status_reason starting so: run-due resumes the campaign


INTERRUPTED_CAUSE = "interrupted (Ctrl-C)"
AUTH_CAUSE = "provider refused the API key"


REQUEUE_LIMIT = 3  # times one run puts back a batch that was provably not sent


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

    renderer = make_renderer(store, config, campaign_id)
    with store.read() as conn:
        row = get_campaign_row(conn, campaign_id)
    total = row["total_recipients"]
    claimer = Claimer(
        store,
        config,
        campaign_id,
        renderer,
        limit_left=limit,
        brakes=BrakeWatch(config.brakes),
        cap=DailyCap.of(renderer.sponsor, config.timezone),
        frequency=FrequencyHold.of(renderer.sponsor, follow_up=row["follows"] is not None),
    )
    report = RunReport(
        campaign_id, CampaignStatus.SENDING, transport.name, transport.sends_for_real, total
    )
    prog = Progress(total=total)
    started = time.monotonic()
    first_claim: list[float] = []  # when the first batch was claimed: sending starts there
    stop: list[BaseException] = []
    requeued: dict[int, int] = {}
    concurrency = config.resend.concurrency if transport.sends_for_real else 1

    async def worker() -> None:
        while not stop:
            if deadline is not None and time.monotonic() >= deadline:
                report.stopped_reason = report.stopped_reason or "time limit reached"
                return
            asked = time.monotonic()
            claim = await asyncio.to_thread(claimer.claim)
            if claim is ClaimAgain.NEXT:
                continue
            if claim is None:
                return
            if isinstance(claim, Stopped):
                if claim.capped:
                    report.capped = claim.reason
                else:
                    report.stopped_reason = claim.reason
                return
            if not first_claim or asked < first_claim[0]:  # workers ask at once: the earliest
                first_claim[:] = [asked]
            if stop:  # another worker hit quota or auth while this one was claiming
                await asyncio.to_thread(claimer.release, claim, "stopped before sending")
                return
            try:
                outcome = await transport.send_batch(claim.emails, claim.key)
            except BatchRejected as exc:
                outcome_rejected = {e.delivery_id: exc.reason for e in claim.emails}
                _, failed = await asyncio.to_thread(claimer.record, claim, {}, outcome_rejected)
                report.failed_now += failed
                prog.failed += failed
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
            answered = time.monotonic()  # the moment the ledger stamps as the batch's end
            sent, failed = await asyncio.to_thread(
                claimer.record, claim, outcome.accepted, outcome.rejected
            )
            report.sent_now += sent
            report.failed_now += failed
            prog.sent += sent
            prog.failed += failed
            prog.batches += 1
            # workers record in any order: the run ends at the latest answer
            prog.seconds = report.sending_seconds = max(
                report.sending_seconds, answered - first_claim[0]
            )
            if progress is not None:
                progress(prog)

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        report.elapsed = time.monotonic() - started
        report.failed_now += claimer.unknown
        report.unknown_now = claimer.unknown
        report.held = claimer.held
        if claimer.frequency is not None:
            report.frequency = claimer.frequency.cap.text
            report.follow_up = claimer.frequency.follow_up
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
    if claimer.braked is not None:
        raise CampaignPaused(
            f"Campaign '{campaign_id}' paused itself: {claimer.braked}.",
            hint=f"'sponsorcast report {campaign_id}' lists the bounces and complaints; once the "
            f"list is clean, 'sponsorcast campaigns resume {campaign_id} --force'.",
        )
    report.status = finish_if_done(store, campaign_id)
    with store.read() as conn:
        report.counts = status_counts(conn, campaign_id)
        report.test = ab_state(conn, campaign_id)
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
        if left == 0 and waiting(conn, campaign_id)[0] == 0 and held_count(conn, campaign_id) == 0:
            failed = conn.execute(
                sa.select(sa.func.count()).where(
                    delivery_t.c.campaign_id == campaign_id,
                    delivery_t.c.status == DeliveryStatus.FAILED,
                )
            ).scalar_one()
            cause = (
                f"every batch answered; {count(failed, 'delivery')} failed"
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

    async def main() -> RunReport:
        t = transport or make_transport(config, campaign_id, shared=shared_budget(store, config))
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
                INTERRUPTED_CAUSE,
                expect=(CampaignStatus.SENDING,),
            )
        raise


def paused_by_the_tool(reason: str | None) -> bool:
    """True for the pauses the tool made itself (quota, refused key, Ctrl-C), which a run may undo."""
    return (reason or "").startswith((QUOTA_CAUSE, AUTH_CAUSE, INTERRUPTED_CAUSE))


def send_campaign(
    store: Store,
    config: Config,
    plan: Plan,
    *,
    transport: Transport | None = None,
    limit: int | None = None,
    progress: ProgressCallback | None = None,
    include_new: bool = False,
    probe: KeyProbe | None = None,
) -> RunReport:
    """``send``: snapshot (first time) or resume, then run to the end. A rolling campaign (or
    ``include_new``) first adds the audience's leads it has not got yet (``send.rolling``);
    ``probe``: a helper asking about the key, used when the campaign is new."""
    campaign_id = plan.campaign.id
    batch_size = config.resend.batch_size if config.resend.endpoint == "batch" else 100
    top_up = plan.campaign.rolling or include_new
    if (
        plan.existing_status in (CampaignStatus.SENT, CampaignStatus.SENDING)
        and top_up
        and add_new_leads(store, config, campaign_id, batch_size)
    ):
        plan = replace(plan, existing_status=CampaignStatus.SENDING)
    if plan.campaign.follows and plan.existing_status == CampaignStatus.SENDING:
        add_due(store, config, campaign_id, batch_size)
    if plan.campaign.test is not None and plan.existing_status == CampaignStatus.SENDING:
        pick_if_due(store, campaign_id, batch_size, utcnow())
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
        transport = open_send(store, config, plan, batch_size, transport=transport, probe=probe)
        if plan.campaign.follows:
            add_due(store, config, campaign_id, batch_size)
    with store.write() as conn:
        row = get_campaign_row(conn, campaign_id)
        status = row["status"]
        if status == CampaignStatus.PAUSED and not paused_by_the_tool(row["status_reason"]):
            raise CampaignPaused(
                f"Campaign '{campaign_id}' was paused ({row['status_reason'] or 'by a person'}); "
                "send does not undo a pause, so nothing was sent.",
                hint=f"'sponsorcast campaigns resume {campaign_id}' first, then send again.",
            )
        if status in (CampaignStatus.PAUSED, CampaignStatus.FAILED):
            transition(
                conn, campaign_id, CampaignStatus.SENDING, "resumed by send", expect=(status,)
            )
    return run_campaign(
        store, config, campaign_id, transport=transport, limit=limit, progress=progress
    )
