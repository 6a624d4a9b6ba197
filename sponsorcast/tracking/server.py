"""``sponsorcast serve``: the Starlette app for webhooks, opens, clicks and unsubscribes.

Routes:

- ``POST /webhooks/resend`` — Resend events, Svix-signed with ``RESEND_WEBHOOK_SECRET``:
  401 for a missing, wrong or stale (over 5 minutes) signature, and nothing changes; 200 when
  applied or already applied (each ``svix-id`` once); 503 when the secret is not configured
  (Resend keeps retrying for a day, so nothing is lost while it is fixed).
- ``GET /o/{token}.gif`` — 1x1 GIF, records an open.
- ``GET /c/{token}`` — records a click and redirects (302) to that campaign's link.
  (``HEAD`` on either answers the same without recording anything.)
- ``GET /u/{token}`` — a small page with an "Unsubscribe" button that posts to itself.
- ``POST /u/{token}`` — RFC 8058 one-click: unsubscribes, answers 200; no login.
- ``GET /healthz`` — "ok", for a reverse proxy or a monitor.

A forged or altered token gets 404 and changes nothing. Database work runs in Starlette's
thread pool; the store is opened once, when the app is made.

Nothing unauthenticated costs memory: a webhook without its three signature headers is refused
before its body is read, a ``Content-Length`` over ``MAX_WEBHOOK_BYTES`` is refused unread
(413), a chunked body is read as a stream and dropped at the cap, and a body must arrive within
``BODY_SECONDS``. ``server_config`` adds what uvicorn does not do by itself: a connection whose
request headers are not complete within ``HEADER_SECONDS`` is closed (slow-loris), and header
blocks over 16 KiB are refused. A client that hangs up mid-request is one log line.
"""

from __future__ import annotations

import asyncio
import functools
import html
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from sponsorcast import tracking
from sponsorcast.config import Config
from sponsorcast.errors import ConfigError, WebhookSignatureError
from sponsorcast.store import Store, open_from_config

