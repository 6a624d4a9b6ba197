"""The frequency cap (``[sponsors.X] frequency_cap = "1 per 3d"``): a normal campaign skips a
lead who had an email of the sponsor within the window; a follow-up holds them back until the
window passes, and skips them once its ``expires`` is past. On SQLite and PostgreSQL, with an
injected clock for the claims, run-due and the follow-ups."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from sponsorcast.durations import parse_frequency_cap
from sponsorcast.errors import BadInput
from sponsorcast.schedule import cron as cron_module
from sponsorcast.send import claims as claims_module
from sponsorcast.send import followups as followups_module
from sponsorcast.send import frequency as frequency_module
from sponsorcast.send import plan_send, send_campaign
from sponsorcast.send.followups import add_due
from sponsorcast.store import Store
from sponsorcast.store.tables import campaign_t, lead_t, sponsor_t
from tests.support.clock import Clock
from tests.support.ledger import campaign_status, delivery_rows, outbox_leads
from tests.support.pg import both_store_backends  # noqa: F401 - each test on SQLite and PostgreSQL
from tests.support.project import Project
from tests.support.sending import add_leads

POSTAL = 'postal_address = "1 Example Street, Springfield"'
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SPRING = "---\nsubject: Hello {{ first_name }}\n---\nOur launch.\n"
NEWS = "---\nsubject: News for {{ first_name }}\n---\nWhat is new.\n"
VIP_NEWS = (
    "---\nsubject: For you, {{ first_name }}\naudience:\n  type: custom\n  filter:\n"
    "    follow_up_status: vip\n---\nJust for you.\n"
)
AGAIN = (
    "---\nsubject: Again, {{ first_name }}\nfollows: spring\nafter: 1d\n{extra}---\nOnce more.\n"
)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(T0).install(
        monkeypatch, claims_module, cron_module, followups_module, frequency_module
    )


def _cap(project: Project, cap: str) -> None:
    toml = project.path / "sponsorcast.toml"
    text = toml.read_text(encoding="utf-8")
    assert POSTAL in text
    toml.write_text(text.replace(POSTAL, f'{POSTAL}\nfrequency_cap = "{cap}"'), encoding="utf-8")


def _write(project: Project, name: str, text: str) -> None:
    (project.path / name).write_text(text, encoding="utf-8")


CAPPED = "capped: had an email of this sponsor within its frequency cap of 1 per 3d"


def test_parse_frequency_cap() -> None:
    one = parse_frequency_cap(" 1 per 3d ")
    assert (one.emails, one.window, one.text) == (1, timedelta(days=3), "1 per 3d")
    two = parse_frequency_cap("2/12H")
    assert (two.emails, two.window, two.text) == (2, timedelta(hours=12), "2 per 12h")
    assert parse_frequency_cap("3 every 1w").window == timedelta(weeks=1)
    for bad in ("often", "0 per 3d", "1 per soon", "per 3d", "1 per"):
        with pytest.raises(BadInput):
            parse_frequency_cap(bad)


def test_a_campaign_skips_who_had_an_email_within_the_window(
    project: Project, store: Store, clock: Clock
) -> None:
    _cap(project, "1 per 3d")
    add_leads(store, 5)
    _write(project, "spring.md", SPRING)
    assert project.run("send", "spring.md", "--yes").exit_code == 0
    add_leads(store, 2, prefix="new")
    _write(project, "news.md", NEWS)

    clock.now = T0 + timedelta(days=1)
    dry = project.run("send", "news.md", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert dry.stdout == (
        "                       Dry run                        \n"
        "┌───────────────────────────────────────────┬────────┐\n"
        "│ campaign                                  │ news   │\n"
        "│ status                                    │ new    │\n"
        "│ recipients                                │ 7      │\n"
        "│ suppressed                                │ 0      │\n"
        "│ transport                                 │ outbox │\n"
        "│ would be skipped (frequency cap 1 per 3d) │ 5      │\n"
        "└───────────────────────────────────────────┴────────┘\n"
        "Dry run: every recipient rendered; nothing was sent and nothing was written.\n"
    )
    sent = project.run("send", "news.md", "--yes")
    assert sent.exit_code == 0, sent.stderr
    assert sent.stdout.splitlines()[-1] == (
        "Skipped: 5 recipients had an email of this sponsor within its frequency cap of 1 per 3d."
    )
    assert delivery_rows(store, "news") == {
        **{f"lead{i}": ("skipped", CAPPED) for i in range(5)},
        "new0": ("sent", None),
        "new1": ("sent", None),
    }
    stats = json.loads(project.run("stats", "news", "--json").stdout)
    assert (stats["status"], stats["total_recipients"], stats["sent"], stats["skipped"]) == (
        "sent",
        7,
        2,
        5,
    )

    # three days and a second after spring: lead0-4 are free again; new0-1 had news a day ago
    clock.now = T0 + timedelta(days=3, seconds=1)
    _write(project, "later.md", NEWS.replace("News", "Later news"))
    assert project.run("send", "later.md", "--yes").exit_code == 0
    assert delivery_rows(store, "later") == {
        **{f"lead{i}": ("sent", None) for i in range(5)},
        "new0": ("skipped", CAPPED),
        "new1": ("skipped", CAPPED),
    }
    assert outbox_leads(project.path, "news") == Counter({"new0": 1, "new1": 1})


def test_two_campaigns_sent_at_once_give_each_lead_one_email(
    project: Project, store: Store, clock: Clock
) -> None:
    _cap(project, "1 per 1d")
    toml = project.path / "sponsorcast.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8") + "\n[resend]\nbatch_size = 5\n", encoding="utf-8"
    )
    add_leads(store, 40)
    _write(project, "spring.md", SPRING)
    _write(project, "news.md", NEWS)
    assert project.run("doctor").exit_code in (0, 1)  # applies the config's sponsor
    config = project.config
    plans = [plan_send(store, config, project.path / name) for name in ("spring.md", "news.md")]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def send(index: int) -> None:
        try:
            start.wait()
            send_campaign(store, config, plans[index])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    spring, news = delivery_rows(store, "spring"), delivery_rows(store, "news")
    assert len(spring) == len(news) == 40
    for lead in spring:
        statuses = sorted((spring[lead][0], news[lead][0]))
        assert statuses == ["sent", "skipped"], lead
    emails = outbox_leads(project.path, "spring") + outbox_leads(project.path, "news")
    assert emails == Counter({f"lead{i}": 1 for i in range(40)})


def test_a_follow_up_waits_for_the_cap_and_skips_once_it_expires(
    project: Project, store: Store, clock: Clock
) -> None:
    _cap(project, "1 per 2d")
    add_leads(store, 5)
    _write(project, "spring.md", SPRING)
    assert project.run("send", "spring.md", "--yes").exit_code == 0
    _write(project, "again.md", AGAIN.format(extra="expires: 2d\n"))
    assert project.run("send", "again.md", "--yes").exit_code == 0

    clock.now = T0 + timedelta(days=1, hours=1)  # due, but spring was within two days
    dry = project.run("send", "again.md", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    cells = [line.split("│") for line in dry.stdout.splitlines() if line.startswith("│")]
    fields = {cell[1].strip(): cell[2].strip() for cell in cells}
    assert fields["due now"] == "5"
    assert fields["would be sent"] == "0"
    assert fields["would wait (frequency cap 1 per 2d)"] == "5"
    assert fields["would be skipped (held back past expires)"] == "0"
    assert project.run("run-due").exit_code == 0
    assert delivery_rows(store, "again") == {}
    assert campaign_status(store, "again") == "sending"

    # lead0 gets another campaign two days and an hour after spring: free of spring by then
    with store.write() as conn:
        conn.execute(
            lead_t.update()
            .where(lead_t.c.email == "lead0@example.com")
            .values(follow_up_status="vip")
        )
    clock.now = T0 + timedelta(days=2, hours=1)
    _write(project, "vip.md", VIP_NEWS)
    assert project.run("send", "vip.md", "--yes").exit_code == 0
    assert delivery_rows(store, "vip") == {"lead0": ("sent", None)}

    clock.now = T0 + timedelta(days=2, hours=2)
    assert project.run("run-due").exit_code == 0
    assert delivery_rows(store, "again") == {f"lead{i}": ("sent", None) for i in range(1, 5)}
    shown = project.run("campaigns", "show", "again")
    assert "waiting" in shown.stdout

    # due at T0+1d, expires two days later; vip holds lead0 back until T0+4d+1h
    clock.now = T0 + timedelta(days=3, hours=1)
    assert project.run("run-due").exit_code == 0
    assert delivery_rows(store, "again")["lead0"] == (
        "skipped",
        "capped: the frequency cap of 1 per 2d held them back until the follow-up expired",
    )
    assert campaign_status(store, "again") == "sent"
    assert outbox_leads(project.path, "again") == Counter({f"lead{i}": 1 for i in range(1, 5)})


def test_a_follow_up_recipient_capped_at_claim_waits_and_comes_again(
    project: Project, store: Store, clock: Clock
) -> None:
    _cap(project, "1 per 2d")
    add_leads(store, 2)
    _write(project, "spring.md", SPRING)
    assert project.run("send", "spring.md", "--yes").exit_code == 0
    _write(project, "again.md", AGAIN.format(extra="").replace("after: 1d", "after: 2d"))
    assert project.run("send", "again.md", "--yes").exit_code == 0
    clock.now = T0 + timedelta(days=2, minutes=1)
    assert add_due(store, project.config, "again", 10, clock.now).added == 2
    assert delivery_rows(store, "again") == {"lead0": ("pending", None), "lead1": ("pending", None)}

    with store.write() as conn:  # another campaign reaches lead0 before the follow-up is sent
        conn.execute(
            lead_t.update()
            .where(lead_t.c.email == "lead0@example.com")
            .values(follow_up_status="vip")
        )
    clock.now = T0 + timedelta(days=2, minutes=2)
    _write(project, "vip.md", VIP_NEWS)
    assert project.run("send", "vip.md", "--yes").exit_code == 0

    clock.now = T0 + timedelta(days=2, minutes=3)
    again = project.run("send", "again.md", "--yes")
    assert again.exit_code == 0, again.stderr
    assert again.stdout.splitlines()[-1] == (
        "Waiting: 1 recipient had an email of this sponsor within its frequency cap of "
        "1 per 2d; run-due sends them once the cap allows."
    )
    assert delivery_rows(store, "again") == {"lead1": ("sent", None)}  # lead0 waits, with no row
    assert campaign_status(store, "again") == "sending"
    stats = json.loads(project.run("stats", "again", "--json").stdout)
    assert (stats["total_recipients"], stats["sent"]) == (1, 1)

    clock.now = T0 + timedelta(days=4, minutes=3)  # vip was two days and a minute ago
    assert project.run("run-due").exit_code == 0
    assert delivery_rows(store, "again") == {"lead0": ("sent", None), "lead1": ("sent", None)}
    assert campaign_status(store, "again") == "sent"
    assert outbox_leads(project.path, "again") == Counter({"lead0": 1, "lead1": 1})


def test_the_cap_follows_the_config_and_bad_caps_are_refused(
    project: Project, store: Store
) -> None:
    def stored() -> str | None:
        with store.read() as conn:
            return conn.execute(  # type: ignore[no-any-return]
                sa.select(sponsor_t.c.frequency_cap).where(sponsor_t.c.id == "default")
            ).scalar_one()

    toml = project.path / "sponsorcast.toml"
    plain = toml.read_text(encoding="utf-8")
    _cap(project, "2 PER 1w")
    assert project.run("doctor").exit_code in (0, 1)
    assert stored() == "2 per 1w"
    toml.write_text(plain, encoding="utf-8")  # taken out of the file: taken off the sponsor
    assert project.run("doctor").exit_code in (0, 1)
    assert stored() is None

    add_leads(store, 2)
    _write(project, "spring.md", SPRING)
    for cap in ("often", "0 per 3d"):
        _cap(project, cap)
        r = project.run("send", "spring.md", "--yes")
        assert r.exit_code == 3
        assert r.stderr.splitlines()[0].endswith(
            f"'sponsors.default.frequency_cap' '{cap}' is not a frequency cap."
        )
        toml.write_text(plain, encoding="utf-8")
    assert stored() is None
    with store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(campaign_t)).scalar_one() == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("expires: 2d\n", "expires is for a follow-up (with follows: and after:)."),
        ("follows: spring\nafter: 1d\nexpires: soon\n", "'soon' is not a duration."),
        ("follows: spring\nafter: 1d\nexpires: 7\n", "expires must be a duration such as 14d."),
    ],
)
def test_bad_expires_is_refused_and_nothing_is_stored(
    project: Project, store: Store, extra: str, message: str
) -> None:
    add_leads(store, 2)
    _write(project, "spring.md", SPRING)
    assert project.run("send", "spring.md", "--yes").exit_code == 0
    _write(project, "again.md", f"---\nsubject: Again\n{extra}---\nOnce more.\n")
    r = project.run("send", "again.md", "--yes")
    assert r.exit_code == 2
    assert message in r.stderr
    with store.read() as conn:
        ids = conn.execute(sa.select(campaign_t.c.id)).scalars().all()
    assert ids == ["spring"]
