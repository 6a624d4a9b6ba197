"""The store on PostgreSQL: migrations, schema, sponsors, the CLI, and URLs that cannot connect."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

import sponsorcast.store.models  # noqa: F401 - registers the tables
from sponsorcast.config import SponsorConfig
from sponsorcast.errors import StoreError
from sponsorcast.store import open_store
from sponsorcast.store.fastread import MIGRATIONS_TABLE
from sponsorcast.store.migrations import MIGRATIONS, run_migrations
from sponsorcast.store.models import Lead, Sponsor
from tests.support.pg import temporary_database
from tests.support.project import REPO, Project

if TYPE_CHECKING:
    from tests.support.fakeresend import FakeResend

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


@pytest.fixture
def store_backend() -> str:
    """These tests make their PostgreSQL stores themselves: ``project`` stays on SQLite here,
    even in a SPONSORCAST_TEST_BACKEND=postgresql run."""
    return "sqlite"


def _shape(engine: sa.Engine) -> dict[str, object]:
    """Tables, columns (type, nullability), indexes, unique constraints and primary keys."""
    insp = sa.inspect(engine)
    shape: dict[str, object] = {}
    for table in insp.get_table_names():
        if table.startswith("_"):
            continue
        cols = {c["name"]: (str(c["type"]), c["nullable"]) for c in insp.get_columns(table)}
        idx = sorted(
            (i["name"], tuple(i["column_names"]), bool(i["unique"]))
            for i in insp.get_indexes(table)
        )
        uniq = sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(table))
        pk = tuple(insp.get_pk_constraint(table)["constrained_columns"])
        fks = sorted(
            (tuple(f["constrained_columns"]), f["referred_table"])
            for f in insp.get_foreign_keys(table)
        )
        shape[table] = (cols, idx, uniq, pk, fks)
    return shape


def test_migrated_postgres_schema_matches_models(pg_url: str, pg_server_url: str) -> None:
    migrated = open_store(pg_url)
    assert migrated.engine.dialect.name == "postgresql"
    assert migrated.migration_state().pending == []
    with temporary_database(pg_server_url) as models_url:
        from_models = sa.create_engine(
            models_url.replace("postgresql://", "postgresql+psycopg://", 1)
        )
        SQLModel.metadata.create_all(from_models)
        try:
            expected = _shape(from_models)
        finally:
            from_models.dispose()
    actual = _shape(migrated.engine)
    migrated.dispose()
    assert set(actual) == {
        "sponsor",
        "lead",
        "campaign",
        "delivery",
        "event",
        "suppression",
        "send_batch",
        "rate_budget",
        "store_setting",
    }
    assert actual == expected


def test_first_version_upgrades_in_place_without_loss(pg_url: str) -> None:
    old = open_store(pg_url, migrate=False)
    run_migrations(old.write, upto="m001_initial")
    assert old.migration_state().pending == [m.__name__ for m in MIGRATIONS[1:]]
    with old.write() as conn:
        conn.exec_driver_sql(
            "INSERT INTO sponsor (id, name, messaging_enabled) VALUES ('acme', 'Acme', true)"
        )
        conn.exec_driver_sql(
            "INSERT INTO lead (sponsor_id, email, name, follow_up_status, tags, fields, intent_score)"
            " VALUES ('acme', 'ada@example.com', 'Ada', 'new', ',vip,', '{\"booth\": \"12\"}', 90)"
        )
        conn.exec_driver_sql(
            "INSERT INTO campaign (id, sponsor_id, name, subject, body, status, content_hash,"
            " total_recipients) VALUES ('spring', 'acme', 'Spring', 'Hi', 'Body', 'sent', 'abc', 1)"
        )
    old.dispose()

    upgraded = open_store(pg_url)
    assert upgraded.migration_state().pending == []
    with upgraded.read() as conn:
        lead = conn.exec_driver_sql(
            "SELECT email, name, tags, fields, intent_score FROM lead"
        ).one()
        assert tuple(lead) == ("ada@example.com", "Ada", ",vip,", {"booth": "12"}, 90)
        camp = conn.exec_driver_sql(
            "SELECT id, status, content_hash, status_reason FROM campaign"
        ).one()
        assert tuple(camp) == ("spring", "sent", "abc", None)
        assert conn.exec_driver_sql("SELECT count(*) FROM send_batch").scalar() == 0
    upgraded.dispose()


def test_concurrent_opens_apply_each_migration_once(pg_url: str) -> None:
    errors: list[BaseException] = []

    def opener() -> None:
        try:
            open_store(pg_url).dispose()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = open_store(pg_url, migrate=False)
    with store.read() as conn:
        names = (
            conn.exec_driver_sql(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY name")
            .scalars()
            .all()
        )
    store.dispose()
    assert names == sorted(m.__name__ for m in MIGRATIONS)


def test_sponsors_from_config_are_applied_and_values_round_trip(pg_url: str) -> None:
    acme = SponsorConfig(
        id="acme",
        name="Acme Corp",
        from_address="Acme <hi@acme.test>",
        reply_to=None,
        postal_address="2 Road, Town",
        messaging_enabled=False,
    )
    store = open_store(pg_url, sponsors=(acme,))
    with store.session() as session:
        rows = {
            s.id: (s.name, s.from_address, s.postal_address, s.messaging_enabled)
            for s in session.query(Sponsor)
        }
    assert rows == {
        "acme": ("Acme Corp", "Acme <hi@acme.test>", "2 Road, Town", False),
        "default": ("Default sponsor", None, None, True),
    }
    table = Lead.__table__  # type: ignore[attr-defined]
    with store.write() as conn:
        conn.execute(
            table.insert(),
            [
                {
                    "sponsor_id": "acme",
                    "email": "Zoë@example.com",
                    "follow_up_status": "new",
                    "tags": ",a,",
                    "fields": {"score": 1.5, "nested": {"k": [1, None]}, "text": "naïve ✓"},
                    "created_at": T0,
                }
            ],
        )
    with store.read() as conn:
        row = conn.execute(sa.select(table.c.email, table.c.fields, table.c.created_at)).one()
    store.dispose()
    assert row.email == "Zoë@example.com"
    assert row.fields == {"score": 1.5, "nested": {"k": [1, None]}, "text": "naïve ✓"}
    assert row.created_at == T0 and row.created_at.tzinfo is not None


def test_cli_sponsors_and_db_status_on_postgres(project: Project, pg_url: str) -> None:
    r = project.run(
        "--db",
        pg_url,
        "sponsors",
        "add",
        "acme",
        "--name",
        "Acme Corp",
        "--from",
        "Acme <hi@acme.test>",
        "--postal-address",
        "2 Road, Town",
    )
    assert (r.exit_code, r.stdout, r.stderr) == (0, "Added sponsor 'acme'.\n", "")
    r = project.run("--db", pg_url, "sponsors", "list", "--json")
    assert r.exit_code == 0, r.stderr
    rows = {s["id"]: s for s in json.loads(r.stdout)}
    # the project's sponsorcast.toml declares `default`; --db only changes where the store is
    assert rows["acme"] == {
        "id": "acme",
        "name": "Acme Corp",
        "from": "Acme <hi@acme.test>",
        "reply_to": None,
        "postal_address": "2 Road, Town",
        "messaging_enabled": True,
        "accent_color": None,
        "logo_url": None,
        "unsubscribe_mailto": None,
        "layout": None,
    }
    assert rows["default"]["from"] == "Example Events <hello@example.com>"
    r = project.run("--db", pg_url, "db", "status", "--json")
    assert r.exit_code == 0, r.stderr
    assert [(x["migration"], x["status"]) for x in json.loads(r.stdout)] == [
        (m.__name__, "applied") for m in MIGRATIONS
    ]
    r = project.run("--db", pg_url, "db", "upgrade")
    assert r.stdout == "The store is up to date; nothing to apply.\n"
    # nothing went to the project's SQLite store
    r = project.run("sponsors", "list", "--json")
    assert [s["id"] for s in json.loads(r.stdout)] == ["default"]


def test_store_url_from_config_file(pg_project: Project) -> None:
    r = pg_project.run("sponsors", "show", "default", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["postal_address"] == "1 Example Street, Springfield"
    assert pg_project.store().engine.dialect.name == "postgresql"


def test_db_status_on_fresh_postgres_database_lists_all_pending(
    project: Project, pg_url: str
) -> None:
    r = project.run("--db", pg_url, "db", "status", "--json")
    assert r.exit_code == 0, r.stderr
    assert [(x["migration"], x["status"]) for x in json.loads(r.stdout)] == [
        (m.__name__, "pending") for m in MIGRATIONS
    ]


def test_refused_connection_is_one_sentence_exit_2_without_password(
    project: Project, closed_port: int
) -> None:
    url = f"postgresql://bob:s3cr3t-pw@127.0.0.1:{closed_port}/events"
    r = project.run("--db", url, "sponsors", "list")
    assert r.exit_code == 2
    assert r.stdout == ""
    assert "s3cr3t-pw" not in r.stderr
    assert "Traceback" not in r.stderr
    first = r.stderr.splitlines()[0]
    assert first == (
        f"Error: Cannot connect to the PostgreSQL store postgresql://bob:***@127.0.0.1:{closed_port}/events: "
        f'connection to server at "127.0.0.1", port {closed_port} failed: Connection refused.'
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "postgresql://bob:pw-secret@127.0.0.1:notaport/db",
            "The store URL postgresql://bob:***@127.0.0.1:notaport/db is not a valid PostgreSQL URL.",
        ),
    ],
)
def test_invalid_url_is_refused(url: str, message: str) -> None:
    with pytest.raises(StoreError) as info:
        open_store(url)
    assert str(info.value) == message
    assert "pw-secret" not in str(info.value)


def test_unknown_database_and_role_are_named(pg_server_url: str) -> None:
    from tests.support.pg import with_database

    with pytest.raises(StoreError, match=r'database "no_such_db_x" does not exist\.$'):
        open_store(with_database(pg_server_url, "no_such_db_x"))
    bad_role = pg_server_url.replace("postgresql://postgres@", "postgresql://nobody:hunter2@", 1)
    with pytest.raises(StoreError, match=r'role "nobody" does not exist\.$') as info:
        open_store(bad_role)
    assert "hunter2" not in str(info.value)


def test_store_url_fixture_covers_both_backends(store_url: str) -> None:
    store = open_store(store_url)
    assert store.is_sqlite == store_url.startswith("sqlite")
    assert store.migration_state().pending == []
    store.dispose()


@pytest.mark.slow
def test_three_workers_share_one_campaign_each_email_once(
    project: Project, pg_url: str, fake_resend: FakeResend
) -> None:
    """Three `send` processes on one PostgreSQL store (as on three hosts), each configured with a
    third of the provider's limit (docs/postgres.md): every email once, no 429 at all, and the
    batches split between them."""
    from tests.support.e2e import add_leads, assert_exactly_once, emails, resend_project, spawn

    toml = project.path / "sponsorcast.toml"
    toml.write_text(
        toml.read_text().replace('url = "sqlite:///sponsorcast.db"', f'url = "{pg_url}"')
    )
    resend_project(
        project, fake_resend, rate_limit="3"
    )  # 3 workers x 3/s under the provider's 10/s
    toml.write_text(
        toml.read_text()
        .replace("max_attempts = 3", "max_attempts = 3\nbatch_size = 10")
        .replace("lease_seconds = 3", "lease_seconds = 60")
    )
    store = project.store()
    assert store.engine.dialect.name == "postgresql"
    people = emails(450)  # 45 requests
    add_leads(store, people)
    fake_resend.configure(rate=10, latency=0.05)
    procs = [spawn(project, fake_resend, "send", "spring.md", "--yes") for _ in range(3)]
    results = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [e.decode()[-500:] for _, e in results]
    assert_exactly_once(fake_resend, store, people)
    counters = fake_resend.counters
    assert (counters["rate_limited"], counters["replays"]) == (0, 0), counters
    assert counters["max_window"] <= 10
    keys = Counter(a.idempotency_key for a in fake_resend.accepted)
    assert len(keys) == 45 and set(keys.values()) == {10}
    # each worker sent part of the campaign: its own batches, under their own keys
    sent_by = [
        int(m.group(1))
        for out, _ in results
        for m in [re.search(r"sent now\s*│\s*(\d+)", out.decode())]
        if m
    ]
    assert len(sent_by) == 3 and sum(sent_by) == 450 and min(sent_by) > 0, [
        o.decode() for o, _ in results
    ]
    store.dispose()


def test_batch_claims_on_postgres_use_for_update_skip_locked(pg_project: Project) -> None:
    from sponsorcast.send import plan_send, send_campaign
    from tests.support.sending import CAMPAIGN, MemoryTransport, add_leads

    path = pg_project.path / "spring.md"
    path.write_text(CAMPAIGN, encoding="utf-8")
    store = pg_project.store()
    add_leads(store, 250)
    statements: list[str] = []
    sa.event.listen(
        store.engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, *_a: statements.append(" ".join(statement.split())),
    )
    transport = MemoryTransport()
    config = pg_project.config
    report = send_campaign(store, config, plan_send(store, config, path), transport=transport)
    store.dispose()
    assert report.sent_now == 250 and len(transport.delivered) == 250
    claims = [
        s
        for s in statements
        if s.startswith("SELECT send_batch.number, send_batch.idempotency_key")
        and "status = " in s
        and "lease_owner LIKE" not in s
    ]  # (that one looks for batches of dead local processes)
    assert len(claims) >= 3  # 250 leads in batches of 100, and the claim that finds nothing left
    assert all(s.endswith("FOR UPDATE SKIP LOCKED") for s in claims), claims


@pytest.mark.parametrize(
    ("ci", "outcome", "message"),
    [
        ("", "1 skipped", "SPONSORCAST_TEST_PG is unset: PostgreSQL tests skipped"),
        (
            "true",
            "1 error",
            "CI is set but SPONSORCAST_TEST_PG is not: the PostgreSQL tests must run in CI",
        ),
    ],
)
def test_without_a_server_postgres_tests_skip_but_never_in_ci(
    ci: str, outcome: str, message: str
) -> None:
    import os
    import subprocess
    import sys

    root = REPO
    env = {k: v for k, v in os.environ.items() if k not in ("SPONSORCAST_TEST_PG", "CI")}
    env["CI"] = ci
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rsE",
            "-p",
            "no:cacheprovider",
            "tests/store/test_postgres.py::test_unknown_database_and_role_are_named",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert outcome in done.stdout, done.stdout[-2000:]
    assert message in done.stdout
    assert done.returncode == (0 if not ci else 1)
