"""Benchmark: one rate limit shared by every sender (``store/budget.py``).

The Resend stand-in (``tests/support/fakeresend.py``) runs as its own process at R = 10
requests/s with 200 ms answers, batches of 100: the ceiling is 1,000 emails/s. Scenarios:

- ``pg-3`` / ``pg-5``: three or five ``send`` workers on one PostgreSQL store, one campaign,
  ``rate_limit = "auto"`` each: emails/s from the first to the last accepted request as a ratio
  of the ceiling (target >= 0.93), 429s (at most 3), every recipient once;
- ``sqlite-two-campaigns``: two different campaigns sent at once on one SQLite store: the
  busiest one-second window of requests (target <= R), 429s after the first two seconds (0);
- ``pg-kill``: three workers, one SIGKILLed after 8 s: how long until the others make R
  requests in a second again (target <= 2 s), every recipient still once;
- ``sqlite-20k``: one ``send`` of 20,000 recipients, timed as a whole process from start to
  exit (start-up, the render check of everyone, the snapshot), after one untimed start that
  brings the files into the page cache: ratio of the ceiling (>= 0.9).

    .venv/bin/python bench/bench_shared_limit.py [--only pg-3] [--pg URL]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_pg_import import temporary_database, throwaway_server  # noqa: E402 - after sys.path
from bench_pg_workers import fill_store  # noqa: E402
from bench_pg_workers import record as _record  # noqa: E402
from bench_send import CAMPAIGN, start_fake  # noqa: E402

RATE = 10
BATCH = 100
CEILING = RATE * BATCH
KEY = "re_test_0123456789abcdef"
RATE_LIMIT = os.environ.get("BENCH_RATE_LIMIT", '"auto"')  # the workers' rate_limit


def _config(store_url: str, fake_url: str, rate_limit: str = '"auto"') -> str:
    return f"""\
[store]
url = "{store_url}"
[transport]
kind = "resend"
[resend]
base_url = "{fake_url}"
rate_limit = {rate_limit}
batch_size = {BATCH}
[send]
lease_seconds = 60
[sponsors.default]
name = "Bench Events"
from = "Bench Events <hello@example.com>"
postal_address = "1 Bench Street, Springfield"
"""


def _start(project: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RESEND_API_KEY": KEY, "PYTHONPATH": str(ROOT), "SPONSORCAST_DB": ""}
    return subprocess.Popen(
        [sys.executable, "-m", "sponsorcast", *args],
        cwd=project,
        env={**env, "SPONSORCAST_CONFIG": "sponsorcast.toml"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def record(url: str) -> dict[str, Any]:
    """The stand-in's counters, exactly-once summary and accepted emails."""
    return dict(_record(url))


def _requests(data: dict[str, Any]) -> list[float]:
    """Each accepted request's time (one per idempotency key, its first email's time)."""
    first: dict[str, float] = {}
    for email in data["accepted"]:
        key = email["idempotency_key"]
        first[key] = min(first.get(key, email["time"]), email["time"])
    return sorted(first.values())


def _busiest_second(times: Sequence[float]) -> int:
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best


def _per_second(times: Sequence[float]) -> list[int]:
    """Requests in each second from the first one: where a run loses time."""
    counts = [0] * (int(times[-1] - times[0]) + 1)
    for t in times:
        counts[int(t - times[0])] += 1
    return counts


def _steady(data: dict[str, Any]) -> float:
    times = _requests(data)
    emails = int(data["counters"]["emails"])
    return (emails - BATCH) / (times[-1] - times[0]) / CEILING


def _once(data: dict[str, Any], n: int) -> str:
    duplicates = len(data["duplicates"])
    return f"{data['distinct_recipients']:,} of {n:,} distinct, {duplicates} duplicates"


def workers(
    server: str, workdir: Path, count: int, n: int, kill_after: float | None
) -> dict[str, Any]:
    """``count`` workers on one PostgreSQL store; optionally one SIGKILLed mid-run."""
    fake, fake_url = start_fake(RATE, 0.2)
    try:
        with temporary_database(server) as store_url:
            project = workdir / f"pg-{count}-{kill_after}"
            project.mkdir()
            (project / "sponsorcast.toml").write_text(_config(store_url, fake_url, RATE_LIMIT))
            (project / "bench.md").write_text(CAMPAIGN)
            fill_store(store_url, n)
            t0 = time.time()
            procs = [_start(project, "send", "bench.md", "--yes") for _ in range(count)]
            killed_at = None
            if kill_after is not None:
                time.sleep(kill_after)
                procs[0].send_signal(signal.SIGKILL)
                killed_at = time.time()
            codes = [p.wait(timeout=1800) for p in procs]
            wall = time.time() - t0
            if kill_after is not None:  # the killed worker's leased batches: a later run
                codes[0] = 0
                rerun = _start(project, "send", "bench.md", "--yes")
                codes.append(rerun.wait(timeout=600))
            data = record(fake_url)
    finally:
        fake.terminate()
        fake.wait(timeout=10)
    times = _requests(data)
    result: dict[str, Any] = {
        "workers": count,
        "exit_codes": codes,
        "steady_ratio": round(_steady(data), 3),
        "wall_s": round(wall, 1),
        "429s": data["counters"]["rate_limited"],
        "replays": data["counters"]["replays"],
        "requests": len(times),
        "busiest_second": _busiest_second(times),
        "exactly_once": _once(data, n),
        "per_second": _per_second(times),
    }
    if killed_at is not None:
        after = [t for t in times if t >= killed_at]
        recovered = next(
            (t - killed_at for t in after if sum(1 for u in after if t <= u < t + 1.0) >= RATE),
            None,
        )
        # R requests within one second, counted from the first one at or after the kill
        result["kill_at_s"] = round(killed_at - t0, 1)
        result["ceiling_again_after_s"] = round(recovered, 2) if recovered is not None else None
    return result


