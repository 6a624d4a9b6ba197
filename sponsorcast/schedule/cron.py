"""``run-due``, for cron: start what is due, resume what is sending or paused for quota, mark what is too late.

Overlapping runs are safe because the send engine snapshots a campaign once and claims
batches under leases. Every function takes ``now`` so that tests (and ``SPONSORCAST_NOW``)
control the clock.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from sponsorcast.config import Config
from sponsorcast.durations import format_duration
from sponsorcast.errors import (
    DEBUG_ENV,
    AuthError,
    BadInput,
    ConfigError,
    ExitCode,
    NothingToSend,
    QuotaExceeded,
    SponsorcastError,
    debug_requested,
)
from sponsorcast.schedule.times import show_time
from sponsorcast.send import (
    QUOTA_CAUSE,
    Progress,
    campaign_hash,
    plan_send,
    run_campaign,
    take_snapshot,
    validate_all,
)
from sponsorcast.send.followups import add_due
from sponsorcast.send.pick import pick_if_due
from sponsorcast.send.rolling import add_new_leads
from sponsorcast.store import Store
from sponsorcast.store.lifecycle import (
    get_campaign_row,
    transition,
)
from sponsorcast.store.models import CampaignStatus, utcnow
from sponsorcast.store.tables import campaign_t, event_t
from sponsorcast.wording import count

if TYPE_CHECKING:
    from sponsorcast.send import RunReport
    from sponsorcast.transport import Transport

DEFAULT_MAX_LATENESS = timedelta(hours=24)


# A campaign paused by the provider's quota is tried again at most this often (real clock), so
# that cron does not mail the same "quota" line every five minutes until the quota resets.
QUOTA_RETRY = timedelta(minutes=30)


PROGRESS_EVERY = 60.0  # seconds between "so far" lines of a long run


RUN_DUE_CAUSE = "run-due"


Log = Callable[[str], None]


@dataclass
class CampaignOutcome:
    """What one run-due did to one campaign."""

    campaign_id: str
    action: str  # started | resumed | missed | refused | failed | paused | auth | joined
    ok: bool
    exit_code: ExitCode = ExitCode.OK
    report: RunReport | None = None


@dataclass
class RunDueReport:
    """Everything one run-due did; empty when there was nothing to do."""

    outcomes: list[CampaignOutcome] = field(default_factory=list)
    left_for_next_run: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        """3 for credentials, 1 when any campaign failed/paused/missed/refused, else 0."""
        codes = [o.exit_code for o in self.outcomes]
        if ExitCode.CONFIG in codes:
            return ExitCode.CONFIG
        # a campaign refused for bad input is still a run that did not do its work: 1, not 2
        return ExitCode.FAILED if any(c != ExitCode.OK for c in codes) else ExitCode.OK


def _quiet(_: str) -> None:
    return None


def due_campaigns(conn: sa.Connection, now: datetime) -> list[sa.Row[tuple[str, str]]]:
    """(id, status) of scheduled campaigns whose time has come, sending ones, quota-paused
    ones, and sent rolling ones (their audience may have new leads)."""

    c = campaign_t.c
    query = (
        sa.select(c.id, c.status)
        .where(
            sa.or_(
                sa.and_(c.status == CampaignStatus.SCHEDULED, c.send_at <= now),
                c.status == CampaignStatus.SENDING,
                sa.and_(c.status == CampaignStatus.SENT, c.rolling.is_(True)),
                sa.and_(c.status == CampaignStatus.PAUSED, c.status_reason.like(f"{QUOTA_CAUSE}%")),
            )
        )
        .order_by(sa.func.coalesce(c.send_at, c.started_at, c.created_at), c.id)
    )
    return list(conn.execute(query).all())  # type: ignore[arg-type]


def run_due(
    store: Store,
    config: Config,
    *,
    now: datetime | None = None,
    max_seconds: float | None = None,
    max_lateness: timedelta = DEFAULT_MAX_LATENESS,
    transport: Transport | None = None,
    log: Log = _quiet,
    quota_retry: timedelta = QUOTA_RETRY,
) -> RunDueReport:
    """Start due campaigns, resume sending and quota-paused ones, one after another, within a time budget.

    ``log`` receives one line per thing that happened (nothing when there was nothing to do).
    A credentials error stops the whole run (every other campaign would fail the same way).
    """
    now = now or utcnow()
    deadline = time.monotonic() + max_seconds if max_seconds is not None else None
    report = RunDueReport()
    with store.read() as conn:
        due = due_campaigns(conn, now)
    if not due:
        return report
    if config.transport == "resend" and not config.secrets.resend_api_key and transport is None:
        names = ", ".join(r.id for r in due)
        log(f"RESEND_API_KEY is not set; nothing was started or resumed ({names}).")
        report.outcomes.append(CampaignOutcome(names, "auth", False, ExitCode.CONFIG))
        return report
    for index, row in enumerate(due):
        if deadline is not None and time.monotonic() >= deadline:
            report.left_for_next_run = [r.id for r in due[index:]]
            log(
                f"Time limit reached; left for the next run: {', '.join(report.left_for_next_run)}."
            )
            break
        try:
            outcome = _run_one(
                store,
                config,
                row.id,
                row.status,
                now,
                max_lateness,
                deadline,
                transport,
                log,
                quota_retry,
            )
        except AuthError as exc:
            log(
                f"Campaign '{row.id}': the provider refused the credentials: {exc.message} "
                "Stopping this run; fix the key, then 'sponsorcast campaigns resume "
                f"{row.id}' (other campaigns were left as they were)."
            )
            report.outcomes.append(CampaignOutcome(row.id, "auth", False, ExitCode.CONFIG))
            break
        except SponsorcastError as exc:
            hint = f" ({exc.hint})" if exc.hint else ""
            log(f"Campaign '{row.id}' ERROR: {exc.message}{hint}")
            report.outcomes.append(CampaignOutcome(row.id, "error", False, exc.exit_code))
            continue
        except Exception as exc:
            log(
                f"Campaign '{row.id}' ERROR: unexpected {type(exc).__name__}: {exc} "
                f"(run with {DEBUG_ENV}=1 for the traceback, and report it)."
            )
            if debug_requested():
                raise
            report.outcomes.append(CampaignOutcome(row.id, "error", False, ExitCode.FAILED))
            continue
        if outcome is not None:
            report.outcomes.append(outcome)
    return report


def _run_one(
    store: Store,
    config: Config,
    campaign_id: str,
    status: str,
    now: datetime,
    max_lateness: timedelta,
    deadline: float | None,
    transport: Transport | None,
    log: Log,
    quota_retry: timedelta,
) -> CampaignOutcome | None:

    if status == CampaignStatus.SCHEDULED:
        return _start_scheduled(
            store, config, campaign_id, now, max_lateness, deadline, transport, log
        )
    action = "resumed"
    if status in (CampaignStatus.SENDING, CampaignStatus.SENT):
        with store.read() as conn:
            row = get_campaign_row(conn, campaign_id)
        batch = config.resend.batch_size if config.resend.endpoint == "batch" else 100
        added = add_new_leads(store, config, campaign_id, batch) if row["rolling"] else 0
        if added:
            log(f"Campaign '{campaign_id}': {count(added, 'new lead')} of its audience added.")
        if row["follows"]:
            due = add_due(store, config, campaign_id, batch, now)
            if due.added:
                skipped = (
                    f" ({due.skipped} skipped: no longer in its audience)" if due.skipped else ""
                )
                log(f"Campaign '{campaign_id}': {count(due.added, 'recipient')} came due{skipped}.")
        elif not added and status == CampaignStatus.SENT:
            return None  # a rolling campaign with nobody new: nothing to say
        if row["ab_test"] and row["winner"] is None:
            picked = pick_if_due(store, campaign_id, batch, now)
            if picked is not None:
                log(picked)
    if status == CampaignStatus.PAUSED:
        with store.write() as conn:
            reason = get_campaign_row(conn, campaign_id)["status_reason"] or ""
            if not reason.startswith(QUOTA_CAUSE):
                return None
            paused_at = conn.execute(
                sa.select(sa.func.max(event_t.c.occurred_at)).where(
                    event_t.c.campaign_id == campaign_id, event_t.c.type == "campaign.paused"
                )
            ).scalar()
            if paused_at is not None and utcnow() - paused_at < quota_retry:
                return None  # too soon to ask the provider again
            if not transition(
                conn,
                campaign_id,
                CampaignStatus.SENDING,
                f"{RUN_DUE_CAUSE}: resumed after {reason}",
                expect=(CampaignStatus.PAUSED,),
            ):
                return None  # resumed or changed by someone else meanwhile
        log(f"Campaign '{campaign_id}': resuming after the provider's quota pause.")
    return _run(store, config, campaign_id, action, deadline, transport, log)


def _start_scheduled(
    store: Store,
    config: Config,
    campaign_id: str,
    now: datetime,
    max_lateness: timedelta,
    deadline: float | None,
    transport: Transport | None,
    log: Log,
) -> CampaignOutcome | None:

    with store.read() as conn:
        row = get_campaign_row(conn, campaign_id)
    send_at: datetime = row["send_at"]
    late = now - send_at
    if late > max_lateness:
        cause = (
            f"{RUN_DUE_CAUSE}: {format_duration(late)} past its send time "
            f"{show_time(send_at, config)} (more than --max-lateness {format_duration(max_lateness)})"
        )
        with store.write() as conn:
            moved = transition(
                conn, campaign_id, CampaignStatus.MISSED, cause, expect=(CampaignStatus.SCHEDULED,)
            )
        if not moved:
            return None
        log(
            f"Campaign '{campaign_id}' MISSED: {format_duration(late)} past its send time "
            f"{show_time(send_at, config)}, more than --max-lateness {format_duration(max_lateness)}; "
            f"not started. Send it by hand with 'sponsorcast send {row['source_path']}', "
            "or schedule it again."
        )
        return CampaignOutcome(campaign_id, "missed", False, ExitCode.FAILED)

    path = _source_path(row["source_path"], config)
    refusal = None
    if path is None:
        refusal = (
            f"its file {row['source_path']} no longer exists, so what was scheduled cannot be "
            "checked; not started. Restore the file and schedule it again."
        )
    else:
        try:
            current = campaign_hash(store, config, path)
        except SponsorcastError as exc:
            current = f"unreadable: {exc.message}"
        if current != row["content_hash"]:
            refusal = (
                f"{path} (or a partial or layout it uses) changed after it was scheduled; not "
                f"started. Run 'sponsorcast schedule {path}' to schedule the new version, or "
                "restore the file."
            )
    if refusal is not None:
        log(f"Campaign '{campaign_id}' REFUSED: {refusal}")
        return CampaignOutcome(campaign_id, "refused", False, ExitCode.FAILED)

    assert path is not None
    try:
        plan = plan_send(store, config, path)
        if plan.campaign.content_hash != row["content_hash"]:  # edited since the check above
            log(
                f"Campaign '{campaign_id}' REFUSED: {path} changed while run-due was reading it; "
                "not started. Run 'sponsorcast schedule' again for the new version."
            )
            return CampaignOutcome(campaign_id, "refused", False, ExitCode.FAILED)
        # send the scheduled time with it, not the file's (it may be local or overridden by --at)
        plan = dataclasses.replace(
            plan, campaign=dataclasses.replace(plan.campaign, send_at=send_at)
        )
        validate_all(store, plan, config)
    except (ConfigError, NothingToSend) as exc:
        # a failed preflight leaves it scheduled: fixed before the next run, it starts then
        hint = f" ({exc.hint})" if exc.hint else ""
        log(f"Campaign '{campaign_id}' NOT STARTED, still scheduled: {exc.message}{hint}")
        return CampaignOutcome(campaign_id, "not started", False, exc.exit_code)
    except BadInput as exc:
        return _fail_start(store, campaign_id, exc, log)
    if not take_snapshot(store, plan, _batch_size(config), cause=RUN_DUE_CAUSE):
        with store.read() as conn:
            status = get_campaign_row(conn, campaign_id)["status"]
        if status != CampaignStatus.SENDING:
            return None  # unscheduled, cancelled or finished by someone else meanwhile
        return _run(store, config, campaign_id, "joined", deadline, transport, log)
    if plan.campaign.follows:  # its recipients who are due already go in this run
        add_due(store, config, campaign_id, _batch_size(config), now)
    lateness = (
        f", {format_duration(late)} after its send time" if late >= timedelta(minutes=1) else ""
    )
    with store.read() as conn:
        total = get_campaign_row(conn, campaign_id)["total_recipients"]
    log(f"Campaign '{campaign_id}': starting, {count(total, 'recipient')}{lateness}.")
    return _run(store, config, campaign_id, "started", deadline, transport, log)


def _fail_start(store: Store, campaign_id: str, exc: SponsorcastError, log: Log) -> CampaignOutcome:
    cause = f"{RUN_DUE_CAUSE}: could not start: {exc.message}"
    with store.write() as conn:
        transition(
            conn,
            campaign_id,
            CampaignStatus.FAILED,
            cause[:1000],
            expect=(CampaignStatus.SCHEDULED,),
            extra={"finished_at": None},
        )
    hint = f" ({exc.hint})" if exc.hint else ""
    log(
        f"Campaign '{campaign_id}' FAILED to start, nothing was sent: {exc.message}{hint} "
        "Fix it, then schedule it again or send it by hand."
    )
    return CampaignOutcome(campaign_id, "failed", False, exc.exit_code)


def _batch_size(config: Config) -> int:
    return config.resend.batch_size if config.resend.endpoint == "batch" else 100


def _source_path(stored: str | None, config: Config) -> Path | None:
    """The campaign file: as stored (absolute since ``schedule``), else beside the config file."""
    if not stored:
        return None
    path = Path(stored)
    if path.is_file():
        return path
    if not path.is_absolute() and config.path is not None and (config.path.parent / path).is_file():
        return config.path.parent / path
    return None


def _run(
    store: Store,
    config: Config,
    campaign_id: str,
    action: str,
    deadline: float | None,
    transport: Transport | None,
    log: Log,
) -> CampaignOutcome | None:

    last = time.monotonic()

    def progress(p: Progress) -> None:
        nonlocal last
        if time.monotonic() - last >= PROGRESS_EVERY:
            last = time.monotonic()
            log(
                f"Campaign '{campaign_id}': {p.sent} sent, {p.failed} failed so far in this run "
                f"({p.emails_per_second:.1f} emails/s)."
            )

    try:
        result = run_campaign(
            store, config, campaign_id, transport=transport, deadline=deadline, progress=progress
        )
    except QuotaExceeded as exc:
        log(
            f"Campaign '{campaign_id}' PAUSED: the provider's quota is used up ({exc.message}); "
            f"run-due tries it again {format_duration(QUOTA_RETRY)} after the pause."
        )
        return CampaignOutcome(campaign_id, "paused", False, ExitCode.FAILED)
    left = sum(n for s, n in result.counts.items() if s in ("pending", "sending"))
    quiet = (
        action in ("resumed", "joined")
        and result.sent_now == 0
        and result.failed_now == 0
        and result.unknown_batches == 0
        and result.status == CampaignStatus.SENDING
    )
    if quiet:
        # another run holds every remaining batch: nothing happened here worth a line
        return None
    line = (
        f"Campaign '{campaign_id}': {result.sent_now} sent, {result.failed_now} failed in this run "
        f"({result.emails_per_second:.1f} emails/s); status {result.status}"
    )
    if not result.sends_for_real:
        line += " (outbox transport: nothing was sent)"
    if result.status == CampaignStatus.SENDING and left:
        if result.capped:
            line += f", {left} left ({result.capped})"
        else:
            why = result.stopped_reason or "batches held by another run"
            line += f", {left} left ({why}; the next run continues)"
    elif result.status not in (CampaignStatus.SENT, CampaignStatus.SENDING):
        line += f" ({result.stopped_reason or 'stopped'})"
    log(line + ".")
    ok = True
    if result.failed_now:
        log(
            f"Campaign '{campaign_id}': {count(result.failed_now, 'delivery')} failed; "
            f"'sponsorcast deliveries {campaign_id} --status failed' lists them."
        )
        ok = False
    if result.unknown_batches:
        log(
            f"Campaign '{campaign_id}': {count(result.unknown_batches, 'batch')} got no answer from the "
            "provider; the next run re-sends them under their idempotency keys."
        )
        ok = False
    return CampaignOutcome(campaign_id, action, ok, ExitCode.OK if ok else ExitCode.FAILED, result)
