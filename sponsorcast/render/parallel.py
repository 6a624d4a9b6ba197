"""Checking a large audience in shards, one process per CPU, merged into one report."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
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
from sponsorcast.render.recipients import RecipientSource, fork_usable
from sponsorcast.store import open_store
from sponsorcast.store.models import Sponsor
from sponsorcast.store.tables import lead_t
from sponsorcast.variants import with_variant

if TYPE_CHECKING:
    from sponsorcast.store import Store


def check_audience(
    compiled: CompiledCampaign,
    source: RecipientSource,
    *,
    beside: Callable[[], None] | None = None,
) -> CheckReport:
    """Render every recipient of the campaign's audience; split over CPUs when it is large.

    ``beside`` is called once the check's processes are forked: work that may run beside the
    check (a thread) starts there, since a fork must not copy a process with other threads.
    """
    campaign = compiled.campaign
    shards = source.shards(campaign.sponsor, campaign.audience)
    if shards > 1:
        return _check_in_parallel(compiled, source, shards, beside)
    if beside is not None:
        beside()
    rows = source.recipients(campaign.sponsor, campaign.audience)
    return check_recipients(compiled, counted(rows, source.progress))


def check_variants(
    compiled: Sequence[CompiledCampaign],
    source: RecipientSource,
    *,
    beside: Callable[[], None] | None = None,
) -> CheckReport:
    """``check_audience`` for each A/B variant of a campaign (or its one compilation): every
    variant rendered for every recipient, a problem's message naming its variant. ``beside``
    starts with the last variant's check (after its forks: every earlier one forks too)."""
    last = len(compiled) - 1
    reports = [
        check_audience(each, source, beside=beside if i == last else None)
        for i, each in enumerate(compiled)
    ]
    if len(reports) == 1:
        return reports[0]
    first = reports[0]
    problems = [
        replace(problem, message=f"variant '{each.campaign.variant}': {problem.message}")
        for each, report in zip(compiled, reports, strict=True)
        for problem in report.problems
    ]
    return CheckReport(first.campaign_id, first.path, first.checked, problems)


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


# The audience is cut into ranges of lead ids ("chunks") that the processes take as they go:
# a process with work beside the check (the send's snapshot and transport) takes fewer, and
# none sits idle while another still has a fixed share to do.
CHUNK_RECIPIENTS = 500  # about this many recipients a chunk
CHUNKS_PER_SHARD = 8  # at least, so that the processes can even out
MAX_CHUNKS = 1024  # 4 bytes each: every claim fits in one atomic pipe write (PIPE_BUF)


def _check_in_parallel(
    compiled: CompiledCampaign,
    source: RecipientSource,
    shards: int,
    beside: Callable[[], None] | None = None,
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
        chunks=chunks_of(*source.id_span(campaign.sponsor, campaign.audience), shards),
        variant=campaign.variant,
    )
    fork = fork_usable()
    mine: Iterable[int]
    claims: _Claims | None = None
    if fork:
        claims = mine = _Claims(len(job.chunks))
        workers: list[_Forked | _Spawned] = [
            _Forked(job, shard, compiled, claims) for shard in range(1, shards)
        ]
    else:  # a spawned process cannot share the claims: each gets every shards-th chunk
        mine = range(0, len(job.chunks), shards)
        workers = [_Spawned(job, shard) for shard in range(1, shards)]
    if beside is not None:
        beside()
    try:
        checked, found, done = _check_shard(
            job, mine, compiled=compiled, store=source.store(), progress=source.progress
        )
        for worker in workers:
            answer = worker.answer()
            if answer is None:  # the worker died: its chunks are done here below
                continue
            if "error" in answer:
                raise _ShardFailure(**answer["error"]).error()
            checked += answer["checked"]
            merge_found(
                found,
                {
                    (p, line, msg): [n, order, email]
                    for p, line, msg, n, order, email in answer["found"]
                },
            )
            done += answer["done"]
        finished = set(done)
        # what a worker took and never answered for, or never took: checked here, once
        missing = [k for k in range(len(job.chunks)) if k not in finished]
        if missing:
            more, their, _ = _check_shard(job, missing, compiled=compiled, store=source.store())
            checked += more
            merge_found(found, their)
    finally:
        for worker in workers:
            worker.stop()
        if claims is not None:
            claims.close()
    return report_of(campaign, checked, found)


