"""Sending throughput against the Resend stand-in (issue 3's speed targets).

Each scenario starts the stand-in (``tests/support/fakeresend.py``) as its own process on 127.0.0.1,
fills a fresh SQLite store with N leads, and runs ``sponsorcast send --yes`` as a separate
process (end to end: start-up, rendering, snapshot, ledger, HTTP). Figures:

- emails/s as a ratio of the physical ceiling R requests/s x emails per request;
- CPU seconds of the sender per 10,000 emails; peak RSS of the sender;
- 429s seen (must be 0 with the limiter on).

    .venv/bin/python bench/bench_send.py                 # every scenario (about 15 minutes)
    .venv/bin/python bench/bench_send.py --only ceiling10 --n 20000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CAMPAIGN = """\
---
name: Bench
subject: "{{ first_name }}, see {{ sponsor.name }} at booth 12"
audience:
  type: all
---
Hi {{ first_name }},

Thanks for stopping by. [Book a demo](https://example.com/demo?c={{ company | urlencode }}).

- slides
- a *recording*
"""

MEASURE = """\
import atexit, json, resource, sys, time
start, out = time.monotonic(), sys.argv[1]
def _report():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    with open(out, "w") as fh:
        json.dump({"cpu": ru.ru_utime + ru.ru_stime, "maxrss_kb": ru.ru_maxrss,
                   "wall": time.monotonic() - start}, fh)
atexit.register(_report)
sys.argv = ["sponsorcast", *sys.argv[2:]]
from sponsorcast.cli import main
main()
"""


@dataclass
class Scenario:
    """One run: provider limit R (None: lifted), latency, emails per request, recipients."""

    name: str
    rate: float | None
    latency: float
    batch: int
    n: int
    endpoint: str = "batch"
    target: str = ""


SCENARIOS = [
    Scenario("ceiling10", 10, 0.2, 100, 100_000, target=">= 90% of 1,000 emails/s"),
    Scenario("ceiling2", 2, 0.2, 100, 20_000, target=">= 90% of 200 emails/s"),
    Scenario("single10", 10, 0.2, 1, 300, endpoint="single", target=">= 90% of 10 emails/s"),
    Scenario("own-cost-50k", None, 0.0, 100, 50_000, target=">= 5,000 emails/s"),
    Scenario("own-cost-500k", None, 0.0, 100, 500_000, target="peak RSS <= 1.5x the 50k run"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_fake(rate: float | None, latency: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = [
        sys.executable,
        str(ROOT / "tests" / "support" / "fakeresend.py"),
        "--port",
        str(port),
        "--latency",
        str(latency),
    ]
    if rate is not None:
        args += ["--rate", str(rate)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    url = proc.stdout.readline().decode().strip()
    return proc, url


def fake_record(url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/_fake/record?emails=0") as resp:
        return dict(json.load(resp)["counters"])


def fill_store(path: Path, n: int) -> None:
    from sponsorcast.store import open_store
    from sponsorcast.store.models import Lead, utcnow

    store = open_store(f"sqlite:///{path}")
    now = utcnow()
    table = Lead.__table__  # type: ignore[attr-defined]
    chunk = 20_000
    for start in range(0, n, chunk):
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
                    for i in range(start, min(start + chunk, n))
                ],
            )
    store.dispose()


def run(scenario: Scenario, workdir: Path) -> dict[str, object]:
    fake, url = start_fake(scenario.rate, scenario.latency)
    try:
        project = workdir / scenario.name
        project.mkdir()
        rate_limit = scenario.rate if scenario.rate is not None else 1000
        (project / "sponsorcast.toml").write_text(f"""\
[store]
url = "sqlite:///sponsorcast.db"
[transport]
kind = "resend"
[resend]
base_url = "{url}"
rate_limit = {rate_limit}
batch_size = {scenario.batch}
endpoint = "{scenario.endpoint}"
concurrency = 8
[sponsors.default]
name = "Bench Events"
from = "Bench Events <hello@example.com>"
postal_address = "1 Bench Street, Springfield"
""")
        (project / "bench.md").write_text(CAMPAIGN)
        fill_store(project / "sponsorcast.db", scenario.n)
        env = {**os.environ, "RESEND_API_KEY": "re_test_0123456789abcdef", "PYTHONPATH": str(ROOT)}
        stats_file = project / "rusage.json"
        t0 = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", MEASURE, str(stats_file), "send", "bench.md", "--yes"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.monotonic() - t0
        if done.returncode != 0:
            raise SystemExit(
                f"{scenario.name}: send failed ({done.returncode}): {done.stderr[-2000:]}"
            )
        usage = json.loads(stats_file.read_text())
        counters = fake_record(url)
    finally:
        fake.terminate()
        fake.wait(timeout=10)
    emails = counters["emails"]
    rate = emails / wall
    result: dict[str, object] = {
        "scenario": scenario.name,
        "recipients": scenario.n,
        "accepted": emails,
        "wall_s": round(wall, 1),
        "emails_per_s": round(rate, 1),
        "cpu_s_per_10k": round(usage["cpu"] / emails * 10_000, 2),
        "peak_rss_mb": round(usage["maxrss_kb"] / 1024, 1),
        "429s": counters["rate_limited"],
        "target": scenario.target,
    }
    if scenario.rate is not None:
        ceiling = scenario.rate * scenario.batch
        result["ceiling_emails_per_s"] = ceiling
        result["ratio_of_ceiling"] = round(rate / ceiling, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", action="append", help="scenario name (repeatable)")
    parser.add_argument("--n", type=int, help="override the number of recipients")
    args = parser.parse_args()
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in SCENARIOS:
            if args.only and scenario.name not in args.only:
                continue
            if args.n:
                scenario.n = args.n
            print(json.dumps(run(scenario, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
