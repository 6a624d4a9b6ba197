"""``leads import postgresql://…`` with ``--table`` or ``--query``, against a real server."""

from __future__ import annotations

import json
import tracemalloc
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

from sponsorcast.errors import BadInput, SourceError
from sponsorcast.leads import import_leads
from sponsorcast.leads.postgres import PostgresSource, jsonable, parse_table_name, redact_url
from tests.support.project import Project

pytestmark = pytest.mark.postgres

PLATFORM_TABLE = """
CREATE TABLE sponsor_leads (
    id serial PRIMARY KEY,
    sponsor_id text,
    event_id integer,
    user_email text,
    user_name text,
    user_company text,
    user_title text,
    intent_level text,
    intent_score integer,
    follow_up_status text,
    tags text[],
    "Booth Visit" timestamptz,
    budget numeric(12, 2),
    notes jsonb,
    created_at timestamp
)"""

PLATFORM_ROWS = """
INSERT INTO sponsor_leads (sponsor_id, event_id, user_email, user_name, user_company, user_title,
    intent_level, intent_score, follow_up_status, tags, "Booth Visit", budget, notes, created_at)
VALUES
    ('default', 42, ' Ada@Example.COM ', 'Ada Lovelace', 'Analytical Engines', 'CTO', 'HOT', 95,
     'Contacted', ARRAY['enterprise', 'decision_maker'], '2026-03-01 10:30:00+00', 12500.00,
     '{"visits": 2, "badge": "A-1"}', '2026-02-01 09:00:00'),
    ('default', NULL, 'linus@example.org', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL),
    (NULL, 7, 'grace@example.net', 'Hopper, Grace', 'Navy', NULL, 'warm', 60, NULL,
     ARRAY['speaker', NULL, ''], NULL, 99.50, '[1, 2]', NULL)
"""


def _execute(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement.encode())


@pytest.fixture
def platform(pg_url: str) -> str:
    """A database with the event platform's sponsor_leads table and three rows."""
    _execute(pg_url, PLATFORM_TABLE, PLATFORM_ROWS)
    return pg_url


def _leads(project: Project) -> list[dict[str, Any]]:
    r = project.run("leads", "list", "--json")
    assert r.exit_code == 0, r.stderr
    rows: list[dict[str, Any]] = json.loads(r.stdout)
    for row in rows:
        row.pop("created_at")
        row.pop("updated_at")
    return rows


def _count(project: Project) -> int:
    r = project.run("leads", "count", "--json")
    assert r.exit_code == 0, r.stderr
    n: int = json.loads(r.stdout)["count"]
    return n


def test_table_import_maps_the_platform_columns(project: Project, platform: str) -> None:
    r = project.run("leads", "import", platform, "--table", "sponsor_leads", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout) == {
        "source": "table sponsor_leads",
        "sponsor": "default",
        "dry_run": False,
        "rows": 3,
        "inserted": 3,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
        "merged": 0,
        "erased": 0,
        "rejects": [],
        "rejects_file": None,
        "columns": [
            {"column": "id", "to": "fields.id"},
            {"column": "sponsor_id", "to": "sponsor_id"},
            {"column": "event_id", "to": "event"},
            {"column": "user_email", "to": "email"},
            {"column": "user_name", "to": "name"},
            {"column": "user_company", "to": "company"},
            {"column": "user_title", "to": "title"},
            {"column": "intent_level", "to": "intent_level"},
            {"column": "intent_score", "to": "intent_score"},
            {"column": "follow_up_status", "to": "follow_up_status"},
            {"column": "tags", "to": "tags"},
            {"column": "Booth Visit", "to": "fields.Booth Visit"},
            {"column": "budget", "to": "fields.budget"},
            {"column": "notes", "to": "fields.notes"},
            {"column": "created_at", "to": "fields.created_at"},
        ],
        "warnings": [],
    }
    common = {"consent": None, "source": "table sponsor_leads"}
    assert _leads(project) == [
        {
            "id": 1,
            "email": "ada@example.com",
            "name": "Ada Lovelace",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "company": "Analytical Engines",
            "title": "CTO",
            "intent_level": "hot",
            "intent_score": 95,
            "follow_up_status": "contacted",
            "tags": ["enterprise", "decision_maker"],
            "event": "42",
            "fields": {
                "id": 1,
                "Booth Visit": "2026-03-01T10:30:00+00:00",
                "budget": 12500,
                "notes": {"visits": 2, "badge": "A-1"},
                "created_at": "2026-02-01T09:00:00",
            },
            **common,
        },
        {
            "id": 2,
            "email": "linus@example.org",
            "name": None,
            "first_name": None,
            "last_name": None,
            "company": None,
            "title": None,
            "intent_level": None,
            "intent_score": None,
            "follow_up_status": "new",
            "tags": [],
            "event": None,
            "fields": {"id": 2, "Booth Visit": "", "budget": "", "notes": "", "created_at": ""},
            **common,
        },
        {
            "id": 3,
            "email": "grace@example.net",
            "name": "Hopper, Grace",
            "first_name": "Grace",
            "last_name": "Hopper",
            "company": "Navy",
            "title": None,
            "intent_level": "warm",
            "intent_score": 60,
            "follow_up_status": "new",
            "tags": ["speaker"],
            "event": "7",
            "fields": {
                "id": 3,
                "Booth Visit": "",
                "budget": 99.5,
                "notes": [1, 2],
                "created_at": "",
            },
            **common,
        },
    ]


