"""A/B tests (``variants:`` and ``test:``): the test group's split, the pick from the ledger
after ``pick_after`` (or by hand), the winner sent to the held recipients once each, and the
refusals; on SQLite and PostgreSQL, with an injected clock."""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import sqlalchemy as sa

from sponsorcast.schedule import cron as cron_module
from sponsorcast.send import claims as claims_module
from sponsorcast.send import pick as pick_module
from sponsorcast.send import run as run_module
from sponsorcast.send.pick import pick
from sponsorcast.store import Store
from sponsorcast.store.tables import campaign_t, delivery_t, event_t, lead_t
from tests.support.clock import Clock
from tests.support.pg import both_store_backends  # noqa: F401 - each test on SQLite and PostgreSQL
from tests.support.project import Project
from tests.support.sending import add_leads
from tests.support.tracking import event, write_jsonl

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
AB = """---
subject: Hello {{{{ first_name }}}}
variants:
{variants}test:
  share: {share}
  pick_after: 4h
{extra}---
Our launch{{% if variant == "b" %}}, last day{{% endif %}}.
"""
TWO = (
    "  - name: a\n  - name: b\n    subject: Last day, {{ first_name }}\n    from: Jane at Example\n"
)
THREE = TWO + "  - name: c\n    preheader: Three is a crowd\n"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(T0).install(monkeypatch, claims_module, cron_module, pick_module, run_module)


def _write(project: Project, text: str, name: str = "ab.md") -> None:
    (project.path / name).write_text(text, encoding="utf-8")


def _variants(store: Store, campaign: str = "ab") -> dict[str, tuple[str, str | None]]:
    with store.read() as conn:
        rows = conn.execute(
            sa.select(delivery_t.c.recipient, delivery_t.c.status, delivery_t.c.variant).where(
                delivery_t.c.campaign_id == campaign
            )
        ).all()
    return {r.recipient.split("@")[0]: (r.status, r.variant) for r in rows}


def _outbox(project: Project, campaign: str = "ab") -> Counter[tuple[str, str]]:
    """(lead, subject) of every email written, counted."""
    found: Counter[tuple[str, str]] = Counter()
    for path in (project.path / "outbox" / campaign).glob("*.eml"):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        found[(path.name.split("-", 1)[1].split("@")[0], str(message["Subject"]))] += 1
    return found


def _expected_split(store: Store, campaign: str, share: float, names: list[str]) -> dict[str, str]:
    """The documented rule, worked here: leads ordered by sha256("campaign:lead id"), the first
    share of them (rounded half up) dealt to the variants in turn."""
    with store.read() as conn:
        leads = conn.execute(sa.select(lead_t.c.id, lead_t.c.email)).all()
    ranked = sorted(leads, key=lambda r: hashlib.sha256(f"{campaign}:{r.id}".encode()).digest())
    size = math.floor(share * len(leads) + 0.5)
    return {r.email.split("@")[0]: names[i % len(names)] for i, r in enumerate(ranked[:size])}


def _clicks(project: Project, store: Store, leads: list[str], campaign: str = "ab") -> None:
    """Clicks of these leads' emails, through ``events import``."""
    with store.read() as conn:
        ids = dict(
            conn.execute(
                sa.select(delivery_t.c.recipient, delivery_t.c.provider_message_id).where(
                    delivery_t.c.campaign_id == campaign
                )
            ).all()
        )
    lines = [
        event(
            "email.clicked",
            ids[f"{lead}@example.com"],
            T0 + timedelta(hours=1),
            to=[f"{lead}@example.com"],
            click={"link": "https://example.com/launch"},
        )
        for lead in leads
    ]
    write_jsonl(project.path / "events.jsonl", lines)
    result = project.run("events", "import", "events.jsonl")
    assert result.exit_code == 0, result.stderr


