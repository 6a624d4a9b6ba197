"""Benchmark: audiences over the ledger of a campaign with 1,000,000 deliveries.

Fills a store like ``bench_report.py`` (1,000,000 leads, each with a delivery of campaign
``big``: 2 % bounced, 60 % opened, a third of those clicked), then times whole
``sponsorcast leads count`` processes, as cron or a person runs them, for the ledger keys:

- ``not_clicked=big``: who to follow up;
- ``received=big`` and ``not_clicked=big`` together;
- ``not_contacted_within=7d``: nobody emailed by this sponsor in a week;
- a follow-up of ``big`` three days after, ``not_clicked: big``: who is due, and what would
  become of them (``send.followups.preview_due``, the SQL a ``run-due`` runs to add them);
  and the same selection under a sponsor's ``frequency_cap = "1 per 3d"``, which reads each
  the emails of the cap's window once (``send.frequency.capped_leads``).

Target: each under 1 s (indexed SQL, no per-lead Python), SQLite and PostgreSQL, for the
query alone and, stricter, for the whole process. The counts are checked against the
numbers the fill wrote.

    .venv/bin/python bench/bench_ledger.py
    .venv/bin/python bench/bench_ledger.py --pg postgresql://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_report import timed  # noqa: E402 - after sys.path

TARGET_S = 1.0


def expected(url: str) -> dict[str, int]:
    """The counts each audience must give, read straight from the filled table."""
    import sqlalchemy as sa

    from sponsorcast.store import open_store

    store = open_store(url)
    with store.read() as conn:
        row = conn.execute(
            sa.text(
                "SELECT count(*), sum(CASE WHEN first_click_at IS NULL THEN 1 ELSE 0 END), "
                "sum(CASE WHEN sent_at IS NOT NULL AND first_click_at IS NULL THEN 1 ELSE 0 END) "
                "FROM delivery WHERE campaign_id = 'big'"
            )
        ).one()
    store.dispose()
    return {"all": int(row[0]), "not_clicked": int(row[1]), "received_not_clicked": int(row[2])}


def sql_seconds(url: str, filters: list[str]) -> float:
    """The count query alone, in an open store (best of 3): what a run-due pays per audience."""
    from sponsorcast.audience import audience_from_options, count_recipients
    from sponsorcast.store import open_store

    audience = audience_from_options(None, [f for f in filters if f != "--filter"])
    store = open_store(url)
    best = float("inf")
    with store.read() as conn:
        for _ in range(3):
            began = time.perf_counter()
            conn.execute(count_recipients("bench", audience)).scalar_one()
            best = min(best, time.perf_counter() - began)
    store.dispose()
    return best


def due_seconds(url: str) -> tuple[float, float, float, int]:
    """A follow-up of ``big`` three days after, ``not_clicked: big``: (selecting who is due
    and qualifies, as ``run-due`` does; the whole dry-run preview; how many are due)."""
    from datetime import UTC, datetime, timedelta

    import sqlalchemy as sa

    from sponsorcast.audience import audience_filter, parse_audience
    from sponsorcast.durations import parse_frequency_cap
    from sponsorcast.send.followups import due_parent_rows, preview_due
    from sponsorcast.send.frequency import capped_leads
    from sponsorcast.store import get_sponsor, open_store
    from sponsorcast.store.tables import lead_t

    audience = parse_audience({"type": "custom", "filter": {"not_clicked": "big"}})
    store = open_store(url)
    sponsor = get_sponsor(store, "bench")
    select_best = preview_best = capped_best = float("inf")
    due = 0
    cap = parse_frequency_cap("1 per 3d")
    with store.read() as conn:
        now = datetime.now(UTC)
        for _ in range(3):
            began = time.perf_counter()
            rows = due_parent_rows(conn, "again", "big", now - timedelta(days=3))
            selected = conn.execute(
                sa.select(sa.func.count())
                .select_from(lead_t)
                .where(lead_t.c.id.in_(rows), audience_filter("bench", audience, now))
            ).scalar_one()
            select_best = min(select_best, time.perf_counter() - began)
            began = time.perf_counter()
            free = conn.execute(
                sa.select(sa.func.count())
                .select_from(lead_t)
                .where(
                    lead_t.c.id.in_(rows),
                    audience_filter("bench", audience, now),
                    ~capped_leads(cap, "again", lead_t.c.id, now),
                )
            ).scalar_one()
            capped_best = min(capped_best, time.perf_counter() - began)
            began = time.perf_counter()
            due = preview_due(conn, "again", sponsor, audience, "big", timedelta(days=3)).due_now
            preview_best = min(preview_best, time.perf_counter() - began)
    store.dispose()
    if free != selected:  # the fill sent nothing in the cap's window: nobody is held back
        raise SystemExit(f"the frequency cap held {selected - free:,} back")
    return select_best, preview_best, capped_best, due


def main() -> None:
    """Fill a store, time the ledger audiences, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--pg", metavar="URL", help="a PostgreSQL database to fill (emptied)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sc-bench-ledger-") as folder:
        project = Path(folder)
        url = args.pg or f"sqlite:///{project / 'bench.db'}"
        (project / "sponsorcast.toml").write_text(
            f'[store]\nurl = "{url}"\n\n[transport]\nkind = "outbox"\n', encoding="utf-8"
        )
        began = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                str(REPO / "bench" / "bench_report.py"),
                "--fill",
                url,
                "--deliveries",
                str(args.deliveries),
            ],
            check=True,
            capture_output=True,
        )
        print(f"  (filling took {time.perf_counter() - began:.0f} s)")
        want = expected(url)
        print(
            f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"load {os.getloadavg()[0]:.1f}; {'PostgreSQL' if args.pg else 'SQLite'} store, "
            f"{want['all']:,} deliveries"
        )
        # the campaign was sent on 2026-11-20: today everyone is outside a 7-day window
        runs = [
            ("not_clicked=big", ["--filter", "not_clicked=big"], want["not_clicked"]),
            (
                "received + not_clicked",
                ["--filter", "received=big", "--filter", "not_clicked=big"],
                want["received_not_clicked"],
            ),
            ("not_contacted_within=7d", ["--filter", "not_contacted_within=7d"], want["all"]),
        ]
        for label, extra, count in runs:
            best = None
            for _ in range(3):
                seconds, peak, out = timed(
                    project, "leads", "count", "--sponsor", "bench", *extra, "--json"
                )
                got = json.loads(out)["count"]
                if got != count:
                    raise SystemExit(f"{label}: counted {got:,}, the table says {count:,}")
                best = seconds if best is None else min(best, seconds)
            assert best is not None
            query = sql_seconds(url, extra)
            print(
                f"{label:<26} {best:6.3f} s = {best / TARGET_S:.2f} of the {TARGET_S:.0f} s "
                f"target (best of 3, whole process, peak {peak:.0f} MiB); the query alone "
                f"{query:.3f} s; {count:,} leads"
            )
        selecting, previewing, capping, due = due_seconds(url)
        if due != want["all"]:
            raise SystemExit(f"follow-up: {due:,} due, the table says {want['all']:,}")
        print(
            f"{'follow-up: who is due':<26} {selecting:6.3f} s = {selecting / TARGET_S:.2f} of the "
            f"{TARGET_S:.0f} s target (best of 3, the selection run-due makes, in an open store), "
            f"{due:,} due; the whole dry-run preview {previewing:.3f} s"
        )
        print(
            f"{'... under a frequency cap':<26} {capping:6.3f} s = {capping / TARGET_S:.2f} of the "
            f"{TARGET_S:.0f} s target (the same selection, less the leads emailed in the window)"
        )


if __name__ == "__main__":
    main()
