"""One request budget per provider team, kept in the store and shared by every sender.

Resend limits requests per team (per API key), not per process, so every ``send`` and
``run-due`` of one store, on one host or many, takes its request slots from one row. The rule
is a sliding window: at most ``per_window`` slots in any ``window`` seconds, each at least
``gap`` after the one before (the limiter asks for ``floor(limit)`` per ``1 s + GUARD``, a
quarter of a window's even spacing apart). The row keeps the slots of the last window
(``recent``) and ``tat``, before which no slot is given (the latest slot, or a 429's hold).
A slot is taken in one transaction that locks the row (``FOR UPDATE`` on PostgreSQL; SQLite
runs it under its write lock):

    slot = max(now, tat, recent[-1] + gap, recent[-per_window] + window)

so slots are never granted twice however many senders ask at once, and never more than the
rule allows in any window. Unlike even spacing (a generic cell rate algorithm, which this
replaced), a window's slots may all go near its start: a run's first ``per_window`` requests
leave within a quarter of a second instead of over a whole one, which is what a provider
counting requests per window allows. The small ``gap`` keeps a sender's event loop from
writing a whole window's requests in one go, which could delay the last of them past the
guard. The caller sleeps until its slot *after* the transaction: nobody waits
holding a lock.

- Bounded look-ahead: a slot is granted only while it is less than ``ahead`` seconds away. A
  sender that dies holding slots wastes at most that much of the budget, and a sender that
  cannot get a slot is told when to ask again.
- ``now`` is the store's clock on PostgreSQL (hosts' clocks may disagree; the database's is
  the one all of them see), the local clock on SQLite (one machine), or an injected clock,
  read once the row is locked: a sender that waited for another's transaction (a snapshot
  holds SQLite's lock for a moment) is not granted a slot that is already past.
- The limit the provider announces (``ratelimit-limit``) is learned by the first sender that
  sees it and stored in the row, so every sender follows it at once.
- The team is identified by an HMAC of the API URL and key, never the key itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from sponsorcast.store.engine import Store
from sponsorcast.store.models import utcnow
from sponsorcast.store.tables import budget_t

AHEAD = 1.5  # seconds of slots that may be handed out ahead of now (more than a window)
KEEP = 1.5  # recent slots older than this much before the newest are forgotten (besides it)
MAX_KEPT = 1000  # and never more than this many
BUSY = 1.0  # seconds after its last slot a budget still counts as in use
MIN_RETRY = 0.01  # shortest wait before asking again for a slot
_TEAM_KEY = b"sponsorcast rate budget v1"


def team_of(base_url: str, api_key: str) -> str:
    """The budget's name for the team behind ``api_key`` at ``base_url`` (a keyed hash)."""
    message = f"{base_url.rstrip('/')}\0{api_key.strip()}".encode()
    return hmac.new(_TEAM_KEY, message, hashlib.sha256).hexdigest()[:40]


@dataclass(frozen=True)
class Grant:
    """The answer to a request for a slot.

    ``delay``: seconds from now until the granted slot (None: none granted, ask again in
    ``retry_in`` seconds). ``limit``: the provider's limit as any sender has learned it.
    ``at``: the slot on the budget's clock (epoch seconds), None when none was granted.
    """

    delay: float | None
    retry_in: float
    limit: float | None
    at: float | None = None


