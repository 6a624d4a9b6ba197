"""The Resend transport: requests as Resend documents them, errors classified, retries safe."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import yaml

from sponsorcast import __version__
from sponsorcast.config import Config, ResendConfig, Secrets
from sponsorcast.errors import (
    AuthError,
    BatchRejected,
    CampaignPaused,
    ExitCode,
    NotFound,
    OutcomeUnknown,
    QuotaExceeded,
    TransportError,
)
from sponsorcast.transport import OutgoingEmail, make_transport
from sponsorcast.transport.limiter import RateLimiter
from sponsorcast.transport.outbox import OutboxTransport
from sponsorcast.transport.resend import ResendTransport
from tests.support.fakeresend import FakeResend
from tests.support.project import DATA

BASE = "https://api.resend.test"
KEY = "re_SECRET_abcdefghijklmnop"
SCHEMAS_FILE = DATA / "resend-openapi" / "emails.yaml"
REFERENCE = Path("/work/shared/reference/resend-openapi/resend.yaml")
SCHEMAS: dict[str, Any] = yaml.safe_load(SCHEMAS_FILE.read_text())["components"]["schemas"]


def email(n: int, **changes: Any) -> OutgoingEmail:
    fields: dict[str, Any] = {
        "delivery_id": n,
        "from_address": "Example Events <hello@example.com>",
        "to": f"lead{n}@example.org",
        "subject": f"Hello {n}",
        "html": f"<p>Hi {n}</p>",
        "text": f"Hi {n}",
        "reply_to": "team@example.com",
        "headers": {
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "List-Unsubscribe": f"<https://t.example.com/u/{n}>",
        },
        "tags": (("campaign", "spring-launch"), ("delivery", str(n))),
    }
    return OutgoingEmail(**{**fields, **changes})


def transport(**config: Any) -> ResendTransport:
    settings = {"base_url": BASE, "rate_limit": 1000.0, "max_attempts": 3, **config}
    return ResendTransport(
        ResendConfig(**settings), KEY, limiter=RateLimiter(1000.0), backoff=0.01, backoff_max=0.05
    )


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def send(t: ResendTransport, emails: list[OutgoingEmail], key: str = "camp/b1") -> Any:
    try:
        return await t.send_batch(emails, key)
    finally:
        await t.aclose()


def fail(status: int, name: str, message: str = "nope", **headers: str) -> httpx.Response:
    return httpx.Response(
        status, json={"statusCode": status, "name": name, "message": message}, headers=headers
    )


def ok_batch(n: int) -> httpx.Response:
    return httpx.Response(200, json={"data": [{"id": f"msg-{i}"} for i in range(n)]})


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


# -- a small OpenAPI schema walker ------------------------------------------------------------


def schema_errors(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """What is wrong with ``value`` under an OpenAPI 3.1 ``schema`` (the parts Resend uses)."""
    if "$ref" in schema:
        return schema_errors(value, SCHEMAS[schema["$ref"].rsplit("/", 1)[1]], where)
    errors: list[str] = []
    for part in schema.get("allOf", []):
        errors += schema_errors(value, part, where)
    if "oneOf" in schema:
        matching = [s for s in schema["oneOf"] if not schema_errors(value, s, where)]
        if len(matching) != 1:
            errors.append(f"{where}: matches {len(matching)} of oneOf")
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            return [*errors, f"{where}: not an object"]
        errors += [f"{where}: missing {k}" for k in schema.get("required", []) if k not in value]
        properties = schema.get("properties")
        for key, item in value.items():
            if properties is None:
                continue
            if key not in properties:
                errors.append(f"{where}: unknown key {key}")
            else:
                errors += schema_errors(item, properties[key], f"{where}.{key}")
    elif kind == "array":
        if not isinstance(value, list):
            return [*errors, f"{where}: not an array"]
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", 10**9):
            errors.append(f"{where}: {len(value)} items")
        for i, item in enumerate(value):
            errors += schema_errors(item, schema.get("items", {}), f"{where}[{i}]")
    elif kind == "string":
        if not isinstance(value, str):
            errors.append(f"{where}: not a string")
        elif len(value) > schema.get("maxLength", 10**9):
            errors.append(f"{where}: too long")
    return errors


def test_the_schema_extract_matches_the_reference() -> None:
    if not REFERENCE.exists():
        pytest.skip("the full Resend OpenAPI reference is not on this machine")
    full = yaml.safe_load(REFERENCE.read_text())["components"]["schemas"]
    assert {name: full[name] for name in SCHEMAS} == SCHEMAS


def test_the_schema_walker_catches_bad_requests() -> None:
    request = SCHEMAS["SendEmailRequest"]
    assert schema_errors({"from": "a@b.c", "to": ["x@y.z"], "subject": "s"}, request) == []
    assert schema_errors({"from": "a@b.c", "to": [], "subject": "s"}, request)
    assert schema_errors({"from": "a@b.c", "to": "x@y.z"}, request) == ["$: missing subject"]
    assert schema_errors({"from": "a@b.c", "to": "x", "subject": "s", "tags": {"a": "b"}}, request)
    assert schema_errors({"from": "a@b.c", "to": "x", "subject": 1}, request)


# -- the request --------------------------------------------------------------------------------


def test_to_resend_is_a_valid_send_email_request_in_fixed_order() -> None:
    body = email(7).to_resend()
    assert schema_errors(body, SCHEMAS["SendEmailRequest"]) == []
    assert list(body) == ["from", "to", "subject", "html", "text", "reply_to", "headers", "tags"]
    assert body["to"] == ["lead7@example.org"]
    assert list(body["headers"]) == ["List-Unsubscribe", "List-Unsubscribe-Post"]
    assert body["tags"] == [
        {"name": "campaign", "value": "spring-launch"},
        {"name": "delivery", "value": "7"},
    ]


def test_to_resend_leaves_out_empty_optionals_and_makes_tags_safe() -> None:
    bare = OutgoingEmail(
        1,
        "a@example.com",
        "b@example.org",
        "S",
        "",
        "text only",
        tags=(("campaign", "spring.launch 2026"),),
    )
    body = bare.to_resend()
    assert body == {
        "from": "a@example.com",
        "to": ["b@example.org"],
        "subject": "S",
        "text": "text only",
        "tags": [{"name": "campaign", "value": "spring_launch_2026"}],
    }
    assert schema_errors(body, SCHEMAS["SendEmailRequest"]) == []


def test_batch_request_headers_and_body(api: respx.MockRouter) -> None:
    route = api.post("/emails/batch").mock(return_value=ok_batch(3))
    outcome = run(send(transport(), [email(1), email(2), email(3)], key="spring/batch-000001"))
    assert outcome.accepted == {1: "msg-0", 2: "msg-1", 3: "msg-2"}
    assert outcome.rejected == {}
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["User-Agent"] == f"sponsorcast/{__version__}"
    assert request.headers["Idempotency-Key"] == "spring/batch-000001"
    assert request.headers["x-batch-validation"] == "permissive"
    assert request.headers["Content-Type"] == "application/json"
    body = json.loads(request.content)
    batch_schema = {
        "type": "array",
        "items": {"$ref": "#/components/schemas/SendEmailRequest"},
        "minItems": 1,
        "maxItems": 100,
    }
    assert schema_errors(body, batch_schema) == []
    assert [item["to"] for item in body] == [[f"lead{n}@example.org"] for n in (1, 2, 3)]


def test_answer_schema_matches_what_the_transport_reads() -> None:
    answer = {"data": [{"id": "a"}, {"id": "b"}]}
    assert schema_errors(answer, SCHEMAS["CreateBatchEmailsResponse"]) == []


def test_the_same_batch_is_the_same_bytes(api: respx.MockRouter) -> None:
    route = api.post("/emails/batch").mock(return_value=ok_batch(2))
    run(send(transport(), [email(1), email(2)]))
    run(send(transport(), [email(1), email(2)]))
    first, second = (call.request.content for call in route.calls)
    assert first == second


def test_permissive_errors_become_rejected(api: respx.MockRouter) -> None:
    api.post("/emails/batch").mock(
        return_value=httpx.Response(
            200,
            json={
                "data": [{"id": "m-a"}, {"id": "m-c"}],
                "errors": [{"index": 1, "message": "Invalid `to` field."}],
            },
        )
    )
    outcome = run(send(transport(), [email(10), email(11), email(12)]))
    assert outcome.accepted == {10: "m-a", 12: "m-c"}
    assert outcome.rejected == {11: "Invalid `to` field."}


def test_an_answer_that_does_not_add_up_is_an_unknown_outcome(api: respx.MockRouter) -> None:
    api.post("/emails/batch").mock(return_value=ok_batch(1))
    with pytest.raises(OutcomeUnknown, match="1 ids and 0 errors for 2 emails"):
        run(send(transport(), [email(1), email(2)]))


def test_programming_errors_are_refused_before_sending(api: respx.MockRouter) -> None:
    route = api.post("/emails/batch").mock(return_value=ok_batch(2))
    with pytest.raises(ValueError, match="unique"):
        run(send(transport(), [email(0), email(0, to="other@example.org")]))
    with pytest.raises(ValueError, match="1 to 256"):
        run(send(transport(), [email(1)], key="k" * 257))
    with pytest.raises(ValueError, match="at most 100"):
        run(send(transport(), [email(i) for i in range(1, 102)]))
    assert not route.called


# -- retries ------------------------------------------------------------------------------------


def test_429_is_retried_after_retry_after_with_the_same_bytes(api: respx.MockRouter) -> None:
    route = api.post("/emails/batch").mock(
        side_effect=[
            fail(429, "rate_limit_exceeded", **{"retry-after": "0.4", "ratelimit-limit": "1000"}),
            ok_batch(2),
        ]
    )
    t = transport()
    started = time.monotonic()
    outcome = run(send(t, [email(1), email(2)]))
    assert outcome.accepted == {1: "msg-0", 2: "msg-1"}
    assert route.call_count == 2
    first, second = route.calls
    assert first.request.content == second.request.content
    assert first.request.headers["Idempotency-Key"] == second.request.headers["Idempotency-Key"]
    assert time.monotonic() - started >= 0.4
    assert t.stats.rate_limited == 1 and t.limiter.holds == 1


@pytest.mark.parametrize(
    "first",
    [
        fail(500, "application_error"),
        fail(503, "internal_server_error"),
        fail(409, "concurrent_idempotent_requests"),
        httpx.Response(408, text="Request Timeout"),
        httpx.Response(502, text="<html>Bad gateway</html>"),
        httpx.ReadTimeout("slow"),
        httpx.ConnectError("refused"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
    ],
)
def test_transient_failures_are_retried(api: respx.MockRouter, first: Any) -> None:
    route = api.post("/emails/batch").mock(side_effect=[first, first, ok_batch(1)])
    outcome = run(send(transport(), [email(5)]))
    assert outcome.accepted == {5: "msg-0"}
    assert route.call_count == 3
    assert len({call.request.content for call in route.calls}) == 1


def test_exhausted_retries_are_an_unknown_outcome(api: respx.MockRouter) -> None:
    route = api.post("/emails/batch").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(OutcomeUnknown) as caught:
        run(send(transport(max_attempts=4), [email(5)]))
    assert route.call_count == 4
    assert caught.value.maybe_sent is True
    assert "after 4 attempts" in str(caught.value)
    assert caught.value.exit_code == ExitCode.FAILED


def test_refused_connections_cannot_have_sent_anything(api: respx.MockRouter) -> None:
    api.post("/emails/batch").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(OutcomeUnknown) as caught:
        run(send(transport(), [email(5)]))
    assert caught.value.maybe_sent is False


@pytest.mark.parametrize(
    "status, name",
    [
        (400, "validation_error"),
        (400, "invalid_idempotency_key"),
        (409, "invalid_idempotent_request"),
        (422, "invalid_from_address"),
        (422, "missing_required_field"),
        (451, "security_error"),
    ],
)
def test_non_retryable_4xx_rejects_the_batch_once(
    api: respx.MockRouter, status: int, name: str
) -> None:
    route = api.post("/emails/batch").mock(return_value=fail(status, name, "The provider says no."))
    with pytest.raises(BatchRejected) as caught:
        run(send(transport(), [email(1), email(2)]))
    assert route.call_count == 1
    error = caught.value
    assert (error.status, error.name, error.reason) == (status, name, "The provider says no.")
    assert "The provider says no." in str(error)
    assert isinstance(error, TransportError)


@pytest.mark.parametrize(
    "status, name",
    [
        (401, "missing_api_key"),
        (401, "restricted_api_key"),
        (403, "invalid_api_key"),
        (403, "validation_error"),
    ],
)
def test_auth_errors_stop_with_exit_3_and_never_show_the_key(
    api: respx.MockRouter, status: int, name: str
) -> None:
    route = api.post("/emails/batch").mock(
        return_value=fail(status, name, f"API key {KEY} is invalid")
    )
    with pytest.raises(AuthError) as caught:
        run(send(transport(), [email(1)]))
    assert route.call_count == 1
    assert caught.value.exit_code == ExitCode.CONFIG
    assert KEY not in str(caught.value) and KEY not in repr(caught.value)
    assert KEY not in (caught.value.hint or "")


def test_a_wrong_base_url_is_a_configuration_error(api: respx.MockRouter) -> None:
    api.post("/emails/batch").mock(return_value=httpx.Response(404, text="Not Found"))
    with pytest.raises(AuthError, match="base_url"):
        run(send(transport(), [email(1)]))


@pytest.mark.parametrize("name", ["daily_quota_exceeded", "monthly_quota_exceeded"])
def test_quota_pauses(api: respx.MockRouter, name: str) -> None:
    route = api.post("/emails/batch").mock(return_value=fail(429, name, "Quota reached."))
    with pytest.raises(QuotaExceeded) as caught:
        run(send(transport(), [email(1)]))
    assert route.call_count == 1
    assert caught.value.name == name
    assert isinstance(caught.value, CampaignPaused)
    assert caught.value.exit_code == ExitCode.FAILED


def test_missing_key_is_refused_without_a_request(tmp_path: Path) -> None:
    with pytest.raises(AuthError, match="RESEND_API_KEY"):
        make_transport(Config(transport="resend"), "spring")
    with pytest.raises(AuthError):
        ResendTransport(ResendConfig(), "", limiter=RateLimiter(None))


def test_a_malformed_key_is_refused_without_quoting_it() -> None:
    for bad in ("re_abc def", "re_abc\ndef", "re_abcdéf"):
        with pytest.raises(AuthError) as caught:
            ResendTransport(ResendConfig(), bad, limiter=RateLimiter(None))
        assert "abc" not in str(caught.value)
    padded = ResendTransport(ResendConfig(), f"  {KEY}\n", limiter=RateLimiter(None))
    assert padded._headers["Authorization"] == f"Bearer {KEY}"
    run(padded.aclose())


def test_cancellation_is_not_retried(fake_resend: FakeResend) -> None:
    fake_resend.configure(latency=1.0)

    async def scenario() -> ResendTransport:
        t = real(fake_resend)
        task = asyncio.create_task(t.send_batch([email(1)], "k"))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await t.aclose()
        return t

    assert run(scenario()).stats.requests == 1


def test_make_transport_picks_the_configured_one(tmp_path: Path) -> None:
    outbox = make_transport(Config(transport="outbox", outbox_dir=tmp_path), "spring")
    assert isinstance(outbox, OutboxTransport) and not outbox.sends_for_real
    resend = make_transport(
        Config(transport="resend", secrets=Secrets(resend_api_key=KEY)), "spring"
    )
    assert isinstance(resend, ResendTransport) and resend.sends_for_real
    assert resend.limiter.ceiling is None
    run(resend.aclose())


# -- one by one ---------------------------------------------------------------------------------


def test_single_endpoint_sends_each_email_under_its_own_key(api: respx.MockRouter) -> None:
    route = api.post("/emails").mock(
        side_effect=[
            httpx.Response(200, json={"id": "m1"}),
            fail(422, "validation_error", "Invalid `to` field."),
            httpx.Response(200, json={"id": "m3"}),
        ]
    )
    outcome = run(send(transport(endpoint="single"), [email(1), email(2), email(3)], key="c/b7"))
    assert outcome.accepted == {1: "m1", 3: "m3"}
    assert outcome.rejected == {2: "Invalid `to` field."}
    keys = [call.request.headers["Idempotency-Key"] for call in route.calls]
    assert keys == ["c/b7/1", "c/b7/2", "c/b7/3"]
    for call in route.calls:
        assert "x-batch-validation" not in call.request.headers
        assert schema_errors(json.loads(call.request.content), SCHEMAS["SendEmailRequest"]) == []


def test_single_endpoint_error_midway_carries_what_was_sent(api: respx.MockRouter) -> None:
    api.post("/emails").mock(
        side_effect=[
            httpx.Response(200, json={"id": "m1"}),
            fail(429, "daily_quota_exceeded", "Quota reached."),
        ]
    )
    with pytest.raises(QuotaExceeded) as caught:
        run(send(transport(endpoint="single"), [email(1), email(2), email(3)]))
    partial = caught.value.partial
    assert partial is not None and partial.accepted == {1: "m1"}  # type: ignore[attr-defined]


# -- status lookups -------------------------------------------------------------------------------


def test_get_email(api: respx.MockRouter) -> None:
    route = api.get("/emails/abc-1").mock(
        side_effect=[
            fail(500, "internal_server_error"),
            httpx.Response(200, json={"object": "email", "id": "abc-1", "last_event": "delivered"}),
        ]
    )
    api.get("/emails/missing").mock(return_value=fail(404, "not_found", "Email not found"))

    async def lookups() -> tuple[dict[str, Any], BaseException | None]:
        t = transport()
        try:
            found = await t.get_email("abc-1")
            try:
                await t.get_email("missing")
            except NotFound as exc:
                return found, exc
            return found, None
        finally:
            await t.aclose()

    found, missing = run(lookups())
    assert found["last_event"] == "delivered"
    assert route.call_count == 2
    assert route.calls.last.request.headers["User-Agent"] == f"sponsorcast/{__version__}"
    assert isinstance(missing, NotFound)


# -- against the stand-in (a real HTTP server) -------------------------------------------------


def real(fake: FakeResend, **config: Any) -> ResendTransport:
    settings = {
        "base_url": fake.url,
        "max_attempts": 3,
        "timeout": 5.0,
        "rate_limit": 1000.0,
        **config,
    }
    return ResendTransport(ResendConfig(**settings), fake.api_key, backoff=0.01, backoff_max=0.05)


def test_lost_answers_and_5xx_end_with_each_email_once(fake_resend: FakeResend) -> None:
    fake_resend.configure(lose_next=1)
    outcome = run(send(real(fake_resend), [email(1), email(2)], key="camp/b1"))
    fake_resend.configure(fail_next=2)
    outcome2 = run(send(real(fake_resend), [email(3)], key="camp/b2"))
    accepted = fake_resend.accepted
    assert [r.to for r in accepted] == [
        ["lead1@example.org"],
        ["lead2@example.org"],
        ["lead3@example.org"],
    ]
    assert {**outcome.accepted, **outcome2.accepted} == {
        1: accepted[0].id,
        2: accepted[1].id,
        3: accepted[2].id,
    }
    counters = fake_resend.counters
    assert (counters["lost"], counters["replays"], counters["server_errors"]) == (1, 1, 2)


def test_an_unknown_outcome_resent_later_is_not_a_second_email(fake_resend: FakeResend) -> None:
    fake_resend.configure(lose_next=1, fail_next=2)  # lost, then 5xx for both retries
    with pytest.raises(OutcomeUnknown):
        run(send(real(fake_resend), [email(1)], key="camp/b1"))
    assert len(fake_resend.accepted) == 1
    again = run(send(real(fake_resend), [email(1)], key="camp/b1"))
    assert again.accepted == {1: fake_resend.accepted[0].id}
    assert len(fake_resend.accepted) == 1


def test_a_timed_out_request_still_running_is_not_sent_twice(fake_resend: FakeResend) -> None:
    """Timeout, then 409 concurrent_idempotent_requests while the first still runs, then the
    first one's answer replayed: one email."""
    fake_resend.configure(latency=1.0)
    config = ResendConfig(base_url=fake_resend.url, timeout=0.5, max_attempts=5, rate_limit=100)
    transport = ResendTransport(config, fake_resend.api_key, backoff=0.2, backoff_max=0.4)
    outcome = run(send(transport, [email(1)], key="slow"))
    counters = fake_resend.counters
    assert counters["conflicts"] >= 1 and counters["replays"] == 1
    assert outcome.accepted == {1: fake_resend.accepted[0].id}
    assert len(fake_resend.accepted) == 1