def _p_value(x1: int, n1: int, x2: int, n2: int) -> float:
    """The pooled two-proportion z-test, as a statistics text writes it."""
    pooled = (x1 + x2) / (n1 + n2)
    z = (x1 / n1 - x2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return math.erfc(abs(z) / math.sqrt(2))


def test_two_variants_split_pick_the_winner_after_pick_after_and_send_it_once(
    project: Project, store: Store, clock: Clock
) -> None:
    add_leads(store, 100)
    _write(project, AB.format(variants=TWO, share="40%", extra=""))
    dry = project.run("send", "ab.md", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    cells = [line.split("│") for line in dry.stdout.splitlines() if line.startswith("│")]
    fields = {c[1].strip(): c[2].strip() for c in cells}
    assert (fields["test: variant a"], fields["test: variant b"]) == ("20", "20")
    assert fields["held for the winner (by clicks, 4h after the test)"] == "60"

    sent = project.run("send", "ab.md", "--yes")
    assert sent.exit_code == 0, sent.stderr
    assert sent.stdout.splitlines()[-1] == (
        "Testing: 60 recipients held for the winner, picked by clicks from 2026-12-01 13:00 UTC "
        "by the next run-due, or now with 'sponsorcast campaigns pick ab'."
    )
    want = _expected_split(store, "ab", 0.4, ["a", "b"])
    rows = _variants(store)
    assert {lead: v for lead, (s, v) in rows.items() if v is not None} == want
    assert Counter(s for s, _ in rows.values()) == Counter({"sent": 40, "held": 60})
    emails = _outbox(project)
    assert sum(emails.values()) == 40
    for (lead, subject), n in emails.items():
        number = lead.removeprefix("lead")
        assert n == 1
        assert subject == (f"Last day, L{number}" if want[lead] == "b" else f"Hello L{number}")
    first_b = min(lead for lead, v in want.items() if v == "b")
    b_mail = next((project.path / "outbox" / "ab").glob(f"*-{first_b}@example.com.eml"))
    message = message_from_bytes(b_mail.read_bytes(), policy=policy.default)
    assert str(message["From"]) == "Jane at Example <hello@example.com>"
    body = message.get_body(("plain",))
    assert body is not None and "Our launch, last day." in body.get_content()

    a_leads = sorted(lead for lead, v in want.items() if v == "a")
    b_leads = sorted(lead for lead, v in want.items() if v == "b")
    _clicks(project, store, a_leads[:2] + b_leads[:10])
    clock.now = T0 + timedelta(hours=3)  # the test's last email went at T0: pick from 13:00
    assert project.run("run-due").exit_code == 0
    assert Counter(s for s, _ in _variants(store).values())["held"] == 60

    clock.now = T0 + timedelta(hours=4, minutes=1)
    picked = project.run("run-due")
    assert picked.exit_code == 0, picked.stderr
    p = _p_value(10, 20, 2, 20)
    assert (
        f"picked variant b (meaningful at 95%; clicks: a 10.0% (2 of 20), b 50.0% (10 of 20); p = {p:.3g})"
        in picked.stderr + picked.stdout
    )
    with store.read() as conn:
        payload = conn.execute(
            sa.select(event_t.c.payload).where(event_t.c.type == "test.picked")
        ).scalar_one()
    assert payload == {
        "winner": "b",
        "how": "test",
        "by": "clicks",
        "p_value": round(p, 6),
        "meaningful": True,
        "variants": [
            {"variant": "a", "recipients": 20, "clicks": 2, "rate": 0.1},
            {"variant": "b", "recipients": 20, "clicks": 10, "rate": 0.5},
        ],
    }
    rows = _variants(store)
    assert Counter(v for _, v in rows.values()) == Counter({"a": 20, "b": 80})
    assert {s for s, _ in rows.values()} == {"sent", "delivered"}  # the clicked: delivered
    emails = _outbox(project)
    assert sum(emails.values()) == 100 and max(emails.values()) == 1  # everyone once
    stats = json.loads(project.run("stats", "ab", "--json").stdout)
    assert stats["status"] == "sent"
    assert [(v["variant"], v["sent"], v["clicked"]) for v in stats["variants"]] == [
        ("a", 20, 2),
        ("b", 80, 10),
    ]
    assert (stats["test"]["state"], stats["test"]["winner"]) == ("picked", "b")
    shown = project.run("stats", "ab")
    assert shown.exit_code == 0, shown.stderr
    assert "A/B test: picked b (test)" in shown.stdout
    table = {
        cells[1].strip(): cells[2].strip()
        for cells in (line.split("│") for line in shown.stdout.splitlines() if "│" in line)
    }
    assert (table["a"], table["b"]) == ("20", "80")
    made = project.run("report", "ab", "--html", "ab.html")
    assert made.exit_code == 0, made.stderr
    page = (project.path / "ab.html").read_text(encoding="utf-8")
    section = page.split('<section id="abtest">')[1].split("</section>")[0]
    cells = [
        [c.rsplit(">", 1)[1] for c in row.split("</td>")[:-1]]
        for row in section.split("<tbody>")[1].split("</tr>")[:-1]
    ]
    assert cells == [
        ["a", "20", "0", "2", "0.0 %", "10.0 %"],
        ["b", "80", "0", "10", "0.0 %", "12.5 %"],
    ]
    assert "split over a, b (by clicks); picked b at 2026-12-01 13:01 UTC (p = " in section
    again = project.run("campaigns", "pick", "ab")
    assert again.exit_code == 2
    assert "already picked variant b" in again.stderr


def test_overlapping_picks_decide_once(project: Project, store: Store, clock: Clock) -> None:
    add_leads(store, 60)
    _write(project, AB.format(variants=TWO, share="50%", extra=""))
    assert project.run("send", "ab.md", "--yes").exit_code == 0
    clock.now = T0 + timedelta(hours=5)
    results: list[object] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def go() -> None:
        try:
            start.wait()
            results.append(pick(store, "ab", 10, now=clock.now, due_only=True))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(r is not None for r in results) == 1
    with store.read() as conn:
        assert (
            conn.execute(
                sa.select(sa.func.count()).where(event_t.c.type == "test.picked")
            ).scalar_one()
            == 1
        )
    assert project.run("run-due").exit_code == 0
    emails = _outbox(project)
    assert sum(emails.values()) == 60 and max(emails.values()) == 1


def test_three_variants_picked_by_hand_before_pick_after(
    project: Project, store: Store, clock: Clock
) -> None:
    add_leads(store, 100)
    _write(project, AB.format(variants=THREE, share="30%", extra=""))
    assert project.run("send", "ab.md", "--yes").exit_code == 0
    rows = _variants(store)
    assert Counter(v for _, v in rows.values()) == Counter({"a": 10, "b": 10, "c": 10, None: 70})
    assert {lead: v for lead, (_, v) in rows.items() if v} == _expected_split(
        store, "ab", 0.3, ["a", "b", "c"]
    )
    shown = project.run("campaigns", "show", "ab")
    cells = [line.split("│")[2].strip() for line in shown.stdout.splitlines() if "│" in line]
    start = next(i for i, c in enumerate(cells) if c.startswith("30% split"))
    assert " ".join(cells[start : start + 2]) == (
        "30% split over a, b, c (by clicks); testing until 2026-12-01 13:00 UTC, 70 held"
    )
    test = json.loads(project.run("campaigns", "show", "ab", "--json").stdout)["test"]
    assert (test["state"], test["held"], test["pick_due"]) == (
        "testing",
        70,
        "2026-12-01T13:00:00+00:00",
    )
    clock.now = T0 + timedelta(hours=1)  # well before pick_after
    bad = project.run("campaigns", "pick", "ab", "--variant", "d")
    assert bad.exit_code == 2
    assert "has no variant 'd' (its variants: a, b, c); nothing was picked" in bad.stderr
    r = project.run("campaigns", "pick", "ab", "--variant", "c")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "Sent 70 emails of variant c; the campaign is sent."
    assert Counter(v for _, v in _variants(store).values()) == Counter({"a": 10, "b": 10, "c": 80})
    with store.read() as conn:
        how = conn.execute(sa.select(event_t.c.payload).where(event_t.c.type == "test.picked"))
        assert how.scalar_one()["how"] == "hand"
    assert sum(_outbox(project).values()) == 100
    listed = project.run("deliveries", "ab", "--csv").stdout.splitlines()
    assert listed[0].endswith(",variant")
    assert Counter(line.rsplit(",", 1)[1] for line in listed[1:]) == Counter(
        {"a": 10, "b": 10, "c": 80}
    )
    table = project.run("deliveries", "ab").stdout
    header = next(line for line in table.splitlines() if "recipient" in line)
    assert [c.strip() for c in header.strip("┃").split("┃")][:4] == [
        "recipient",
        "status",
        "attempts",
        "variant",
    ]


def test_an_inconclusive_test_sends_the_fallback(
    project: Project, store: Store, clock: Clock
) -> None:
    add_leads(store, 100)
    _write(project, AB.format(variants=TWO, share="50%", extra="  fallback: b\n"))
    assert project.run("send", "ab.md", "--yes").exit_code == 0
    want = _expected_split(store, "ab", 0.5, ["a", "b"])
    a_leads = sorted(lead for lead, v in want.items() if v == "a")
    b_leads = sorted(lead for lead, v in want.items() if v == "b")
    _clicks(project, store, a_leads[:3] + b_leads[:2])  # 12 % against 8 %: chance
    clock.now = T0 + timedelta(hours=4, minutes=1)
    assert project.run("run-due").exit_code == 0
    with store.read() as conn:
        payload = conn.execute(
            sa.select(event_t.c.payload).where(event_t.c.type == "test.picked")
        ).scalar_one()
        winner = conn.execute(sa.select(campaign_t.c.winner)).scalar_one()
    assert (payload["how"], payload["meaningful"], winner) == ("fallback", False, "b")
    assert payload["p_value"] == round(_p_value(3, 25, 2, 25), 6)
    assert Counter(v for _, v in _variants(store).values()) == Counter({"a": 25, "b": 75})


def test_render_previews_a_variant_and_checks_every_one(project: Project, store: Store) -> None:
    add_leads(store, 3)
    broken = TWO + "  - name: c\n    body: Hi {{ nickname }}\n"
    _write(project, AB.format(variants=broken, share="30%", extra=""))
    b = project.run("render", "ab.md", "--variant", "b", "--to", "lead1@example.com")
    assert b.exit_code == 0, b.stderr
    assert "Last day, L1" in b.stdout and "Jane at Example" in b.stdout
    check = project.run("render", "ab.md", "--check")
    assert check.exit_code == 1
    assert "variant 'c': " in check.stdout and "nickname" in check.stdout
    unknown = project.run("render", "ab.md", "--variant", "z")
    assert unknown.exit_code == 2
    assert "has no variant 'z' (its variants: a, b, c)" in unknown.stderr


@pytest.mark.parametrize(
    ("variants", "share", "message"),
    [
        ("  - name: a\n  - name: b\n    colour: red\n", "20%", "variant 2: unknown key 'colour'"),
        ("  - name: a\n  - subject: Hi\n", "20%", "variant 2 has no name"),
        (TWO, "120%", "share must be a percentage of the audience above 0 % and at most 100 %"),
        ("  - name: a\n", "20%", "variants must be a list of 2 to 10 variants."),
        ("  - name: a\n  - name: a\n", "20%", "two variants are named 'a'"),
        (
            TWO + "  - name: c\n    body: Hi {{ nickname }}\n",
            "20%",
            "variant 'c': undefined variable 'nickname'",
        ),
        (TWO + "  - name: c\n    from: Eve <eve@evil.example>\n", "20%", "display name only"),
    ],
)
def test_bad_tests_are_refused_and_nothing_is_stored(
    project: Project, store: Store, variants: str, share: str, message: str
) -> None:
    add_leads(store, 5)
    _write(project, AB.format(variants=variants, share=share, extra=""))
    r = project.run("send", "ab.md", "--yes")
    assert r.exit_code == 2, r.stdout
    assert message in r.stderr
    with store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(campaign_t)).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(delivery_t)).scalar_one() == 0
    assert not Path(project.path / "outbox").exists() or not any(
        (project.path / "outbox").rglob("*.eml")
    )