class StoreBudget:
    """The shared budget of one team in one store (``take``, ``learn``, ``hold``)."""

    def __init__(
        self,
        store: Store,
        team: str,
        *,
        ahead: float = AHEAD,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """``clock`` (epoch seconds) replaces the store's clock: for tests, and on SQLite."""
        import time

        self.store = store
        self.team = team
        self.ahead = ahead
        self._postgres = not store.is_sqlite
        self._clock = clock if clock is not None or self._postgres else time.time
        self._ensure()

    def _now(self) -> tuple[Any, dict[str, float]]:
        """The SQL for "now" and its parameters: the database's clock, or a bound value."""
        if self._clock is None:
            return sa.literal_column("extract(epoch FROM clock_timestamp())", sa.Float(53)), {}
        return sa.bindparam("now", type_=sa.Float(precision=53)), {"now": self._clock()}

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """A write transaction for the budget row. On PostgreSQL its commit does not wait for
        the disk: a slot is worth milliseconds, and a budget that loses its last update in a
        crash only hands out a slot again a second later (the ledger's commits still wait)."""
        with self.store.write() as conn:
            if self._postgres:
                conn.execute(sa.text("SET LOCAL synchronous_commit TO OFF"))
            yield conn

    @property
    def _greatest(self) -> Any:
        """SQL's larger-of-two: ``greatest`` in PostgreSQL, the two-argument ``max`` in SQLite."""
        return sa.func.greatest if self._postgres else sa.func.max

    def _ensure(self) -> None:
        """The team's row, made once however many senders start at the same moment."""
        row = {"team": self.team, "tat": 0.0, "updated_at": utcnow()}
        statement: sa.Executable
        if self._postgres:  # imported only there: the dialect takes 20 ms to import
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            statement = (
                pg_insert(budget_t).values(row).on_conflict_do_nothing(index_elements=["team"])
            )
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            statement = (
                sqlite_insert(budget_t).values(row).on_conflict_do_nothing(index_elements=["team"])
            )
        with self.store.write() as conn:
            conn.execute(statement)

    def take(self, per_window: int, window: float, gap: float = 0.0) -> Grant:
        """Take the next slot that keeps at most ``per_window`` in any ``window`` seconds, and
        at least ``gap`` seconds after the slot before."""
        if per_window < 1 or window <= 0 or gap < 0:
            raise ValueError("A window rule needs at least one slot per positive window.")
        with self._write() as conn:
            row = conn.execute(
                sa.select(budget_t.c.tat, budget_t.c.recent, budget_t.c.rate_limit)
                .where(budget_t.c.team == self.team)
                .with_for_update()
            ).one()
            # read once the row is ours: the time spent waiting for another sender's lock
            # must not make the slot look earlier than it is
            now_sql, params = self._now()
            now = float(conn.execute(sa.select(now_sql), params).scalar_one())
            recent = _slots(row.recent)
            slot = max(now, float(row.tat))
            if recent:
                slot = max(slot, recent[-1] + gap)
            if len(recent) >= per_window:
                slot = max(slot, recent[-per_window] + window)
            if slot - now >= self.ahead:
                # every slot within the look-ahead is taken: ask again when one comes into reach
                return Grant(None, max(MIN_RETRY, slot - now - self.ahead), row.rate_limit)
            keep = max(KEEP, window)
            # what any sender's rule can still look at: the last ``keep`` seconds of slots
            recent = [*[t for t in recent if t > slot - keep][-MAX_KEPT:], slot]
            conn.execute(
                budget_t.update()
                .where(budget_t.c.team == self.team)
                .values(tat=slot, recent=json.dumps(recent))
            )
        return Grant(slot - now, 0.0, row.rate_limit, slot)

    def learned(self) -> float | None:
        """The limit any sender has learned, for a sender about to take its first slot."""
        with self.store.read() as conn:
            value = conn.execute(
                sa.select(budget_t.c.rate_limit).where(budget_t.c.team == self.team)
            ).scalar()
        return float(value) if value is not None else None

    def busy(self) -> bool:
        """True when a slot was handed out within the last ``BUSY`` seconds, or is still ahead
        (another sender is sending, or probing)."""
        now, params = self._now()
        with self.store.read() as conn:
            ahead = conn.execute(
                sa.select(budget_t.c.tat - now).where(budget_t.c.team == self.team), params
            ).scalar()
        return ahead is not None and float(ahead) > -BUSY

    def learn(self, limit: float) -> None:
        """Store the limit the provider announced, for every sender to follow."""
        with self._write() as conn:
            conn.execute(
                budget_t.update()
                .where(budget_t.c.team == self.team)
                .values(rate_limit=limit, updated_at=utcnow())
            )

    def hold(self, seconds: float) -> None:
        """No slot for anyone before ``seconds`` from now (a 429's ``retry-after``)."""
        greatest = self._greatest
        with self._write() as conn:
            now, params = self._now()  # once the lock is held, as in ``take``
            conn.execute(
                budget_t.update()
                .where(budget_t.c.team == self.team)
                .values(tat=greatest(budget_t.c.tat, now + seconds)),
                params,
            )


def _slots(text: str | None) -> list[float]:
    """The recent slots a row keeps (a JSON list; anything else counts as none)."""
    try:
        values = json.loads(text) if text else []
    except ValueError:
        return []
    if not isinstance(values, list):
        return []
    return sorted(float(v) for v in values if isinstance(v, int | float))


__all__ = ["AHEAD", "Grant", "StoreBudget", "team_of"]
