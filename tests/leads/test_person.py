"""``leads show / export / forget``: one person's data, out and erased, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import zlib

import sqlalchemy as sa

from sponsorcast.store import Store
from sponsorcast.store.tables import batch_t, delivery_t, lead_t, suppression_t
from sponsorcast.transport.base import OutgoingEmail, freeze_emails
from tests.support.pg import both_store_backends  # noqa: F401 - each test on SQLite and PostgreSQL
from tests.support.project import Project
from tests.support.tracking import add_sponsor, event, seed, table_rows, write_jsonl

ADA = "ada@example.com"


def _history(project: Project, store: Store) -> None:
    """Ada is a lead of two sponsors, got two campaigns, bounced once, and is suppressed."""
    add_sponsor(store, "acme")
    (project.path / "leads.csv").write_text(
        "email,name,company,consent\nAda@Example.com,Ada Lovelace,Engines Ltd,booth scan 2026-10-01\n",
        encoding="utf-8",
    )
    assert project.run("leads", "import", "leads.csv", "--sponsor", "acme").exit_code == 0
    seed(store, [ADA, "bob@example.com"])  # campaign 'spring' of the default sponsor
    seed(store, [ADA], campaign="autumn", sponsor="acme")
    with store.write() as conn:
        conn.execute(
            delivery_t.update()
            .where(delivery_t.c.recipient == "bob@example.com")
            .values(last_error="422: to ada@example.com is a duplicate of bob")
        )
        # a batch that keeps its payload to be sent again (its answer was lost)
        ids = conn.execute(sa.select(delivery_t.c.id).order_by(delivery_t.c.id)).scalars().all()
        emails = [
            OutgoingEmail(i, "Us <us@x.com>", to, "Hi", f"<p>Hi {to}</p>", f"Hi {to}")
            for i, to in zip(ids[:2], [ADA, "bob@example.com"], strict=True)
        ]
        conn.execute(
            batch_t.update()
            .where(batch_t.c.campaign_id == "spring")
            .values(status="unknown", payload=freeze_emails(emails))
        )
    lines = [
        event(
            "email.bounced",
            "spring-msg-0",
            to=["Ada@Example.com"],
            bounce={"message": "550 5.1.1 <ada@example.com>: no such user"},
        ),
        event("email.delivered", "autumn-msg-0", to=[ADA]),
    ]
    write_jsonl(project.path / "events.jsonl", lines)
    assert project.run("events", "import", "events.jsonl").exit_code == 0
    assert project.run("suppress", "add", ADA, "--sponsor", "acme").exit_code == 0


def _every_cell(store: Store) -> list[tuple[str, str, str]]:
    """(table, column, text) of every cell of every table, blobs decompressed."""
    cells = []
    with store.read() as conn:
        tables = sa.inspect(conn).get_table_names()
        for name in tables:
            table = sa.Table(name, sa.MetaData(), autoload_with=conn)
            for row in conn.execute(sa.select(table)).mappings():
                for column, value in row.items():
                    if isinstance(value, (bytes, memoryview)):
                        value = zlib.decompress(bytes(value)).decode()
                    elif not isinstance(value, str):
                        value = json.dumps(value, default=str)
                    cells.append((name, column, value))
    return cells


def test_show_and_export_tell_everything_held_about_a_person(
    project: Project, store: Store
) -> None:
    _history(project, store)
    exported = project.run("leads", "export", "ADA@example.com")
    assert exported.exit_code == 0, exported.stderr
    record = json.loads(exported.stdout)
    assert record["email"] == ADA and record["erased"] is None
    assert [
        (lead["sponsor_id"], lead["name"], lead["consent"], lead["source"], lead["source_row"])
        for lead in record["leads"]
    ] == [
        ("acme", "Ada Lovelace", "booth scan 2026-10-01", "leads.csv", 2),
        ("default", None, None, None, None),
    ]
    assert [(d["campaign_id"], d["sponsor_id"], d["status"]) for d in record["deliveries"]] == [
        ("spring", "default", "bounced"),
        ("autumn", "acme", "delivered"),
    ]
    assert sorted(e["type"] for e in record["events"]) == ["email.bounced", "email.delivered"]
    assert [(s["sponsor"], s["reason"]) for s in record["suppressions"]] == [
        ("*", "bounced"),
        ("acme", "manual"),
    ]
    assert json.loads(project.run("leads", "show", ADA, "--json").stdout) == record
    to_file = project.run("leads", "export", ADA, "--output", "ada.json")
    assert to_file.stdout == f"Wrote everything held about {ADA} to ada.json.\n"
    assert (project.path / "ada.json").read_text(encoding="utf-8") == exported.stdout
    shown = project.run("leads", "show", ADA)
    assert shown.exit_code == 0
    assert shown.stdout.startswith(f"Everything held about {ADA}:\n")
    for words in (
        "Leads (2):",
        "booth scan 2026-10-01",
        "leads.csv, row 2",
        "Deliveries (2)",
        "Events (2)",
        "Suppressions (2)",
    ):
        assert words in shown.stdout, words
    nobody = project.run("leads", "show", "nobody@example.com")
    assert (nobody.exit_code, nobody.stdout) == (2, "")
    assert nobody.stderr.startswith("Error: The store holds nothing about nobody@example.com.")


def test_forget_leaves_no_trace_and_a_reimport_is_skipped(project: Project, store: Store) -> None:
    _history(project, store)
    stats_before = json.loads(project.run("stats", "spring", "--json").stdout)
    assert any(ADA in text.lower() for _t, _c, text in _every_cell(store))
    refused = project.run("leads", "forget", ADA)  # not on a terminal, no --yes
    assert (refused.exit_code, refused.stdout) == (2, "")
    assert refused.stderr.startswith("Error: Refusing to erase without --yes")

    r = project.run("leads", "forget", "Ada@Example.com", "--yes")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == (
        f"Erased {ADA}: 2 lead rows emptied, 2 deliveries anonymised, the address cut out of "
        "4 other cells; 2 suppression entries replaced by a keyed hash that keeps them from "
        "being imported or emailed again.\n"
    )
    # the cells: both bounce texts in delivery.last_error, and the two event payloads
    traces = [(t, c) for t, c, text in _every_cell(store) if ADA in text.lower()]
    assert traces == []
    # the counts still add up: the campaign's numbers are those it had
    stats_after = json.loads(project.run("stats", "spring", "--json").stdout)
    assert stats_after == stats_before and stats_after["bounced"] == 1
    # bob's email stays in the kept payload; Ada's is gone from it
    with store.read() as conn:
        blob = conn.execute(
            sa.select(batch_t.c.payload).where(batch_t.c.campaign_id == "spring")
        ).scalar_one()
    assert "bob@example.com" in zlib.decompress(bytes(blob)).decode()

    again = project.run("leads", "import", "leads.csv", "--sponsor", "acme", "--json")
    assert again.exit_code == 0, again.stderr
    report = json.loads(again.stdout)
    assert (report["inserted"], report["updated"], report["erased"]) == (0, 0, 1)
    listed = json.loads(project.run("leads", "list", "--sponsor", "acme", "--json").stdout)
    assert listed == []  # the tombstone is nobody's lead
    assert project.run("leads", "count", "--sponsor", "acme").stdout.startswith("0 leads")
    shown = json.loads(project.run("leads", "show", ADA, "--json").stdout)
    assert shown["erased"] is not None and shown["leads"] == [] and shown["suppressions"] == []
    tokens = [r["email"] for r in table_rows(store, suppression_t)]
    assert len(tokens) == 1 and tokens[0].startswith("erased:")
    with store.read() as conn:
        tombstones = conn.execute(
            sa.select(lead_t.c.email, lead_t.c.name, lead_t.c.consent, lead_t.c.source).where(
                lead_t.c.email.like("erased:%")
            )
        ).all()
    assert [tuple(t[1:]) for t in tombstones] == [(None, None, None), (None, None, None)]
    assert {t[0] for t in tombstones} == set(tokens)


def test_forget_refuses_bad_input_and_changes_nothing(project: Project, store: Store) -> None:
    _history(project, store)
    before = _every_cell(store)
    for args in (("leads", "forget", "not-an-address", "--yes"), ("leads", "show", "@")):
        r = project.run(*args)
        assert (r.exit_code, r.stdout) == (2, ""), args
        assert r.stderr.startswith("Error: ") and "is not a valid email address" in r.stderr
    exported = project.run("leads", "export", "@")  # machine-readable: the error is JSON too
    assert exported.exit_code == 2
    assert json.loads(exported.stdout)["error"]["message"] == (
        "'@' is not a valid email address: There must be something before the @-sign."
    )
    assert _every_cell(store) == before


def test_a_pending_delivery_of_an_erased_person_is_never_sent(project: Project) -> None:
    (project.path / "leads.csv").write_text(
        "email,name\nbob@example.com,Bob\nada@example.com,Ada\n", encoding="utf-8"
    )
    assert project.run("leads", "import", "leads.csv").exit_code == 0
    (project.path / "c.md").write_text(
        "---\nsubject: Hi\n---\nHello {{ name }}\n", encoding="utf-8"
    )
    first = project.run("send", "c.md", "--yes", "--limit", "1")  # Bob; Ada stays pending
    assert first.exit_code == 0, first.stderr
    assert project.run("leads", "forget", ADA, "--yes").exit_code == 0
    rest = project.run("send", "c.md", "--yes")
    assert rest.exit_code == 0, rest.stderr
    outbox = sorted((project.path / "outbox").rglob("*.eml"))
    assert len(outbox) == 1 and "bob@example.com" in outbox[0].read_text(encoding="utf-8")
    stats = json.loads(project.run("stats", "c", "--json").stdout)
    assert (stats["total_recipients"], stats["sent"], stats["suppressed"], stats["pending"]) == (
        2,
        1,
        1,
        0,
    )