def test_a_test_send_shows_every_variant(project: Project, store: Store) -> None:
    add_leads(store, 3)
    _write(project, AB.format(variants=TWO, share="40%", extra=""))
    r = project.run("send", "ab.md", "--test", "me@example.org")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == (
        "Test emails of variants a, b written to the outbox to 1 address (me@example.org), "
        "rendered for lead0@example.com. Nothing was recorded.\n"
    )
    files = sorted((project.path / "outbox" / "ab-test").iterdir())
    messages = [message_from_bytes(f.read_bytes(), policy=policy.default) for f in files]
    assert sorted((str(m["Subject"]), str(m["From"])) for m in messages) == [
        ("[TEST a] Hello L0", "Example Events <hello@example.com>"),
        ("[TEST b] Last day, L0", "Jane at Example <hello@example.com>"),
    ]
    with store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(campaign_t)).scalar_one() == 0


def test_a_test_of_the_whole_audience_holds_nobody_and_picking_only_decides(
    project: Project, store: Store, clock: Clock
) -> None:
    add_leads(store, 10)
    _write(project, AB.format(variants=TWO, share="100%", extra=""))
    assert project.run("send", "ab.md", "--yes").exit_code == 0
    with store.read() as conn:
        assert conn.execute(sa.select(campaign_t.c.status)).scalar_one() == "sent"
    assert Counter(v for _, v in _variants(store).values()) == Counter({"a": 5, "b": 5})
    r = project.run("campaigns", "pick", "ab")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines() == [
        "Campaign 'ab' picked variant a (not meaningful at 95%, so the fallback; clicks: a 0.0% "
        "(0 of 5), b 0.0% (0 of 5); p = 1).",
        "Sent 0 emails of variant a; the campaign is sent.",
    ]
    assert sum(_outbox(project).values()) == 10


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("rolling: true\n", "an A/B test cannot also be a rolling campaign."),
        ("follows: spring\nafter: 1d\n", "an A/B test cannot also be a follow-up."),
        ("", "an A/B test needs both 'variants:' (a list) and 'test:' (share, pick_after)."),
    ],
)
def test_a_test_that_cannot_split_is_refused(
    project: Project, store: Store, key: str, message: str
) -> None:
    add_leads(store, 5)
    text = AB.format(variants=TWO, share="20%", extra="").replace(
        "---\nsubject", f"---\n{key}subject", 1
    )
    if not key:  # variants without a test
        text = text.split("test:\n")[0] + "---\nBody.\n"
    _write(project, text)
    r = project.run("send", "ab.md", "--yes")
    assert r.exit_code == 2
    assert message in r.stderr
    with store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(campaign_t)).scalar_one() == 0


