"""The ``serve`` app: in-process (Starlette TestClient) and over real HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import hmac
import json
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

with warnings.catch_warnings():  # starlette 1.x prefers httpx2 for its TestClient; httpx works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from sponsorcast import tracking
from sponsorcast.config import Config, Secrets
from sponsorcast.store import Store
from sponsorcast.store.tables import event_t, suppression_t
from sponsorcast.tracking import server as server_module
from sponsorcast.tracking.server import PIXEL, create_app, server_config
from tests.support.tracking import (
    BODY,
    SECRET,
    VECTOR_SECRET,
    add_sponsor,
    delivery,
    event,
    seed,
    snapshot,
    suppressed_leads,
    table_rows,
    tracking_config,
)

NOW = 1_790_000_000.0


def sign(body: bytes, msg_id: str, ts: float = NOW, secret: str = VECTOR_SECRET) -> dict[str, str]:
    """Svix headers for a body, the way Resend signs it."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    stamp = str(int(ts))
    sig = base64.b64encode(
        hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    )
    return {
        "svix-id": msg_id,
        "svix-timestamp": stamp,
        "svix-signature": f"v1,{sig.decode()}",
        "content-type": "application/json",
    }


@pytest.fixture
def config(project: Any) -> Config:
    return tracking_config(project.config)


@pytest.fixture
def client(config: Config, store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(config, store, clock=lambda: NOW), follow_redirects=False) as c:
        yield c


def token(kind: str, delivery_id: int, index: int | None = None, url: str | None = None) -> str:
    return tracking.make_token(SECRET, kind, delivery_id, index, url)


# --- webhooks -----------------------------------------------------------------------------


def test_webhook_applied_once(client: TestClient, store: Store) -> None:
    [did] = seed(store, ["ann@example.org"])
    body = json.dumps(event("email.opened", "spring-msg-0")).encode()
    first = client.post("/webhooks/resend", content=body, headers=sign(body, "msg_a"))
    assert (first.status_code, first.json()) == (200, {"outcome": "applied"})
    before = snapshot(store)
    replay = client.post("/webhooks/resend", content=body, headers=sign(body, "msg_a"))
    assert (replay.status_code, replay.json()) == (200, {"outcome": "duplicate"})
    assert snapshot(store) == before
    assert delivery(store, did)["open_count"] == 1


@pytest.mark.parametrize(
    "case", ["stale", "future", "bad-signature", "other-secret", "missing", "altered-body"]
)
def test_webhook_refused_changes_nothing(client: TestClient, store: Store, case: str) -> None:
    seed(store, ["ann@example.org"])
    body = json.dumps(event("email.bounced", "spring-msg-0", bounce={"type": "Permanent"})).encode()
    headers = {
        "stale": sign(body, "m1", NOW - 301),
        "future": sign(body, "m1", NOW + 301),
        "bad-signature": {**sign(body, "m1"), "svix-signature": "v1,AAAA"},
        "other-secret": sign(body, "m1", secret="whsec_" + base64.b64encode(b"x" * 24).decode()),
        "missing": {"content-type": "application/json"},
        "altered-body": sign(body.replace(b"Permanent", b"Transient"), "m1"),
    }[case]
    before = snapshot(store)
    response = client.post("/webhooks/resend", content=body, headers=headers)
    assert response.status_code == 401
    assert snapshot(store) == before


def test_webhook_without_configured_secret_is_503(project: Any, store: Store) -> None:
    config = dataclasses.replace(project.config, secrets=Secrets(sponsorcast_secret=SECRET))
    body = b"{}"
    with TestClient(create_app(config, store, clock=lambda: NOW)) as c:
        assert c.post("/webhooks/resend", content=body, headers=sign(body, "m")).status_code == 503


def test_webhook_signed_but_not_json_is_400(client: TestClient) -> None:
    body = b"not json"
    assert client.post("/webhooks/resend", content=body, headers=sign(body, "m")).status_code == 400


# --- pixel, clicks ------------------------------------------------------------------------


def test_pixel_records_an_open(client: TestClient, store: Store) -> None:
    [did] = seed(store, ["ann@example.org"])
    response = client.get(f"/o/{token('o', did)}.gif")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert response.content == PIXEL
    assert "no-store" in response.headers["cache-control"]
    client.get(f"/o/{token('o', did)}.gif")
    row = delivery(store, did)
    assert (row["open_count"], row["status"]) == (2, "delivered")
    assert row["opened_at"] is not None and row["delivered_at"] is not None