def test_human_report_then_reimport_unchanged_and_dry_run_writes_nothing(
    project: Project, platform: str
) -> None:
    r = project.run("leads", "import", platform, "--table", "sponsor_leads")
    assert r.exit_code == 0, r.stderr
    # the layout is the CSV import's (tests/leads/ pin it); here: the source's name and counts
    assert r.stdout.startswith("Imported table sponsor_leads for sponsor 'default'")
    assert "┃ inserted ┃ updated ┃ unchanged ┃ rejected ┃\n" in r.stdout
    assert "│ 3        │ 0       │ 0         │ 0        │\n" in r.stdout
    r = project.run("leads", "import", platform, "--table", "sponsor_leads", "--json")
    assert (json.loads(r.stdout)["inserted"], json.loads(r.stdout)["unchanged"]) == (0, 3)

    _execute(
        platform,
        "UPDATE sponsor_leads SET intent_score = 10 WHERE user_email = 'linus@example.org'",
        "INSERT INTO sponsor_leads (user_email) VALUES ('new@example.com')",
    )
    before = _leads(project)
    r = project.run("leads", "import", platform, "--table", "sponsor_leads", "--dry-run", "--json")
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)
    assert (report["dry_run"], report["inserted"], report["updated"], report["unchanged"]) == (
        True,
        1,
        1,
        2,
    )
    assert _leads(project) == before


def test_odd_casing_json_tags_and_a_quoted_schema_table(project: Project, pg_url: str) -> None:
    _execute(
        pg_url,
        'CREATE SCHEMA "Platform"',
        'CREATE TABLE "Platform"."Sponsor Leads" ("User_Email" varchar(200), "USER_NAME" text,'
        ' "Intent_Score" numeric, "TAGS" jsonb, "Follow-Up Status" text, "Event_ID" bigint,'
        ' "Signed Up" date, "Ticket" uuid)',
        'INSERT INTO "Platform"."Sponsor Leads" VALUES'
        " ('bob@example.com', 'Bob Builder', 70, '[\"vip\", \"press\"]', 'NEW', 9000000000,"
        " '2026-04-05', '12345678-1234-5678-1234-567812345678')",
    )
    r = project.run(
        "leads", "import", pg_url, "--table", '"Platform"."Sponsor Leads"', "--tag", "expo"
    )
    assert r.exit_code == 0, r.stderr
    [lead] = _leads(project)
    assert lead == {
        "id": 1,
        "email": "bob@example.com",
        "name": "Bob Builder",
        "first_name": "Bob",
        "last_name": "Builder",
        "company": None,
        "title": None,
        "intent_level": None,
        "intent_score": 70,
        "follow_up_status": "new",
        "tags": ["vip", "press", "expo"],
        "event": "9000000000",
        "fields": {"Signed Up": "2026-04-05", "Ticket": "12345678-1234-5678-1234-567812345678"},
        "source": 'table "Platform"."Sponsor Leads"',
        "consent": None,
    }


