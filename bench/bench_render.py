"""Benchmark: ``sponsorcast render CAMPAIGN --check`` over 100,000 (and 1,000,000) stored leads.

Fills a fresh SQLite store through SQLAlchemy Core, then runs the real command as a
subprocess, end to end (start-up, store, query, rendering, report), and prints recipients per
second beside the target (20,000/s at 100k) and the peak RSS of the process at each size
(memory must stay flat from 100k to 1M).

    .venv/bin/python bench/bench_render.py                 # 100k and 1M
    .venv/bin/python bench/bench_render.py --sizes 100000  # 100k only
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TARGET_PER_SECOND = 20_000
CONFIG = """\
[store]
url = "sqlite:///bench.db"

[transport]
kind = "outbox"

[sponsors.default]
name = "Example Events"
from = "Example Events <hello@example.com>"
postal_address = "1 Example Street, Springfield"
"""
LEVELS = ("hot", "warm", "cold", None)
FIRST = ("Ada", "Grace", "Alan", "Katherine", "Linus", "Margaret", "Barbara", "Edsger")
LAST = ("Lovelace", "Hopper", "Turing", "Johnson", "Torvalds", "Hamilton", "Liskov", "Dijkstra")


def fill(directory: Path, count: int) -> float:
    """Create the store and insert ``count`` leads with Core; returns seconds taken."""
    from sponsorcast.config import load_config
    from sponsorcast.store import open_from_config
    from sponsorcast.store.tables import lead_t as lead_table

    store = open_from_config(load_config(directory / "sponsorcast.toml", env={}))
    started = time.perf_counter()
    chunk = 10_000
    with store.write() as conn:
        for start in range(0, count, chunk):
            rows = []
            for i in range(start, min(start + chunk, count)):
                first, last = FIRST[i % len(FIRST)], LAST[(i // 7) % len(LAST)]
                rows.append(
                    {
                        "sponsor_id": "default",
                        "email": f"lead{i}@example.com",
                        "name": f"{first} {last}",
                        "first_name": first,
                        "last_name": last,
                        "company": f"Company {i % 997} & Sons" if i % 5 else None,
                        "title": "Engineer",
                        "intent_level": LEVELS[i % 4],
                        "intent_score": i % 101,
                        "follow_up_status": "new",
                        "tags": ",enterprise," if i % 2 else "",
                        "fields": {"booth": str(i % 40), "country": "NL"},
                        "source": "bench",
                    }
                )
            conn.execute(lead_table.insert(), rows)
    store.dispose()
    return time.perf_counter() - started


def run_check(directory: Path, campaign: Path) -> tuple[float, float, int, int, str]:
    """Run ``render --check`` as a subprocess: (wall s, CPU s, exit code, peak RSS KiB, stdout)."""
    exe = REPO / ".venv" / "bin" / "sponsorcast"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(exe), "--config", "sponsorcast.toml", "render", str(campaign), "--check"],
        cwd=directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "TERM": "dumb"},
    )
    assert proc.stdout is not None
    output = proc.stdout.read().decode()
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    cpu = usage.ru_utime + usage.ru_stime
    return elapsed, cpu, os.waitstatus_to_exitcode(status), usage.ru_maxrss, output


def main() -> None:
    """Fill, check, print figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated lead counts")
    parser.add_argument("--campaign", default=str(REPO / "campaigns" / "welcome.md"))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    campaign = Path(args.campaign).resolve()

    print(f"date: {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(
        f"load average before: {os.getloadavg()[0]:.2f} (other work on the machine slows wall time)"
    )
    print(f"campaign: {campaign.relative_to(REPO) if campaign.is_relative_to(REPO) else campaign}")
    results: dict[int, tuple[float, int]] = {}
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-render-") as tmp:
            directory = Path(tmp)
            (directory / "sponsorcast.toml").write_text(CONFIG, encoding="utf-8")
            fill_seconds = fill(directory, size)
            elapsed, cpu, code, rss_kib, output = run_check(directory, campaign)
            if code != 0:
                print(output)
                raise SystemExit(f"render --check exited {code}")
            rate = size / elapsed
            results[size] = (rate, rss_kib)
            verdict = "OK" if rate >= TARGET_PER_SECOND else "BELOW TARGET"
            print(
                f"{size:>9,} leads: filled in {fill_seconds:.1f} s; render --check {elapsed:.2f} s end to end "
                f"= {rate:,.0f} recipients/s (target >= {TARGET_PER_SECOND:,}/s: {verdict}); "
                f"CPU {cpu:.2f} s = {size / cpu:,.0f} recipients per CPU-second; "
                f"peak RSS {rss_kib / 1024:.0f} MiB"
            )
    if len(results) > 1:
        small, large = min(results), max(results)
        ratio = results[large][1] / results[small][1]
        print(
            f"peak RSS {large:,} vs {small:,} leads: {ratio:.2f}x "
            f"(target: flat, i.e. about 1x: {'OK' if ratio < 1.3 else 'GROWS'})"
        )


if __name__ == "__main__":
    main()
