"""Migrations: an old store upgrades in place, nothing is lost, and the result matches the models."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import SQLModel

import sponsorcast.store.models  # noqa: F401 - registers the tables
from sponsorcast.store import open_store
from sponsorcast.store.migrations import MIGRATIONS, run_migrations
from tests.support.project import Project

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _v1_store(path: Path):  # type: ignore[no-untyped-def]
    store = open_store(f"sqlite:///{path}", migrate=False)
    run_migrations(store.write, upto="m001_initial")
    return store


def test_first_version_upgrades_without_loss(tmp_path: Path) -> None:
    store = _v1_store(tmp_path / "old.db")
    assert store.migration_state().pending == [m.__name__ for m in MIGRATIONS[1:]]
    with store.write() as conn:
        conn.exec_driver_sql(
            "INSERT INTO sponsor (id, name, messaging_enabled) VALUES ('acme', 'Acme', 1)"
        )
        conn.exec_driver_sql(
            "INSERT INTO lead (sponsor_id, email, name, follow_up_status, tags, fields, intent_score)"
            " VALUES ('acme', 'ada@example.com', 'Ada', 'new', ',vip,', '{\"booth\": \"12\"}', 90)"
        )
        conn.exec_driver_sql(
            "INSERT INTO campaign (id, sponsor_id, name, subject, body, status, content_hash,"
            " total_recipients) VALUES ('spring', 'acme', 'Spring', 'Hi', 'Body', 'sent', 'abc', 1)"
        )
        conn.exec_driver_sql(
            "INSERT INTO delivery (campaign_id, lead_id, recipient, status, attempts, open_count,"
            " click_count, provider_message_id) VALUES ('spring', 1, 'ada@example.com', 'sent', 1, 0, 0, 'msg-1')"
        )
        conn.exec_driver_sql(
            "INSERT INTO suppression (email, sponsor_id, reason) VALUES ('x@example.com', '*', 'bounced')"
        )
    store.dispose()

    upgraded = open_store(f"sqlite:///{tmp_path / 'old.db'}")
    assert upgraded.migration_state().pending == []
    with upgraded.read() as conn:
        lead = conn.exec_driver_sql(
            "SELECT email, name, tags, fields, intent_score FROM lead"
        ).one()
        assert tuple(lead) == ("ada@example.com", "Ada", ",vip,", '{"booth": "12"}', 90)
        camp = conn.exec_driver_sql(
            "SELECT id, status, content_hash, status_reason FROM campaign"
        ).one()
        assert tuple(camp) == ("spring", "sent", "abc", None)
        deliv = conn.exec_driver_sql(
            "SELECT recipient, status, provider_message_id FROM delivery"
        ).one()
        assert tuple(deliv) == ("ada@example.com", "sent", "msg-1")
        assert conn.exec_driver_sql("SELECT email, reason FROM suppression").one() == (
            "x@example.com",
            "bounced",
        )
        assert conn.exec_driver_sql("SELECT count(*) FROM send_batch").scalar() == 0


def _shape(engine: sa.Engine) -> dict[str, object]:
    insp = sa.inspect(engine)
    shape: dict[str, object] = {}
    for table in insp.get_table_names():
        if table.startswith("_"):
            continue
        cols = {
            c["name"]: (type(c["type"]).__name__.upper()[:4], c["nullable"])
            for c in insp.get_columns(table)
        }
        idx = sorted((tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(table))
        uniq = sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(table))
        pk = tuple(insp.get_pk_constraint(table)["constrained_columns"])
        shape[table] = (cols, idx, uniq, pk)
    return shape


def test_migrated_store_matches_models(tmp_path: Path) -> None:
    migrated = open_store(f"sqlite:///{tmp_path / 'migrated.db'}").engine
    from_models = sa.create_engine(f"sqlite:///{tmp_path / 'models.db'}")
    SQLModel.metadata.create_all(from_models)
    assert _shape(migrated) == _shape(from_models)


def test_db_status_and_upgrade_cli(project: Project, tmp_path: Path) -> None:
    _v1_store(tmp_path / "v1.db").dispose()
    url = f"sqlite:///{tmp_path / 'v1.db'}"
    r = project.run("--db", url, "db", "status", "--json")
    assert r.exit_code == 0, r.stderr
    import json

    rows = json.loads(r.stdout)
    assert [(x["migration"], x["status"]) for x in rows] == [
        ("m001_initial", "applied"),
        ("m002_send_batches", "pending"),
        ("m003_batch_payload_hash", "pending"),
        ("m004_batch_payload", "pending"),
        ("m005_email_look", "pending"),
        ("m006_sponsor_layout", "pending"),
        ("m007_report_indexes", "pending"),
        ("m008_rate_budget", "pending"),
        ("m009_guard_rails", "pending"),
        ("m010_frequency_cap", "pending"),
        ("m011_ab_tests", "pending"),
        ("m012_budget_window", "pending"),
    ]
    r = project.run("--db", url, "db", "upgrade")
    assert r.stdout == (
        "Applied 11 migrations: m002_send_batches, m003_batch_payload_hash, m004_batch_payload, "
        "m005_email_look, m006_sponsor_layout, m007_report_indexes, m008_rate_budget, "
        "m009_guard_rails, m010_frequency_cap, m011_ab_tests, m012_budget_window.\n"
    )
    r = project.run("--db", url, "db", "upgrade")
    assert r.stdout == "The store is up to date; nothing to apply.\n"