def test_single_mode_against_the_stand_in(fake_resend: FakeResend) -> None:
    fake_resend.configure(lose_next=1)
    emails = [email(1), email(2, to="not an address"), email(3)]
    outcome = run(send(real(fake_resend, endpoint="single"), emails, key="camp/b1"))
    assert sorted(outcome.accepted) == [1, 3]
    assert "`to`" in outcome.rejected[2]
    assert [r.idempotency_key for r in fake_resend.accepted] == ["camp/b1/1", "camp/b1/3"]


class _WireLog(RateLimiter):
    """A limiter that notes what the transport tells it of each request's wire time."""

    def __init__(self) -> None:
        super().__init__(1000.0)
        self.slots: list[float] = []
        self.wire: list[tuple[float, float]] = []

    async def acquire(self) -> float:
        slot = await super().acquire()
        self.slots.append(slot)
        return slot

    def left(self, departed: float, on_the_wire: float) -> None:
        self.wire.append((departed, on_the_wire))
        super().left(departed, on_the_wire)


def test_the_limiter_hears_when_each_request_reached_the_wire(fake_resend: FakeResend) -> None:
    limiter = _WireLog()
    config = ResendConfig(base_url=fake_resend.url, max_attempts=3, timeout=5.0)
    transport = ResendTransport(config, fake_resend.api_key, limiter=limiter)
    # what httpcore imports on a first request is there before it: that request leaves on time
    assert {"h11", "anyio._backends._asyncio"} <= set(sys.modules)

    async def two() -> list[Any]:
        try:  # the second on the connection the first opened
            return [await transport.send_batch([email(n)], f"camp/b{n}") for n in (1, 2)]
        finally:
            await transport.aclose()

    before = time.monotonic()
    outcomes = run(two())
    after = time.monotonic()
    assert [len(outcome.accepted) for outcome in outcomes] == [1, 1]
    assert [departed for departed, _ in limiter.wire] == limiter.slots  # one report a request
    assert all(before <= slot <= wire <= after for slot, wire in limiter.wire)


