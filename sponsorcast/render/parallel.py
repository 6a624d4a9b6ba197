"""Checking a large audience in shards, one process per CPU, merged into one report."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sponsorcast import errors
from sponsorcast.audience import iter_recipients, select_recipients
from sponsorcast.branding import BRANDING_KEYS
from sponsorcast.campaign import load_campaign
from sponsorcast.errors import BadInput, InputFileError, SponsorcastError, debug_requested
from sponsorcast.render.check import (
    CheckReport,
    Found,
    check_recipients,
    collect_problems,
    merge_found,
    report_of,
)
from sponsorcast.render.compile import CompiledCampaign, compile_campaign
from sponsorcast.render.partials import with_layout, with_partials
from sponsorcast.render.recipients import RecipientSource
from sponsorcast.store import open_store
from sponsorcast.store.models import Sponsor
from sponsorcast.store.tables import lead_t

if TYPE_CHECKING:
    from sponsorcast.store import Store


def check_audience(compiled: CompiledCampaign, source: RecipientSource) -> CheckReport:
    """Render every recipient of the campaign's audience; split over CPUs when it is large."""
    campaign = compiled.campaign
    shards = source.shards(campaign.sponsor, campaign.audience)
    if shards > 1:
        return _check_in_parallel(compiled, source, shards)
    rows = source.recipients(campaign.sponsor, campaign.audience)
    return check_recipients(compiled, counted(rows, source.progress))


PROGRESS_EVERY = 1000  # recipients between progress calls


def counted(
    rows: Iterable[Mapping[str, Any]], progress: Callable[[int], None] | None, scale: int = 1
) -> Iterator[Mapping[str, Any]]:
    """The rows, calling ``progress`` with about how many are done every PROGRESS_EVERY rows
    (``scale``: this is one of that many equal shards, so the whole is about ``scale`` times)."""
    if progress is None:
        yield from rows
        return
    n = 0
    for n, row in enumerate(rows, start=1):
        if n % PROGRESS_EVERY == 0:
            progress(n * scale)
        yield row


def _check_in_parallel(
    compiled: CompiledCampaign, source: RecipientSource, shards: int
) -> CheckReport:

    campaign = compiled.campaign
    sponsor = source.sponsor(campaign.sponsor)
    job = _ShardJob(
        store_url=source.config.store_url,
        sponsor={
            k: getattr(sponsor, k)
            for k in (
                "id",
                "name",
                "from_address",
                "reply_to",
                "postal_address",
                "layout",
                *BRANDING_KEYS,
            )
        },
        path=str(campaign.path),
        content_hash=campaign.content_hash,
        unsubscribe_mailto=source.config.tracking.unsubscribe_mailto,
        root=str(source.config.root),
        language=source.config.language,
        shards=shards,
    )
    # Plain subprocesses rather than multiprocessing: nothing depends on how the main module
    # was started (``python -m sponsorcast`` has no __main__ guard for spawn to respect), and no
    # database connection is inherited through fork.
    debug = debug_requested()
    workers: list[tuple[int, subprocess.Popen[bytes]]] = []
    for shard in range(1, shards):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from sponsorcast.render import shard_worker; shard_worker()",
                json.dumps({**job.__dict__, "shard": shard}),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=None if debug else subprocess.DEVNULL,  # a crash is handled: see below
        )
        workers.append((shard, proc))
    try:
        checked, found = _check_shard(
            job, 0, compiled=compiled, store=source.store(), progress=source.progress
        )
        for shard, proc in workers:
            output, _ = proc.communicate()
            try:
                answer = json.loads(output) if proc.returncode == 0 else None
            except ValueError:
                answer = None
            if answer is None:  # the worker died: do its share here rather than fail
                more, their = _check_shard(job, shard, compiled=compiled, store=source.store())
            elif "error" in answer:
                raise _ShardFailure(**answer["error"]).error()
            else:
                more = answer["checked"]
                their = {
                    (p, line, msg): [n, order, email]
                    for p, line, msg, n, order, email in answer["found"]
                }
            checked += more
            merge_found(found, their)
    finally:
        for _shard, proc in workers:
            if proc.returncode is None:  # not reaped: the main shard failed first
                proc.kill()
                proc.communicate()  # reaps it and closes its pipes
    return report_of(campaign, checked, found)


@dataclass(frozen=True)
class _ShardFailure:
    """A sponsorcast error in a shard process, carried back as data."""

    kind: str
    reason: str
    path: str | None
    line: int | None
    hint: str | None

    def error(self) -> Exception:

        cls = getattr(errors, self.kind, None)
        if isinstance(cls, type) and issubclass(cls, errors.InputFileError):
            return cls(self.reason, path=self.path, line=self.line, hint=self.hint)
        if isinstance(cls, type) and issubclass(cls, errors.SponsorcastError):
            return cls(self.reason, hint=self.hint)
        return errors.BadInput(self.reason, hint=self.hint)


def shard_worker() -> None:
    """Entry point of a shard process: the job as JSON in argv[1], the result as JSON on stdout."""

    data = json.loads(sys.argv[1])
    shard = data.pop("shard")
    try:
        checked, found = _check_shard(_ShardJob(**data), shard)
        answer: dict[str, Any] = {
            "checked": checked,
            "found": [[*key, *value] for key, value in found.items()],
        }
    except InputFileError as exc:
        answer = {
            "error": {
                "kind": type(exc).__name__,
                "reason": exc.reason,
                "path": exc.path,
                "line": exc.line,
                "hint": exc.hint,
            }
        }
    except SponsorcastError as exc:
        answer = {
            "error": {
                "kind": type(exc).__name__,
                "reason": exc.message,
                "path": None,
                "line": None,
                "hint": exc.hint,
            }
        }
    sys.stdout.write(json.dumps(answer))


@dataclass(frozen=True)
class _ShardJob:
    """What a shard process needs to check its part of an audience."""

    store_url: str
    sponsor: dict[str, Any]
    path: str
    content_hash: str
    unsubscribe_mailto: str
    language: str
    root: str  # the project folder, for partials
    shards: int


def _check_shard(
    job: _ShardJob,
    shard: int,
    *,
    compiled: CompiledCampaign | None = None,
    store: Store | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, Found]:
    """Check the audience's leads whose id modulo ``job.shards`` is ``shard``."""

    own_store = store is None
    if compiled is None:
        campaign = with_partials(load_campaign(Path(job.path)), Path(job.root))
        campaign = with_layout(campaign, job.sponsor.get("layout"), Path(job.root))
        if campaign.content_hash != job.content_hash:
            raise BadInput(f"{job.path} changed while it was being checked; run the check again.")
        compiled = compile_campaign(
            campaign,
            Sponsor(**job.sponsor),
            unsubscribe_mailto=job.unsubscribe_mailto,
            language=job.language,
        )
    if store is None:
        store = open_store(job.store_url, migrate=False, create=False)
    campaign = compiled.campaign
    query = select_recipients(campaign.sponsor, campaign.audience).where(
        lead_t.c.id % job.shards == shard
    )
    try:
        with store.read() as conn:
            rows = counted(iter_recipients(conn, query), progress, scale=job.shards)
            return collect_problems(compiled, rows)
    finally:
        if own_store:
            store.dispose()
