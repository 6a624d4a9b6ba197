"""Tracking: tokens, Links for the send engine, Svix signatures, applying events, import, sync."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from sponsorcast import tracking
from sponsorcast.config import TrackingConfig
from sponsorcast.errors import ConfigError, NotFound, TransportError, WebhookSignatureError
from sponsorcast.store import Store
from sponsorcast.store.tables import (
    delivery_t,
    event_t,
    lead_t,
    suppression_t,
)
from tests.support.tracking import (
    BODY,
    E2E_CAMPAIGN,
    LINKS,
    SECRET,
    T0,
    VECTOR_BODY,
    VECTOR_ID,
    VECTOR_SECRET,
    VECTOR_SIG,
    VECTOR_TS,
    FakeResend,
    add_sponsor,
    delivery,
    event,
    seed,
    snapshot,
    suppressed_leads,
    table_rows,
    tracking_config,
    vector_headers,
    write_jsonl,
)


def test_published_vector_verifies_at_its_time() -> None:
    got = tracking.verify_webhook(
        VECTOR_SECRET, vector_headers(), VECTOR_BODY, now=lambda: VECTOR_TS
    )
    assert got == VECTOR_ID


def test_vector_with_last_character_changed_fails() -> None:
    bad = VECTOR_SIG[:-2] + ("A" if VECTOR_SIG[-2] != "A" else "B") + "="
    with pytest.raises(WebhookSignatureError, match="does not match"):
        tracking.verify_webhook(
            VECTOR_SECRET, vector_headers(bad), VECTOR_BODY, now=lambda: VECTOR_TS
        )
    altered_last = VECTOR_SIG[:-1] + "A"
    with pytest.raises(WebhookSignatureError):
        tracking.verify_webhook(
            VECTOR_SECRET, vector_headers(altered_last), VECTOR_BODY, now=lambda: VECTOR_TS
        )


def test_vector_body_altered_fails_and_one_of_several_signatures_passes() -> None:
    with pytest.raises(WebhookSignatureError):
        tracking.verify_webhook(
            VECTOR_SECRET, vector_headers(), b'{"test": 2432232315}', now=lambda: VECTOR_TS
        )
    several = "v1,bm90IGl0 " + VECTOR_SIG + " v2,whatever"
    assert (
        tracking.verify_webhook(
            VECTOR_SECRET, vector_headers(several), VECTOR_BODY, now=lambda: VECTOR_TS
        )
        == VECTOR_ID
    )


@pytest.mark.parametrize("offset", [301, -301, 3600])
def test_stale_or_future_timestamp_is_refused(offset: int) -> None:
    with pytest.raises(WebhookSignatureError, match="5 minutes"):
        tracking.verify_webhook(
            VECTOR_SECRET, vector_headers(), VECTOR_BODY, now=lambda: VECTOR_TS + offset
        )
    # within tolerance it passes
    tracking.verify_webhook(
        VECTOR_SECRET, vector_headers(), VECTOR_BODY, now=lambda: VECTOR_TS + 299
    )


def test_missing_headers_are_refused() -> None:
    for missing in ("svix-id", "svix-timestamp", "svix-signature"):
        headers = {k: v for k, v in vector_headers().items() if k != missing}
        with pytest.raises(WebhookSignatureError, match="header"):
            tracking.verify_webhook(VECTOR_SECRET, headers, VECTOR_BODY, now=lambda: VECTOR_TS)


def test_tokens_are_deterministic_compact_and_url_safe() -> None:
    a = tracking.make_token(SECRET, "u", 12345)
    assert a == tracking.make_token(SECRET, "u", 12345)
    assert len(a) <= 30 and all(c.isalnum() or c in "-_" for c in a)
    assert tracking.read_token(SECRET, "u", a) == tracking.TokenData(12345, None)
    c = tracking.make_token(SECRET, "c", 7, 3)
    assert tracking.read_token(SECRET, "c", c) == tracking.TokenData(7, 3)


def test_altered_forged_and_cross_route_tokens_are_refused() -> None:
    token = tracking.make_token(SECRET, "o", 42)
    flipped = token[:5] + ("A" if token[5] != "A" else "B") + token[6:]
    other_delivery = token[:-2] + "2b"  # same MAC, body says delivery 43
    assert tracking.read_token(SECRET, "o", flipped) is None
    assert tracking.read_token(SECRET, "o", other_delivery) is None
    assert tracking.read_token("another-secret", "o", token) is None
    assert tracking.read_token(SECRET, "u", token) is None  # an open token does not unsubscribe
    assert tracking.read_token(SECRET, "o", "") is None
    assert tracking.read_token(SECRET, "o", "x" * 200) is None


def test_campaign_links_lists_body_link_targets_in_order_once() -> None:
    assert tracking.campaign_links(BODY) == LINKS


def test_links_for_with_public_url(project: Any) -> None:
    config = tracking_config(project.config, unsubscribe_mailto="leave@example.com")
    links, headers = tracking.links_for(config, "spring", 17, LINKS)
    u = tracking.make_token(SECRET, "u", 17)
    assert links.unsubscribe_url == f"https://t.example.com/u/{u}"
    assert links.pixel_url == f"https://t.example.com/o/{tracking.make_token(SECRET, 'o', 17)}.gif"
    assert headers == {
        "List-Unsubscribe": f"<https://t.example.com/u/{u}>, <mailto:leave@example.com?subject=unsubscribe>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert links.click("https://example.com/agenda") == (
        f"https://t.example.com/c/{tracking.make_token(SECRET, 'c', 17, 1)}"
    )
    assert links.click("https://elsewhere.example/") == "https://elsewhere.example/"
    # the same delivery always gets the same links (a re-sent batch is byte-identical)
    again, again_headers = tracking.links_for(config, "spring", 17, LINKS)
    assert (again.unsubscribe_url, again.pixel_url, again_headers) == (
        links.unsubscribe_url,
        links.pixel_url,
        headers,
    )


def test_links_for_test_sends_lead_nowhere(project: Any, store: Store) -> None:
    seed(store, ["ann@example.org"])
    links, _ = tracking.links_for(tracking_config(project.config), "spring", -3, LINKS)
    token = links.unsubscribe_url.rsplit("/", 1)[1]
    assert tracking.read_token(SECRET, "u", token) == tracking.TokenData(0, None)
    assert tracking.unsubscribe(store, 0) is None


def test_links_for_switches(project: Any) -> None:
    config = tracking_config(project.config, open_tracking=False, click_tracking=False)
    links, headers = tracking.links_for(config, "spring", 3, LINKS)
    assert links.pixel_url is None
    assert links.click("https://example.com/agenda") == "https://example.com/agenda"
    assert set(headers) == {"List-Unsubscribe", "List-Unsubscribe-Post"}


def test_links_for_without_public_url_gives_static_links(project: Any) -> None:
    from sponsorcast.render import StaticLinks

    config = dataclasses.replace(
        project.config, tracking=TrackingConfig(unsubscribe_mailto="out@example.com")
    )
    links, headers = tracking.links_for(config, "spring", 3, LINKS)
    assert isinstance(links, StaticLinks)
    assert links.unsubscribe_url == "mailto:out@example.com?subject=unsubscribe"
    assert headers == {"List-Unsubscribe": "<mailto:out@example.com?subject=unsubscribe>"}


def test_links_for_without_secret_is_a_config_error(project: Any) -> None:
    config = dataclasses.replace(
        project.config, tracking=TrackingConfig(public_url="https://t.example.com")
    )
    with pytest.raises(ConfigError, match="SPONSORCAST_SECRET") as info:
        tracking.links_for(config, "spring", 3, LINKS)
    assert info.value.exit_code == 3


def test_rendered_email_links_resolve_back_to_the_campaign_links(
    store: Store, project: Any
) -> None:
    """Through render: every tracked href redirects to what the untracked email linked to."""
    import re

    from sponsorcast.campaign import CampaignFile
    from sponsorcast.render import StaticLinks, compile_campaign, render_message
    from sponsorcast.store import get_sponsor

    [did] = seed(store, ["ann@example.org"])
    compiled = compile_campaign(
        CampaignFile(id="spring", subject="Hi", body=BODY), get_sponsor(store, "default")
    )
    lead = {
        "email": "ann@example.org",
        "first_name": "Ann",
        "company": "ACME & Co",
        "fields": {},
        "tags": [],
    }
    plain = render_message(compiled, lead, StaticLinks("mailto:x@example.com"))
    links, _ = tracking.links_for(
        tracking_config(project.config), "spring", did, tracking.campaign_links(BODY)
    )
    tracked = render_message(compiled, lead, links)
    hrefs = re.compile(r'<a href="([^"]*)"')
    import html

    plain_urls = [html.unescape(u) for u in hrefs.findall(plain.html)][:-1]  # last: unsubscribe
    tracked_urls = [html.unescape(u) for u in hrefs.findall(tracked.html)][:-1]
    assert len(plain_urls) == 5 and all(
        u.startswith("https://t.example.com/c/") for u in tracked_urls
    )
    from urllib.parse import parse_qs, urlsplit

    resolved = []
    for url in tracked_urls:
        parts = urlsplit(url)
        u = parse_qs(parts.query).get("u", [None])[0]
        found = tracking.resolve_click(store, SECRET, parts.path.rsplit("/", 1)[1], u)
        assert found is not None and found[0] == did
        resolved.append(found[1])
    assert resolved == plain_urls
    assert "https://example.com/p?c=ACME%20%26%20Co" in resolved


def test_personalised_click_refuses_a_url_it_did_not_sign(store: Store) -> None:
    [did] = seed(store, ["ann@example.org"])
    good = "https://example.com/p?c=ACME"
    token = tracking.make_token(SECRET, "c", did, 4, good)
    assert tracking.resolve_click(store, SECRET, token, good) == (did, good)
    assert tracking.resolve_click(store, SECRET, token, "https://evil.example/p?c=ACME") is None
    # signed, but not from that link's template: still refused
    evil = "https://evil.example/"
    assert (
        tracking.resolve_click(store, SECRET, tracking.make_token(SECRET, "c", did, 4, evil), evil)
        is None
    )
    # a static link index beyond the campaign's links
    assert (
        tracking.resolve_click(store, SECRET, tracking.make_token(SECRET, "c", did, 9), None)
        is None
    )


def test_delivered_then_replay_is_applied_once(store: Store) -> None:
    [did] = seed(store, ["ann@example.org"])
    payload = event("email.opened", "spring-msg-0", T0 + timedelta(minutes=5))
    assert tracking.apply_event(store, payload, "msg_1").outcome == "applied"
    before = snapshot(store)
    assert tracking.apply_event(store, payload, "msg_1").outcome == "duplicate"
    assert snapshot(store) == before
    row = delivery(store, did)
    assert (row["status"], row["open_count"], row["opened_at"]) == (
        "delivered",
        1,
        T0 + timedelta(minutes=5),
    )
    # an open arriving first counts as delivered too
    assert row["delivered_at"] == T0 + timedelta(minutes=5)


def test_status_never_moves_backwards(store: Store) -> None:
    [did] = seed(store, ["ann@example.org"])
    tracking.apply_event(
        store, event("email.complained", "spring-msg-0", T0 + timedelta(hours=2)), "e1"
    )
    tracking.apply_event(
        store, event("email.delivered", "spring-msg-0", T0 + timedelta(minutes=1)), "e2"
    )
    tracking.apply_event(store, event("email.sent", "spring-msg-0", T0), "e3")
    row = delivery(store, did)
    assert row["status"] == "complained"
    assert row["delivered_at"] == T0 + timedelta(
        minutes=1
    )  # the earliest evidence, though it came late
    assert row["sent_at"] == T0


def test_clicks_count_events_and_keep_the_first_time(store: Store) -> None:
    [did] = seed(store, ["ann@example.org"])
    for i, minutes in enumerate([30, 10, 20]):
        tracking.apply_event(
            store,
            event(
                "email.clicked",
                "spring-msg-0",
                T0 + timedelta(minutes=minutes),
                click={"link": "https://example.com/agenda"},
            ),
            f"c{i}",
        )
    row = delivery(store, did)
    assert (row["click_count"], row["first_click_at"], row["open_count"]) == (
        3,
        T0 + timedelta(minutes=10),
        0,
    )


def test_hard_bounce_suppresses_for_every_sponsor(store: Store) -> None:
    add_sponsor(store, "acme")
    [did] = seed(store, ["Bob@Example.org"])
    seed(store, ["bob@example.org"], campaign="acme-news", sponsor="acme", status="pending")
    out = tracking.apply_event(
        store,
        event(
            "email.bounced",
            "spring-msg-0",
            bounce={"type": "Permanent", "subType": "General", "message": "no such user"},
        ),
        "b1",
    )
    assert out == tracking.Applied("applied", did)
    row = delivery(store, did)
    assert (row["status"], row["last_error"]) == ("bounced", "no such user")
    assert [
        (r["email"], r["sponsor_id"], r["reason"]) for r in table_rows(store, suppression_t)
    ] == [("bob@example.org", "*", "bounced")]
    assert suppressed_leads(store, "acme") == ["bob@example.org"]
    assert suppressed_leads(store, "default") == ["Bob@Example.org"]


def test_transient_bounce_does_not_suppress(store: Store) -> None:
    [did] = seed(store, ["ann@example.org"])
    tracking.apply_event(
        store,
        event(
            "email.bounced", "spring-msg-0", bounce={"type": "Transient", "subType": "MailboxFull"}
        ),
        "b1",
    )
    assert delivery(store, did)["status"] == "bounced"
    assert table_rows(store, suppression_t) == []


def test_complaint_suppresses_for_every_sponsor(store: Store) -> None:
    [did] = seed(store, ["ann@example.org"])
    tracking.apply_event(store, event("email.complained", "spring-msg-0"), "x1")
    assert delivery(store, did)["status"] == "complained"
    assert [
        (r["email"], r["sponsor_id"], r["reason"]) for r in table_rows(store, suppression_t)
    ] == [("ann@example.org", "*", "complained")]


def test_event_found_by_tags_when_the_message_id_is_not_recorded(store: Store) -> None:
    [did] = seed(store, ["ann@example.org"], status="sending")
    tags = [{"name": "campaign", "value": "spring"}, {"name": "delivery", "value": str(did)}]
    out = tracking.apply_event(store, event("email.delivered", "unknown-id", tags=tags), "d1")
    assert out == tracking.Applied("applied", did)
    row = delivery(store, did)
    assert (row["status"], row["sent_at"], row["delivered_at"]) == ("delivered", T0, T0)
    assert row["provider_message_id"] == "unknown-id"  # kept: later events and sync find it by id


def test_tags_of_another_campaign_do_not_match(store: Store) -> None:
    [did] = seed(store, ["ann@example.org"], status="sending")
    before = table_rows(store, delivery_t)
    tags = {"campaign": "other", "delivery": str(did)}
    assert (
        tracking.apply_event(store, event("email.delivered", "x", tags=tags), "d1").outcome
        == "unmatched"
    )
    assert table_rows(store, delivery_t) == before
    assert [r["type"] for r in table_rows(store, event_t)] == [
        "email.delivered"
    ]  # kept for the record


def test_other_event_types_are_ignored(store: Store) -> None:
    seed(store, ["ann@example.org"])
    before = snapshot(store)
    assert (
        tracking.apply_event(store, {"type": "contact.created", "data": {}}, "z").outcome
        == "ignored"
    )
    assert snapshot(store) == before


def test_events_import_applies_once(project: Any, store: Store) -> None:
    [a, b] = seed(store, ["ann@example.org", "bob@example.org"])
    write_jsonl(
        project.path / "events.jsonl",
        [
            {"svix-id": "msg_1", "payload": event("email.delivered", "spring-msg-0")},
            event("email.opened", "spring-msg-0"),
            {
                "svix-id": "msg_3",
                "payload": event("email.bounced", "spring-msg-1", bounce={"type": "Permanent"}),
            },
            {"svix-id": "msg_4", "payload": event("email.delivered", "nobody")},
            {"type": "domain.updated", "data": {}},
            "",
        ],
    )
    result = project.run("events", "import", "events.jsonl")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "Applied 3 events; 0 already applied, 1 for no known delivery, 1 of other types.\n"
    )
    again = project.run("events", "import", "events.jsonl")
    assert again.stdout == (
        "Applied 0 events; 4 already applied, 0 for no known delivery, 1 of other types.\n"
    )
    assert (delivery(store, a)["status"], delivery(store, a)["open_count"]) == ("delivered", 1)
    assert delivery(store, b)["status"] == "bounced"


@pytest.mark.parametrize(
    "line, reason",
    [
        ("{not json", "not valid JSON (Expecting property name enclosed in double quotes)"),
        ('["a"]', "not a JSON object"),
        (
            '{"payload": {"type": "email.sent", "data": {}}}',
            "an object with 'payload' needs a 'svix-id' string",
        ),
        ('{"type": "email.sent"}', "the payload has no 'data' object"),
        ('{"data": {}}', "the payload has no 'type'"),
    ],
)
def test_events_import_bad_line_changes_nothing(
    project: Any, store: Store, line: str, reason: str
) -> None:
    seed(store, ["ann@example.org"])
    path = write_jsonl(
        project.path / "bad.jsonl", [event("email.delivered", "spring-msg-0"), "", line]
    )
    before = snapshot(store)
    result = project.run("events", "import", str(path))
    assert result.exit_code == 2
    assert result.stderr == f"Error: {path}:3: {reason}; nothing was applied.\n"
    assert snapshot(store) == before


def test_events_import_missing_file(project: Any) -> None:
    result = project.run("events", "import", "nope.jsonl")
    assert result.exit_code == 2
    assert "nope.jsonl: no such file." in result.stderr


def test_sync_updates_deliveries_not_yet_final(store: Store) -> None:
    ids = seed(store, [f"p{i}@example.org" for i in range(6)])
    with store.write() as conn:  # p5 is already final: not asked about
        conn.execute(delivery_t.update().where(delivery_t.c.id == ids[5]).values(status="bounced"))
    fake = FakeResend(
        {
            "spring-msg-0": "delivered",
            "spring-msg-1": "opened",
            "spring-msg-2": "bounced",
            "spring-msg-3": "queued",
            "spring-msg-4": TransportError("boom"),
        }
    )
    result = asyncio.run(tracking.sync_deliveries(store, fake, "spring"))
    assert sorted(fake.asked) == [f"spring-msg-{i}" for i in range(5)]
    assert (result.checked, result.updated, result.unchanged, result.missing, result.errors) == (
        5,
        3,
        1,
        0,
        ["boom"],
    )
    statuses = [delivery(store, i)["status"] for i in ids]
    assert statuses == ["delivered", "delivered", "bounced", "sent", "sent", "bounced"]
    assert delivery(store, ids[1])["open_count"] == 1
    # asked again: the same states are not applied twice
    again = asyncio.run(tracking.sync_deliveries(store, FakeResend({"spring-msg-3": "delivered"})))
    assert (again.checked, again.updated, again.missing) == (2, 1, 1)
    assert delivery(store, ids[1])["open_count"] == 1


def test_sync_unknown_campaign(store: Store) -> None:
    with pytest.raises(NotFound, match="Unknown campaign 'nope'"):
        asyncio.run(tracking.sync_deliveries(store, FakeResend({}), "nope"))


def test_sync_cli_refuses_outbox_transport(project: Any) -> None:
    result = project.run("sync")
    assert result.exit_code == 3
    assert 'transport.kind is "outbox"' in result.stderr


def test_send_sync_unsubscribe_end_to_end(project: Any, fake_resend: Any) -> None:
    import re
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from sponsorcast.config import load_config
    from sponsorcast.tracking.server import create_app

    (project.path / "sponsorcast.toml").write_text(
        f"""\
