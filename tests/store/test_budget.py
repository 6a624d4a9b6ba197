"""The shared request budget: slot arithmetic with an injected clock, and concurrent takers."""

from __future__ import annotations

import itertools
import multiprocessing
from collections.abc import Iterator

import pytest

from sponsorcast.store import Store, open_store
from sponsorcast.store.budget import StoreBudget, team_of


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


def test_slots_are_interval_apart_up_to_the_look_ahead(budget_store: Store) -> None:
    clock = Clock(1000.0)
    budget = StoreBudget(budget_store, "team-a", ahead=1.0, clock=clock)
    grants = [budget.take(0.1) for _ in range(11)]
    # tat starts in the past: the first slot is now, then 0.1 s apart while tat < now + 1 s
    assert [round(g.delay, 6) for g in grants[:10] if g.delay is not None] == [
        0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9
    ]  # fmt: skip
    assert [round(g.at or 0, 6) for g in grants[:3]] == [1000.0, 1000.1, 1000.2]
    # the 11th would be 1 s ahead: refused, ask again when it comes into reach
    assert grants[10].delay is None and grants[10].at is None
    assert grants[10].retry_in == pytest.approx(0.01)  # at least the minimum wait
    clock.now = 1000.5
    later = budget.take(0.1)
    assert later.delay == pytest.approx(0.5) and later.at == pytest.approx(1001.0)


def test_busy_while_slots_are_ahead(budget_store: Store) -> None:
    clock = Clock(100.0)
    budget = StoreBudget(budget_store, "team-a", clock=clock)
    assert not budget.busy()
    budget.take(0.5)  # the next free slot is now 0.5 s ahead
    assert budget.busy()
    clock.now = 100.6
    assert not budget.busy()


def test_an_idle_budget_gives_no_burst_credit(budget_store: Store) -> None:
    clock = Clock(50.0)
    budget = StoreBudget(budget_store, "team-a", clock=clock)
    assert budget.take(0.25).delay == 0.0
    clock.now = 80.0  # long after the last slot
    assert [budget.take(0.25).delay for _ in range(3)] == [0.0, 0.25, 0.5]


def test_learned_limit_and_holds_are_shared(budget_store: Store) -> None:
    clock = Clock(2000.0)
    one = StoreBudget(budget_store, "team-a", clock=clock)
    other = StoreBudget(budget_store, "team-a", clock=clock)  # another sender, same team
    assert one.take(0.1).limit is None and other.learned() is None
    one.learn(10.0)
    assert other.learned() == 10.0
    grant = other.take(0.1)
    assert grant.limit == 10.0 and grant.delay == pytest.approx(0.1)
    other.hold(3.0)  # a 429 with retry-after: 3
    refused = one.take(0.1)
    assert refused.delay is None and refused.retry_in == pytest.approx(2.0)  # 3 s - 1 s ahead
    clock.now = 2002.5
    assert one.take(0.1).delay == pytest.approx(0.5)  # the first slot after the hold
    # another team's budget is its own
    assert StoreBudget(budget_store, "team-b", clock=clock).take(0.1).delay == 0.0


def test_two_senders_interleave_without_sharing_a_slot(budget_store: Store) -> None:
    clock = Clock(10.0)
    a = StoreBudget(budget_store, "t", ahead=5.0, clock=clock)
    b = StoreBudget(budget_store, "t", ahead=5.0, clock=clock)
    slots = [s.take(0.2).at for s in (a, b, a, a, b)]
    assert slots == pytest.approx([10.0, 10.2, 10.4, 10.6, 10.8])


def test_team_names_hide_the_key() -> None:
    team = team_of("https://api.resend.com", "re_secret_123456")
    assert team == team_of("https://api.resend.com/", " re_secret_123456 ")
    assert team != team_of("https://api.resend.com", "re_secret_654321")
    assert team != team_of("http://127.0.0.1:9000", "re_secret_123456")
    assert "re_secret" not in team and len(team) == 40


def _take_many(url: str, count: int, queue: multiprocessing.Queue[list[float]]) -> None:
    store = open_store(url)
    budget = StoreBudget(store, "shared", ahead=3600.0)  # the store's own clock
    queue.put([g.at for g in (budget.take(0.001) for _ in range(count)) if g.at is not None])
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
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert min(gaps) >= 0.001 - 1e-6  # each slot its own, one interval after the one before