# the smallest transparent 1x1 GIF
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
NO_STORE = {"Cache-Control": "no-store, private", "X-Robots-Tag": "noindex"}
PAGE_HEADERS = {**NO_STORE, "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}
MAX_WEBHOOK_BYTES = 1_000_000
BODY_SECONDS = 10.0  # a webhook body must have arrived by then
HEADER_SECONDS = 10.0  # request headers must be complete by then
MAX_HEADER_BYTES = 16 * 1024
SIGNATURE_HEADERS = (
    ("svix-id", "webhook-id"),
    ("svix-timestamp", "webhook-timestamp"),
    ("svix-signature", "webhook-signature"),
)
log = logging.getLogger("sponsorcast.serve")


class _TooLarge(Exception):
    """The body went past the cap while it was read."""


async def read_body(request: Request, limit: int, seconds: float) -> bytes:
    """The request body, read as a stream: _TooLarge past ``limit`` bytes, TimeoutError past ``seconds``."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0

    async def read() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)

    await asyncio.wait_for(read(), seconds)
    return b"".join(chunks)


def serve_warnings(config: Config) -> list[str]:
    """What ``serve`` will not do with this config; ConfigError when it could do nothing."""
    secrets = config.secrets
    if not secrets.sponsorcast_secret and not secrets.webhook_secret:
        raise ConfigError(
            "Neither SPONSORCAST_SECRET nor RESEND_WEBHOOK_SECRET is set, so there is nothing to serve.",
            hint="SPONSORCAST_SECRET signs tracking links; RESEND_WEBHOOK_SECRET (whsec_…) checks webhooks.",
        )
    if config.tracking.public_url and not secrets.sponsorcast_secret:
        tracking.require_secret(config)
    notes: list[str] = []
    if not secrets.webhook_secret:
        notes.append("RESEND_WEBHOOK_SECRET is not set: POST /webhooks/resend answers 503.")
    if not secrets.sponsorcast_secret:
        notes.append("SPONSORCAST_SECRET is not set: open, click and unsubscribe links answer 404.")
    elif not config.tracking.public_url:
        notes.append("tracking.public_url is empty: new emails carry no links to this server.")
    elif not config.tracking.public_url.startswith("https://"):
        notes.append(
            "tracking.public_url is not https://: mail providers ignore one-click "
            "unsubscribe without HTTPS; put serve behind a TLS proxy."
        )
    return notes


def _not_found() -> Response:
    return PlainTextResponse("Not found.\n", status_code=404, headers=NO_STORE)


def _mask(email: str) -> str:
    local, _, domain = email.partition("@")
    return (local[:1] + "***@" + domain) if domain else "***"


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex">\n'
        f"<title>{html.escape(title)}</title>\n"
        "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;"
        "padding:0 1rem;line-height:1.5}button{font-size:1rem;padding:.5rem 1.25rem}</style>\n"
        f"</head>\n<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )


def server_config(
    app: Starlette,
    host: str,
    port: int,
    *,
    header_seconds: float = HEADER_SECONDS,
    log_level: str = "info",
) -> Any:
    """uvicorn's configuration for ``serve``: proxy headers, header size and header time bounds."""

    class BoundedH11(H11Protocol):
        """Closes a connection whose next request headers take longer than ``header_seconds``."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def _arm(self) -> None:
            waiting_for = self.cycle
            self.loop.call_later(header_seconds, self._expire, waiting_for)

        def _expire(self, waiting_for: object) -> None:
            if self.cycle is waiting_for and not self.transport.is_closing():
                log.info(
                    "closed a connection from %s: its request headers took over %g s",
                    self.client[0] if self.client else "?",
                    header_seconds,
                )
                self.transport.close()

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        proxy_headers=True,
        http=BoundedH11,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        timeout_keep_alive=5,
    )


def create_app(
    config: Config,
    store: Store | None = None,
    *,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The ``serve`` app; opens the store from ``config`` unless one is given."""
    own_store = store is None
    if store is None:
        store = open_from_config(config)
    db: Store = store
    secret = config.secrets.sponsorcast_secret
    webhook_secret = config.secrets.webhook_secret

    async def webhook(request: Request) -> Response:
        if not webhook_secret:
            return JSONResponse({"error": "RESEND_WEBHOOK_SECRET is not configured"}, 503)
        if not all(request.headers.get(a) or request.headers.get(b) for a, b in SIGNATURE_HEADERS):
            return JSONResponse(
                {"error": "the webhook has no svix-id, svix-timestamp or svix-signature header"},
                401,
            )
        try:
            body = await read_body(request, MAX_WEBHOOK_BYTES, BODY_SECONDS)
        except _TooLarge:
            return JSONResponse(
                {"error": "payload too large"}, 413, headers={"Connection": "close"}
            )
        except TimeoutError:
            return JSONResponse(
                {"error": "the body did not arrive in time"}, 408, headers={"Connection": "close"}
            )
        except ClientDisconnect:
            client = request.client.host if request.client else "?"
            log.info("webhook from %s: the client hung up before its body arrived", client)
            return Response(status_code=400)
        try:
            event_id = tracking.verify_webhook(webhook_secret, request.headers, body, now=clock)
        except WebhookSignatureError as exc:
            return JSONResponse({"error": exc.message}, 401)
        except ConfigError as exc:
            return JSONResponse({"error": exc.message}, 503)
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return JSONResponse({"error": "the body is not JSON"}, 400)
        if not isinstance(payload, dict):
            return JSONResponse({"error": "the body is not a JSON object"}, 400)
        applied = await run_in_threadpool(tracking.apply_event, db, payload, event_id, "webhook")
        return JSONResponse({"outcome": applied.outcome})

    async def pixel(request: Request) -> Response:
        data = (
            tracking.read_token(secret, tracking.KIND_OPEN, request.path_params["token"])
            if secret
            else None
        )
        if data is None:
            return _not_found()
        if request.method == "HEAD":  # link checkers and proxies: not an open
            found = (
                await run_in_threadpool(tracking.unsubscribe_target, db, data.delivery_id)
                is not None
            )
        else:
            found = await run_in_threadpool(
                functools.partial(
                    tracking.record_open,
                    db,
                    data.delivery_id,
                    user_agent=request.headers.get("user-agent"),
                )
            )
        if not found:
            return _not_found()
        return Response(PIXEL, media_type="image/gif", headers=NO_STORE)

    async def click(request: Request) -> Response:
        if not secret:
            return _not_found()
        url = request.query_params.get("u")
        found = await run_in_threadpool(
            tracking.resolve_click, db, secret, request.path_params["token"], url
        )
        if found is None:
            return _not_found()
        delivery_id, target = found
        if request.method != "HEAD":  # link checkers and proxies: not a click
            await run_in_threadpool(tracking.record_click, db, delivery_id, target)
        return RedirectResponse(target, status_code=302, headers=NO_STORE)

    def _unsubscribe_token(request: Request) -> int | None:
        if not secret:
            return None
        data = tracking.read_token(secret, tracking.KIND_UNSUBSCRIBE, request.path_params["token"])
        return data.delivery_id if data is not None else None

    async def unsubscribe_page(request: Request) -> Response:
        delivery_id = _unsubscribe_token(request)
        target = None
        if delivery_id is not None:
            target = await run_in_threadpool(tracking.unsubscribe_target, db, delivery_id)
        if target is None:
            return _not_found()
        who = html.escape(_mask(target.email))
        sponsor = html.escape(target.sponsor_name)
        if target.unsubscribed:
            body = f"<p>{who} is unsubscribed from {sponsor}'s emails.</p>"
            return HTMLResponse(_page("You are unsubscribed", body), headers=PAGE_HEADERS)
        body = (
            f"<p>Stop emails from {sponsor} to {who}?</p>\n"
            '<form method="post">\n<input type="hidden" name="List-Unsubscribe" value="One-Click">\n'
            '<button type="submit">Unsubscribe</button>\n</form>'
        )
        return HTMLResponse(_page("Unsubscribe", body), headers=PAGE_HEADERS)

    async def unsubscribe(request: Request) -> Response:
        delivery_id = _unsubscribe_token(request)
        done = None
        if delivery_id is not None:
            done = await run_in_threadpool(tracking.unsubscribe, db, delivery_id)
        if done is None:
            return _not_found()
        body = (
            f"<p>{html.escape(_mask(done.email))} will get no more emails from "
            f"{html.escape(done.sponsor_name)}.</p>"
        )
        return HTMLResponse(_page("You are unsubscribed", body), headers=PAGE_HEADERS)

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok\n", headers=NO_STORE)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if own_store:
            db.dispose()

    routes: list[Any] = [
        Route("/webhooks/resend", webhook, methods=["POST"]),
        Route("/o/{token}.gif", pixel, methods=["GET"]),
        Route("/c/{token}", click, methods=["GET"]),
        Route("/u/{token}", unsubscribe_page, methods=["GET"]),
        Route("/u/{token}", unsubscribe, methods=["POST"]),
        Route("/healthz", health, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