def chunks_of(count: int, low: int | None, high: int | None, shards: int) -> list[list[int]]:
    """The id ranges ``[first, last]`` a check of ``count`` recipients with lead ids from
    ``low`` to ``high`` is cut into."""
    if not count or low is None or high is None:
        return []
    wanted = min(MAX_CHUNKS, max(shards * CHUNKS_PER_SHARD, count // CHUNK_RECIPIENTS))
    width = -(-(high - low + 1) // wanted)  # ceiling: at most ``wanted`` chunks
    return [[first, min(high, first + width - 1)] for first in range(low, high + 1, width)]


class _Claims:
    """Chunk numbers handed out through a pipe, each to exactly one process.

    Every number is written, as 4 bytes, before any process is forked, and the writing end is
    closed: a read of 4 bytes then takes one whole number (a pipe's reads are serialised and
    all the bytes are there), and an empty read says that every chunk is taken.
    """

    def __init__(self, count: int) -> None:
        if count > MAX_CHUNKS:
            raise ValueError(f"at most {MAX_CHUNKS} chunks fit the pipe in one write")
        self._read, write = os.pipe()
        try:
            data = struct.pack(f"<{count}I", *range(count))
            while data:
                data = data[os.write(write, data) :]
        finally:
            os.close(write)

    def __iter__(self) -> Iterator[int]:
        while True:
            number = os.read(self._read, 4)
            if len(number) < 4:
                return
            yield int(struct.unpack("<I", number)[0])

    def close(self) -> None:
        """Close this process's reading end."""
        os.close(self._read)


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


class _Spawned:
    """A shard checked by a new Python process (``shard_worker``), which loads everything anew.

    A plain subprocess rather than multiprocessing: nothing depends on how the main module
    was started (``python -m sponsorcast`` has no __main__ guard for spawn to respect).
    """

    def __init__(self, job: _ShardJob, shard: int) -> None:
        self.shard = shard
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from sponsorcast.render import shard_worker; shard_worker()",
                json.dumps({**job.__dict__, "shard": shard}),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=None if debug_requested() else subprocess.DEVNULL,  # a crash is handled
        )

    def answer(self) -> dict[str, Any] | None:
        """The shard's result, or None when the process died."""
        output, _ = self._proc.communicate()
        return _decoded(output) if self._proc.returncode == 0 else None

    def stop(self) -> None:
        """Kill the process if its answer was never read (the main shard failed first)."""
        if self._proc.returncode is None:
            self._proc.kill()
            self._proc.communicate()  # reaps it and closes its pipes


class _Forked:
    """A shard checked by a fork of this process: it starts with the campaign compiled.

    The child opens its own connection to the store (it never touches the parent's), writes
    its answer to a pipe and leaves with ``os._exit``, so nothing of the parent's is closed
    or flushed twice.
    """

    def __init__(
        self, job: _ShardJob, shard: int, compiled: CompiledCampaign, claims: Iterable[int]
    ) -> None:
        self.shard = shard
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            code = 1
            try:
                with os.fdopen(write_end, "wb") as out:
                    out.write(json.dumps(_shard_answer(job, claims, compiled)).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        self._pid: int | None = pid
        self._reader = os.fdopen(read_end, "rb")

    def answer(self) -> dict[str, Any] | None:
        """The shard's result, or None when the child died."""
        output = self._reader.read()
        self._reader.close()
        return _decoded(output) if self._reap(0) == 0 else None

    def stop(self) -> None:
        """Kill the child if its answer was never read (the main shard failed first)."""
        if self._pid is not None:
            os.kill(self._pid, signal.SIGKILL)
            self._reap(0)
        self._reader.close()

    def _reap(self, flags: int) -> int:
        pid, self._pid = self._pid, None
        if pid is None:
            return -1
        _, status = os.waitpid(pid, flags)
        return os.waitstatus_to_exitcode(status)


def _decoded(output: bytes) -> dict[str, Any] | None:
    try:
        answer = json.loads(output)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def shard_worker() -> None:
    """Entry point of a shard process: the job as JSON in argv[1], the result as JSON on stdout."""

    data = json.loads(sys.argv[1])
    shard = data.pop("shard")
    job = _ShardJob(**data)
    sys.stdout.write(json.dumps(_shard_answer(job, range(shard, len(job.chunks), job.shards))))


def _shard_answer(
    job: _ShardJob, chunks: Iterable[int], compiled: CompiledCampaign | None = None
) -> dict[str, Any]:
    """A shard's result as data: what was checked and found, and which chunks; or the error
    it met."""
    try:
        checked, found, done = _check_shard(job, chunks, compiled=compiled)
        answer: dict[str, Any] = {
            "checked": checked,
            "found": [[*key, *value] for key, value in found.items()],
            "done": done,
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
    return answer


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
    chunks: list[list[int]]  # [first, last] lead id of each chunk (``chunks_of``)
    variant: str | None = None  # the A/B variant checked


def _check_shard(
    job: _ShardJob,
    chunks: Iterable[int],
    *,
    compiled: CompiledCampaign | None = None,
    store: Store | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, Found, list[int]]:
    """Check the audience's leads of the given chunks (numbers into ``job.chunks``, taken
    one by one); what was checked and found, and the chunks done."""

    own_store = store is None
    if compiled is None:
        campaign = with_partials(load_campaign(Path(job.path)), Path(job.root))
        campaign = with_layout(campaign, job.sponsor.get("layout"), Path(job.root))
        if campaign.content_hash != job.content_hash:
            raise BadInput(f"{job.path} changed while it was being checked; run the check again.")
        if job.variant is not None:
            campaign = with_variant(
                campaign, next(v for v in campaign.variants if v.name == job.variant)
            )
        compiled = compile_campaign(
            campaign,
            Sponsor(**job.sponsor),
            unsubscribe_mailto=job.unsubscribe_mailto,
            language=job.language,
        )
    if store is None:
        store = open_store(job.store_url, migrate=False, create=False)
    campaign = compiled.campaign
    query = select_recipients(campaign.sponsor, campaign.audience)
    done: list[int] = []

    def rows(conn: Any) -> Iterator[Mapping[str, Any]]:
        for number in chunks:
            first, last = job.chunks[number]
            yield from iter_recipients(conn, query.where(lead_t.c.id.between(first, last)))
            done.append(number)

    try:
        with store.read() as conn:
            checked, found = collect_problems(
                compiled, counted(rows(conn), progress, scale=job.shards)
            )
            return checked, found, done
    finally:
        if own_store:
            store.dispose()
