"""The Resend transport: batches over ``POST /emails/batch`` (or one by one over ``/emails``).

One ``httpx.AsyncClient`` per run. Every attempt waits for the shared ``RateLimiter``; the
request body is serialised once per call, so a retry sends the identical bytes under the same
``Idempotency-Key``. Errors are classified from the status and the body's ``name``:

==========================================  ================================================
answer                                      result
==========================================  ================================================
2xx                                         ``BatchOutcome`` (permissive batch: ``errors``
                                            become ``rejected``)
429 ``rate_limit_exceeded`` (or unnamed)    retry after ``retry-after``; limiter paused
409 ``concurrent_idempotent_requests``      retry (our earlier attempt is still running)
5xx, 408, 425, timeouts, connection errors  retry with exponential backoff and jitter
429 ``daily_/monthly_quota_exceeded``       ``QuotaExceeded`` (pause the campaign)
401, 403 (any name), 404 on a send          ``AuthError`` (exit 3, nothing marked failed)
other 4xx (400, 409 ``invalid_idempotent_   ``BatchRejected`` for the batch endpoint; for
request``, 422, 451, …)                     ``/emails`` that one email goes to ``rejected``
retries used up                             ``OutcomeUnknown`` (re-send later, same key)
==========================================  ================================================

Before a new campaign's snapshot, ``preflight`` takes one slot of the rate limit and asks
whether Resend takes the key (``transport.keycheck``, ``GET /domains``): a refusal is an
``AuthError`` before anything is recorded, and the answer's ``ratelimit-limit`` seeds the
limiter, so the run's first requests need no probe.

In one-by-one mode (``ResendConfig.endpoint == "single"``) the emails of a batch go out in
order, each under ``f"{key}/{delivery_id}"`` (keyed by delivery id, not position, so that a
re-sent batch from which some emails were dropped never reuses a key for another body). If
an error stops it part-way, the exception's ``partial`` holds the ``BatchOutcome`` so far.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
)

from sponsorcast import __version__
from sponsorcast.config import ResendConfig
from sponsorcast.errors import (
    AuthError,
    BatchRejected,
    NotFound,
    OutcomeUnknown,
    QuotaExceeded,
    TransportError,
)
from sponsorcast.transport.base import BatchOutcome, OutgoingEmail, api_key_problem, check_batch
from sponsorcast.transport.keycheck import KEY_CHECK_TIMEOUT, KeyAnswer, ask_provider
from sponsorcast.transport.limiter import RateLimiter, parse_retry_after
from sponsorcast.transport.wire import traced, warm_up

USER_AGENT = f"sponsorcast/{__version__}"
BATCH_MAX = 100
QUOTA_NAMES = frozenset({"daily_quota_exceeded", "monthly_quota_exceeded"})


def encode(payload: Any) -> bytes:
    """The one JSON encoding of a request body (deterministic, ASCII-only, compact)."""
    return json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode("ascii")


@dataclass
class TransportStats:
    """Counters of one run, for summaries and benchmarks."""

    requests: int = 0  # HTTP attempts made
    retries: int = 0  # attempts after the first of a call
    rate_limited: int = 0  # 429 rate_limit_exceeded answers
    server_errors: int = 0  # 5xx answers
    network_errors: int = 0  # timeouts and connection errors


class _Retry(Exception):
    """A retryable failure of one attempt."""

    def __init__(
        self,
        reason: str,
        *,
        maybe_sent: bool,
        retry_after: float | None = None,
        limiter_paused: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.maybe_sent = maybe_sent
        self.retry_after = retry_after
        self.limiter_paused = limiter_paused


class _Refused(Exception):
    """A non-retryable 4xx answer (not auth, not quota)."""

    def __init__(self, status: int, name: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.name = name
        self.message = message


class ResendTransport:
    """Sends batches through the Resend HTTP API."""

    name = "resend"
    sends_for_real = True

    def __init__(
        self,
        config: ResendConfig,
        api_key: str,
        *,
        limiter: RateLimiter | None = None,
        client: httpx.AsyncClient | None = None,
        backoff: float = 0.5,
        backoff_max: float = 10.0,
    ) -> None:
        """``client`` may be injected (tests); otherwise one is made from ``config``."""
        api_key = api_key.strip()
        if not api_key:
            raise AuthError("RESEND_API_KEY is not set.", hint="Export RESEND_API_KEY.")
        problem = api_key_problem(api_key)
        if problem is not None:
            # said without the key: an httpx error about the header would quote it
            raise AuthError(problem + ".")
        self.config = config
        self.limiter = limiter if limiter is not None else RateLimiter(config.rate_limit)
        self.stats = TransportStats()
        self._key = api_key
        self._base = config.base_url.rstrip("/")
        self._own_client = client is None
        if client is None:
            warm_up()
        self._client = (
            client
            if client is not None
            else httpx.AsyncClient(
                timeout=httpx.Timeout(config.timeout),
                limits=httpx.Limits(
                    max_connections=max(2 * config.concurrency, 10),
                    max_keepalive_connections=max(2 * config.concurrency, 10),
                ),
            )
        )
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        self._backoff_initial = backoff
        self._backoff_max = backoff_max

    def preflight(self) -> Callable[[], None]:
        """Take a slot of the rate limit now (blocking) for one question to Resend, and
        return the question: it asks whether Resend takes the key (a refusal raises
        ``AuthError``) and seeds the limiter with the limit the answer announces."""
        timeout = min(self.config.timeout, KEY_CHECK_TIMEOUT)
        client = httpx.Client(timeout=timeout)  # made first: the slot is for a ready request
        sent_at = self.limiter.reserve()

        def ask() -> None:
            with client:
                answer = ask_provider(self._base, self._key, timeout, client=client)
            self.hear(answer, sent_at)

        return ask

    def hear(self, answer: KeyAnswer | None, sent_at: float) -> None:
        """Take in the key check's answer to a request that left at ``sent_at`` (a slot of
        this transport's limiter). A refused key raises ``AuthError``; no answer leaves
        everything to the run."""
        if answer is None:
            return
        self.limiter.seed(answer.headers, sent_at)
        if answer.status == 429 and answer.headers is not None:
            retry_after = parse_retry_after(answer.headers.get("retry-after"))
            self.limiter.penalise(retry_after, team=False)
        if answer.verdict == "refused":
            raise AuthError(
                f"{answer.detail}; nothing was sent.",
                hint="Check RESEND_API_KEY (a full-access or sending key of this team) "
                "and [resend] base_url.",
            )

    async def send_batch(
        self, emails: Sequence[OutgoingEmail], idempotency_key: str
    ) -> BatchOutcome:
        """Send ``emails`` under ``idempotency_key``; see the module docstring for errors."""
        check_batch(emails, idempotency_key)
        if self.config.endpoint == "single":
            return await self._send_one_by_one(emails, idempotency_key)
        if len(emails) > BATCH_MAX:
            raise ValueError(f"A batch holds at most {BATCH_MAX} emails.")
        body = encode([email.to_resend() for email in emails])
        try:
            payload = await self._call(
                "POST",
                "/emails/batch",
                body=body,
                idempotency_key=idempotency_key,
                extra={"x-batch-validation": "permissive"},
                what="the batch",
            )
        except _Refused as refused:
            raise self._refusal(refused, "the batch") from None
        return _batch_outcome(emails, payload)

    async def _send_one_by_one(
        self, emails: Sequence[OutgoingEmail], idempotency_key: str
    ) -> BatchOutcome:
        longest = max(len(f"{idempotency_key}/{email.delivery_id}") for email in emails)
        if longest > 256:
            raise ValueError("The idempotency key is too long for one-by-one sending.")
        outcome = BatchOutcome()
        for email in emails:
            key = f"{idempotency_key}/{email.delivery_id}"
            try:
                payload = await self._call(
                    "POST",
                    "/emails",
                    body=encode(email.to_resend()),
                    idempotency_key=key,
                    what="the email",
                )
            except _Refused as refused:
                if refused.status == 404:
                    error = self._refusal(refused, "the email")
                    error.partial = outcome
                    raise error from None
                outcome.rejected[email.delivery_id] = self._redact(refused.message)
                continue
            except TransportError as failure:
                failure.partial = outcome
                raise
            message_id = payload.get("id") if isinstance(payload, dict) else None
            if not isinstance(message_id, str) or not message_id:
                unknown = OutcomeUnknown("Resend accepted an email but its answer has no id.")
                unknown.partial = outcome
                raise unknown
            outcome.accepted[email.delivery_id] = message_id
        return outcome

    async def get_email(self, message_id: str) -> dict[str, Any]:
        """``GET /emails/{id}``: the provider's record of one email (with ``last_event``)."""
        try:
            payload = await self._call(
                "GET", f"/emails/{quote(message_id, safe='')}", what="the status request"
            )
        except _Refused as refused:
            if refused.status == 404:
                raise NotFound(f"Resend has no email with id {message_id}.") from None
            raise TransportError(
                f"Resend refused the status request for {message_id}: "
                f"{self._redact(refused.message)} ({refused.status} {refused.name})."
            ) from None
        if not isinstance(payload, dict):
            raise TransportError(f"Resend answered the status request for {message_id} oddly.")
        return payload

    async def aclose(self) -> None:
        """Close the HTTP client if this transport made it, and the limiter's budget thread."""
        self.limiter.close()
        if self._own_client:
            await self._client.aclose()

    # -- one call, with retries ---------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        idempotency_key: str | None = None,
        extra: dict[str, str] | None = None,
        what: str,
    ) -> Any:
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        headers.update(extra or {})
        url = self._base + path
        maybe_sent = False
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.config.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Retry),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        self.stats.retries += 1
                    try:
                        return await self._attempt(method, url, body, headers)
                    except _Retry as retry:
                        maybe_sent = maybe_sent or retry.maybe_sent
                        raise
        except _Retry as last:
            attempts = self.config.max_attempts
            raise OutcomeUnknown(
                f"Resend did not confirm {what} after {attempts} "
                f"attempt{'s' if attempts != 1 else ''} (last: {self._redact(last.reason)}).",
                maybe_sent=maybe_sent,
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, _Retry):
            if error.limiter_paused:
                return 0.0  # the limiter already holds every caller until retry-after
            if error.retry_after is not None:
                return max(error.retry_after, self._backoff(state.attempt_number))
        return self._backoff(state.attempt_number)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter on top: initial x 2^(attempt-1), capped."""
        base = min(self._backoff_max, self._backoff_initial * 2.0 ** (attempt - 1))
        return base + random.uniform(0, self._backoff_initial)

    async def _attempt(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> Any:
        sent_at = await self.limiter.acquire()
        self.stats.requests += 1
        try:
            response = await self._client.request(
                method, url, content=body, headers=headers, extensions=traced(self.limiter, sent_at)
            )
        except httpx.TimeoutException as exc:
            self.limiter.observe({}, sent_at)
            self.stats.network_errors += 1
            raise _Retry(
                f"timed out ({type(exc).__name__})",
                maybe_sent=not isinstance(exc, httpx.ConnectTimeout),
            ) from None
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            self.limiter.observe({}, sent_at)
            self.stats.network_errors += 1
            raise _Retry(
                f"connection error ({type(exc).__name__}: {exc})",
                maybe_sent=not isinstance(exc, httpx.ConnectError),
            ) from None
        self.limiter.observe(response.headers, sent_at)
        status = response.status_code
        if 200 <= status < 300:
            try:
                return response.json()
            except ValueError:
                raise OutcomeUnknown(
                    f"Resend answered {status} with a body that is not JSON."
                ) from None
        name, message = _error_of(response)
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if status == 429:
            if name in QUOTA_NAMES:
                raise QuotaExceeded(
                    f"Resend's {name.split('_')[0]} sending quota is used up: "
                    f"{self._redact(message)}",
                    name=name,
                    retry_after=retry_after,
                )
            self.stats.rate_limited += 1
            self.limiter.penalise(retry_after)
            raise _Retry(
                f"429 {name or 'rate limited'}",
                maybe_sent=False,
                retry_after=retry_after,
                limiter_paused=True,
            )
        if status == 409 and name == "concurrent_idempotent_requests":
            raise _Retry(
                "409 concurrent_idempotent_requests", maybe_sent=True, retry_after=retry_after
            )
        if status in (408, 425):  # the server gave up waiting for us, or wants a replay later
            raise _Retry(
                f"{status} {name or response.reason_phrase}",
                maybe_sent=True,
                retry_after=retry_after,
            )
        if status >= 500:
            self.stats.server_errors += 1
            raise _Retry(
                f"{status} {name or 'server error'}", maybe_sent=True, retry_after=retry_after
            )
        if status in (401, 403):
            raise AuthError(
                f"Resend refused the request ({status} {name or 'forbidden'}): "
                f"{self._redact(message)}",
                hint="Check RESEND_API_KEY (a full-access or sending key of this team) and "
                "that the sender's domain is verified in Resend.",
            )
        raise _Refused(status, name, message)

    def _refusal(self, refused: _Refused, what: str) -> TransportError:
        """The error for a non-retryable answer to a send."""
        reason = self._redact(refused.message)
        if refused.status == 404:
            return AuthError(
                f"{self._base} answered 404 Not Found to {what}: is resend.base_url "
                "(or RESEND_BASE_URL) right?",
            )
        return BatchRejected(
            f"Resend refused {what} ({refused.status} {refused.name or 'error'}): {reason}",
            status=refused.status,
            name=refused.name,
            reason=reason,
        )

    def _redact(self, text: str) -> str:
        """Never let the key reach a message, whatever the provider echoes."""
        return text.replace(self._key, "re_…") if self._key else text


def _error_of(response: httpx.Response) -> tuple[str, str]:
    """``(name, message)`` of a Resend error body ``{"statusCode", "name", "message"}``."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        name = body.get("name")
        message = body.get("message")
        return (
            str(name) if name else "",
            str(message) if message else response.reason_phrase or "no message",
        )
    text = response.text.strip()[:200]
    return "", text or response.reason_phrase or f"HTTP {response.status_code}"


