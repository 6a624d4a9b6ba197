"""A stand-in for the Resend API: a real HTTP server on 127.0.0.1 for tests and benchmarks.

It behaves like Resend where sponsorcast depends on it:

- ``POST /emails``, ``POST /emails/batch`` (``x-batch-validation: strict`` by default, or
  ``permissive``: valid emails accepted, ``errors: [{index, message}]`` for the others),
  ``GET /emails/{id}`` (``last_event`` settable by tests), ``GET /domains`` (401
  ``restricted_api_key`` for a sending-only key: ``key_access="sending_access"``);
- auth: ``Authorization: Bearer <api_key>`` (401 ``missing_api_key`` / 403
  ``invalid_api_key``), and 403 without a ``User-Agent``;
- a per-second request limit ``rate`` in fixed one-second windows of the wall clock: the
  ``rate + 1``-th request of a window gets 429 ``rate_limit_exceeded``; every answer carries
  ``ratelimit-limit``, ``ratelimit-remaining``, ``ratelimit-reset`` (whole seconds, like the
  real API), a 429 also ``retry-after``;
- idempotency keys (kept ``idempotency_ttl`` seconds, 24 h by default): same key and same
  body replay the first (successful) answer without sending again; same key with another
  body: 409 ``invalid_idempotent_request``; a key whose
  first request is still being processed: 409 ``concurrent_idempotent_requests``;
- faults: answer latency, injected 5xx (``fail_next`` requests or ``fail_rate``), a burst of
  429 ``rate_limit_exceeded`` (``limit_next`` requests, whatever the rate), lost
  answers (``lose_next`` / ``lose_rate``: the emails are accepted and recorded, then the
  connection is closed without an answer), ``quota`` emails after which 429
  ``daily_quota_exceeded`` (``quota_name``). The counted faults (``fail_next``,
  ``limit_next``) aim at sends and status reads: ``GET /domains``, the key check ``send``
  makes before its snapshot, does not use them up;
- a record of every accepted email and counters, through Python (``FakeResend.accepted``,
  ``.counters``) or HTTP (``GET /_fake/record``, ``POST /_fake/config``, ``POST /_fake/reset``,
  ``POST /_fake/events``) for tests whose senders run as subprocesses.

Run it alone for benchmarks: ``python tests/fakeresend.py --port 8787 --rate 10 --latency 0.2``
(prints its URL on the first line of stdout; Ctrl-C or SIGTERM stops it).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import random
import re
import signal
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from email.utils import parseaddr
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_KEY = "re_test_0123456789abcdef"
_ADDRESS = re.compile(r"^[^@\s<>\",;]+@[^@\s<>\",;]+\.[^@\s<>\",;]+$")
_NAMED = re.compile(r"^[^<>]*<([^<>]+)>$")
_TAG = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
LAST_EVENTS = (
    "queued",
    "scheduled",
    "sent",
    "delivered",
    "delivery_delayed",
    "bounced",
    "complained",
    "opened",
    "clicked",
    "failed",
    "canceled",
    "suppressed",
)


@dataclass
class FakeConfig:
    """How the stand-in behaves; change it with ``configure``."""

    api_key: str = DEFAULT_KEY
    rate: float | None = None  # requests per one-second window; None: no limit, no headers
    latency: float = 0.0  # seconds to process a request (replays and 409s answer at once)
    fail_next: int = 0  # the next N API requests get fail_status
    fail_rate: float = 0.0  # probability of fail_status for any API request
    fail_status: int = 500
    lose_next: int = 0  # the next N successful sends lose their answer
    lose_rate: float = 0.0
    limit_next: int = 0  # the next N API requests get 429 rate_limit_exceeded (a 429 burst)
    quota: int | None = None  # emails accepted before quota_name
    quota_name: str = "daily_quota_exceeded"
    idempotency_ttl: float = 86_400.0  # seconds a key is remembered (Resend: 24 h)
    keep_bodies: bool = False  # keep html/text of accepted emails (memory)
    keep_details: bool = True  # keep from/reply_to/headers/tags (off for huge benchmarks)
    default_last_event: str = "sent"
    key_access: str = "full_access"  # or "sending_access": 401 restricted_api_key on /domains
    domains: tuple[str, ...] = ("example.com",)  # verified sending domains for GET /domains
    seed: int | None = None


@dataclass
class Accepted:
    """One email the stand-in accepted (would have sent)."""

    id: str
    to: list[str]
    subject: str
    idempotency_key: str | None
    time: float
    endpoint: str
    from_address: str = ""
    reply_to: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    tags: list[dict[str, str]] = field(default_factory=list)
    html: str | None = None
    text: str | None = None

    def as_json(self) -> dict[str, Any]:
        """A JSON-friendly dict (``from`` for ``from_address``)."""
        data = asdict(self)
        data["from"] = data.pop("from_address")
        return data


@dataclass
class _Stored:
    path: str
    body_hash: str
    status: int
    body: bytes
    at: float


class _Answer(Exception):
    """Stop handling and answer with this error."""

    def __init__(self, status: int, name: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.name = name
        self.message = message


class _State:
    """Everything the handlers share, behind one lock."""

    def __init__(self, config: FakeConfig) -> None:
        self.lock = threading.Lock()
        self.config = config
        self.reset()

    def reset(self) -> None:
        self.accepted: list[Accepted] = []
        self.by_id: dict[str, Accepted] = {}
        self.last_event: dict[str, str] = {}
        self.windows: dict[int, int] = {}
        self.counted: list[tuple[float, bool]] = []  # each rate-counted arrival: (time, limited)
        self.idempotent: dict[str, _Stored] = {}
        self.in_flight_keys: set[str] = set()
        self.sends: list[tuple[str | None, str]] = []  # (idempotency key, sha256 of the body)
        self.in_flight = 0
        self.random = random.Random(self.config.seed)
        self.counters: dict[str, int] = {
            "requests": 0,
            "rate_limited": 0,
            "server_errors": 0,
            "lost": 0,
            "replays": 0,
            "quota_exceeded": 0,
            "conflicts": 0,
            "validation_errors": 0,
            "auth_errors": 0,
            "max_in_flight": 0,
            "max_window": 0,
        }


class FakeResend:
    """The stand-in server, running in a background thread while the context is open."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, **config: Any) -> None:
        """``config`` are ``FakeConfig`` fields."""
        self._state = _State(FakeConfig())
        self.configure(**config)
        self._server = _Server((host, port), _Handler)
        self._server.state = self._state
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:53211``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_key(self) -> str:
        """The key the stand-in accepts."""
        return self._state.config.api_key

    def start(self) -> FakeResend:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeResend:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def configure(self, **changes: Any) -> None:
        """Change behaviour (``FakeConfig`` field names); unknown names raise ``TypeError``."""
        known = {f.name for f in fields(FakeConfig)}
        unknown = set(changes) - known
        if unknown:
            raise TypeError(f"unknown fake config: {', '.join(sorted(unknown))}")
        with self._state.lock:
            self._state.config = replace(self._state.config, **changes)
            if "seed" in changes:
                self._state.random = random.Random(changes["seed"])

    def reset(self) -> None:
        """Forget every email, key and counter, and restore the default behaviour."""
        with self._state.lock:
            self._state.config = FakeConfig()
            self._state.reset()

    @property
    def config(self) -> FakeConfig:
        """The current behaviour."""
        return self._state.config

    @property
    def accepted(self) -> list[Accepted]:
        """Every email accepted so far (a copy)."""
        with self._state.lock:
            return list(self._state.accepted)

    @property
    def sends(self) -> list[tuple[str | None, str]]:
        """Every send request that arrived, answered or not: (idempotency key, body sha256)."""
        with self._state.lock:
            return list(self._state.sends)

    @property
    def counters(self) -> dict[str, int]:
        """Request counters (a copy), with ``emails`` = accepted emails."""
        with self._state.lock:
            return {**self._state.counters, "emails": len(self._state.accepted)}

    def set_last_event(self, message_id: str, event: str) -> None:
        """What ``GET /emails/{id}`` reports as ``last_event`` for that email."""
        if event not in LAST_EVENTS:
            raise ValueError(f"unknown last_event {event!r}")
        with self._state.lock:
            self._state.last_event[message_id] = event

    def record(self, *, emails: bool = True) -> dict[str, Any]:
        """What ``GET /_fake/record`` answers: counters, ``distinct_recipients``, ``duplicates``
        (addresses accepted more than once, at most 100) and, unless ``emails=False``, every
        accepted email."""
        return _record(self._state, emails=emails)


