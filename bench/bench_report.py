"""Benchmark: the report of a campaign with 1,000,000 deliveries and 3,000,000 events.

Fills a store by bulk inserts (not timed), then times whole ``sponsorcast report`` processes,
as a user runs them, and reads each one's peak memory (``ru_maxrss`` of the child):

- ``report ID --json``: every aggregate (funnel, timeline, links, reasons);
- ``report ID --html FILE``: the same, charts, and the 1,000 most engaged recipients;
- ``report ID --csv DIR``: the same, and all 1,000,000 recipients streamed to recipients.csv.

Target: each under 10 s, and memory that does not grow with the campaign (compare
``--deliveries 100000`` with the default).

    .venv/bin/python bench/bench_report.py
    .venv/bin/python bench/bench_report.py --deliveries 100000
    .venv/bin/python bench/bench_report.py --pg postgresql://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TARGET_S = 10.0
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
LINKS = [
    "https://example.com/demo",
    "https://example.com/agenda",
    "https://example.com/booth",
    "https://example.com/p?c={{ company | urlencode }}",
]
BODY = (
    "Hi {{ first_name }},\n\n[Book a demo](https://example.com/demo), "
    "[the agenda](https://example.com/agenda), [our booth](https://example.com/booth) and "
    "[your page](https://example.com/p?c={{ company | urlencode }}).\n"
)
REASONS = [
    "550 5.1.1 The email account that you tried to reach does not exist",
    "552 5.2.2 Mailbox full",
    "550 5.7.1 Message rejected as spam",
]
CHUNK = 20_000


def fill(url: str, deliveries: int, seed: int = 7) -> int:
    """A sponsor, a campaign, ``deliveries`` leads and deliveries and 3 events per delivery."""
    import sqlalchemy as sa

    from sponsorcast.store import open_store
    from sponsorcast.store.tables import campaign_t, delivery_t, event_t, lead_t, sponsor_t

    store = open_store(url)
    rng = random.Random(seed)
    events = 0
    with store.engine.begin() as conn:
        conn.execute(sponsor_t.insert().values(id="bench", name="Bench Sponsor"))
        conn.execute(
            campaign_t.insert().values(
                id="big",
                sponsor_id="bench",
                name="Big",
                subject="Hello",
                body=BODY,
                status="sent",
                content_hash="h",
                total_recipients=deliveries,
                created_at=T0,
                started_at=T0,
                finished_at=T0 + timedelta(hours=1),
            )
        )
    for start in range(0, deliveries, CHUNK):
        n = min(CHUNK, deliveries - start)
        leads = [
            {
                "id": start + i + 1,
                "sponsor_id": "bench",
                "email": f"lead{start + i}@example.org",
                "name": f"Lead {start + i}",
                "company": f"Company {(start + i) % 5000}",
                "follow_up_status": "new",
                "tags": "",
            }
            for i in range(n)
        ]
        rows: list[dict[str, Any]] = []
        evs: list[dict[str, Any]] = []
        for i in range(n):
            did = start + i + 1
            sent = T0 + timedelta(seconds=(start + i) * 3600 / deliveries)
            row: dict[str, Any] = {
                "id": did,
                "campaign_id": "big",
                "lead_id": did,
                "recipient": f"lead{start + i}@example.org",
                "status": "delivered",
                "attempts": 1,
                "provider_message_id": f"m{did}",
                "batch": (start + i) // 100,
                "sent_at": sent,
                "delivered_at": sent + timedelta(seconds=5),
                "open_count": 0,
                "click_count": 0,
                "opened_at": None,
                "first_click_at": None,
                "last_error": None,
            }
            evs.append(_event(did, "email.delivered", sent + timedelta(seconds=5), {}))
            roll = rng.random()
            if roll < 0.02:
                row.update(status="bounced", delivered_at=None, last_error=rng.choice(REASONS))
                evs.append(_event(did, "email.bounced", sent + timedelta(seconds=9), {}))
                evs.append(_event(did, "email.sent", sent, {}))
            elif roll < 0.62:  # opened; a third of openers click, the rest open twice
                opened = sent + timedelta(minutes=rng.expovariate(1 / 600))
                row.update(opened_at=opened, open_count=1)
                evs.append(_event(did, "open", opened, {"source": "pixel"}))
                if rng.random() < 1 / 3:
                    clicked = opened + timedelta(minutes=rng.expovariate(1 / 5))
                    link = rng.choice(LINKS)
                    target = link.replace("{{ company | urlencode }}", f"Company%20{did % 5000}")
                    row.update(first_click_at=clicked, click_count=1)
                    payload = {"source": "redirect", "url": target, "link": link}
                    evs.append(_event(did, "click", clicked, payload))
                else:
                    row.update(open_count=2)
                    evs.append(_event(did, "open", opened + timedelta(hours=3), {}))
            else:
                evs.append(_event(did, "email.sent", sent, {}))
                evs.append(_event(did, "email.delivery_delayed", sent, {}))
            rows.append(row)
        with store.engine.begin() as conn:
            conn.execute(lead_t.insert(), leads)
            conn.execute(delivery_t.insert(), rows)
            conn.execute(event_t.insert(), evs)
        events += len(evs)
    with store.engine.begin() as conn:
        conn.execute(sa.text("ANALYZE"))
    store.dispose()
    return events


def _event(did: int, type_: str, at: datetime, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "campaign_id": "big",
        "delivery_id": did,
        "type": type_,
        "occurred_at": at,
        "payload": payload,
        "created_at": at,
    }


def timed(project: Path, *args: str) -> tuple[float, float, str]:
    """(seconds, peak MiB, stdout) of one ``sponsorcast`` process run in ``project``."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(
            [str(REPO / ".venv" / "bin" / "sponsorcast"), *args],
            cwd=project,
            stdout=out,
            stderr=err,
            env={**os.environ, "SPONSORCAST_CONFIG": ""},
        )
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak memory
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            raise SystemExit(f"sponsorcast {' '.join(args)} failed: {err.read().decode()}")
        return seconds, usage.ru_maxrss / 1024, out.read().decode()


