"""An async rate limiter (token bucket of size 1) shared by every request of a run.

Resend limits requests per team in fixed one-second windows. A bucket that lets a burst
through (size > 1) overruns such a window whenever the burst straddles its start, so this
bucket holds one token: requests leave evenly spaced, ``1 / rate`` apart, while any number
of them may be in flight at once (latency never caps throughput). The rate is
``SAFETY`` (95 %) of the limit, so that network jitter of up to about 50 ms cannot put
``limit + 1`` requests into one window.

- ``RateLimiter(None)`` ("auto") starts at 2 requests/s and follows ``ratelimit-limit``.
- ``RateLimiter(10)`` is a ceiling: ``ratelimit-limit`` can lower the rate, never raise it.
- ``observe(headers)`` after every answer; ``penalise(retry_after)`` after a 429 pauses
  every caller.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import deque
from collections.abc import Callable, Mapping

AUTO_START = 2.0
SAFETY = 0.95
_NUMBER = re.compile(r"\s*(\d+(?:\.\d+)?)")


class RateLimiter:
    """Token bucket of size one: ``await acquire()`` before every request."""

    def __init__(
        self, ceiling: float | None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """``ceiling`` None means auto (start at 2/s, follow the server)."""
        if ceiling is not None and ceiling <= 0:
            raise ValueError("A rate ceiling must be positive.")
        self.ceiling = ceiling
        self.server_limit: float | None = None
        self._clock = clock
        self._next = 0.0  # earliest time the next request may leave
        self._hold_until = 0.0  # nobody leaves before this (429, remaining == 0)
        self._generation = 0  # bumped when reserved slots become invalid
        self._sent: deque[float] = deque()  # our departure times over the last second
        self.holds = 0  # times a 429 or an exhausted window paused the callers
        self._wake: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    @property
    def limit(self) -> float:
        """The limit we believe applies, in requests per second (before the safety margin)."""
        known = self.server_limit
        if self.ceiling is None:
            return known if known is not None else AUTO_START
        return min(self.ceiling, known) if known is not None else self.ceiling

    @property
    def rate(self) -> float:
        """Requests per second actually allowed to leave."""
        return self.limit * SAFETY

    async def acquire(self) -> float:
        """Wait for this request's turn; return its departure time (for ``observe``)."""
        while True:
            now = self._clock()
            slot = max(now, self._next, self._hold_until)
            self._next = slot + 1.0 / self.rate
            generation = self._generation
            if slot > now:
                wake = self._wake_event()
                try:
                    async with asyncio.timeout(slot - now):
                        await wake.wait()
                except TimeoutError:
                    pass
            if generation == self._generation:
                departed = self._clock()
                self._remember(departed)
                return departed
            # the limit changed or a 429 came in while we waited: queue up again

    def observe(self, headers: Mapping[str, str], sent_at: float | None = None) -> None:
        """Learn from an answer's ``ratelimit-*`` headers (``sent_at``: ``acquire``'s value)."""
        limit = _number(headers.get("ratelimit-limit"))
        if limit is not None and limit > 0 and limit != self.server_limit:
            old_rate = self.rate
            self.server_limit = limit
            if self.rate != old_rate:
                # slots handed out at the old spacing are wrong now (too close together, or
                # needlessly far apart): wake the waiting callers to queue up again
                last = self._sent[-1] if self._sent else None
                self._next = last + 1.0 / self.rate if last is not None else 0.0
                self._invalidate()
        remaining = _number(headers.get("ratelimit-remaining"))
        reset = _number(headers.get("ratelimit-reset"))
        if remaining == 0 and reset is not None and not self._filled_by_us(sent_at):
            # someone else (another process on the same team) used up this window: wait for
            # its reset. When our own requests alone filled it, the spacing already carries
            # the next one into the next window, and waiting a rounded-up reset would waste it.
            start = sent_at if sent_at is not None else self._clock()
            self._hold(start + reset)

    def penalise(self, retry_after: float | None) -> None:
        """After a 429: nobody sends before ``retry_after`` seconds (1 s when absent)."""
        wait = retry_after if retry_after is not None and retry_after >= 0 else 1.0
        self._hold(self._clock() + max(wait, 1.0 / self.rate))

    def _hold(self, until: float) -> None:
        if until <= self._hold_until:
            return
        self._hold_until = until
        self._next = until
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
        while self._sent and self._sent[0] < departed - 2.0:
            self._sent.popleft()

    def _filled_by_us(self, sent_at: float | None) -> bool:
        """Did our own departures in the second up to ``sent_at`` reach the limit?"""
        if sent_at is None:
            return False
        ours = sum(1 for t in self._sent if sent_at - 1.0 < t <= sent_at)
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