def _record(state: _State, *, emails: bool) -> dict[str, Any]:
    """Counters, the exactly-once summary, and (if ``emails``) every accepted email."""
    with state.lock:
        accepted = list(state.accepted)
        data: dict[str, Any] = {"counters": {**state.counters, "emails": len(accepted)}}
        data["counted"] = [list(each) for each in state.counted]
    seen: dict[str, int] = {}
    for item in accepted:
        for to in item.to:
            address = parseaddr(to)[1].lower() or to  # one mailbox, however it is named
            seen[address] = seen.get(address, 0) + 1
    data["distinct_recipients"] = len(seen)
    data["duplicates"] = sorted(a for a, n in seen.items() if n > 1)[:100]
    if emails:
        data["accepted"] = [item.as_json() for item in accepted]
    return data


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True
    state: _State

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up (killed senders, cancelled requests) are normal here."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- plumbing ------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        state = self.server.state
        body = self._read_body()
        parts = urlsplit(self.path)
        if parts.path.startswith("/_fake/"):
            self._control(method, parts.path, parse_qs(parts.query), body)
            return
        with state.lock:
            state.in_flight += 1
            state.counters["max_in_flight"] = max(state.counters["max_in_flight"], state.in_flight)
        try:
            self._api(method, parts.path, body)
        finally:
            with state.lock:
                state.in_flight -= 1

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        payload: Any,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> None:
        data = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, error: _Answer, headers: dict[str, str]) -> None:
        self._send(
            error.status,
            {"statusCode": error.status, "name": error.name, "message": error.message},
            headers,
        )

    def _drop(self) -> None:
        """Close the connection without any answer (a lost response)."""
        self.close_connection = True

    # -- test control --------------------------------------------------------------------

    def _control(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> None:
        state = self.server.state
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            self._send(400, {"error": "body is not JSON"})
            return
        if method == "GET" and path == "/_fake/record":
            emails = query.get("emails", ["1"])[0] not in ("0", "false")
            self._send(200, _record(state, emails=emails))
        elif method == "POST" and path == "/_fake/config":
            known = {f.name for f in fields(FakeConfig)}
            unknown = set(data) - known
            if unknown:
                self._send(400, {"error": f"unknown fake config: {sorted(unknown)}"})
                return
            with state.lock:
                state.config = replace(state.config, **data)
                if "seed" in data:
                    state.random = random.Random(data["seed"])
            self._send(200, asdict(state.config))
        elif method == "POST" and path == "/_fake/reset":
            with state.lock:
                state.config = FakeConfig(**data)
                state.reset()
            self._send(200, asdict(state.config))
        elif method == "POST" and path == "/_fake/events":
            with state.lock:
                state.last_event[str(data["id"])] = str(data["last_event"])
            self._send(200, {"ok": True})
        else:
            self._send(404, {"error": "no such control endpoint"})

    # -- the API -------------------------------------------------------------------------

    def _api(self, method: str, path: str, body: bytes) -> None:
        state = self.server.state
        with state.lock:
            config = state.config
            state.counters["requests"] += 1
        if not self.headers.get("User-Agent"):
            with state.lock:
                state.counters["auth_errors"] += 1
            self._error(_Answer(403, "validation_error", "A User-Agent header is required."), {})
            return
        auth = self.headers.get("Authorization") or ""
        if not auth:
            with state.lock:
                state.counters["auth_errors"] += 1
            self._error(
                _Answer(401, "missing_api_key", "Missing API key in the authorization header."), {}
            )
            return
        if auth != f"Bearer {config.api_key}":
            with state.lock:
                state.counters["auth_errors"] += 1
            self._error(_Answer(403, "invalid_api_key", "API key is invalid"), {})
            return

        headers, limited = self._count_rate(config)
        with state.lock:
            if not limited and state.config.limit_next > 0 and path != "/domains":
                state.config = replace(state.config, limit_next=state.config.limit_next - 1)
                state.counters["rate_limited"] += 1
                headers = {**headers, "ratelimit-remaining": "0", "retry-after": "1"}
                limited = True
        if limited:
            self._pause(config)
            allowed = f"{config.rate:g}" if config.rate is not None else "a few"
            self._error(
                _Answer(
                    429,
                    "rate_limit_exceeded",
                    f"Too many requests. You can only make {allowed} requests per second.",
                ),
                headers,
            )
            return
        if method == "POST" and path in ("/emails", "/emails/batch"):
            self._post_emails(path, body, headers, config)
            return
        self._pause(config)
        if self._inject_failure(headers, counted=path != "/domains"):
            return
        if method == "GET" and path.startswith("/emails/") and path.count("/") == 2:
            self._get_email(unquote(path.rsplit("/", 1)[1]), headers)
        elif method == "GET" and path == "/domains":
            self._list_domains(config, headers)
        elif path in ("/emails", "/emails/batch") or path.startswith("/emails/"):
            self._error(_Answer(405, "method_not_allowed", "Method is not allowed."), headers)
        else:
            self._error(
                _Answer(404, "not_found", "The requested endpoint does not exist."), headers
            )

    @staticmethod
    def _pause(config: FakeConfig) -> None:
        """The time the provider takes to answer."""
        if config.latency:
            time.sleep(config.latency)

    def _inject_failure(self, headers: dict[str, str], *, counted: bool = True) -> bool:
        """Answer an injected 5xx if one is due (``counted``: ``fail_next`` applies); True if
        it did."""
        state = self.server.state
        with state.lock:
            config = state.config
            fail = counted and config.fail_next > 0
            if fail:
                state.config = replace(config, fail_next=config.fail_next - 1)
            elif config.fail_rate and state.random.random() < config.fail_rate:
                fail = True
            if fail:
                state.counters["server_errors"] += 1
        if fail:
            self._error(
                _Answer(
                    config.fail_status,
                    "application_error",
                    "Something went wrong while saving data.",
                ),
                headers,
            )
        return fail

    def _count_rate(self, config: FakeConfig) -> tuple[dict[str, str], bool]:
        """Count this request in its one-second window; the headers and whether it is over."""
        if config.rate is None:
            return {}, False
        state = self.server.state
        now = time.time()
        window = int(now)
        with state.lock:
            count = state.windows.get(window, 0) + 1
            state.windows[window] = count
            for old in [w for w in state.windows if w < window - 5]:
                del state.windows[old]
            limit = int(config.rate)
            limited = count > limit
            state.counted.append((now, limited))
            if limited:
                state.counters["rate_limited"] += 1
            else:
                state.counters["max_window"] = max(state.counters["max_window"], count)
        reset = max(1, math.ceil(window + 1 - now))
        headers = {
            "ratelimit-limit": str(limit),
            "ratelimit-remaining": str(max(0, limit - count)),
            "ratelimit-reset": str(reset),
        }
        if limited:
            headers["retry-after"] = str(reset)
        return headers, limited

    def _post_emails(
        self, path: str, body: bytes, headers: dict[str, str], config: FakeConfig
    ) -> None:
        state = self.server.state
        key = self.headers.get("Idempotency-Key")
        if key is not None and not 1 <= len(key) <= 256:
            self._pause(config)
            self._error(
                _Answer(400, "invalid_idempotency_key", "The key must be between 1-256 chars."),
                headers,
            )
            return
        body_hash = hashlib.sha256(path.encode() + b"\0" + body).hexdigest()
        with state.lock:
            state.sends.append((key, body_hash))
        conflict: _Answer | None = None
        stored: _Stored | None = None
        if key is not None:
            # the key is taken when the request arrives, so a second request with it during
            # the first one's processing time (latency) meets 409 concurrent_idempotent_requests
            with state.lock:
                stored = state.idempotent.get(key)
                if stored is not None and time.time() - stored.at > config.idempotency_ttl:
                    del state.idempotent[key]  # expired: the key is new again
                    stored = None
                if key in state.in_flight_keys:
                    state.counters["conflicts"] += 1
                    conflict = _Answer(
                        409,
                        "concurrent_idempotent_requests",
                        "Same idempotency key used while original request is still in progress.",
                    )
                elif stored is not None and (stored.path, stored.body_hash) != (path, body_hash):
                    state.counters["conflicts"] += 1
                    conflict = _Answer(
                        409,
                        "invalid_idempotent_request",
                        "Same idempotency key used with a different request payload.",
                    )
                elif stored is None:
                    state.in_flight_keys.add(key)
        if conflict is not None:  # answered at once: no processing time
            self._error(conflict, headers)
            return
        if stored is not None:  # a replay from the idempotency cache: answered at once
            if self._inject_failure(headers):
                return
            with state.lock:
                state.counters["replays"] += 1
            self._send(stored.status, None, headers, raw=stored.body)
            return
        lose = False
        try:  # new work: the key is taken until this ends, however it ends (a client killed
            # mid-request makes writing the answer fail)
            self._pause(config)
            if self._inject_failure(headers):
                return
            status, answer = self._accept(path, body, key)
            with state.lock:
                if status == 200:
                    if key is not None:
                        state.idempotent[key] = _Stored(
                            path, body_hash, status, answer, time.time()
                        )
                    lose = state.config.lose_next > 0
                    if lose:
                        state.config = replace(state.config, lose_next=state.config.lose_next - 1)
                    elif state.config.lose_rate and state.random.random() < state.config.lose_rate:
                        lose = True
                    if lose:
                        state.counters["lost"] += 1
        finally:
            if key is not None:
                with state.lock:
                    state.in_flight_keys.discard(key)
        if lose:
            self._drop()
            return
        self._send(status, None, headers, raw=answer)

    def _accept(self, path: str, body: bytes, key: str | None) -> tuple[int, bytes]:
        """Validate, apply the quota, record; return the status and the answer's bytes."""
        state = self.server.state
        try:
            payload = json.loads(body)
        except ValueError:
            return _fail(state, _Answer(400, "validation_error", "Invalid JSON body."))
        batch = path == "/emails/batch"
        permissive = (self.headers.get("x-batch-validation") or "strict").lower() == "permissive"
        emails = payload if batch else [payload]
        if batch and (not isinstance(payload, list) or not 1 <= len(payload) <= 100):
            return _fail(
                state,
                _Answer(422, "validation_error", "The batch must be a list of 1 to 100 emails."),
            )
        errors: list[dict[str, Any]] = []
        valid: list[dict[str, Any]] = []
        for index, email in enumerate(emails):
            problem = _validate(email, batch=batch)
            if problem is None:
                valid.append(email)
                continue
            if not (batch and permissive):
                if batch:
                    problem.message = f"emails[{index}]: {problem.message}"
                return _fail(state, problem)
            errors.append({"index": index, "message": problem.message})
        now = time.time()
        with state.lock:
            config = state.config
            if config.quota is not None and len(state.accepted) + len(valid) > config.quota:
                state.counters["quota_exceeded"] += 1
                period = config.quota_name.split("_")[0]
                problem = _Answer(
                    429, config.quota_name, f"You have reached your {period} email sending quota."
                )
                body_bytes = json.dumps(
                    {"statusCode": 429, "name": problem.name, "message": problem.message}
                ).encode()
                return 429, body_bytes
            ids: list[str] = []
            for email in valid:
                record = Accepted(
                    id=str(uuid.uuid4()),
                    to=_as_list(email["to"]),
                    subject=email["subject"],
                    idempotency_key=key,
                    time=now,
                    endpoint=path,
                    **(_details(email) if config.keep_details else {}),
                    html=email.get("html") if config.keep_bodies else None,
                    text=email.get("text") if config.keep_bodies else None,
                )
                state.accepted.append(record)
                state.by_id[record.id] = record
                ids.append(record.id)
        if batch:
            answer: dict[str, Any] = {"data": [{"id": i} for i in ids]}
            if permissive and errors:
                answer["errors"] = errors
            return 200, json.dumps(answer).encode()
        return 200, json.dumps({"id": ids[0]}).encode()

    def _list_domains(self, config: FakeConfig, headers: dict[str, str]) -> None:
        if config.key_access != "full_access":
            self._error(
                _Answer(
                    401, "restricted_api_key", "This API key is restricted to only send emails."
                ),
                headers,
            )
            return
        self._send(
            200,
            {
                "object": "list",
                "data": [
                    {
                        "object": "domain",
                        "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
                        "name": name,
                        "status": "verified",
                        "region": "us-east-1",
                    }
                    for name in config.domains
                ],
            },
            headers,
        )

    def _get_email(self, message_id: str, headers: dict[str, str]) -> None:
        state = self.server.state
        with state.lock:
            record = state.by_id.get(message_id)
            event = state.last_event.get(message_id, state.config.default_last_event)
        if record is None:
            self._error(_Answer(404, "not_found", "Email not found"), headers)
            return
        created = datetime.fromtimestamp(record.time, UTC).isoformat()
        answer = {
            "object": "email",
            "id": record.id,
            "to": record.to,
            "from": record.from_address,
            "subject": record.subject,
            "created_at": created,
            "last_event": event,
            "html": record.html,
            "text": record.text,
            "reply_to": _as_list(record.reply_to) if record.reply_to else None,
        }
        self._send(200, {k: v for k, v in answer.items() if v is not None}, headers)


def _fail(state: _State, problem: _Answer) -> tuple[int, bytes]:
    with state.lock:
        state.counters["validation_errors"] += 1
    return problem.status, json.dumps(
        {"statusCode": problem.status, "name": problem.name, "message": problem.message}
    ).encode()


def _details(email: dict[str, Any]) -> dict[str, Any]:
    return {
        "from_address": email["from"],
        "reply_to": email.get("reply_to"),
        "headers": dict(email.get("headers") or {}),
        "tags": list(email.get("tags") or []),
    }


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _is_address(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    named = _NAMED.match(value.strip())
    return bool(_ADDRESS.match(named.group(1).strip() if named else value.strip()))


def _validate(email: Any, *, batch: bool) -> _Answer | None:
    """Resend's checks on one email: None if it would be accepted."""
    if not isinstance(email, dict):
        return _Answer(422, "validation_error", "Each email must be an object.")
    for name in ("from", "to", "subject"):
        if name not in email:
            return _Answer(422, "missing_required_field", f"Missing `{name}` field.")
    if not _is_address(email["from"]):
        return _Answer(
            422,
            "invalid_from_address",
            "Invalid `from` field. The email address needs to follow the "
            "`email@example.com` or `Name <email@example.com>` format.",
        )
    to = email["to"]
    recipients = [to] if isinstance(to, str) else to
    if (
        not isinstance(recipients, list)
        or not 1 <= len(recipients) <= 50
        or not all(_is_address(r) for r in recipients)
    ):
        return _Answer(
            422,
            "validation_error",
            "Invalid `to` field. The email address needs to follow the "
            "`email@example.com` or `Name <email@example.com>` format.",
        )
    if not isinstance(email["subject"], str):
        return _Answer(422, "validation_error", "Invalid `subject` field.")
    if not (isinstance(email.get("html"), str) or isinstance(email.get("text"), str)):
        return _Answer(422, "missing_required_field", "Missing `html` or `text` field.")
    reply_to = email.get("reply_to")
    if reply_to is not None and not all(_is_address(r) for r in _as_list(reply_to)):
        return _Answer(422, "validation_error", "Invalid `reply_to` field.")
    headers = email.get("headers")
    if headers is not None and not (
        isinstance(headers, dict) and all(isinstance(v, str) for v in headers.values())
    ):
        return _Answer(422, "validation_error", "Invalid `headers` field.")
    for tag in email.get("tags") or []:
        if not (
            isinstance(tag, dict)
            and _TAG.match(str(tag.get("name", "")))
            and _TAG.match(str(tag.get("value", "")))
        ):
            return _Answer(
                422,
                "validation_error",
                "Tags should only contain ASCII letters, numbers, underscores, or dashes.",
            )
    if batch and email.get("attachments"):
        return _Answer(422, "invalid_parameter", "Attachments are not supported in batches.")
    return None


# -- remote control (for a stand-in running in another process) ---------------------------


def remote_record(url: str, *, emails: bool = True) -> dict[str, Any]:
    """``GET /_fake/record`` of a stand-in at ``url``."""
    query = "" if emails else "?emails=0"
    with urllib.request.urlopen(f"{url}/_fake/record{query}", timeout=30) as answer:
        data: dict[str, Any] = json.loads(answer.read())
    return data


def remote_configure(url: str, **changes: Any) -> dict[str, Any]:
    """``POST /_fake/config`` of a stand-in at ``url``; returns the new config."""
    request = urllib.request.Request(
        f"{url}/_fake/config",
        data=json.dumps(changes).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        data: dict[str, Any] = json.loads(answer.read())
    return data


def _iter_args(argv: list[str] | None) -> Iterator[tuple[str, Any]]:
    parser = argparse.ArgumentParser(description="A Resend stand-in on 127.0.0.1.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate", type=float, default=None, help="requests per second")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    parser.add_argument("--api-key", default=DEFAULT_KEY)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--lose-rate", type=float, default=0.0)
    parser.add_argument("--quota", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--lean",
        action="store_true",
        help="record only id, to, subject, key and time of each email",
    )
    args = parser.parse_args(argv)
    for name, value in vars(args).items():
        yield ("keep_details", not value) if name == "lean" else (name, value)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT or SIGTERM; the URL is the first line of stdout."""
    options = dict(_iter_args(argv))
    host, port = options.pop("host"), options.pop("port")
    fake = FakeResend(host=host, port=port, **options)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with fake:
        print(fake.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
