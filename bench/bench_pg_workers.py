"""Benchmark: three `sponsorcast send` workers sharing one campaign on a PostgreSQL store.

The Resend stand-in (``tests/support/fakeresend.py``) runs as its own process with a per-second
request limit R and 200 ms answers; a fresh PostgreSQL database holds N leads; three workers
start `send bench.md --yes` at once (as three hosts would). Printed per scenario: emails/s
between them as a ratio of the ceiling R x 100 emails per request (steady state: from the first
to the last accepted request; and wall clock, start-up and snapshot included), 429s, and the
exactly-once check (distinct recipients, duplicates). Target (issue 6): >= 90 % of the ceiling.

Scenarios: ``split-4-3-3`` (whole-number `rate_limit` shares adding up to R, as docs/postgres.md
recommends), ``split-even`` (R / 3 = 3.333 each) and ``auto`` (each follows the ratelimit headers).

    .venv/bin/python bench/bench_pg_workers.py [--n 30000] [--only split] [--pg URL]
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
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_pg_import import temporary_database, throwaway_server  # noqa: E402 - after sys.path
from bench_send import CAMPAIGN, start_fake  # noqa: E402

RATE = 10  # the provider's requests per second
BATCH = 100
WORKERS = 3
TARGET_RATIO = 0.90
# each worker's `rate_limit`
SCENARIOS = {
    "split-4-3-3": ["4", "3", "3"],  # whole-number shares adding up to R
    "split-even": [f"{RATE / WORKERS:.3f}"] * WORKERS,
    "auto": ['"auto"'] * WORKERS,
}


class WorkersFailed(Exception):
    """A worker exited with a non-zero code."""


def fill_store(url: str, n: int) -> None:
    """A migrated store with n leads of sponsor `default`."""
    from sponsorcast.store import open_store
    from sponsorcast.store.models import Lead, utcnow

    store = open_store(url)
    now = utcnow()
    table = Lead.__table__  # type: ignore[attr-defined]
    for start in range(0, n, 20_000):
        with store.write() as conn:
            conn.execute(
                table.insert(),
                [
                    {
                        "sponsor_id": "default",
                        "email": f"lead{i}@example.com",
                        "name": f"Lead Number{i}",
                        "first_name": "Lead",
                        "last_name": f"Number{i}",
                        "company": f"Company {i % 977}",
                        "follow_up_status": "new",
                        "tags": ",bench,",
                        "fields": {"booth": str(i % 40)},
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(start, min(start + 20_000, n))
                ],
            )
    store.dispose()


def record(url: str) -> dict[str, object]:
    """The stand-in's counters, exactly-once summary and accepted emails."""
    with urllib.request.urlopen(f"{url}/_fake/record", timeout=60) as resp:
        data: dict[str, object] = json.load(resp)
    return data


def run(
    name: str, rate_limits: list[str], server_url: str, n: int, workdir: Path
) -> dict[str, object]:
    """One scenario: fresh database, fresh stand-in, three workers."""
    fake, fake_url = start_fake(RATE, 0.2)
    try:
        with temporary_database(server_url) as store_url:
            project = workdir / name
            project.mkdir()
            for i, rate_limit in enumerate(rate_limits):
                (project / f"worker{i}.toml").write_text(f"""\
[store]
url = "{store_url}"
[transport]
kind = "resend"
[resend]
base_url = "{fake_url}"
rate_limit = {rate_limit}
batch_size = {BATCH}
[sponsors.default]
name = "Bench Events"
from = "Bench Events <hello@example.com>"
postal_address = "1 Bench Street, Springfield"
""")
            (project / "bench.md").write_text(CAMPAIGN)
            fill_store(store_url, n)
            env = {
                **os.environ,
                "RESEND_API_KEY": "re_test_0123456789abcdef",
                "PYTHONPATH": str(ROOT),
                "SPONSORCAST_DB": "",
            }
            t0 = time.monotonic()
            procs = [
                subprocess.Popen(
                    [sys.executable, "-m", "sponsorcast", "send", "bench.md", "--yes"],
                    cwd=project,
                    env={**env, "SPONSORCAST_CONFIG": f"worker{i}.toml"},
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
                for i in range(len(rate_limits))
            ]
            outs = [p.communicate(timeout=3600) for p in procs]
            wall = time.monotonic() - t0
            failed = [
                (p.returncode, e.decode()[-800:])
                for p, (_, e) in zip(procs, outs, strict=False)
                if p.returncode
            ]
            if failed:
                raise WorkersFailed(
                    f"{len(failed)} of {len(procs)} workers exited non-zero: {failed}"
                )
            data = record(fake_url)
    finally:
        fake.terminate()
        fake.wait(timeout=10)
    counters = data["counters"]
    assert isinstance(counters, dict)
    accepted = data["accepted"]
    assert isinstance(accepted, list)
    times = sorted(a["time"] for a in accepted)
    requests = len({a["idempotency_key"] for a in accepted})
    steady = (
        (counters["emails"] - BATCH) / (times[-1] - times[0])
        if len(times) > 1 and times[-1] > times[0]
        else 0.0
    )
    ceiling = RATE * BATCH
    return {
        "scenario": name,
        "rate_limits": [r.strip('"') for r in rate_limits],
        "recipients": n,
        "accepted": counters["emails"],
        "distinct": data["distinct_recipients"],
        "duplicates": len(data["duplicates"]),  # type: ignore[arg-type]
        "requests": requests,
        "429s": counters["rate_limited"],
        "replays": counters["replays"],
        "steady_emails_per_s": round(steady, 1),
        "steady_ratio": round(steady / ceiling, 3),
        "wall_s": round(wall, 1),
        "wall_ratio": round(n / wall / ceiling, 3),
        "target": f">= {TARGET_RATIO:.0%} of {ceiling:,} emails/s",
        "load_average": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=30_000, help="recipients (default 30,000)")
    parser.add_argument(
        "--only", action="append", choices=sorted(SCENARIOS), help="scenario (repeatable)"
    )
    parser.add_argument(
        "--pg", help="A PostgreSQL server URL (default: SPONSORCAST_TEST_PG, else a throwaway one)."
    )
    args = parser.parse_args()
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        flush=True,
    )

    def all_runs(server: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            for name, rate_limits in SCENARIOS.items():
                if args.only and name not in args.only:
                    continue
                try:
                    print(json.dumps(run(name, rate_limits, server, args.n, Path(tmp))), flush=True)
                except WorkersFailed as exc:
                    print(json.dumps({"scenario": name, "failed": str(exc)}), flush=True)

    server = args.pg or os.environ.get("SPONSORCAST_TEST_PG")
    if server:
        all_runs(server)
    else:
        with throwaway_server() as url:
            all_runs(url)


if __name__ == "__main__":
    main()