def test_unquoted_names_fold_to_lower_case_as_in_sql(project: Project, platform: str) -> None:
    r = project.run("leads", "import", platform, "--table", "Public.Sponsor_Leads", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["inserted"] == 3


def test_query_source_with_map_like_and_trailing_semicolon(project: Project, platform: str) -> None:
    query = (
        "SELECT user_email AS contact, intent_score * 1.0 AS score, 'x%' AS pct"
        " FROM sponsor_leads WHERE user_email LIKE '%.org' OR user_email LIKE '%.net';"
    )
    r = project.run(
        "leads", "import", platform, "--query", query, "--map", "contact=email", "--json"
    )
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["inserted"] == 2
    leads = _leads(project)
    assert [(x["email"], x["intent_score"], x["fields"], x["source"]) for x in leads] == [
        ("linus@example.org", None, {"pct": "x%"}, "query"),
        ("grace@example.net", 60, {"pct": "x%"}, "query"),
    ]


def test_bad_row_fails_the_whole_import_and_names_the_row(
    project: Project, platform: str, tmp_path: Path
) -> None:
    _execute(
        platform,
        "INSERT INTO sponsor_leads (user_email, intent_score) VALUES ('not-an-email', 5),"
        " ('ok@example.com', 500)",
    )
    r = project.run("leads", "import", platform, "--table", "sponsor_leads")
    assert r.exit_code == 2
    assert r.stdout == ""
    assert r.stderr.startswith(
        "Error: table sponsor_leads: row 4: 'not-an-email' is not a valid email address"
    )
    assert "(1 more bad row: 5); nothing was imported." in r.stderr
    assert _count(project) == 0

    rejects = tmp_path / "rejects.csv"
    r = project.run(
        "leads", "import", platform, "--table", "sponsor_leads", "--rejects", str(rejects), "--json"
    )
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)
    assert (report["inserted"], report["rejected"]) == (3, 2)
    assert [row["row"] for row in report["rejects"]] == [4, 5]
    lines = rejects.read_text(encoding="utf-8").splitlines()
    assert lines[0].endswith(",reason") and lines[0].startswith(
        "id,sponsor_id,event_id,user_email,"
    )
    assert lines[1].startswith("4,,,not-an-email,") and lines[2].startswith("5,,,ok@example.com,")
    assert "intent score '500' must be a number from 0 to 100" in lines[2]


def test_rows_of_another_sponsor_are_refused(project: Project, platform: str) -> None:
    _execute(
        platform,
        "UPDATE sponsor_leads SET sponsor_id = 'acme' WHERE user_email = 'linus@example.org'",
    )
    r = project.run("leads", "import", platform, "--table", "sponsor_leads")
    assert r.exit_code == 2
    assert "row 2: belongs to sponsor 'acme', not 'default'" in r.stderr
    assert _count(project) == 0


def test_missing_table_is_named_and_nothing_changes(project: Project, platform: str) -> None:
    project.run("leads", "import", platform, "--table", "sponsor_leads")
    before = _leads(project)
    for table in ("sponsor_lead", "crm.sponsor_leads"):
        r = project.run("leads", "import", platform, "--table", table)
        assert r.exit_code == 2
        dbname = platform.rsplit("/", 1)[1]
        assert r.stderr.splitlines()[0] == (
            f"Error: Table '{table}' does not exist in database '{dbname}' at {platform}."
        )
    assert _leads(project) == before


def test_refused_connection_is_one_sentence_without_password(
    project: Project, closed_port: int
) -> None:
    url = f"postgresql://platform:Pa55-word@127.0.0.1:{closed_port}/events"
    r = project.run("leads", "import", url, "--table", "sponsor_leads")
    assert r.exit_code == 2
    assert r.stdout == ""
    assert "Pa55-word" not in r.stderr
    assert r.stderr.splitlines()[0] == (
        f"Error: Cannot connect to the leads database postgresql://platform:***@127.0.0.1:{closed_port}/events: "
        f'connection to server at "127.0.0.1", port {closed_port} failed: Connection refused.'
    )
    assert _count(project) == 0


def test_invalid_url_and_flag_combinations(project: Project, closed_port: int) -> None:
    r = project.run(
        "leads", "import", "postgresql://u:Secret1@127.0.0.1:notaport/db", "--table", "t"
    )
    assert r.exit_code == 2
    assert "is not a valid PostgreSQL URL" in r.stderr and "Secret1" not in r.stderr
    url = f"postgresql://u@127.0.0.1:{closed_port}/db"
    for args in ([], ["--table", "t", "--query", "SELECT 1"]):
        r = project.run("leads", "import", url, *args)
        assert r.exit_code == 2
        assert r.stderr.splitlines()[0] == (
            'Error: A PostgreSQL source needs exactly one of --table NAME and --query "SELECT …".'
        )
    r = project.run("leads", "import", url, "--query", " ; ")
    assert (r.exit_code, r.stderr.splitlines()[0]) == (
        2,
        "Error: --query is empty; give a SELECT statement.",
    )


