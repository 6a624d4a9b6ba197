"""Opening a new campaign's send: the render check, the key check and the snapshot at once.

Every recipient is rendered before anything is recorded (the render check). That takes a
moment, and so do asking the provider whether it takes the key and writing the snapshot, so
all three run together once the check's processes are forked (a fork must not copy a process
with other threads):

- one thread makes the transport, takes a rate slot for the question (``preflight``) and asks
  the provider whether it takes the key. When ``send`` started a helper process for that
  (``send.keyprobe``), the slot is booked before the check forks and the helper, which has
  imported httpx already, asks at once; the thread makes the transport and reads the answer;
- once that slot is taken (both write to the store), another thread writes the snapshot, and
  its transaction commits only when the check has passed and the key was not refused.

A template problem or a refused key rolls it back: nothing is recorded. The limit the
provider's answer announces is known before the first email, so the run needs no probe.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from sponsorcast.config import Config
from sponsorcast.send.plan import Plan, validate_all
from sponsorcast.send.snapshot import take_snapshot
from sponsorcast.store import Store
from sponsorcast.store.budget import StoreBudget, team_of
from sponsorcast.transport import make_transport

if TYPE_CHECKING:
    from sponsorcast.send.keyprobe import KeyProbe
    from sponsorcast.transport import Transport
    from sponsorcast.transport.limiter import RateLimiter


def shared_budget(store: Store, config: Config) -> StoreBudget | None:
    """The team's request budget in the store, when sending through Resend with it on."""
    key = config.secrets.resend_api_key
    if config.transport != "resend" or not config.resend.shared_limit or not key:
        return None
    return StoreBudget(store, team_of(config.resend.base_url, key))


def open_send(
    store: Store,
    config: Config,
    plan: Plan,
    batch_size: int,
    *,
    transport: Transport | None = None,
    probe: KeyProbe | None = None,
) -> Transport:
    """Check every recipient, the key and take the snapshot, together; the run's transport.
    A failure of any raises with nothing recorded (``transport``: injected by tests;
    ``probe``: a helper process that asks about the key)."""
    if transport is not None:
        probe = None  # an injected transport asks nobody
    opening = _Opening(store, config, plan, batch_size, transport, probe)
    opening.book()
    try:
        validate_all(store, plan, config, beside=opening.start)
    except BaseException:
        opening.finish(passed=False)  # the check's error is the one to tell
        raise
    made = opening.finish(passed=True)
    assert made is not None
    return made


class _Opening:
    """The two threads beside the check, and what they and the check tell each other."""

    def __init__(
        self,
        store: Store,
        config: Config,
        plan: Plan,
        batch_size: int,
        transport: Transport | None,
        probe: KeyProbe | None = None,
    ) -> None:
        self._store = store
        self._probe = probe
        self._config = config
        self._plan = plan
        self._batch_size = batch_size
        self._transport = transport
        self._key_error: BaseException | None = None
        self._snapshot_error: BaseException | None = None
        self._slot_taken = threading.Event()  # the question's slot is taken (or it failed)
        self._asked = threading.Event()  # the provider answered (or the question failed)
        self._checked = threading.Event()  # the render check has ended
        self._passed = False  # and every recipient rendered
        self._threads: list[threading.Thread] = []
        self._booked: tuple[RateLimiter, float, bool] | None = None  # limiter, slot, asked

    def book(self) -> None:
        """Before the check forks, in the calling thread: when the helper is ready, book the
        question's slot and, when that slot is now, let the helper ask at once. Done here
        rather than in the key thread, which would first wait its turn with the check's
        rendering; a helper still starting, or a budget that cannot say at once, leaves it
        all to the thread."""
        if self._probe is None or not self._probe.ready(wait=False):
            return
        limiter = self._limiter()
        try:
            slot = limiter.book()
        except Exception:  # the key thread meets it again and tells it after the check
            return
        if slot is None:
            return
        asked = slot <= time.monotonic()
        if asked:
            self._probe.go()
        self._booked = (limiter, slot, asked)
        self._slot_taken.set()  # the budget is written: the snapshot may begin

    def _limiter(self) -> RateLimiter:
        """The run's limiter, on the team's budget (making the budget writes its row)."""
        from sponsorcast.transport.limiter import RateLimiter  # on use: keeps start-up fast

        return RateLimiter(
            self._config.resend.rate_limit, shared=shared_budget(self._store, self._config)
        )

    def start(self) -> None:
        """Begin beside the check (its ``beside``)."""
        if not self._threads:
            for work, name in ((self._ask, "send-key-check"), (self._snapshot, "send-snapshot")):
                thread = threading.Thread(target=work, name=name, daemon=True)
                self._threads.append(thread)
                thread.start()

    def finish(self, *, passed: bool) -> Transport | None:
        """Tell the threads how the check ended and wait for them; when it passed, raise what
        they met, or return the transport."""
        self._passed = passed
        self._checked.set()
        if passed and not self._threads:
            self.start()  # the check never called ``beside``
        for thread in self._threads:
            thread.join()
        if not passed:
            return None
        for error in (self._key_error, self._snapshot_error):
            if error is not None:
                raise error
        return self._transport

    def _ask(self) -> None:
        try:
            if self._probe is not None and self._probe.ready():
                self._ask_through(self._probe)
                return
            if self._transport is None:
                shared = shared_budget(self._store, self._config)
                self._transport = make_transport(
                    self._config, self._plan.campaign.id, shared=shared
                )
            question = self._transport.preflight()
            self._slot_taken.set()
            question()
        except BaseException as exc:  # carried to the main thread, raised there
            self._key_error = exc
        finally:
            self._slot_taken.set()
            self._asked.set()

    def _ask_through(self, probe: KeyProbe) -> None:
        """The question's slot taken (unless ``book`` did), the question asked by the
        helper, the transport made while it is on its way."""
        if self._booked is None:
            limiter = self._limiter()  # writes: before the snapshot begins
            sent_at = limiter.reserve()
            probe.go()
        else:
            # nothing here may write to the store: the snapshot may hold it, waiting for
            # this thread's answer
            limiter, sent_at, asked = self._booked
            if not asked:
                time.sleep(max(0.0, sent_at - time.monotonic()))
                probe.go()
        self._slot_taken.set()
        transport = make_transport(self._config, self._plan.campaign.id, limiter=limiter)
        self._transport = transport
        from sponsorcast.transport.resend import ResendTransport  # after go: httpx is slow

        if isinstance(transport, ResendTransport):  # the helper runs for Resend only
            transport.hear(probe.answer(), sent_at)

    def _snapshot(self) -> None:
        try:
            self._slot_taken.wait()
            if self._key_error is not None or (self._checked.is_set() and not self._passed):
                return  # nothing to write
            take_snapshot(self._store, self._plan, self._batch_size, commit_when=self._commit)
        except BaseException as exc:
            self._snapshot_error = exc

    def _commit(self) -> bool:
        """The snapshot's last step: commit only once every recipient has rendered and the
        provider has not refused the key."""
        self._checked.wait()
        self._asked.wait()
        return self._passed and self._key_error is None


__all__ = ["open_send", "shared_budget"]