@pytest.mark.slow
def test_a_burst_of_429_loses_and_duplicates_nothing(fake_resend: FakeResend) -> None:
    """429s (say, another client of the same team used the window) are waited out."""
    fake_resend.configure(rate=4, latency=0.05, limit_next=2)

    async def scenario() -> list[Any]:
        t = real(fake_resend, max_attempts=6)
        try:
            return await asyncio.gather(
                *(t.send_batch([email(i)], f"camp/b{i}") for i in range(1, 9))
            )
        finally:
            await t.aclose()

    outcomes = run(scenario())
    assert fake_resend.counters["rate_limited"] == 2
    assert sorted(i for o in outcomes for i in o.accepted) == list(range(1, 9))
    assert sorted(r.to[0] for r in fake_resend.accepted) == sorted(
        f"lead{i}@example.org" for i in range(1, 9)
    )


def test_the_stand_ins_answers_follow_the_schemas(fake_resend: FakeResend) -> None:
    fake_resend.configure(keep_bodies=True)
    outcome = run(send(real(fake_resend), [email(1), email(2)], key="camp/b1"))

    async def lookup() -> dict[str, Any]:
        t = real(fake_resend)
        try:
            return await t.get_email(outcome.accepted[1])
        finally:
            await t.aclose()

    found = run(lookup())
    assert schema_errors(found, SCHEMAS["Email"]) == []
    assert (found["to"], found["last_event"]) == (["lead1@example.org"], "sent")
    answer = httpx.post(
        f"{fake_resend.url}/emails/batch",
        json=[email(3).to_resend()],
        headers={"Authorization": f"Bearer {fake_resend.api_key}"},
    )
    assert schema_errors(answer.json(), SCHEMAS["CreateBatchEmailsResponse"]) == []


def test_wrong_key_against_the_stand_in(fake_resend: FakeResend) -> None:
    t = ResendTransport(ResendConfig(base_url=fake_resend.url), "re_wrong_key_123456")
    with pytest.raises(AuthError) as caught:
        run(send(t, [email(1)]))
    assert "invalid_api_key" in str(caught.value) and "re_wrong_key" not in str(caught.value)
    assert fake_resend.accepted == []
