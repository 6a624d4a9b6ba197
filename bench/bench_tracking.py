"""Benchmark: tracking at the size of a 100,000-recipient campaign (SQLite store).

Measures, each beside its target:

- ``links_for`` per recipient (tokens for unsubscribe, pixel and 5 links): what sending pays;
- ``campaign_stats`` over 100,000 deliveries (one aggregate query);
- signed Resend webhooks applied over real HTTP by ``serve`` (uvicorn on 127.0.0.1), sent by
  8 concurrent clients: a large campaign's delivered/opened events arrive in bursts;
- open-pixel hits over real HTTP, likewise.

    .venv/bin/python bench/bench_tracking.py
    .venv/bin/python bench/bench_tracking.py --deliveries 100000 --requests 3000
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import hashlib
import hmac
import json
import platform
import socket
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TARGET_LINKS_US = 50.0  # µs per recipient
TARGET_STATS_S = 0.5  # seconds at 100k deliveries
TARGET_WEBHOOKS = 200.0  # events per second
TARGET_PIXELS = 300.0  # requests per second
SECRET = "bench-secret-0123456789abcdef0123456789"
WHSEC = "whsec_" + base64.b64encode(b"bench-webhook-key-0123456789").decode()
BODY = (
    "Hi {{ first_name }}, [a](https://example.com/a) [b](https://example.com/b) "
    "[c](https://example.com/c) [d](https://example.com/d) [p](https://example.com/p?c={{ company }})"
)
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def fill(store: object, count: int) -> None:
    """One campaign with ``count`` sent deliveries, through Core."""
    import sqlalchemy as sa

    from sponsorcast.store.models import Campaign, Delivery, Lead

    lead_t: sa.Table = Lead.__table__  # type: ignore[attr-defined]
    campaign_t: sa.Table = Campaign.__table__  # type: ignore[attr-defined]
    delivery_t: sa.Table = Delivery.__table__  # type: ignore[attr-defined]
    with store.write() as conn:  # type: ignore[attr-defined]
        conn.execute(
            campaign_t.insert().values(
                id="bench",
                sponsor_id="default",
                name="Bench",
                subject="s",
                body=BODY,
                status="sent",
                content_hash="h",
                total_recipients=count,
                created_at=T0,
                started_at=T0,
            )
        )
        chunk = 10_000
        for start in range(0, count, chunk):
            ids = range(start, min(start + chunk, count))
            conn.execute(
                lead_t.insert(),
                [
                    {
                        "id": i + 1,
                        "sponsor_id": "default",
                        "email": f"p{i}@example.org",
                        "follow_up_status": "new",
                        "tags": "",
                    }
                    for i in ids
                ],
            )
            conn.execute(
                delivery_t.insert(),
                [
                    {
                        "id": i + 1,
                        "campaign_id": "bench",
                        "lead_id": i + 1,
                        "recipient": f"p{i}@example.org",
                        "status": "sent",
                        "provider_message_id": f"msg-{i}",
                        "batch": i // 100,
                        "sent_at": T0 + timedelta(milliseconds=10 * i),
                        "attempts": 1,
                        "open_count": 0,
                        "click_count": 0,
                    }
                    for i in ids
                ],
            )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sign(body: bytes, msg_id: str) -> dict[str, str]:
    key = base64.b64decode(WHSEC.removeprefix("whsec_"))
    stamp = str(int(time.time()))
    sig = base64.b64encode(
        hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    )
    return {
        "svix-id": msg_id,
        "svix-timestamp": stamp,
        "svix-signature": f"v1,{sig.decode()}",
        "content-type": "application/json",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=3_000)
    args = parser.parse_args()

    import httpx
    import uvicorn

    from sponsorcast import tracking
    from sponsorcast.config import Secrets, TrackingConfig, load_config
    from sponsorcast.report.stats import campaign_stats
    from sponsorcast.store import open_from_config
    from sponsorcast.tracking.server import create_app

    print(
        f"machine: {platform.machine()}, {__import__('os').cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "sponsorcast.toml").write_text(
            '[store]\nurl = "sqlite:///bench.db"\n', encoding="utf-8"
        )
        config = dataclasses.replace(
            load_config(directory / "sponsorcast.toml", env={}),
            tracking=TrackingConfig(public_url="https://t.example.com"),
            secrets=Secrets(sponsorcast_secret=SECRET, webhook_secret=WHSEC),
        )
        store = open_from_config(config)
        fill(store, args.deliveries)

        links = tracking.campaign_links(BODY)
        started = time.perf_counter()
        for did in range(1, args.deliveries + 1):
            made, _headers = tracking.links_for(config, "bench", did, links)
            for url in (
                "https://example.com/a",
                "https://example.com/b",
                "https://example.com/c",
                "https://example.com/d",
                "https://example.com/p?c=ACME",
            ):
                made.click(url)
        per = (time.perf_counter() - started) / args.deliveries * 1e6
        print(
            f"links_for + 5 clicks per recipient: {per:.1f} µs (target < {TARGET_LINKS_US:.0f} µs)"
        )

        started = time.perf_counter()
        stats = campaign_stats(store, "bench")
        took = time.perf_counter() - started
        print(
            f"campaign_stats over {args.deliveries:,} deliveries: {took * 1000:.0f} ms "
            f"(target < {TARGET_STATS_S * 1000:.0f} ms); sent={stats['sent']}"
        )

        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(config, store), host="127.0.0.1", port=port, log_level="warning"
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        base = f"http://127.0.0.1:{port}"
        local = threading.local()

        def client() -> httpx.Client:
            if not hasattr(local, "client"):
                local.client = httpx.Client(base_url=base, timeout=30)
            return local.client  # type: ignore[no-any-return]

        def webhook(i: int) -> int:
            kind = ("email.delivered", "email.opened", "email.clicked")[i % 3]
            body = json.dumps(
                {
                    "type": kind,
                    "created_at": T0.isoformat(),
                    "data": {"email_id": f"msg-{i % args.deliveries}", "to": ["x@example.org"]},
                }
            ).encode()
            return (
                client()
                .post("/webhooks/resend", content=body, headers=sign(body, f"msg_bench_{i}"))
                .status_code
            )

        def pixel(i: int) -> int:
            token = tracking.make_token(
                SECRET, tracking.KIND_OPEN, 1 + (i * 7919) % args.deliveries
            )
            return client().get(f"/o/{token}.gif").status_code

        for name, fn, target in (
            ("webhooks", webhook, TARGET_WEBHOOKS),
            ("open pixels", pixel, TARGET_PIXELS),
        ):
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=8) as pool:
                codes = list(pool.map(fn, range(args.requests)))
            rate = args.requests / (time.perf_counter() - started)
            assert codes.count(200) == args.requests, {c: codes.count(c) for c in set(codes)}
            print(f"{name} over HTTP, 8 clients: {rate:.0f}/s (target >= {target:.0f}/s)")
        server.should_exit = True
        thread.join(timeout=10)
        final = campaign_stats(store, "bench")
        print(
            f"after: delivered={final['delivered']} opened={final['opened']} clicked={final['clicked']}"
        )
        store.dispose()


if __name__ == "__main__":
    main()
