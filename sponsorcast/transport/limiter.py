"""An async rate limiter shared by every request of a run: a window rule, never more.

Resend limits requests per team in fixed one-second windows. The rule that keeps a run under
it while any number of requests are in flight at once (latency never caps throughput):

1. A window rule on departures: never more than ``floor(limit)`` of them in any
   ``1 s + GUARD`` (below one a second: one per ``(1 s + GUARD) / limit``). The guard absorbs
   differences in how long requests take to reach the server: requests that leave within
   ``1 s + GUARD`` of each other cannot land in two windows the provider counts as one. A
   window's requests may leave near its start, ``GAP_SHARE`` of even spacing apart (so the
   event loop writes each before the next is due); even spacing (``1 / rate`` apart) would
   keep the same average but spread a run's first and last ``floor(limit)`` requests over a
   second.
2. A probe: the first request of a run goes alone, and the others wait for its answer (at
   most ``PROBE_WAIT``). It learns the limit before anything else leaves (auto mode), and it
   opens the first connection, which takes far longer to reach the server than any later
   request and would otherwise fall outside the guard. A request made before the run (the
   key check of ``transport.keycheck``) can stand in for it: ``reserve()`` gives it a slot,
   and ``seed()`` with its answer tells the limit.

Together they reach about 96 % of the limit (``SAFETY``) with no 429 in a steady run.

3. Shared slots (``shared=``, ``store/budget.py``): every sender of one team, in any process
   on any host, takes its departure slots from one budget in the store, under the same window
   rule, instead of counting on its own; the limit one of them learns is followed by all.
   Rules 1 and 2 stay local as well.

- ``RateLimiter(None)`` ("auto") starts at 2 requests/s and follows ``ratelimit-limit``.
- ``RateLimiter(10)`` is a ceiling: ``ratelimit-limit`` can lower the rate, never raise it.
- ``observe(headers, sent_at)`` after every answer; ``penalise(retry_after)`` after a 429
  pauses every caller.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import math
import re
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

_T = TypeVar("_T")

AUTO_START = 2.0
GUARD = 0.04  # seconds added to the one-second window of the rule
SAFETY = 1.0 / (1.0 + GUARD)  # the rule's average rate as a share of the limit
GAP_SHARE = 0.25  # departures at least this share of even spacing apart (a window's in 1/4 s)
PROBE_WAIT = 2.0  # longest wait for the first answer before the others go anyway
HISTORY = 60.0  # seconds of departures kept (answers can take up to the timeout)
_NUMBER = re.compile(r"\s*(\d+(?:\.\d+)?)")


class SharedGrant(Protocol):
    """A slot from a shared budget: ``delay`` seconds from now, or None (ask in ``retry_in``)."""

    @property
    def delay(self) -> float | None: ...

    @property
    def retry_in(self) -> float: ...

    @property
    def limit(self) -> float | None: ...


class SharedSlots(Protocol):
    """A request budget shared with other senders of the same team (``store.budget``)."""

    def take(self, per_window: int, window: float, gap: float) -> SharedGrant:
        """Take the next slot keeping at most ``per_window`` in any ``window`` seconds, at
        least ``gap`` after the one before."""
        ...

    def learned(self) -> float | None:
        """The limit another sender has learned already, if any."""
        ...

    def busy(self) -> bool:
        """True when slots have been handed out that are still ahead of now."""
        ...

    def learn(self, limit: float) -> None:
        """Tell every sender the limit the provider announced."""
        ...

    def hold(self, seconds: float) -> None:
        """No slot for anyone for ``seconds``."""
        ...


class RateLimiter:
    """Paced, burst-free admission: ``await acquire()`` before every request."""

    def __init__(
        self,
        ceiling: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedSlots | None = None,
    ) -> None:
        """``ceiling`` None means auto (start at 2/s, follow the server); ``shared``: take
        slots from a budget shared with the team's other senders."""
        if ceiling is not None and ceiling <= 0:
            raise ValueError("A rate ceiling must be positive.")
        self.ceiling = ceiling
        self.server_limit: float | None = None
        self._clock = clock
        self._hold_until = 0.0  # nobody leaves before this (429, remaining == 0)
        self._generation = 0  # bumped when reserved slots become invalid
        self._sent: list[float] = []  # our departure times, oldest first (last HISTORY s)
        self.holds = 0  # times a 429 or an exhausted window paused the callers
        self._wake: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        self._probe_at: float | None = None  # departure of the first request
        self._probe_claimed: float | None = None  # when the first caller became the probe
        self._answered = False  # observe() has been called since
        self._shared = shared
        self._take_lock: asyncio.Lock | None = None
        self._budget_thread: ThreadPoolExecutor | None = None
        self._untold: float | None = None  # a limit ``seed`` learned, not yet in the budget

    def clock(self) -> float:
        """The time on this limiter's clock (its slots and departures are on it)."""
        return self._clock()

    @property
    def limit(self) -> float:
        """The limit we believe applies, in requests per second (before the safety margin)."""
        known = self.server_limit
        if self.ceiling is None:
            return known if known is not None else AUTO_START
        return min(self.ceiling, known) if known is not None else self.ceiling

    @property
    def rate(self) -> float:
        """Requests per second allowed to leave, on average."""
        per_window, window, _ = self.window_rule
        return per_window / window

    @property
    def window_rule(self) -> tuple[int, float, float]:
        """``(n, seconds, gap)``: never more than n departures in any that many seconds, and
        each at least ``gap`` after the one before."""
        limit = self.limit
        if limit >= 1:
            per_window, window = math.floor(limit), 1.0 + GUARD
        else:
            per_window, window = 1, (1.0 + GUARD) / limit
        return per_window, window, window / per_window * GAP_SHARE

    async def acquire(self) -> float:
        """Wait for this request's turn; return its departure time (for ``observe``)."""
        probe = False  # this caller is the probe
        while True:
            now = self._clock()
            started = self._probe_at if self._probe_at is not None else self._probe_claimed
            if started is not None and not self._answered and not probe:
                if now < started + PROBE_WAIT:
                    await self._sleep(started + PROBE_WAIT - now)
                    continue
                self._answered = True  # no answer in time: go on without it
            if started is None:
                # claimed before any await: a shared slot is awaited, and the others must
                # already see that the probe is on its way
                self._probe_claimed = now
                probe = True
            if self._shared is None:
                slot = max(now, self._hold_until)  # the window rule below does the rest
            else:
                if probe and self.server_limit is None:
                    await self._await_team_probe()
                slot = max(await self._shared_slot(), self._hold_until)
                now = self._clock()
            generation = self._generation
            if slot > now:
                await self._sleep(slot - now)
            wait = self._window_wait()
            while wait > 0 and generation == self._generation:
                await self._sleep(wait)
                wait = self._window_wait()
            if generation == self._generation:
                departed = self._clock()
                self._remember(departed)
                if self._probe_at is None:
                    self._probe_at = departed
                return departed
            # the limit changed or a 429 came in while we waited: queue up again

    def left(self, departed: float, on_the_wire: float) -> None:
        """The request ``acquire`` let go at ``departed`` reached the wire at ``on_the_wire``
        (its headers were written): the window rule counts it from then. A run's first
        requests open their connections, and the very first pays for the client's lazy
        set-up, so they can reach the provider a tenth of a second after their slot; later
        ones, on open connections, do not, and counted from the slot they would land in the
        provider's window of the first ones."""
        if on_the_wire <= departed:
            return
        i = bisect.bisect_left(self._sent, departed)
        if i == len(self._sent) or self._sent[i] != departed:
            return  # already trimmed from the history, or never ours
        del self._sent[i]
        bisect.insort(self._sent, on_the_wire)

    def reserve(self) -> float:
        """A slot for one request made outside the run's event loop (the key check): blocks
        until it and returns it (the request leaves then). The request counts like any
        other."""
        while True:
            slot, retry_in = self._book()
            if slot is None:
                time.sleep(retry_in)
                continue
            now = self._clock()
            if slot > now:
                time.sleep(slot - now)
            return slot

    def book(self) -> float | None:
        """``reserve`` without the wait: the slot's time (this limiter's clock), which the
        request must not leave before, or None when the shared budget has none to give yet
        (nothing is booked then)."""
        return self._book()[0]

    def _book(self) -> tuple[float | None, float]:
        """Book the next slot; ``(None, retry_in)`` when the budget has none to give."""
        if self._shared is None:
            slot = max(self._clock(), self._hold_until)
        else:
            grant = self._shared.take(*self.window_rule)
            if grant.limit is not None:
                self._set_server_limit(grant.limit)
            if grant.delay is None:
                return None, grant.retry_in
            # the delay counts from the moment the budget granted it: after the take, which
            # may have waited for the store's lock
            slot = max(self._clock() + grant.delay, self._hold_until)
        self._remember(slot)
        return slot, 0.0

    def seed(self, headers: Mapping[str, str] | None, sent_at: float) -> None:
        """Start from the answer to a ``reserve()``d request. One that announced the limit
        stands in for the probe: the run's first requests go at once, at the known rate. No
        answer, or one without the limit, leaves the probe to the run. Nothing is written to
        a shared budget here (its store may be busy with the snapshot): the team hears the
        limit with this sender's first slot."""
        limit = _number(headers.get("ratelimit-limit")) if headers is not None else None
        if limit is None or limit <= 0:
            return
        self._probe_at = sent_at
        self._answered = True
        self._set_server_limit(limit)
        if self._shared is not None:
            self._untold = limit

    def close(self) -> None:
        """Let the budget thread go (a limiter without a shared budget has none)."""
        if self._budget_thread is not None:
            self._budget_thread.shutdown(wait=False)
            self._budget_thread = None

    async def _in_budget_thread(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run a budget call on the limiter's own thread: in the loop's shared pool it would
        queue behind the claims rendering their batches, and the slot would come late."""
        if self._budget_thread is None:
            self._budget_thread = ThreadPoolExecutor(1, thread_name_prefix="rate-budget")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._budget_thread, functools.partial(fn, *args))

    async def _await_team_probe(self) -> None:
        """Another sender of the team is probing (slots are out, no limit known yet): wait for
        the limit it learns, at most ``PROBE_WAIT``, instead of probing at the slow start rate
        too. One probe for the team, not one per sender."""
        assert self._shared is not None
        deadline = self._clock() + PROBE_WAIT
        while self._clock() < deadline:
            known = await self._in_budget_thread(self._shared.learned)
            if known is not None:
                self._set_server_limit(known)
                return
            if not await self._in_budget_thread(self._shared.busy):
                return  # nobody else is probing: this sender is the team's probe
            await asyncio.sleep(0.05)

    async def _shared_slot(self) -> float:
        """A slot from the shared budget, on this limiter's clock (a thread does the SQL)."""
        assert self._shared is not None
        if self._take_lock is None:
            self._take_lock = asyncio.Lock()
        if self._untold is not None:
            limit, self._untold = self._untold, None
            await self._in_budget_thread(self._shared.learn, limit)
        while True:
            # one take at a time, first come first served: slots follow the order of acquire()
            async with self._take_lock:
                grant, granted_at = await self._in_budget_thread(self._timed_take)
            if grant.limit is not None:
                self._set_server_limit(grant.limit)  # learned by another sender
            if grant.delay is not None:
                return granted_at + grant.delay
            await self._sleep(grant.retry_in)

    def _timed_take(self) -> tuple[SharedGrant, float]:
        """A take and this limiter's clock when it was granted: the event loop may resume
        the caller later, and the delay counts from the grant."""
        assert self._shared is not None
        grant = self._shared.take(*self.window_rule)
        return grant, self._clock()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when the slots handed out are invalidated."""
        wake = self._wake_event()
        try:
            async with asyncio.timeout(seconds):
                await wake.wait()
        except TimeoutError:
            pass

    def _window_wait(self) -> float:
        """Seconds until one more departure keeps the window rule (0: go)."""
        per_window, window, gap = self.window_rule
        if not self._sent:
            return 0.0
        after = self._sent[-1] + gap
        if len(self._sent) >= per_window:
            after = max(after, self._sent[-per_window] + window)
        return after - self._clock()

    def observe(self, headers: Mapping[str, str], sent_at: float | None = None) -> None:
        """Learn from an answer's ``ratelimit-*`` headers (``sent_at``: ``acquire``'s value).

        Call it after every attempt, with empty headers when there was no answer at all.
        """
        if not self._answered:
            self._answered = True
            self._invalidate()  # the callers waiting for the probe queue up now
        limit = _number(headers.get("ratelimit-limit"))
        if limit is not None and limit > 0 and limit != self.server_limit:
            self._set_server_limit(limit)
            if self._shared is not None:
                self._shared.learn(limit)
        remaining = _number(headers.get("ratelimit-remaining"))
        reset = _number(headers.get("ratelimit-reset"))
        # with a shared budget the team's senders are all paced by it: an exhausted window is
        # the budget at work, not someone else's traffic
        shared = self._shared is not None
        if remaining == 0 and reset is not None and not shared and not self._filled_by_us(sent_at):
            # someone else (another process on the same team) used up this window: wait for
            # its reset. When our own requests alone filled it, the window rule already carries
            # the next one into the next window, and waiting a rounded-up reset would waste it.
            start = sent_at if sent_at is not None else self._clock()
            self._hold(start + reset)

    def penalise(self, retry_after: float | None, *, team: bool = True) -> None:
        """After a 429: nobody sends before ``retry_after`` seconds (1 s when absent);
        ``team=False`` holds only this sender (the key check: the store may be held by the
        snapshot, which waits for that check)."""
        wait = max(retry_after if retry_after is not None and retry_after >= 0 else 1.0, 0.0)
        wait = max(wait, 1.0 / self.rate)
        self._hold(self._clock() + wait)
        if self._shared is not None and team:
            self._shared.hold(wait)

    def _set_server_limit(self, limit: float) -> None:
        """Follow a new ``ratelimit-limit``; re-queue callers holding slots of the old spacing."""
        if limit <= 0 or limit == self.server_limit:
            return
        old_rate = self.rate
        self.server_limit = limit
        if self.rate != old_rate:
            # slots handed out under the old rule are wrong now (too many, or needlessly few):
            # wake the waiting callers to queue up again
            self._invalidate()

    def _hold(self, until: float) -> None:
        if until <= self._hold_until:
            return
        self._hold_until = until
        self.holds += 1
        self._invalidate()

    def _invalidate(self) -> None:
        """Every slot handed out so far is void: wake its holder to queue up again."""
        self._generation += 1
        if self._wake is not None:
            self._wake[1].set()
            self._wake = None

    def _wake_event(self) -> asyncio.Event:
        """The event set at the next ``_invalidate`` (one per event loop)."""
        loop = asyncio.get_running_loop()
        if self._wake is None or self._wake[0] is not loop:
            self._wake = (loop, asyncio.Event())
        return self._wake[1]

    def _remember(self, departed: float) -> None:
        self._sent.append(departed)
        if self._sent[0] < departed - 2 * HISTORY:  # trim now and then, not every time
            del self._sent[: bisect.bisect_left(self._sent, departed - HISTORY)]

    def _filled_by_us(self, sent_at: float | None) -> bool:
        """Did our own departures in the second up to ``sent_at`` reach the limit?"""
        if sent_at is None:
            return False
        # answers come back a latency later: the history must reach back that far
        ours = bisect.bisect_right(self._sent, sent_at) - bisect.bisect_right(
            self._sent, sent_at - 1.0
        )
        return ours >= math.floor(self.limit)


def _number(value: str | None) -> float | None:
    """The leading number of a header value (``"10"``, ``"10;w=1"``, ``"1.5"``), else None."""
    if value is None:
        return None
    match = _NUMBER.match(value)
    return float(match.group(1)) if match else None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``retry-after`` header (delta-seconds; an HTTP date counts as 1 s)."""
    if value is None:
        return None
    number = _number(value)
    return number if number is not None else 1.0
