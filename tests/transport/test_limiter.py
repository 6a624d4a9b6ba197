"""The rate limiter: several requests in flight, never more than the provider's limit."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from sponsorcast.transport.limiter import (
    AUTO_START,
    GAP_SHARE,
    GUARD,
    PROBE_WAIT,
    SAFETY,
    RateLimiter,
    parse_retry_after,
)
from tests.support.fakeresend import FakeResend


def test_auto_starts_at_two_and_follows_the_header() -> None:
    limiter = RateLimiter(None)
    assert limiter.limit == AUTO_START
    limiter.observe({"ratelimit-limit": "10"})
    assert limiter.limit == 10
    limiter.observe({"ratelimit-limit": "5;w=1"})
    assert limiter.limit == 5
    assert limiter.rate == pytest.approx(5 * SAFETY)


def test_a_ceiling_can_only_be_lowered_by_the_header() -> None:
    limiter = RateLimiter(4)
    assert limiter.limit == 4
    limiter.observe({"ratelimit-limit": "10"})
    assert limiter.limit == 4
    limiter.observe({"ratelimit-limit": "2"})
    assert limiter.limit == 2


def test_bad_ceiling_and_retry_after_parsing() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 1.0
    assert parse_retry_after(None) is None


async def departures(limiter: RateLimiter, n: int, concurrency: int) -> list[float]:
    times: list[float] = []

    async def worker(count: int) -> None:
        for _ in range(count):
            times.append(await limiter.acquire())

    per = n // concurrency
    await asyncio.gather(*(worker(per) for _ in range(concurrency)))
    return sorted(times)


def test_the_first_request_goes_alone() -> None:
    async def scenario(answer_after: float | None) -> list[float]:
        limiter = RateLimiter(100)
        first = await limiter.acquire()
        others = asyncio.create_task(departures(limiter, 3, 3))
        if answer_after is not None:
            await asyncio.sleep(answer_after)
            limiter.observe({"ratelimit-limit": "100"}, first)
        return [t - first for t in await others]

    assert min(asyncio.run(scenario(0.3))) >= 0.3  # they waited for its answer
    assert min(asyncio.run(scenario(None))) >= PROBE_WAIT - 0.01  # or, at most, PROBE_WAIT


def test_a_window_s_requests_leave_at_once_and_never_more() -> None:
    limiter = RateLimiter(10)
    limiter.observe({})  # no probe wait
    gap = (1.0 + GUARD) / 10 * GAP_SHARE
    assert limiter.window_rule == pytest.approx((10, 1.0 + GUARD, gap))
    times = asyncio.run(departures(limiter, 12, 6))
    # the first ten within a quarter of a second (a gap apart), not spread over a whole one
    assert 9 * gap - 0.001 <= times[9] - times[0] < 9 * gap + 0.1
    assert times[10] - times[0] >= 1.0 + GUARD - 0.001  # the 11th a window after the 1st
    assert times[11] - times[1] >= 1.0 + GUARD - 0.001
    assert most_in_any_window(times, 1.0 + GUARD - 0.001) <= 10  # the rule, always


LATE = 0.6  # seconds the first request took to reach the wire, in the test below


def test_a_request_that_reached_the_wire_late_counts_from_then() -> None:
    """The window rule holds for the times requests reach the wire, not their slots."""

    async def scenario() -> list[float]:
        limiter = RateLimiter(10)
        limiter.observe({})  # no probe wait
        times = await departures(limiter, 10, 10)
        limiter.left(times[0], times[0] + LATE)  # the first opened its connection slowly
        limiter.left(times[1], times[1] - 0.2)  # "earlier than its slot": nothing changes
        limiter.left(times[0] - 50.0, times[0])  # not a departure of this limiter: nothing
        return times + await departures(limiter, 10, 10)

    times = asyncio.run(scenario())
    window = 1.0 + GUARD
    wire = sorted([times[0] + LATE, *times[1:]])
    assert most_in_any_window(wire, window - 0.001) <= 10
    # the 11th comes a window after the 2nd (now the oldest of the last ten), the 20th a
    # window after the first one reached the wire, not after its slot
    assert times[10] - times[1] >= window - 0.001
    assert times[19] - times[0] >= LATE + window - 0.001
    # without the report the 20th would have left a window after the 10th: a window of ten
    # leaves within a quarter of a second, far sooner
    assert times[9] - times[0] < LATE - 0.1


def test_the_rule_below_one_request_a_second() -> None:
    limiter = RateLimiter(0.5)
    assert limiter.window_rule == pytest.approx((1, 2.08, 2.08 * GAP_SHARE))
    assert limiter.rate == pytest.approx(0.5 * SAFETY)


def test_penalise_holds_every_waiting_caller() -> None:
    async def scenario() -> tuple[float, list[float]]:
        limiter = RateLimiter(3)
        limiter.observe({})
        first = await limiter.acquire()
        waiting = asyncio.create_task(departures(limiter, 4, 4))
        await asyncio.sleep(0.25)  # two more fit the window and leave; two wait for the next
        limiter.penalise(1.5)
        return first, sorted(await waiting)

    first, later = asyncio.run(scenario())
    assert later[1] - first < 0.3
    assert later[2] - first >= 1.5  # held past the window they were waiting for


def test_lower_limit_respaces_slots_already_handed_out() -> None:
    async def scenario() -> tuple[float, list[float]]:
        limiter = RateLimiter(None)
        limiter.observe({"ratelimit-limit": "100"})
        first = await limiter.acquire()
        waiting = asyncio.create_task(departures(limiter, 4, 4))
        await asyncio.sleep(0)
        limiter.observe({"ratelimit-limit": "4"})
        return first, await waiting

    first, later = asyncio.run(scenario())
    # at 100/s all five would leave at once; at 4 per window the fifth waits for the next
    assert later[-1] - first >= 1.0 + GUARD - 0.001
    assert sorted(later)[2] - first < 0.3


@pytest.mark.slow
def test_exhausted_window_holds_only_when_someone_else_used_it() -> None:
    async def scenario(foreign: bool) -> float:
        limiter = RateLimiter(None)
        limiter.observe({"ratelimit-limit": "5"})
        sent = [await limiter.acquire() for _ in range(1 if foreign else 5)]
        limiter.observe(
            {"ratelimit-limit": "5", "ratelimit-remaining": "0", "ratelimit-reset": "2"}, sent[-1]
        )
        return await limiter.acquire() - sent[-1]

    # one request of ours and the window is full: another process shares the team's limit
    assert asyncio.run(scenario(foreign=True)) >= 1.99
    # five of ours filled it: the window rule alone carries the next one into the next window
    # (a window after the first of the five, which left four gaps before the last)
    gap = (1.0 + GUARD) / 5 * GAP_SHARE
    assert 1.0 + GUARD - 4 * gap - 0.1 <= asyncio.run(scenario(foreign=False)) < 1.5


async def hammer(
    fake: FakeResend, limiter: RateLimiter, seconds: float, concurrency: int
) -> list[float]:
    """``concurrency`` workers send as fast as the limiter lets them; departure times."""
    sent: list[float] = []
    headers = {"Authorization": f"Bearer {fake.api_key}", "User-Agent": "tests/1"}
    async with httpx.AsyncClient(headers=headers, timeout=10) as client:

        async def worker() -> None:
            while True:
                departed = await limiter.acquire()
                sent.append(departed)
                answer = await client.get(f"{fake.url}/emails/none")
                limiter.observe(answer.headers, departed)
                if answer.status_code == 429:
                    limiter.penalise(parse_retry_after(answer.headers.get("retry-after")))

        workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
        await asyncio.sleep(seconds)
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    return sorted(sent)


@pytest.mark.slow
@pytest.mark.parametrize("ceiling", [None, 5.0])
def test_no_429_at_the_servers_limit(fake_resend: FakeResend, ceiling: float | None) -> None:
    fake_resend.configure(rate=5, latency=0.5)
    limiter = RateLimiter(ceiling)
    sent = asyncio.run(hammer(fake_resend, limiter, 3.2, concurrency=8))
    counters = fake_resend.counters
    assert counters["rate_limited"] == 0
    assert counters["max_window"] <= 5
    assert counters["max_in_flight"] >= 2  # 0.5 s answers at 5/s: several in flight
    assert most_in_any_window(sent, 1.0 + GUARD - 0.001) <= 5
    # after the probe's answer (0.5 s), a window of 5 every 1.04 s: three full ones by 3.2 s
    assert len(sent) >= 3 * 5


def test_the_fake_server_would_catch_a_bursty_limiter(fake_resend: FakeResend) -> None:
    """Control: sending at the limit in bursts (a bucket of size R) meets 429s."""
    fake_resend.configure(rate=5, latency=0.05)
    headers = {"Authorization": f"Bearer {fake_resend.api_key}", "User-Agent": "tests/1"}

    async def bursts() -> None:
        async with httpx.AsyncClient(headers=headers) as client:
            await asyncio.sleep(1.02 - time.time() % 1.0)  # two bursts in one window
            for _ in range(2):
                await asyncio.gather(*(client.get(f"{fake_resend.url}/emails/x") for _ in range(5)))
                await asyncio.sleep(0.2)

    asyncio.run(bursts())
    assert fake_resend.counters["rate_limited"] > 0


def most_in_any_window(times: list[float], width: float = 1.0) -> int:
    """The largest number of departures inside any sliding window of ``width`` seconds."""
    best, start = 0, 0
    for end in range(len(times)):
        while times[end] - times[start] >= width:
            start += 1
        best = max(best, end - start + 1)
    return best


@pytest.mark.slow
def test_a_stalled_event_loop_cannot_cause_a_burst() -> None:
    """Callers that overslept (the loop was busy) must not leave all at once."""

    async def scenario() -> list[float]:
        limiter = RateLimiter(None)
        limiter.observe({"ratelimit-limit": "10"})
        sent: list[float] = []

        async def worker() -> None:
            while True:
                sent.append(await limiter.acquire())

        workers = [asyncio.create_task(worker()) for _ in range(8)]
        await asyncio.sleep(0.55)
        time.sleep(0.35)  # CPU-bound work blocks the loop; slots pass meanwhile
        await asyncio.sleep(1.6)
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        return sorted(sent)

    times = asyncio.run(scenario())
    assert most_in_any_window(times) <= 10
    assert len(times) >= 15  # and it kept going (about 21 on an idle machine)


def test_two_limiters_sharing_a_budget_count_as_one(tmp_path: Path) -> None:
    from sponsorcast.store import open_store
    from sponsorcast.store.budget import StoreBudget

    store = open_store(f"sqlite:///{tmp_path / 'budget.db'}")

    async def scenario() -> list[float]:
        # two senders (two campaigns, two processes) of one team, each believing it may use
        # the whole limit of 5/s: together 5 per window, not 10 (alone, each would send its
        # five at once)
        a = RateLimiter(5, shared=StoreBudget(store, "team"))
        b = RateLimiter(5, shared=StoreBudget(store, "team"))
        a.observe({})
        b.observe({})
        both = await asyncio.gather(departures(a, 5, 5), departures(b, 5, 5))
        return sorted(both[0] + both[1])

    times = asyncio.run(scenario())
    assert most_in_any_window(times, 1.0 + GUARD - 0.01) <= 5
    assert times[-1] - times[0] >= 1.0 + GUARD - 0.01
    assert times[4] - times[0] < 0.35  # the first window's five went together
    store.dispose()


def test_a_limit_learned_by_one_sender_is_followed_by_all(tmp_path: Path) -> None:
    from sponsorcast.store import open_store
    from sponsorcast.store.budget import StoreBudget

    store = open_store(f"sqlite:///{tmp_path / 'budget.db'}")

    async def scenario() -> tuple[float, float, float]:
        first = RateLimiter(None, shared=StoreBudget(store, "team"))
        later = RateLimiter(None, shared=StoreBudget(store, "team"))
        first.observe({"ratelimit-limit": "10"})  # the header, seen by one of them
        later.observe({})  # no header yet (no probe wait)
        await later.acquire()
        before_penalty = later.limit
        first.penalise(0.4)  # a 429 for one of them holds the other too
        start = time.monotonic()
        await later.acquire()
        return before_penalty, later.limit, time.monotonic() - start

    learned, limit, waited = asyncio.run(scenario())
    assert (learned, limit) == (10, 10) and waited >= 0.4 - 0.02
    store.dispose()


def test_one_probe_for_the_team(tmp_path: Path) -> None:
    from sponsorcast.store import open_store
    from sponsorcast.store.budget import StoreBudget

    store = open_store(f"sqlite:///{tmp_path / 'budget.db'}")

    async def scenario() -> tuple[float, float, float, float]:
        first = RateLimiter(None, shared=StoreBudget(store, "team"))
        second = RateLimiter(None, shared=StoreBudget(store, "team"))
        probe = await first.acquire()  # the team's probe: out, its answer not back yet
        joining = asyncio.create_task(second.acquire())
        await asyncio.sleep(0.2)
        assert not joining.done()  # waits for the limit the probe learns, not probing itself
        first.observe({"ratelimit-limit": "10"}, probe)
        departed = await joining
        return departed - probe, second.limit, first.limit, PROBE_WAIT

    waited, second_limit, first_limit, most = asyncio.run(scenario())
    assert 0.2 <= waited < most and second_limit == first_limit == 10
    store.dispose()


def test_a_request_before_the_run_stands_in_for_the_probe() -> None:
    async def scenario() -> tuple[float, list[float]]:
        limiter = RateLimiter(None)  # auto: 2/s until told
        checked = limiter.reserve()  # the key check's slot, outside the event loop
        limiter.seed({"ratelimit-limit": "5"}, checked)
        assert limiter.limit == 5
        return checked, await departures(limiter, 5, 5)

    checked, times = asyncio.run(scenario())
    # no probe wait: four more fit the key check's window at once; the fifth waits for the next
    assert times[3] - checked < 0.35
    assert times[4] - checked >= 1.0 + GUARD - 0.001


def test_an_answer_without_the_limit_leaves_the_probe_to_the_run() -> None:
    async def scenario() -> list[float]:
        limiter = RateLimiter(100)
        limiter.seed({}, limiter.reserve())  # answered, but no ratelimit-limit
        limiter.seed(None, limiter.reserve())  # or no answer at all
        first = await limiter.acquire()
        others = asyncio.create_task(departures(limiter, 2, 2))
        await asyncio.sleep(0.3)
        limiter.observe({"ratelimit-limit": "100"}, first)
        return [t - first for t in await others]

    assert min(asyncio.run(scenario())) >= 0.3  # the run's first request probed


def test_a_seeded_limit_reaches_the_team_with_the_first_slot(tmp_path: Path) -> None:
    from sponsorcast.store import open_store
    from sponsorcast.store.budget import StoreBudget

    store = open_store(f"sqlite:///{tmp_path / 'budget.db'}")
    budget = StoreBudget(store, "team")
    limiter = RateLimiter(None, shared=budget)
    limiter.seed({"ratelimit-limit": "7"}, limiter.reserve())
    assert budget.learned() is None  # nothing written while the snapshot may hold the store
    asyncio.run(limiter.acquire())
    assert budget.learned() == 7
    limiter.close()
    store.dispose()


def test_a_booked_slot_is_given_at_once_however_far_ahead_it_is(tmp_path: Path) -> None:
    from sponsorcast.store import open_store
    from sponsorcast.store.budget import StoreBudget

    store = open_store(f"sqlite:///{tmp_path / 'budget.db'}")
    first = RateLimiter(1, shared=StoreBudget(store, "team"))
    second = RateLimiter(1, shared=StoreBudget(store, "team"))
    asked = time.monotonic()
    now_slot = first.book()
    later_slot = second.book()  # one a window: the team's next slot is a window later
    took = time.monotonic() - asked
    assert now_slot is not None and later_slot is not None
    assert now_slot - asked < 0.1
    assert later_slot - now_slot == pytest.approx(1.0 + GUARD, abs=0.05)
    assert took < 0.5  # neither waited for its slot: the caller does
    store.dispose()


def test_a_shared_slot_counts_from_when_the_budget_granted_it() -> None:
    from dataclasses import dataclass

    @dataclass
    class Granted:
        delay: float | None
        retry_in: float = 0.0
        limit: float | None = None

    now = [100.0]

    class SlowBudget:
        """A budget whose take waits five seconds for the store's lock, then grants 0.5 s."""

        def take(self, per_window: int, window: float, gap: float) -> Granted:
            now[0] += 5.0
            return Granted(0.5)

        def learned(self) -> float | None:
            return 10.0

        def busy(self) -> bool:
            return False

        def learn(self, limit: float) -> None:
            pass

        def hold(self, seconds: float) -> None:
            pass

    limiter = RateLimiter(10, clock=lambda: now[0], shared=SlowBudget())
    assert limiter.book() == 105.5  # not 100.5: that moment had passed when it was granted