def test_query_errors_and_the_source_is_read_only(project: Project, platform: str) -> None:
    r = project.run("leads", "import", platform, "--query", "SELEC user_email FROM sponsor_leads")
    assert r.exit_code == 2
    assert r.stderr.splitlines()[0] == 'Error: The query failed: syntax error at or near "SELEC".'
    _execute(platform, "CREATE SEQUENCE s")
    r = project.run(
        "leads",
        "import",
        platform,
        "--query",
        "SELECT user_email, nextval('s') AS n FROM sponsor_leads",
    )
    assert r.exit_code == 2
    assert "cannot execute nextval() in a read-only transaction" in r.stderr
    r = project.run("leads", "import", platform, "--query", "DELETE FROM sponsor_leads RETURNING *")
    assert r.exit_code == 2
    assert r.stderr.startswith("Error: The query failed: syntax error")
    with psycopg.connect(platform) as conn:
        assert conn.execute("SELECT count(*) FROM sponsor_leads").fetchone() == (3,)
    assert _count(project) == 0


@pytest.mark.slow
def test_100k_rows_stream_in_flat_memory(project: Project, pg_url: str) -> None:
    _execute(
        pg_url,
        "CREATE TABLE sponsor_leads (id serial PRIMARY KEY, user_email text, user_name text,"
        " intent_score int, tags text[], notes text)",
        "INSERT INTO sponsor_leads (user_email, user_name, intent_score, tags, notes)"
        " SELECT 'lead' || g || '@example.com', 'Lead ' || g, g % 101, ARRAY['t' || (g % 7), 'all'],"
        " repeat('x', 200) FROM generate_series(1, 100000) AS g",
    )
    source = PostgresSource(pg_url, table="sponsor_leads")
    source.headers()
    tracemalloc.start()
    try:
        count = 0
        for number, row in source.rows():  # noqa: B007 - the last row is checked below
            count += 1
            assert number == count
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 100_000
    # the rows themselves are > 30 MB as Python objects; a stream holds one fetch (5,000 rows)
    assert peak < 8_000_000, peak
    assert row["user_email"] == "lead100000@example.com" and row["tags"] == ["t5", "all"]

    store = project.store()
    report = import_leads(store, PostgresSource(pg_url, table="sponsor_leads"))
    assert (report.rows, report.inserted, report.rejected) == (100_000, 100_000, 0)
    assert _count(project) == 100_000
    store.dispose()


def test_every_column_type_becomes_a_json_safe_value(pg_url: str) -> None:
    _execute(
        pg_url,
        """CREATE VIEW leads_v AS SELECT 'a@example.com' AS email, 1.50::numeric AS n,
        'NaN'::numeric AS nn, date '2026-01-02' AS d, time '10:00' AS t,
        timestamptz '2026-01-02 03:04:05+00' AS ts, ARRAY[1.5::numeric] AS arr, ARRAY['x', NULL] AS ta,
        '{"a": [1]}'::jsonb AS j, ARRAY['{}'::jsonb] AS ja, 1.5::float8 AS f, 'infinity'::float8 AS fi,
        '1.2.3.4'::inet AS ip, 'ab'::bytea AS b, NULL::numeric AS nothing,
        '12345678-1234-5678-1234-567812345678'::uuid AS u""",
    )
    # the session time zone comes from the URL: libpq options pass through
    [(number, row)] = list(
        PostgresSource(f"{pg_url}?options=-c%20TimeZone%3DUTC", table="leads_v").rows()
    )
    assert number == 1
    assert row == {
        "email": "a@example.com",
        "n": 1.5,
        "nn": "NaN",
        "d": "2026-01-02",
        "t": "10:00:00",
        "ts": "2026-01-02T03:04:05+00:00",
        "arr": [1.5],
        "ta": ["x", None],
        "j": {"a": [1]},
        "ja": [{}],
        "f": 1.5,
        "fi": "inf",
        "ip": "1.2.3.4",
        "b": "\\x6162",
        "nothing": None,
        "u": "12345678-1234-5678-1234-567812345678",
    }
    json.dumps(row, allow_nan=False)