def _batch_outcome(emails: Sequence[OutgoingEmail], payload: Any) -> BatchOutcome:
    """Map a batch answer (``data`` ids in order, ``errors`` by index) back to deliveries."""
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise OutcomeUnknown("Resend accepted the batch but its answer has no data list.")
    errors = payload.get("errors") or []
    rejected: dict[int, str] = {}
    for item in errors if isinstance(errors, list) else []:
        index = item.get("index") if isinstance(item, dict) else None
        if isinstance(index, int) and 0 <= index < len(emails):
            rejected[index] = str(item.get("message") or "rejected by Resend")
    ids = [item.get("id") if isinstance(item, dict) else None for item in payload["data"]]
    kept = [i for i in range(len(emails)) if i not in rejected]
    if len(ids) == len(kept):
        pairs = list(zip(kept, ids, strict=False))
    elif len(ids) == len(emails):  # data holds one entry per email, failed ones included
        pairs = [(i, ids[i]) for i in kept]
    else:
        raise OutcomeUnknown(
            f"Resend's answer lists {len(ids)} ids and {len(rejected)} errors "
            f"for {len(emails)} emails."
        )
    outcome = BatchOutcome()
    for index, message_id in pairs:
        if not isinstance(message_id, str) or not message_id:
            raise OutcomeUnknown("Resend accepted the batch but an id is missing.")
        outcome.accepted[emails[index].delivery_id] = message_id
    for index, message in rejected.items():
        outcome.rejected[emails[index].delivery_id] = message
    return outcome