def test_by_opens_counts_people_not_machines_and_a_rerun_keeps_the_split(
    project: Project, store: Store, clock: Clock
) -> None:
    from sponsorcast.tracking import record_open

    add_leads(store, 40)
    _write(project, AB.format(variants=TWO, share="100%", extra="  by: opens\n"))
    assert project.run("send", "ab.md", "--yes").exit_code == 0
    split = _variants(store)
    assert project.run("send", "ab.md", "--yes").exit_code == 0  # a rerun changes nothing
    assert _variants(store) == split
    with store.read() as conn:
        ids = dict(
            conn.execute(
                sa.select(delivery_t.c.recipient, delivery_t.c.id).where(
                    delivery_t.c.campaign_id == "ab"
                )
            ).all()
        )
    a = sorted(lead for lead, (_, v) in split.items() if v == "a")
    b = sorted(lead for lead, (_, v) in split.items() if v == "b")
    later = T0 + timedelta(hours=1)
    person = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15"
    for lead in a[:12]:  # people reading a
        assert record_open(store, ids[f"{lead}@example.com"], now=later, user_agent=person)
    for lead in b[:2]:
        assert record_open(store, ids[f"{lead}@example.com"], now=later, user_agent=person)
    for lead in b[2:18]:  # a scanner fetching b's pixel: not evidence
        assert record_open(store, ids[f"{lead}@example.com"], now=later, user_agent="Mozilla/5.0")
    r = project.run("campaigns", "pick", "ab")
    assert r.exit_code == 0, r.stderr
    p = _p_value(12, 20, 2, 20)
    assert r.stdout.splitlines()[0] == (
        f"Campaign 'ab' picked variant a (meaningful at 95%; opens: a 60.0% (12 of 20), "
        f"b 10.0% (2 of 20); p = {p:.3g})."
    )