def test_connection_lost_mid_import_is_a_source_error_and_nothing_is_written(
    project: Project, pg_url: str
) -> None:
    _execute(
        pg_url,
        "CREATE TABLE sponsor_leads (id serial PRIMARY KEY, user_email text)",
        "INSERT INTO sponsor_leads (user_email) SELECT 'lead' || g || '@example.com'"
        " FROM generate_series(1, 30000) AS g",
    )
    killed: list[int] = []

    def kill_the_reader(rows: int) -> None:
        # after the first chunk: the server ends the source's connection, as a restart would
        if not killed:
            with psycopg.connect(pg_url, autocommit=True) as admin:
                found = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND query ILIKE '%sponsorcast_leads%'"
                ).fetchall()
            killed.append(len(found))

    store = project.store()
    with pytest.raises(SourceError) as info:
        import_leads(store, PostgresSource(pg_url, table="sponsor_leads"), progress=kill_the_reader)
    store.dispose()
    assert killed == [1]
    assert str(info.value).startswith("Reading table sponsor_leads failed after row ")
    assert "terminating connection due to administrator command" in str(info.value)
    assert _count(project) == 0


def test_library_errors_are_source_errors(pg_url: str) -> None:
    with pytest.raises(SourceError, match=r"^Table 'missing' does not exist in database "):
        PostgresSource(pg_url, table="missing").headers()
    with pytest.raises(BadInput):
        PostgresSource(pg_url)


@pytest.mark.parametrize(
    ("spec", "parts"),
    [
        ("sponsor_leads", [("sponsor_leads", False)]),
        ("crm.Sponsor_Leads", [("crm", False), ("Sponsor_Leads", False)]),
        ('"My Schema"."Odd ""Name"".x"', [("My Schema", True), ('Odd "Name".x', True)]),
        ('public."T"', [("public", False), ("T", True)]),
    ],
)
def test_parse_table_name(spec: str, parts: list[tuple[str, bool]]) -> None:
    assert parse_table_name(spec) == parts


@pytest.mark.parametrize("spec", ["a.b.c", '"open', "a.", ".b", '"a"x'])
def test_parse_table_name_refuses_bad_names(spec: str) -> None:
    with pytest.raises(BadInput, match="--table"):
        parse_table_name(spec)


def test_jsonable_values() -> None:
    assert jsonable(Decimal("12500.00")) == 12500 and isinstance(jsonable(Decimal(3)), int)
    assert jsonable(Decimal("99.50")) == 99.5
    assert jsonable(Decimal("NaN")) == "NaN" and jsonable(float("inf")) == "inf"
    assert jsonable(date(2026, 1, 2)) == "2026-01-02"
    assert jsonable(datetime(2026, 1, 2, 3, 4, tzinfo=UTC)) == "2026-01-02T03:04:00+00:00"
    assert jsonable([Decimal(1), None, {"a": date(2026, 1, 2)}]) == [1, None, {"a": "2026-01-02"}]
    assert jsonable(memoryview(b"\x01\xff")) == "\\x01ff"
    assert jsonable(UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    json.dumps(
        [jsonable(v) for v in (Decimal("1.5"), date(2026, 1, 1), b"x", {1: 2})], allow_nan=False
    )


def test_redact_url() -> None:
    assert redact_url("postgresql://u:p%40ss@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_url("postgresql://h/db?user=u&password=pw&sslmode=require") == (
        "postgresql://h/db?user=u&password=***&sslmode=require"
    )
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_import_into_a_postgres_store_from_the_same_database(
    pg_project: Project, pg_url: str
) -> None:
    _execute(pg_url, PLATFORM_TABLE, PLATFORM_ROWS)
    r = pg_project.run("leads", "import", pg_url, "--table", "sponsor_leads", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["inserted"] == 3
    r = pg_project.run("leads", "import", pg_url, "--table", "sponsor_leads", "--json")
    assert (json.loads(r.stdout)["inserted"], json.loads(r.stdout)["unchanged"]) == (0, 3)
    leads = _leads(pg_project)
    assert [(x["email"], x["tags"], x["fields"]["budget"]) for x in leads] == [
        ("ada@example.com", ["enterprise", "decision_maker"], 12500),
        ("linus@example.org", [], ""),
        ("grace@example.net", ["speaker"], 99.5),
    ]
    r = pg_project.run("leads", "count", "--audience", "hot", "--json")
    assert json.loads(r.stdout) == {"count": 1}
