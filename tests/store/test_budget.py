"""The shared request budget: slot arithmetic with an injected clock, and concurrent takers."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from sponsorcast.store import Store, open_store
from sponsorcast.store.budget import StoreBudget, team_of
from sponsorcast.store.tables import budget_t


class Clock:
    """A clock that moves only when told."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def budget_store(store_url: str) -> Iterator[Store]:
    store = open_store(store_url)
    yield store
    store.dispose()


def test_a_window_s_slots_go_at_once_then_one_window_after_each(budget_store: Store) -> None:
    clock = Clock(1000.0)
    budget = StoreBudget(budget_store, "team-a", ahead=2.0, clock=clock)
    grants = [budget.take(3, 1.04) for _ in range(8)]
    # 3 per 1.04 s: the first three now, each later one 1.04 s after the third before it,
    # while it is less than 2 s ahead
    assert [g.at for g in grants[:6]] == pytest.approx(
        [1000.0, 1000.0, 1000.0, 1001.04, 1001.04, 1001.04]
    )
    assert [g.delay for g in grants[:6]] == pytest.approx([0, 0, 0, 1.04, 1.04, 1.04])
    # the 7th would be 2.08 s ahead: refused, ask again when it comes into reach
    assert grants[6].delay is None and grants[6].at is None
    assert grants[6].retry_in == pytest.approx(0.08)
    clock.now = 1000.5
    later = budget.take(3, 1.04)
    assert later.delay == pytest.approx(1.58) and later.at == pytest.approx(1002.08)


def test_slots_never_exceed_the_rule_in_any_window(budget_store: Store) -> None:
    clock = Clock(500.0)
    budget = StoreBudget(budget_store, "team-a", ahead=60.0, clock=clock)
    slots: list[float] = []
    for step in range(40):  # takers asking at uneven moments
        clock.now = 500.0 + step * 0.137
        grant = budget.take(4, 1.04)
        assert grant.at is not None
        slots.append(grant.at)
    assert slots == sorted(slots)
    assert all(
        sum(1 for t in slots if start <= t < start + 1.04) <= 4 for start in slots
    )  # at most 4 in any window that starts at a slot (the worst windows do)


def test_busy_while_slots_are_recent_or_ahead(budget_store: Store) -> None:
    clock = Clock(100.0)
    budget = StoreBudget(budget_store, "team-a", clock=clock)
    assert not budget.busy()
    budget.take(1, 0.5)
    budget.take(1, 0.5)  # the second slot is 0.5 s ahead
    assert budget.busy()
    clock.now = 101.4  # 0.9 s after the last slot: still counted as in use
    assert budget.busy()
    clock.now = 101.6
    assert not budget.busy()


def test_an_idle_budget_gives_one_window_not_more(budget_store: Store) -> None:
    clock = Clock(50.0)
    budget = StoreBudget(budget_store, "team-a", clock=clock)
    assert budget.take(2, 1.04).delay == 0.0
    clock.now = 80.0  # long after the last slot: a fresh window, and only that
    assert [budget.take(2, 1.04).delay for _ in range(3)] == pytest.approx([0.0, 0.0, 1.04])


def test_slots_keep_their_gap_within_a_window(budget_store: Store) -> None:
    clock = Clock(20.0)
    budget = StoreBudget(budget_store, "team-a", ahead=5.0, clock=clock)
    slots = [budget.take(3, 1.04, 0.1).at for _ in range(5)]
    # 0.1 s apart within the window; the 4th a window after the 1st, the 5th a gap later
    assert slots == pytest.approx([20.0, 20.1, 20.2, 21.04, 21.14])
    with pytest.raises(ValueError):
        budget.take(3, 1.04, -0.1)


def test_a_slow_rule_below_one_a_second(budget_store: Store) -> None:
    clock = Clock(10.0)
    budget = StoreBudget(budget_store, "team-a", ahead=10.0, clock=clock)
    assert [budget.take(1, 2.08).at for _ in range(3)] == pytest.approx([10.0, 12.08, 14.16])