[store]
url = "sqlite:///sponsorcast.db"

[transport]
kind = "resend"

[resend]
base_url = "{fake_resend.url}"
rate_limit = 100

[tracking]
public_url = "https://t.example.com"

[sponsors.default]
name = "Example Events"
from = "Example Events <hello@example.com>"
postal_address = "1 Example Street, Springfield"
""",
        encoding="utf-8",
    )
    (project.path / "spring.md").write_text(E2E_CAMPAIGN, encoding="utf-8")
    (project.path / "summer.md").write_text(
        E2E_CAMPAIGN.replace("Spring", "Summer"), encoding="utf-8"
    )
    env = {"RESEND_API_KEY": fake_resend.api_key, "SPONSORCAST_SECRET": SECRET}
    fake_resend.configure(keep_bodies=True)
    store = project.store()
    with store.write() as conn:
        for email in ("ann@example.org", "bob@example.org", "cat@example.org"):
            conn.execute(
                lead_t.insert().values(
                    sponsor_id="default",
                    email=email,
                    first_name=email[:3],
                    follow_up_status="new",
                    tags="",
                )
            )
    assert project.run("suppress", "add", "cat@example.org", env=env).exit_code == 0

    sent = project.run("send", "spring.md", "--yes", env=env)
    assert sent.exit_code == 0, sent.stderr
    accepted = {a.to[0]: a for a in fake_resend.accepted}
    assert sorted(accepted) == ["ann@example.org", "bob@example.org"]  # cat is suppressed
    ann = accepted["ann@example.org"]
    unsubscribe = re.fullmatch(
        r"<(https://t\.example\.com/u/[A-Za-z0-9_-]+)>", ann.headers["List-Unsubscribe"]
    )
    assert unsubscribe is not None, ann.headers
    assert ann.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert ann.html is not None and "https://t.example.com/o/" in ann.html
    hrefs = re.findall(r'href="(https://t\.example\.com/c/[^"]+)"', ann.html)
    assert len(hrefs) == 2, ann.html

    app = create_app(load_config(project.path / "sponsorcast.toml", env=env), store)
    with TestClient(app, follow_redirects=False) as client:
        import html as html_lib

        demo = client.get(html_lib.unescape(hrefs[0]).removeprefix("https://t.example.com"))
        assert demo.headers["location"] == "https://example.com/demo"
        mine = client.get(html_lib.unescape(hrefs[1]).removeprefix("https://t.example.com"))
        assert mine.headers["location"] == "https://example.com/u?e=ann%40example.org"
        assert (
            client.post(
                unsubscribe.group(1).removeprefix("https://t.example.com"),
                content=b"List-Unsubscribe=One-Click",
            ).status_code
            == 200
        )

    fake_resend.set_last_event(accepted["bob@example.org"].id, "delivered")
    synced = project.run("sync", "spring", env=env)
    assert synced.exit_code == 0, synced.stderr
    # ann's clicks already made her delivered: only bob was not final
    assert (
        synced.stdout
        == "Checked 1 deliveries: 1 updated, 0 unchanged, 0 unknown to Resend, 0 errors.\n"
    )
    with store.read() as conn:
        rows = {
            r.recipient: r
            for r in conn.execute(sa.select(delivery_t).where(delivery_t.c.campaign_id == "spring"))
        }
    assert (rows["ann@example.org"].status, rows["ann@example.org"].click_count) == ("delivered", 2)
    assert rows["ann@example.org"].unsubscribed_at is not None
    assert rows["bob@example.org"].status == "delivered"
    assert rows["cat@example.org"].status == "suppressed"

    fake_resend.reset()
    again = project.run("send", "summer.md", "--yes", env=env)
    assert again.exit_code == 0, again.stderr
    assert [a.to[0] for a in fake_resend.accepted] == [
        "bob@example.org"
    ]  # ann unsubscribed, cat suppressed
    store.dispose()


def test_concurrent_events_and_replays_apply_once_on_each_backend(store_url: str) -> None:
    """Webhook retries racing each other (and other events for the same delivery) on SQLite
    and PostgreSQL: every event id applied once, counters exact, status never backwards."""
    from concurrent.futures import ThreadPoolExecutor

    from sponsorcast.report.stats import campaign_stats
    from sponsorcast.store import open_store

    store = open_store(store_url)
    try:
        [did, other] = seed(store, ["ann@example.org", "bob@example.org"])
        jobs = [
            (event("email.opened", "spring-msg-0", T0 + timedelta(minutes=i)), f"open-{i}")
            for i in range(10)
        ]
        jobs += [
            (event("email.clicked", "spring-msg-0", T0 + timedelta(minutes=i)), f"click-{i}")
            for i in range(5)
        ]
        jobs += [
            (event("email.complained", "spring-msg-0", T0 + timedelta(hours=1)), "complaint"),
            (event("email.delivered", "spring-msg-0", T0 + timedelta(seconds=5)), "delivered"),
            (event("email.bounced", "spring-msg-1", bounce={"type": "Permanent"}), "bounce"),
        ]
        work = jobs * 3  # every webhook delivered three times
        with ThreadPoolExecutor(max_workers=8) as pool:
            outcomes = list(
                pool.map(lambda job: tracking.apply_event(store, job[0], job[1]).outcome, work)
            )
        assert outcomes.count("applied") == len(jobs)
        assert outcomes.count("duplicate") == 2 * len(jobs)
        for _ in range(3):
            tracking.unsubscribe(store, did)
        row = delivery(store, did)
        assert (row["status"], row["open_count"], row["click_count"]) == ("complained", 10, 5)
        assert (row["opened_at"], row["first_click_at"], row["delivered_at"]) == (T0, T0, T0)
        assert delivery(store, other)["status"] == "bounced"
        assert sorted(
            (r["email"], r["sponsor_id"], r["reason"]) for r in table_rows(store, suppression_t)
        ) == [
            ("ann@example.org", "*", "complained"),
            ("ann@example.org", "default", "unsubscribed"),
            ("bob@example.org", "*", "bounced"),
        ]
        assert len(table_rows(store, event_t)) == len(jobs) + 1
        stats = campaign_stats(store, "spring")
        assert {
            k: stats[k]
            for k in (
                "sent",
                "delivered",
                "opened",
                "clicked",
                "complained",
                "bounced",
                "unsubscribed",
                "open_rate",
            )
        } == {
            "sent": 2,
            "delivered": 1,
            "opened": 1,
            "clicked": 1,
            "complained": 1,
            "bounced": 1,
            "unsubscribed": 1,
            "open_rate": 50.0,
        }
        assert suppressed_leads(store, "default") == ["ann@example.org", "bob@example.org"]
    finally:
        store.dispose()


def test_sync_cli_unknown_campaign_changes_nothing(project: Any, fake_resend: Any) -> None:
    toml = project.path / "sponsorcast.toml"
    toml.write_text(
        toml.read_text().replace('kind = "outbox"', 'kind = "resend"')
        + f'\n[resend]\nbase_url = "{fake_resend.url}"\n'
    )
    store = project.store()
    seed(store, ["ann@example.org"])
    before = snapshot(store)
    result = project.run("sync", "nope", env={"RESEND_API_KEY": fake_resend.api_key})
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: Unknown campaign 'nope'.")
    assert snapshot(store) == before
    assert fake_resend.counters["requests"] == 0  # refused before asking Resend anything
    store.dispose()