def test_a_scheduled_test_starts_picks_and_finishes_from_run_due_alone(
    project: Project, store: Store, clock: Clock
) -> None:
    add_leads(store, 50)
    _write(project, AB.format(variants=TWO, share="20%", extra=""))
    scheduled = project.run(
        "schedule",
        "ab.md",
        "--at",
        "2026-12-01 09:00",
        env={"SPONSORCAST_NOW": "2026-11-30T09:00:00Z"},
    )
    assert scheduled.exit_code == 0, scheduled.stderr
    assert project.run("run-due").exit_code == 0  # the clock is at 09:00: it starts
    assert Counter(s for s, _ in _variants(store).values()) == Counter({"sent": 10, "held": 40})
    clock.now = T0 + timedelta(hours=4, minutes=1)
    picked = project.run("run-due")
    assert picked.exit_code == 0, picked.stderr
    assert "picked variant a (not meaningful at 95%, so the fallback" in picked.stderr
    assert Counter(v for _, v in _variants(store).values()) == Counter({"a": 45, "b": 5})
    emails = _outbox(project)
    assert sum(emails.values()) == 50 and max(emails.values()) == 1
    with store.read() as conn:
        assert conn.execute(sa.select(campaign_t.c.status)).scalar_one() == "sent"


def test_a_pick_by_hand_without_the_provider_key_picks_nothing(
    project: Project, store: Store
) -> None:
    add_leads(store, 10)
    _write(project, AB.format(variants=TWO, share="20%", extra=""))
    assert project.run("send", "ab.md", "--yes").exit_code == 0
    toml = project.path / "sponsorcast.toml"
    text = toml.read_text(encoding="utf-8")
    toml.write_text(text.replace('kind = "outbox"', 'kind = "resend"'), encoding="utf-8")
    assert 'kind = "resend"' in toml.read_text(encoding="utf-8")
    r = project.run("campaigns", "pick", "ab", env={"RESEND_API_KEY": ""})
    assert r.exit_code == 3
    assert r.stderr.splitlines()[0] == (
        "Error: RESEND_API_KEY is not set, and the resend transport needs it; nothing was picked."
    )
    with store.read() as conn:
        assert conn.execute(sa.select(campaign_t.c.winner)).scalar_one() is None
    assert Counter(s for s, _ in _variants(store).values())["held"] == 8
