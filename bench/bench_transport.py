"""The transport and limiter alone against the Resend stand-in (no store, no rendering).

Isolates what ``bench_send.py`` measures end to end: how close ``ResendTransport`` plus
``RateLimiter`` get to the provider's ceiling (R requests/s x emails per request), whether
any 429 appears, and the CPU the transport costs per 10,000 emails (JSON encoding, httpx,
limiter). The stand-in runs as its own process (``tests/support/fakeresend.py --lean``).

    .venv/bin/python bench/bench_transport.py                # every scenario (about 90 s)
    .venv/bin/python bench/bench_transport.py --only batch10
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sponsorcast.config import (  # noqa: E402
    Endpoint,
    ResendConfig,
)
from sponsorcast.transport import OutgoingEmail  # noqa: E402
from sponsorcast.transport.limiter import RateLimiter  # noqa: E402
from sponsorcast.transport.resend import ResendTransport  # noqa: E402
from tests.support.fakeresend import DEFAULT_KEY, remote_record  # noqa: E402

HTML = "<p>Hi Ann,</p><p>Thanks for stopping by booth 12. " + "Lorem ipsum dolor sit amet. " * 30


@dataclass
class Scenario:
    """Provider limit R (None: lifted), latency, emails per request, emails in all."""

    name: str
    rate: float | None
    latency: float
    batch: int
    n: int
    endpoint: Endpoint = "batch"
    auto: bool = False
    target: str = ""


SCENARIOS = [
    Scenario("batch10", 10, 0.2, 100, 30_000, target=">= 90% of 1,000 emails/s, 0 x 429"),
    Scenario(
        "batch10-auto",
        10,
        0.2,
        100,
        20_000,
        auto=True,
        target="auto mode learns R=10 from the header: >= 90%, 0 x 429",
    ),
    Scenario("batch2", 2, 0.2, 100, 4_000, target=">= 90% of 200 emails/s, 0 x 429"),
    Scenario(
        "single10", 10, 0.2, 1, 200, endpoint="single", target=">= 90% of 10 emails/s, 0 x 429"
    ),
    Scenario(
        "lifted", None, 0.0, 100, 50_000, target="transport CPU well under 1 s per 10,000 emails"
    ),
]


def make_emails(n: int) -> list[OutgoingEmail]:
    """``n`` emails shaped like rendered ones (~1.5 KB each)."""
    return [
        OutgoingEmail(
            delivery_id=i,
            from_address="Example Events <hello@example.com>",
            to=f"lead{i}@example.org",
            subject=f"Ann, see Example Events at booth 12 ({i})",
            html=HTML + f"<p>{i}</p>",
            text=HTML,
            reply_to="team@example.com",
            headers={
                "List-Unsubscribe": f"<https://t.example.com/u/{i:024d}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
            tags=(("campaign", "bench"), ("delivery", str(i))),
        )
        for i in range(1, n + 1)
    ]


async def send_all(
    transport: ResendTransport, batches: list[list[OutgoingEmail]], concurrency: int
) -> int:
    """Send every batch with ``concurrency`` workers; the number of emails accepted."""
    queue = iter(enumerate(batches))
    accepted = 0

    async def worker() -> None:
        nonlocal accepted
        for number, batch in queue:
            outcome = await transport.send_batch(batch, f"bench/{number}")
            accepted += len(outcome.accepted)

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await transport.aclose()
    return accepted


def run(scenario: Scenario, scale: float) -> dict[str, object]:
    """One scenario against a fresh stand-in process."""
    n = max(scenario.batch, int(scenario.n * scale))
    args = [
        sys.executable,
        str(ROOT / "tests" / "support" / "fakeresend.py"),
        "--port",
        "0",
        "--lean",
        "--latency",
        str(scenario.latency),
    ]
    if scenario.rate is not None:
        args += ["--rate", str(scenario.rate)]
    fake = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        assert fake.stdout is not None
        url = fake.stdout.readline().strip()
        emails = make_emails(n)
        batches = [emails[i : i + scenario.batch] for i in range(0, n, scenario.batch)]
        ceiling = None if scenario.auto else (scenario.rate or 100_000.0)
        config = ResendConfig(
            base_url=url,
            rate_limit=ceiling,
            batch_size=scenario.batch,
            endpoint=scenario.endpoint,
            timeout=30,
        )
        transport = ResendTransport(config, DEFAULT_KEY, limiter=RateLimiter(ceiling))
        cpu0, wall0 = time.process_time(), time.monotonic()
        accepted = asyncio.run(send_all(transport, batches, concurrency=8))
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        record = remote_record(url, emails=False)
    finally:
        fake.terminate()
        fake.wait(timeout=10)
    per_request = 1 if scenario.endpoint == "single" else scenario.batch
    rate = accepted / wall
    result: dict[str, object] = {
        "scenario": scenario.name,
        "emails": accepted,
        "seconds": round(wall, 1),
        "emails_per_s": round(rate),
        "429s": record["counters"]["rate_limited"],
        "duplicates": len(record["duplicates"]),
        "cpu_s_per_10k": round(cpu / accepted * 10_000, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "target": scenario.target,
    }
    if scenario.rate is not None:
        result["ratio_of_ceiling"] = f"{rate / (scenario.rate * per_request):.1%}"
    assert accepted == n == record["counters"]["emails"], (accepted, n, record["counters"])
    return result


def main() -> None:
    """Run the scenarios and print one line each, then the machine."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", action="append", help="scenario name (repeatable)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every n")
    args = parser.parse_args()
    for scenario in SCENARIOS:
        if args.only and scenario.name not in args.only:
            continue
        print(run(scenario, args.scale), flush=True)
    print(
        f"machine: {platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores, "
        f"Python {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )


if __name__ == "__main__":
    main()