def test_forged_and_altered_tokens_get_404_and_change_nothing(
    client: TestClient, store: Store
) -> None:
    [did] = seed(store, ["ann@example.org"])
    good = token("o", did)
    altered = good[:3] + ("A" if good[3] != "A" else "B") + good[4:]
    forged = tracking.make_token("not-our-secret", "o", did)
    unknown_delivery = token("o", did + 100)
    before = snapshot(store)
    for path in (
        f"/o/{altered}.gif",
        f"/o/{forged}.gif",
        f"/o/{unknown_delivery}.gif",
        "/o/abc.gif",
        f"/c/{token('o', did)}",
        f"/c/{tracking.make_token('nope', 'c', did, 0)}",
        f"/u/{token('c', did, 0)}",
        f"/u/{forged}",
    ):
        assert client.get(path).status_code == 404, path
    assert client.post(f"/u/{tracking.make_token('nope', 'u', did)}").status_code == 404
    assert snapshot(store) == before


def test_click_redirects_to_the_campaign_link(client: TestClient, store: Store) -> None:
    [did] = seed(store, ["ann@example.org"])
    response = client.get(f"/c/{token('c', did, 0)}")
    assert response.status_code == 302
    assert response.headers["location"] == "https://example.com/demo?src=mail&x=1"
    personal = "https://example.com/p?c=ACME%20%26%20Co"
    response = client.get(f"/c/{token('c', did, 4, personal)}", params={"u": personal})
    assert (response.status_code, response.headers["location"]) == (302, personal)
    row = delivery(store, did)
    assert (row["click_count"], row["status"]) == (2, "delivered")
    clicks = [r["payload"]["url"] for r in table_rows(store, event_t) if r["type"] == "click"]
    assert clicks == ["https://example.com/demo?src=mail&x=1", personal]


def test_click_refuses_a_url_not_in_the_campaign(client: TestClient, store: Store) -> None:
    [did] = seed(store, ["ann@example.org"])
    evil = "https://evil.example/phish"
    before = snapshot(store)
    # a valid static token with a foreign url added; a signed url that no link of the body made;
    # an index past the campaign's links; a personalised token whose url was swapped
    good = "https://example.com/p?c=ACME"
    for path, params in (
        (f"/c/{token('c', did, 0)}", {"u": evil}),
        (f"/c/{token('c', did, 4, evil)}", {"u": evil}),
        (f"/c/{token('c', did, 99)}", {}),
        (f"/c/{token('c', did, 4, good)}", {"u": evil}),
        (f"/c/{token('c', did, 4, good)}", {}),
    ):
        response = client.get(path, params=params)
        assert response.status_code == 404, (path, params)
        assert "location" not in response.headers
    assert snapshot(store) == before


# --- unsubscribe --------------------------------------------------------------------------


def test_unsubscribe_page_has_a_button_posting_to_itself(client: TestClient, store: Store) -> None:
    [did] = seed(store, ["ann@example.org"])
    before = snapshot(store)
    page = client.get(f"/u/{token('u', did)}")
    assert page.status_code == 200
    assert '<form method="post">' in page.text and "<button" in page.text
    assert "<p>Stop emails from Example Events to a***@example.org?</p>" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert snapshot(store) == before  # looking is not unsubscribing