def test_learned_limit_and_holds_are_shared(budget_store: Store) -> None:
    clock = Clock(2000.0)
    one = StoreBudget(budget_store, "team-a", clock=clock)
    other = StoreBudget(budget_store, "team-a", clock=clock)  # another sender, same team
    assert one.take(1, 0.1).limit is None and other.learned() is None
    one.learn(10.0)
    assert other.learned() == 10.0
    grant = other.take(1, 0.1)
    assert grant.limit == 10.0 and grant.delay == pytest.approx(0.1)
    other.hold(3.0)  # a 429 with retry-after: 3
    refused = one.take(1, 0.1)
    assert refused.delay is None and refused.retry_in == pytest.approx(1.5)  # 3 s - 1.5 s ahead
    clock.now = 2002.5
    assert one.take(1, 0.1).delay == pytest.approx(0.5)  # the first slot after the hold
    # another team's budget is its own
    assert StoreBudget(budget_store, "team-b", clock=clock).take(1, 0.1).delay == 0.0


def test_two_senders_share_one_window(budget_store: Store) -> None:
    clock = Clock(10.0)
    a = StoreBudget(budget_store, "t", ahead=5.0, clock=clock)
    b = StoreBudget(budget_store, "t", ahead=5.0, clock=clock)
    slots = [s.take(2, 1.04).at for s in (a, b, a, a, b)]
    assert slots == pytest.approx([10.0, 10.0, 11.04, 11.04, 12.08])


def test_a_bad_rule_is_refused(budget_store: Store) -> None:
    budget = StoreBudget(budget_store, "t", clock=Clock(1.0))
    with pytest.raises(ValueError):
        budget.take(0, 1.0)
    with pytest.raises(ValueError):
        budget.take(1, 0.0)


def test_team_names_hide_the_key() -> None:
    team = team_of("https://api.resend.com", "re_secret_123456")
    assert team == team_of("https://api.resend.com/", " re_secret_123456 ")
    assert team != team_of("https://api.resend.com", "re_secret_654321")
    assert team != team_of("http://127.0.0.1:9000", "re_secret_123456")
    assert "re_secret" not in team and len(team) == 40


def _take_many(url: str, count: int, queue: multiprocessing.Queue[list[float]]) -> None:
    store = open_store(url)
    budget = StoreBudget(store, "shared", ahead=3600.0)  # the store's own clock
    queue.put([g.at for g in (budget.take(3, 0.01) for _ in range(count)) if g.at is not None])
    store.dispose()


def test_concurrent_processes_never_get_the_same_slot(store_url: str) -> None:
    open_store(store_url).dispose()  # migrated before the takers race
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[list[float]] = context.Queue()
    takers = [context.Process(target=_take_many, args=(store_url, 150, queue)) for _ in range(4)]
    for taker in takers:
        taker.start()
    slots = sorted(s for _ in takers for s in queue.get(timeout=120))
    for taker in takers:
        taker.join(timeout=60)
        assert taker.exitcode == 0
    assert len(slots) == 600
    # 3 per 0.01 s however the four raced: every slot's third successor is a window later
    gaps = [b - a for a, b in zip(slots, slots[3:], strict=False)]
    assert min(gaps) >= 0.01 - 1e-6


def test_a_taker_that_waited_for_the_lock_counts_from_when_it_got_it(
    budget_store: Store,
) -> None:
    """A snapshot or another sender may hold the store's lock for a moment: the slot must be
    measured from the clock once the row is held, not from before the wait (it would be
    granted in the past, and the taker's request would leave later than the row says)."""
    import threading

    events: list[str] = []
    read = threading.Event()
    clock = Clock(50.0)

    def reading() -> float:
        events.append("clock read")
        read.set()
        return clock()

    budget = StoreBudget(budget_store, "team", clock=reading)
    held = threading.Event()
    grants: list[Any] = []

    def hold_the_lock() -> None:
        with budget_store.write() as conn:  # SQLite: its write lock; PostgreSQL: the row's
            conn.execute(
                sa.select(budget_t.c.tat).where(budget_t.c.team == "team").with_for_update()
            )
            held.set()
            read.wait(timeout=0.3)  # a taker reading its clock before the lock would do so now
            clock.now = 55.0  # the lock was held for five seconds
            events.append("lock released")

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    held.wait()
    taker = threading.Thread(target=lambda: grants.append(budget.take(10, 1.04)))
    taker.start()
    holder.join()
    taker.join()
    assert events == ["lock released", "clock read"]
    assert (grants[0].at, grants[0].delay) == (55.0, 0.0)
