"""Where recipients come from for a preview or a check: the store, or a CSV of leads."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from sponsorcast.audience import (
    PERSON_COLUMNS,
    RECIPIENT_COLUMNS,
    audience_filter,
    check_ledger,
    count_recipients,
    iter_recipients,
    recipient,
    select_recipients,
    tags_to_text,
)
from sponsorcast.errors import NotFound
from sponsorcast.leads import read_csv_recipients
from sponsorcast.store import get_sponsor, open_store
from sponsorcast.store.tables import lead_t

if TYPE_CHECKING:
    from pathlib import Path

    from sponsorcast.audience import Audience
    from sponsorcast.config import Config
    from sponsorcast.store import Store
    from sponsorcast.store.models import Sponsor


class RecipientSource:
    """Where recipients and sponsors come from: the store, or a leads CSV (in memory)."""

    def __init__(
        self, config: Config, leads_csv: Path | None = None, store: Store | None = None
    ) -> None:
        self.config = config
        self.leads_csv = leads_csv
        self.progress: Callable[[int], None] | None = None  # told how many a check has rendered
        self._store: Store | None = store
        self._loaded: set[str] = set()

    def store(self) -> Store:
        """The store: the configured one (never created here), or a private in-memory one."""

        if self._store is None:
            if self.leads_csv is None:
                self._store = open_store(
                    self.config.store_url, sponsors=self.config.sponsors, create=False
                )
            else:
                # The CSV goes into a throwaway in-memory store so the audience is the same SQL
                # as for a real send; the configured store is never opened, let alone created.
                self._store = open_store("sqlite:///:memory:", sponsors=self.config.sponsors)
        return self._store

    def sponsor(self, sponsor_id: str) -> Sponsor:
        """The campaign's sponsor (from the store, or from the config with ``--leads``)."""

        try:
            return get_sponsor(self.store(), sponsor_id)
        except NotFound as exc:
            if self.leads_csv is not None:
                raise NotFound(
                    exc.message,
                    hint=f"With --leads, sponsors come from the config: add [sponsors.{sponsor_id}].",
                ) from None
            raise

    def _load_csv(self, sponsor_id: str) -> None:
        if self.leads_csv is None or sponsor_id in self._loaded:
            return

        insert = lead_t.insert().prefix_with("OR REPLACE")
        columns = (*PERSON_COLUMNS, "event", "fields")
        with self.store().write() as conn:
            chunk: list[dict[str, Any]] = []
            for row in read_csv_recipients(self.leads_csv):
                values = {k: row.get(k) for k in columns}
                values["sponsor_id"] = sponsor_id
                values["email"] = (row.get("email") or "").strip().lower()
                values["follow_up_status"] = row.get("follow_up_status") or "new"
                values["tags"] = tags_to_text(row.get("tags") or [])
                chunk.append(values)
                if len(chunk) >= 1000:
                    conn.execute(insert, chunk)
                    chunk = []
            if chunk:
                conn.execute(insert, chunk)
        self._loaded.add(sponsor_id)

    def recipients(self, sponsor_id: str, audience: Audience) -> Iterator[dict[str, Any]]:
        """Stream the audience's recipients, in lead order."""

        self._load_csv(sponsor_id)
        with self.store().read() as conn:
            check_ledger(conn, sponsor_id, audience)
            yield from iter_recipients(conn, select_recipients(sponsor_id, audience))

    def find(
        self, sponsor_id: str, audience: Audience, email: str | None
    ) -> tuple[dict[str, Any], str | None]:
        """One recipient to preview: ``email``'s lead or the audience's first; and a note."""

        self._load_csv(sponsor_id)
        with self.store().read() as conn:
            check_ledger(conn, sponsor_id, audience)
        query = select_recipients(sponsor_id, audience)
        hint = (
            "Import leads with 'sponsorcast leads import', or preview against a CSV with --leads."
        )
        with self.store().read() as conn:
            if email is None:
                row = conn.execute(query.limit(1)).mappings().first()
                if row is None:
                    raise NotFound(
                        f"The audience ({audience.type}) of sponsor '{sponsor_id}' has no leads to preview.",
                        hint=hint,
                    )
                return recipient(dict(row)), None
            wanted = email.strip().lower()
            row = (
                conn.execute(query.where(sa.func.lower(lead_t.c.email) == wanted).limit(1))
                .mappings()
                .first()
            )
            if row is not None:
                return recipient(dict(row)), None
            cols = [lead_t.c[name] for name in RECIPIENT_COLUMNS]
            any_row = (
                conn.execute(
                    sa.select(*cols)
                    .where(
                        lead_t.c.sponsor_id == sponsor_id,
                        sa.func.lower(lead_t.c.email) == wanted,
                    )
                    .limit(1)
                )
                .mappings()
                .first()
            )
            if any_row is None:
                raise NotFound(f"No lead {email} for sponsor '{sponsor_id}'.", hint=hint)
            return recipient(
                dict(any_row)
            ), f"{email} is not in this campaign's audience ({audience.type})."

    def shards(self, sponsor_id: str, audience: Audience) -> int:
        """In how many processes to check this audience: 1 unless it is large and in the store."""

        cpus = (
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1
        )
        if self.leads_csv is not None or cpus < 2:
            return 1  # an in-memory CSV store cannot be shared with other processes

        with self.store().read() as conn:
            check_ledger(conn, sponsor_id, audience)
            total = conn.execute(count_recipients(sponsor_id, audience)).scalar_one()
        least = FORK_MIN_RECIPIENTS if fork_usable() else PARALLEL_MIN_RECIPIENTS
        return min(cpus, MAX_SHARDS) if total >= least else 1

    def id_span(self, sponsor_id: str, audience: Audience) -> tuple[int, int | None, int | None]:
        """How many leads the audience has, and its lowest and highest lead id."""
        c = lead_t.c
        with self.store().read() as conn:
            count, low, high = conn.execute(
                sa.select(sa.func.count(), sa.func.min(c.id), sa.func.max(c.id)).where(
                    audience_filter(sponsor_id, audience)
                )
            ).one()
        return int(count), low, high

    def close(self) -> None:
        """Release the store."""
        if self._store is not None:
            self._store.dispose()
            self._store = None


# A check of a large audience in the store is split over the CPUs: ranges of lead ids, each
# streamed and rendered by whichever process takes it (render.parallel; the main one too).
PARALLEL_MIN_RECIPIENTS = 50_000  # below this, starting a process costs more than it saves
# A forked shard starts with everything imported and the campaign compiled: it pays from here.
FORK_MIN_RECIPIENTS = 10_000


def fork_usable() -> bool:
    """True when shards may be forked: a POSIX system and this process has no other thread
    (a fork copies only the calling thread, and a lock another one holds would stay held)."""
    return hasattr(os, "fork") and threading.active_count() == 1


MAX_SHARDS = 4