def two_campaigns(workdir: Path, n: int) -> dict[str, Any]:
    """Two campaigns of one SQLite store sent at once."""
    fake, fake_url = start_fake(RATE, 0.2)
    try:
        project = workdir / "two"
        project.mkdir()
        (project / "sponsorcast.toml").write_text(_config("sqlite:///sponsorcast.db", fake_url))
        for name in ("a", "b"):
            (project / f"bench-{name}.md").write_text(
                CAMPAIGN.replace("name: Bench", f"name: Bench {name}")
            )
        fill_store(f"sqlite:///{project / 'sponsorcast.db'}", n)
        t0 = time.time()
        procs = [_start(project, "send", f"bench-{name}.md", "--yes") for name in ("a", "b")]
        codes = [p.wait(timeout=1800) for p in procs]
        wall = time.time() - t0
        data = record(fake_url)
    finally:
        fake.terminate()
        fake.wait(timeout=10)
    times = _requests(data)
    steady = [t for t in times if t >= times[0] + 2.0]
    return {
        "campaigns": 2,
        "exit_codes": codes,
        "requests": len(times),
        "together_per_s": round((len(times) - 1) / (times[-1] - times[0]), 2),
        "busiest_second": _busiest_second(times),
        "busiest_second_after_2s": _busiest_second(steady),
        "429s": data["counters"]["rate_limited"],
        "most_in_a_window": data["counters"]["max_window"],  # as the stand-in counts arrivals
        "wall_s": round(wall, 1),
        "accepted": data["counters"]["emails"],
    }


def single(workdir: Path, n: int, rate_limit: str) -> dict[str, Any]:
    """One ``send`` of ``n`` recipients, timed as a whole process."""
    fake, fake_url = start_fake(RATE, 0.2)
    try:
        project = workdir / f"single-{rate_limit.strip(chr(34))}"
        project.mkdir()
        (project / "sponsorcast.toml").write_text(
            _config("sqlite:///sponsorcast.db", fake_url, rate_limit)
        )
        (project / "bench.md").write_text(CAMPAIGN)
        fill_store(f"sqlite:///{project / 'sponsorcast.db'}", n)
        # one untimed start first: the interpreter's and the package's files in the page
        # cache, as on a machine that runs the tool (this VM evicts idle files within minutes)
        _start(project, "--help").wait(timeout=60)
        t0 = time.time()
        code = _start(project, "send", "bench.md", "--yes").wait(timeout=1800)
        wall = time.time() - t0
        data = record(fake_url)
    finally:
        fake.terminate()
        fake.wait(timeout=10)
    times = _requests(data)
    return {
        "recipients": n,
        "rate_limit": rate_limit.strip('"'),
        "exit_code": code,
        "wall_s": round(wall, 2),
        "whole_process_ratio": round(n / wall / CEILING, 3),
        "first_request_after_s": round(times[0] - t0, 2),
        "steady_ratio": round(_steady(data), 3),
        "429s": data["counters"]["rate_limited"],
    }


SCENARIOS = ("pg-3", "pg-5", "sqlite-two-campaigns", "pg-kill", "sqlite-20k")


def main() -> None:
    """Run the scenarios asked for, one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=SCENARIOS)
    parser.add_argument("--n", type=int, default=30_000, help="recipients of the PostgreSQL runs")
    parser.add_argument("--pg", help="a PostgreSQL server URL (default: SPONSORCAST_TEST_PG)")
    args = parser.parse_args()
    chosen = args.only or list(SCENARIOS)
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )

    def run_all(server: str | None) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            for name in chosen:
                if name.startswith("pg-") and server is None:
                    continue
                if name == "pg-3":
                    result = workers(str(server), work, 3, args.n, None)
                elif name == "pg-5":
                    result = workers(str(server), work, 5, args.n, None)
                elif name == "pg-kill":
                    result = workers(str(server), work, 3, args.n, 8.0)
                elif name == "sqlite-two-campaigns":
                    result = two_campaigns(work, 10_000)
                else:
                    result = single(work, 20_000, "10")
                print(json.dumps({"scenario": name, **result}), flush=True)

    server = args.pg or os.environ.get("SPONSORCAST_TEST_PG")
    if server or not any(name.startswith("pg-") for name in chosen):
        run_all(server)
    else:
        with throwaway_server() as url:
            run_all(url)


if __name__ == "__main__":
    main()
