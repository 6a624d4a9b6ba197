"""When a request reaches the wire, and that a run's first one does so on time.

The rate limiter hands out departure slots; what the provider counts is when a request
arrives. A request on a connection that is open arrives a millisecond after its slot. The
first requests of a run open their connections, and the very first pays for what httpx and
httpcore set up on first use: on a busy machine it reached the wire 0.1 s after its slot,
and the next window's requests, on open connections, then landed in the provider's window of
the first ones (a 429 in about one run of eight of ``bench_shared_limit.py --only
sqlite-20k``). So:

- ``warm_up`` imports, with the transport, what a client's first request would;
- ``traced`` is httpcore's trace extension for a request: it tells the limiter when the
  request's headers are written (``RateLimiter.left``), and the window rule counts it from
  then.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sponsorcast.transport.limiter import RateLimiter

# imported by httpcore on a client's first request: its async network backend (anyio, with
# the asyncio one) and the HTTP/1.1 parser
FIRST_REQUEST_IMPORTS = ("h11", "anyio", "anyio._backends._asyncio")


def warm_up() -> None:
    """Import what a client's first request would (one that is missing is left to it)."""
    for name in FIRST_REQUEST_IMPORTS:
        try:
            importlib.import_module(name)
        except ImportError:
            continue


def traced(limiter: RateLimiter, sent_at: float) -> dict[str, Any]:
    """The request extensions that tell ``limiter`` when the request that left at
    ``sent_at`` reached the wire."""

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event.endswith(".send_request_headers.started"):
            limiter.left(sent_at, limiter.clock())

    return {"trace": trace}
