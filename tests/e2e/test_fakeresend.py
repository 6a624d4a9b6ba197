"""The Resend stand-in itself: if it lies, every send test built on it lies too."""

from __future__ import annotations

import http.client
import json
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
from typing import Any

import httpx
import pytest

from tests.support.fakeresend import FakeResend, remote_configure, remote_record
from tests.support.project import TESTS

EMAIL = {
    "from": "Example <hello@example.com>",
    "to": ["ann@example.org"],
    "subject": "Hi",
    "html": "<p>Hi</p>",
    "text": "Hi",
}
BAD_TO = {**EMAIL, "to": ["not-an-address"]}


def headers(fake: FakeResend, key: str | None = None, **extra: str) -> dict[str, str]:
    h = {"Authorization": f"Bearer {fake.api_key}", "User-Agent": "tests/1"}
    if key is not None:
        h["Idempotency-Key"] = key
    return {**h, **extra}


def post(fake: FakeResend, path: str, body: Any, **h: str) -> httpx.Response:
    return httpx.post(fake.url + path, json=body, headers=h, timeout=10)


def error_of(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert body["statusCode"] == response.status_code
    assert body["message"]
    return response.status_code, body["name"]


def wait_for_window_start() -> None:
    """Sleep until just after a wall-clock second starts (the stand-in's windows)."""
    time.sleep(1.02 - time.time() % 1.0)


def test_auth_and_user_agent_are_required(fake_resend: FakeResend) -> None:
    no_key = {"User-Agent": "tests/1"}
    assert error_of(post(fake_resend, "/emails", EMAIL, **no_key)) == (401, "missing_api_key")
    wrong = {"User-Agent": "tests/1", "Authorization": "Bearer re_wrong"}
    assert error_of(post(fake_resend, "/emails", EMAIL, **wrong)) == (403, "invalid_api_key")
    no_agent = {"Authorization": f"Bearer {fake_resend.api_key}", "User-Agent": ""}
    assert post(fake_resend, "/emails", EMAIL, **no_agent).status_code == 403
    assert fake_resend.accepted == []
    assert fake_resend.counters["auth_errors"] == 3


def test_single_send_is_recorded_and_queryable(fake_resend: FakeResend) -> None:
    answer = post(fake_resend, "/emails", EMAIL, **headers(fake_resend, "k-1"))
    assert answer.status_code == 200
    message_id = answer.json()["id"]
    [record] = fake_resend.accepted
    assert (record.id, record.to, record.subject, record.idempotency_key) == (
        message_id,
        ["ann@example.org"],
        "Hi",
        "k-1",
    )

    def last_event() -> str:
        got = httpx.get(f"{fake_resend.url}/emails/{message_id}", headers=headers(fake_resend))
        assert got.status_code == 200
        assert got.json()["id"] == message_id
        return str(got.json()["last_event"])

    assert last_event() == "sent"
    fake_resend.set_last_event(message_id, "bounced")
    assert last_event() == "bounced"
    missing = httpx.get(f"{fake_resend.url}/emails/nope", headers=headers(fake_resend))
    assert error_of(missing) == (404, "not_found")


def test_domains_and_sending_only_keys(fake_resend: FakeResend) -> None:
    listed = httpx.get(f"{fake_resend.url}/domains", headers=headers(fake_resend))
    assert [d["name"] for d in listed.json()["data"]] == ["example.com"]
    fake_resend.configure(key_access="sending_access")
    refused = httpx.get(f"{fake_resend.url}/domains", headers=headers(fake_resend))
    assert error_of(refused) == (401, "restricted_api_key")
    assert post(fake_resend, "/emails", EMAIL, **headers(fake_resend)).status_code == 200


def test_strict_batch_rejects_everything_for_one_bad_address(fake_resend: FakeResend) -> None:
    answer = post(fake_resend, "/emails/batch", [EMAIL, BAD_TO], **headers(fake_resend, "b"))
    assert error_of(answer) == (422, "validation_error")
    assert "emails[1]" in answer.json()["message"]
    assert fake_resend.accepted == []


def test_permissive_batch_sends_the_valid_ones(fake_resend: FakeResend) -> None:
    other = {**EMAIL, "to": ["bob@example.org"]}
    answer = post(
        fake_resend,
        "/emails/batch",
        [EMAIL, BAD_TO, other],
        **headers(fake_resend, "b", **{"x-batch-validation": "permissive"}),
    )
    assert answer.status_code == 200
    body = answer.json()
    assert [e["index"] for e in body["errors"]] == [1]
    assert "`to`" in body["errors"][0]["message"]
    assert [d["id"] for d in body["data"]] == [r.id for r in fake_resend.accepted]
    assert [r.to for r in fake_resend.accepted] == [["ann@example.org"], ["bob@example.org"]]


@pytest.mark.parametrize(
    "email, name",
    [
        ({k: v for k, v in EMAIL.items() if k != "subject"}, "missing_required_field"),
        ({**EMAIL, "from": "nobody"}, "invalid_from_address"),
        ({**EMAIL, "tags": [{"name": "campaign", "value": "a.b"}]}, "validation_error"),
        ({k: v for k, v in EMAIL.items() if k not in ("html", "text")}, "missing_required_field"),
    ],
)
def test_validation_errors(fake_resend: FakeResend, email: dict[str, Any], name: str) -> None:
    assert error_of(post(fake_resend, "/emails", email, **headers(fake_resend))) == (422, name)
    assert fake_resend.accepted == []


def test_same_key_same_body_replays_without_sending_again(fake_resend: FakeResend) -> None:
    first = post(fake_resend, "/emails/batch", [EMAIL], **headers(fake_resend, "camp/1"))
    second = post(fake_resend, "/emails/batch", [EMAIL], **headers(fake_resend, "camp/1"))
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert len(fake_resend.accepted) == 1
    assert fake_resend.counters["replays"] == 1


def test_same_key_other_body_is_a_conflict(fake_resend: FakeResend) -> None:
    post(fake_resend, "/emails/batch", [EMAIL], **headers(fake_resend, "camp/1"))
    other = post(
        fake_resend,
        "/emails/batch",
        [{**EMAIL, "subject": "Hello"}],
        **headers(fake_resend, "camp/1"),
    )
    assert error_of(other) == (409, "invalid_idempotent_request")
    assert len(fake_resend.accepted) == 1


def test_keys_expire_after_their_ttl(fake_resend: FakeResend) -> None:
    fake_resend.configure(idempotency_ttl=0.3)
    post(fake_resend, "/emails", EMAIL, **headers(fake_resend, "k"))
    post(fake_resend, "/emails", EMAIL, **headers(fake_resend, "k"))
    assert len(fake_resend.accepted) == 1
    time.sleep(0.4)
    post(fake_resend, "/emails", EMAIL, **headers(fake_resend, "k"))  # a new key by now
    assert len(fake_resend.accepted) == 2


def test_key_in_flight_is_a_concurrent_conflict(fake_resend: FakeResend) -> None:
    fake_resend.configure(latency=0.4)
    answers: list[httpx.Response] = []

    def send() -> None:
        answers.append(post(fake_resend, "/emails", EMAIL, **headers(fake_resend, "k")))

    first = threading.Thread(target=send)
    first.start()
    time.sleep(0.15)
    send()
    first.join()
    assert sorted(a.status_code for a in answers) == [200, 409]
    conflict = next(a for a in answers if a.status_code == 409)
    assert conflict.json()["name"] == "concurrent_idempotent_requests"
    assert len(fake_resend.accepted) == 1


def test_rate_limit_in_fixed_windows(fake_resend: FakeResend) -> None:
    fake_resend.configure(rate=3)
    wait_for_window_start()
    with httpx.Client(headers=headers(fake_resend)) as client:
        answers = [client.get(f"{fake_resend.url}/emails/x") for _ in range(5)]
    assert [a.status_code for a in answers] == [404, 404, 404, 429, 429]
    assert [a.headers["ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0", "0"]
    assert all(a.headers["ratelimit-limit"] == "3" for a in answers)
    assert all(a.headers["ratelimit-reset"] == "1" for a in answers)
    assert error_of(answers[3]) == (429, "rate_limit_exceeded")
    assert answers[3].headers["retry-after"] == "1"
    assert "retry-after" not in answers[0].headers
    assert fake_resend.counters["rate_limited"] == 2
    time.sleep(1.0)
    assert httpx.get(f"{fake_resend.url}/emails/x", headers=headers(fake_resend)).status_code == 404


def test_an_injected_burst_of_429s(fake_resend: FakeResend) -> None:
    fake_resend.configure(limit_next=2)
    answers = [post(fake_resend, "/emails", EMAIL, **headers(fake_resend, "k")) for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert error_of(answers[0]) == (429, "rate_limit_exceeded")
    assert answers[0].headers["retry-after"] == "1"
    assert fake_resend.counters["rate_limited"] == 2
    assert len(fake_resend.accepted) == 1


def test_lost_answer_is_accepted_then_replayed(fake_resend: FakeResend) -> None:
    fake_resend.configure(lose_next=1)
    with pytest.raises(httpx.RemoteProtocolError):
        post(fake_resend, "/emails/batch", [EMAIL], **headers(fake_resend, "lost"))
    assert len(fake_resend.accepted) == 1
    again = post(fake_resend, "/emails/batch", [EMAIL], **headers(fake_resend, "lost"))
    assert again.json()["data"][0]["id"] == fake_resend.accepted[0].id
    assert len(fake_resend.accepted) == 1
    assert fake_resend.counters["lost"] == 1


def hang_up_during(fake: FakeResend, key: str) -> None:
    """Send a request and reset the connection before the answer (a SIGKILLed sender)."""
    host, port = fake.url.removeprefix("http://").split(":")
    body = json.dumps(EMAIL).encode()
    head = (
        f"POST /emails HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nIdempotency-Key: {key}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in headers(fake).items())
        + "\r\n"
    )
    with socket.create_connection((host, int(port))) as conn:
        conn.sendall(head.encode() + body)
        time.sleep(0.1)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.mark.parametrize("fault", [{"fail_next": 1}, {}])
def test_a_client_killed_mid_request_does_not_keep_its_key(
    fake_resend: FakeResend, fault: dict[str, int]
) -> None:
    fake_resend.configure(latency=0.3, **fault)
    hang_up_during(fake_resend, "killed")
    time.sleep(0.5)  # the stand-in finished (and failed to write its answer)
    fake_resend.configure(latency=0.0)
    again = httpx.post(
        f"{fake_resend.url}/emails",
        content=json.dumps(EMAIL).encode(),
        headers=headers(fake_resend, "killed"),
    )
    assert again.status_code == 200  # not 409 concurrent_idempotent_requests for ever
    assert len(fake_resend.accepted) == 1


def test_injected_server_errors_send_nothing(fake_resend: FakeResend) -> None:
    fake_resend.configure(fail_next=2)
    codes = [
        post(fake_resend, "/emails", EMAIL, **headers(fake_resend, "k")).status_code
        for _ in range(3)
    ]
    assert codes == [500, 500, 200]
    assert len(fake_resend.accepted) == 1
    assert fake_resend.counters["server_errors"] == 2


def test_daily_quota(fake_resend: FakeResend) -> None:
    fake_resend.configure(quota=3)
    assert (
        post(fake_resend, "/emails/batch", [EMAIL, EMAIL], **headers(fake_resend, "q1")).status_code
        == 200
    )
    over = post(fake_resend, "/emails/batch", [EMAIL, EMAIL], **headers(fake_resend, "q2"))
    assert error_of(over) == (429, "daily_quota_exceeded")
    assert len(fake_resend.accepted) == 2


def test_fifty_concurrent_connections(fake_resend: FakeResend) -> None:
    fake_resend.configure(latency=0.3)
    codes: list[int] = []

    host, port = fake_resend.url.removeprefix("http://").split(":")

    def get() -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("GET", "/emails/x", headers=headers(fake_resend))
        codes.append(connection.getresponse().status)
        connection.close()

    threads = [threading.Thread(target=get) for _ in range(50)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [404] * 50
    assert time.monotonic() - started < 6  # in parallel, not 50 x 0.3 s
    assert fake_resend.counters["max_in_flight"] >= 25


def test_http_control_endpoints(fake_resend: FakeResend) -> None:
    assert remote_configure(fake_resend.url, rate=7, latency=0.01)["rate"] == 7
    assert fake_resend.config.rate == 7
    post(fake_resend, "/emails", EMAIL, **headers(fake_resend, "k"))
    record = remote_record(fake_resend.url)
    assert record["counters"]["emails"] == 1
    assert record["accepted"][0]["to"] == ["ann@example.org"]
    assert record["accepted"][0]["idempotency_key"] == "k"
    assert "accepted" not in remote_record(fake_resend.url, emails=False)
    with pytest.raises(urllib.error.HTTPError, match="400"):
        remote_configure(fake_resend.url, no_such_option=1)
    message_id = record["accepted"][0]["id"]
    httpx.post(f"{fake_resend.url}/_fake/events", json={"id": message_id, "last_event": "opened"})
    got = httpx.get(f"{fake_resend.url}/emails/{message_id}", headers=headers(fake_resend))
    assert got.json()["last_event"] == "opened"
    httpx.post(f"{fake_resend.url}/_fake/reset")
    assert fake_resend.accepted == [] and fake_resend.config.rate is None


def test_record_summary_finds_duplicates(fake_resend: FakeResend) -> None:
    other = {**EMAIL, "to": ["bob@example.org"]}
    post(fake_resend, "/emails/batch", [EMAIL, other], **headers(fake_resend, "k1"))
    post(fake_resend, "/emails", EMAIL, **headers(fake_resend, "k2"))  # ann, a second time
    summary = remote_record(fake_resend.url, emails=False)
    assert summary["distinct_recipients"] == 2
    assert summary["duplicates"] == ["ann@example.org"]
    assert summary["counters"]["emails"] == 3


def test_lean_records_keep_only_what_counting_needs(fake_resend: FakeResend) -> None:
    fake_resend.configure(keep_details=False)
    post(
        fake_resend,
        "/emails",
        {**EMAIL, "tags": [{"name": "a", "value": "b"}]},
        **headers(fake_resend, "k"),
    )
    [record] = fake_resend.accepted
    assert (record.to, record.subject, record.tags, record.headers) == (
        ["ann@example.org"],
        "Hi",
        [],
        {},
    )


def test_reset_forgets_keys(fake_resend: FakeResend) -> None:
    post(fake_resend, "/emails", EMAIL, **headers(fake_resend, "k"))
    fake_resend.reset()
    post(fake_resend, "/emails", EMAIL, **headers(fake_resend, "k"))
    assert len(fake_resend.accepted) == 1 and fake_resend.counters["replays"] == 0


def test_runs_standalone() -> None:
    script = TESTS / "support" / "fakeresend.py"
    proc = subprocess.Popen(
        [sys.executable, str(script), "--port", "0", "--rate", "10", "--latency", "0.01"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        answer = httpx.get(f"{url}/emails/x", headers={"Authorization": "Bearer wrong"})
        assert answer.status_code == 403
        assert remote_record(url, emails=False)["counters"]["auth_errors"] == 1
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