def main() -> None:
    """Fill a store, time the three report commands, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--pg", metavar="URL", help="a PostgreSQL database to fill (emptied)")
    parser.add_argument("--fill", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fill:  # the child that fills the store: the timing parent stays small
        if args.fill.startswith("postgresql"):
            import sqlalchemy as sa

            engine = sa.create_engine(args.fill)
            with engine.begin() as conn:
                conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            engine.dispose()
        print(fill(args.fill, args.deliveries))
        return
    with tempfile.TemporaryDirectory(prefix="sc-bench-report-") as folder:
        project = Path(folder)
        url = args.pg or f"sqlite:///{project / 'bench.db'}"
        (project / "sponsorcast.toml").write_text(
            f'[store]\nurl = "{url}"\n\n[transport]\nkind = "outbox"\n', encoding="utf-8"
        )
        began = time.perf_counter()
        # a child fills the store: a forked child's peak memory counts its parent's pages
        filled = subprocess.run(
            [sys.executable, __file__, "--fill", url, "--deliveries", str(args.deliveries)],
            check=True,
            capture_output=True,
            text=True,
        )
        events = int(filled.stdout.strip().splitlines()[-1])
        print(f"  (filling took {time.perf_counter() - began:.0f} s)")
        print(
            f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"load {os.getloadavg()[0]:.1f}; {'PostgreSQL' if args.pg else 'SQLite'} store, "
            f"{args.deliveries:,} deliveries, {events:,} events"
        )
        runs = [
            ("report --json", ("report", "big", "--json")),
            ("report --html", ("report", "big", "--html", "big.html")),
            ("report --csv", ("report", "big", "--csv", "out")),
        ]
        for label, command in runs:
            seconds, peak, out = timed(project, *command)
            extra = ""
            if label == "report --json":
                data = json.loads(out)
                extra = f" (sent {data['funnel']['sent']:,}, {len(data['timeline'])} buckets)"
            elif label == "report --csv":
                lines = sum(1 for _ in (project / "out" / "recipients.csv").open())
                extra = f" ({lines - 1:,} recipient rows)"
            elif label == "report --html":
                extra = f" ({(project / 'big.html').stat().st_size / 1024:.0f} KiB)"
            print(
                f"{label:<15} {seconds:6.2f} s  = {seconds / TARGET_S:.2f} of the {TARGET_S:.0f} s "
                f"target, peak {peak:5.0f} MiB{extra}"
            )


if __name__ == "__main__":
    main()