def test_one_click_post_unsubscribes_for_that_sponsor(client: TestClient, store: Store) -> None:
    add_sponsor(store, "acme", "Acme Corp")
    [did] = seed(store, ["ann@example.org"], campaign="acme-news", sponsor="acme")
    seed(store, ["ann@example.org"], campaign="spring", sponsor="default")
    response = client.post(
        f"/u/{token('u', did)}",
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert "Acme Corp" in response.text
    row = delivery(store, did)
    assert row["unsubscribed_at"] is not None
    assert [
        (r["email"], r["sponsor_id"], r["reason"]) for r in table_rows(store, suppression_t)
    ] == [("ann@example.org", "acme", "unsubscribed")]
    # the next campaign of that sponsor skips the address; the other sponsor's does not
    assert suppressed_leads(store, "acme") == ["ann@example.org"]
    assert suppressed_leads(store, "default") == []
    # a second POST is answered 200 and changes nothing
    before = snapshot(store)
    assert client.post(f"/u/{token('u', did)}").status_code == 200
    assert snapshot(store) == before
    assert "You are unsubscribed" in client.get(f"/u/{token('u', did)}").text
    events = [r["type"] for r in table_rows(store, event_t)]
    assert events == ["unsubscribe"]


# --- over real HTTP -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live(config: Config, store: Store) -> Iterator[str]:
    """The app under uvicorn in a thread on a free 127.0.0.1 port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        server_config(
            create_app(config, store), "127.0.0.1", port, header_seconds=0.5, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_over_real_http(live: str, store: Store) -> None:
    [did, other] = seed(store, ["ann@example.org", "bob@example.org"])
    with httpx.Client(base_url=live, follow_redirects=False, timeout=10) as http:
        assert http.get("/healthz").text == "ok\n"
        body = json.dumps(event("email.delivered", "spring-msg-1")).encode()
        webhook = http.post(
            "/webhooks/resend", content=body, headers=sign(body, "msg_live", time.time())
        )
        assert (webhook.status_code, webhook.json()) == (200, {"outcome": "applied"})
        stale = http.post(
            "/webhooks/resend", content=body, headers=sign(body, "msg_old", time.time() - 600)
        )
        assert stale.status_code == 401
        assert http.get(f"/o/{token('o', did)}.gif").content == PIXEL
        click = http.get(f"/c/{token('c', did, 1)}")
        assert (click.status_code, click.headers["location"]) == (302, "https://example.com/agenda")
        assert (
            http.post(f"/u/{token('u', did)}", data={"List-Unsubscribe": "One-Click"}).status_code
            == 200
        )
        assert http.get(f"/o/{token('o', did)[:-1]}0.gif").status_code == 404
    row = delivery(store, did)
    assert (row["open_count"], row["click_count"], row["unsubscribed_at"] is not None) == (
        1,
        1,
        True,
    )
    assert delivery(store, other)["status"] == "delivered"
    assert suppressed_leads(store, "default") == ["ann@example.org"]


def test_links_made_for_an_email_work_against_the_server(
    config: Config, client: TestClient, store: Store
) -> None:
    """The URLs links_for puts in an email are the ones the server accepts."""
    [did] = seed(store, ["ann@example.org"])
    links, headers = tracking.links_for(config, "spring", did, tracking.campaign_links(BODY))
    base = config.tracking.public_url
    assert links.pixel_url is not None
    assert client.get(links.pixel_url.removeprefix(base)).status_code == 200
    click = client.get(links.click("https://example.com/raw").removeprefix(base))
    assert click.headers["location"] == "https://example.com/raw"
    one_click = headers["List-Unsubscribe"].split(",")[0].strip("<>")
    assert (
        client.post(one_click.removeprefix(base), content=b"List-Unsubscribe=One-Click").status_code
        == 200
    )
    assert delivery(store, did)["unsubscribed_at"] is not None


def test_serve_without_any_secret_is_a_config_error(project: Any) -> None:
    result = project.run(
        "serve", "--port", "1", env={"SPONSORCAST_SECRET": "", "RESEND_WEBHOOK_SECRET": ""}
    )
    assert result.exit_code == 3
    assert result.stderr.startswith(
        "Error: Neither SPONSORCAST_SECRET nor RESEND_WEBHOOK_SECRET is set, so there is nothing to serve."
    )


def test_serve_with_public_url_needs_the_tracking_secret(project: Any) -> None:
    toml = project.path / "sponsorcast.toml"
    toml.write_text(toml.read_text() + '\n[tracking]\npublic_url = "https://t.example.com"\n')
    result = project.run(
        "serve", env={"RESEND_WEBHOOK_SECRET": VECTOR_SECRET, "SPONSORCAST_SECRET": ""}
    )
    assert result.exit_code == 3
    assert result.stderr.startswith(
        "Error: SPONSORCAST_SECRET is not set; it signs tracking and unsubscribe links."
    )


def test_serve_warnings(config: Config) -> None:
    from sponsorcast.tracking.server import serve_warnings

    assert serve_warnings(config) == []
    only_webhooks = dataclasses.replace(
        config,
        tracking=dataclasses.replace(config.tracking, public_url=""),
        secrets=Secrets(webhook_secret=VECTOR_SECRET),
    )
    assert serve_warnings(only_webhooks) == [
        "SPONSORCAST_SECRET is not set: open, click and unsubscribe links answer 404."
    ]


def test_serve_warns_about_plain_http_public_url(config: Config) -> None:
    from sponsorcast.tracking.server import serve_warnings

    plain = dataclasses.replace(
        config, tracking=dataclasses.replace(config.tracking, public_url="http://t.example.com")
    )
    assert serve_warnings(plain) == [
        "tracking.public_url is not https://: mail providers ignore one-click unsubscribe without HTTPS; "
        "put serve behind a TLS proxy."
    ]


def test_head_requests_record_nothing(client: TestClient, store: Store) -> None:
    [did] = seed(store, ["ann@example.org"])
    before = snapshot(store)
    assert client.head(f"/o/{token('o', did)}.gif").status_code == 200
    head = client.head(f"/c/{token('c', did, 1)}")
    assert (head.status_code, head.headers["location"]) == (302, "https://example.com/agenda")
    assert client.head(f"/o/{token('o', did + 1)}.gif").status_code == 404
    assert snapshot(store) == before


def test_routes_on_each_backend(config: Config, store_url: str) -> None:
    """The same requests against a SQLite and a PostgreSQL store."""
    from sponsorcast.report.stats import campaign_stats
    from sponsorcast.store import open_store

    store = open_store(store_url)
    try:
        [did, other] = seed(store, ["ann@example.org", "bob@example.org"])
        with TestClient(create_app(config, store, clock=lambda: NOW), follow_redirects=False) as c:
            body = json.dumps(event("email.complained", "spring-msg-1")).encode()
            for _ in range(2):
                assert (
                    c.post(
                        "/webhooks/resend", content=body, headers=sign(body, "msg_pg")
                    ).status_code
                    == 200
                )
            assert c.get(f"/o/{token('o', did)}.gif").status_code == 200
            assert (
                c.get(f"/c/{token('c', did, 2)}").headers["location"] == "https://example.com/raw"
            )
            assert c.post(f"/u/{token('u', did)}").status_code == 200
            assert c.get(f"/c/{token('c', did, 2)[1:]}").status_code == 404
        stats = campaign_stats(store, "spring")
        assert {
            k: stats[k] for k in ("delivered", "opened", "clicked", "complained", "unsubscribed")
        } == {"delivered": 2, "opened": 1, "clicked": 1, "complained": 1, "unsubscribed": 1}
        assert delivery(store, other)["status"] == "complained"
        assert suppressed_leads(store, "default") == ["ann@example.org", "bob@example.org"]
    finally:
        store.dispose()


# --- bounded reads: nothing unauthenticated costs memory or a connection for long ------------


def _raw(url: str, head: bytes, body: bytes = b"", *, close: bool = False) -> bytes:
    """Send raw bytes to the server and read what it answers until it closes (or 10 s)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        with contextlib.suppress(OSError):  # the server may answer and close before it has all
            sock.sendall(head + body)
        if close:
            return b""
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer and b"Content-Length" not in answer.split(b"\r\n\r\n")[0]:
                    break
                head_end = answer.find(b"\r\n\r\n")
                if head_end >= 0:
                    length = int(answer.split(b"content-length: ")[1].split(b"\r\n")[0])
                    if len(answer) >= head_end + 4 + length:
                        break
        except (ConnectionResetError, TimeoutError):
            pass
        return answer


def _post_head(length: int | None, signed: bool, *, chunked: bool = False) -> bytes:
    lines = ["POST /webhooks/resend HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    if signed:
        lines += [
            f"{k}: {v}" for k, v in sign(b"{}", "msg_x", time.time()).items() if k != "content-type"
        ]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _high_water_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.slow
def test_huge_bodies_are_refused_before_they_are_read(project: Any) -> None:
    import os
    import subprocess
    import sys

    port = free_port()
    env = {
        **os.environ,
        "RESEND_WEBHOOK_SECRET": VECTOR_SECRET,
        "SPONSORCAST_SECRET": SECRET,
        "SPONSORCAST_CONFIG": "",
        "SPONSORCAST_DB": "",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "sponsorcast", "serve", "--port", str(port)],
        cwd=project.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
        start = _high_water_mib(proc.pid)
        gib = 1 << 30
        unsigned = _raw(url, _post_head(500 << 20, signed=False), b"x" * 65536)
        assert unsigned.startswith(b"HTTP/1.1 401 ")
        declared = _raw(url, _post_head(gib, signed=True), b"x" * 65536)
        assert declared.startswith(b"HTTP/1.1 413 ")
        results: list[bytes] = []
        threads = [
            threading.Thread(
                target=lambda: results.append(
                    _raw(url, _post_head(gib, signed=True), b"x" * (1 << 20))
                )
            )
            for _ in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [r[:13] for r in results] == [b"HTTP/1.1 413 "] * 3
        chunk = b"x" * 65536
        stream = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(64))  # 4 MiB
        chunked = _raw(url, _post_head(None, signed=True, chunked=True), stream)
        assert chunked.startswith(b"HTTP/1.1 413 ")
        assert _high_water_mib(proc.pid) - start < 30, "the server kept a refused body in memory"
        assert httpx.get(url + "/healthz", timeout=5).text == "ok\n"
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=20)
    assert b"Traceback" not in err and b"ERROR" not in err, err.decode()


def test_slow_headers_are_cut_off(live: str) -> None:
    started = time.monotonic()
    answer = _raw(live, b"POST /webhooks/resend HTTP/1.1\r\nHost: 127.0.0.1\r\nsvix-id: x\r\n")
    assert answer == b""  # closed without an answer
    assert time.monotonic() - started < 5


def test_a_body_that_never_arrives_is_408(live: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "BODY_SECONDS", 0.3)
    answer = _raw(live, _post_head(1000, signed=True), b"{")
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_a_client_hanging_up_mid_body_is_one_log_line(
    live: str, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.INFO)
    _raw(live, _post_head(100_000, signed=True), b"{" * 10, close=True)
    deadline = time.monotonic() + 5
    while not any("hung up" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
        time.sleep(0.05)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert httpx.get(live + "/healthz", timeout=5).text == "ok\n"
