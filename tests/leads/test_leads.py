"""Leads: CSV import (encodings, delimiters, loose headers, --map, merging, upsert, atomicity,
--rejects, --dry-run), listing and counting by audience, and flat memory while streaming."""

from __future__ import annotations

import csv
import json
import shutil
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sponsorcast.audience import audience_from_options, count_recipients, parse_audience
from sponsorcast.errors import LeadsFileError, NotFound
from sponsorcast.leads import (
    CsvSource,
    import_leads,
    list_leads,
    normalise_email,
    read_csv_recipients,
    split_name,
)
from sponsorcast.store import Store
from sponsorcast.store.tables import lead_t
from tests.support.pg import both_store_backends  # noqa: F401 - every project test runs on SQLite and PostgreSQL
from tests.support.project import DATA, Project

FIXED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def leads(store: Store) -> dict[str, dict[str, Any]]:
    """Every stored lead by email."""
    with store.read() as conn:
        rows = conn.execute(sa.select(lead_t).order_by(lead_t.c.id)).mappings().all()
    return {r["email"]: dict(r) for r in rows}


def count(store: Store) -> int:
    with store.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(lead_t)).scalar_one())


def snapshot(store: Store) -> list[tuple[Any, ...]]:
    """The whole lead table, to prove that nothing changed."""
    with store.read() as conn:
        return [tuple(r) for r in conn.execute(sa.select(lead_t).order_by(lead_t.c.id))]


def copy(project: Project, name: str) -> str:
    shutil.copy(DATA / name, project.path / name)
    return name


# --------------------------------------------------------------------------- Excel files


@pytest.mark.parametrize("name", ["leads_excel_utf8.csv", "leads_excel_cp1252.csv"])
def test_excel_csv_imports_with_accents(project: Project, store: Store, name: str) -> None:
    """BOM or Windows-1252, semicolons, CRLF, a blank Excel row, quotes: all stored right."""
    result = project.run("leads", "import", copy(project, name))
    assert result.exit_code == 0, result.stderr
    got = leads(store)
    assert list(got) == ["zoe.muller@example.com", "renee@example.fr", "sean@example.ie"]
    zoe = got["zoe.muller@example.com"]
    assert (zoe["name"], zoe["first_name"], zoe["last_name"]) == ("Zoë Müller", "Zoë", "Müller")
    assert (zoe["company"], zoe["title"]) == ("Müller GmbH", "CTO")
    assert (zoe["intent_level"], zoe["intent_score"], zoe["follow_up_status"]) == ("hot", 90, "new")
    assert zoe["tags"] == ",enterprise,decision_maker,"
    assert zoe["fields"] == {"Booth": "B12", "Notes": "Met at the booth"}
    assert zoe["source"] == name and zoe["sponsor_id"] == "default"
    renee = got["renee@example.fr"]
    assert (renee["name"], renee["first_name"], renee["last_name"]) == (
        "Renée Dubois",
        "Renée",
        "Dubois",
    )
    assert renee["company"] == "Société Générale"
    assert (renee["intent_level"], renee["intent_score"], renee["follow_up_status"]) == (
        "warm",
        55,
        "contacted",
    )
    assert renee["tags"] == ",research,emea,"
    assert renee["fields"] == {"Booth": "B7", "Notes": 'Prefers "French"; call back'}
    sean = got["sean@example.ie"]
    assert (sean["name"], sean["first_name"], sean["last_name"]) == (
        "Seán O’Brien",
        "Seán",
        "O’Brien",
    )
    assert (sean["company"], sean["intent_level"], sean["intent_score"]) == (None, "cold", None)
    assert (sean["follow_up_status"], sean["tags"]) == ("new", "")
    assert sean["fields"] == {"Booth": "", "Notes": ""}


def test_excel_output_whole(project: Project) -> None:
    result = project.run("leads", "import", copy(project, "leads_excel_utf8.csv"))
    assert result.stdout == (
        "Imported leads_excel_utf8.csv for sponsor 'default': 3 rows read.\n"
        "Columns: E-mail → email, Full Name → name, Organisation → company, Job Title → title, "
        "Intent → intent_level, Score → intent_score, Status → follow_up_status, Labels → tags; "
        "kept in fields: Booth, Notes.\n"
        "┏━━━━━━━━━━┳━━━━━━━━━┳━━━━━━━━━━━┳━━━━━━━━━━┓\n"
        "┃ inserted ┃ updated ┃ unchanged ┃ rejected ┃\n"
        "┡━━━━━━━━━━╇━━━━━━━━━╇━━━━━━━━━━━╇━━━━━━━━━━┩\n"
        "│ 3        │ 0       │ 0         │ 0        │\n"
        "└──────────┴─────────┴───────────┴──────────┘\n"
    )
    assert result.stderr == ""


def test_encoding_option_and_source_properties() -> None:
    src = CsvSource(DATA / "leads_excel_cp1252.csv")
    assert src.headers()[:3] == ["E-mail", "Full Name", "Organisation"]
    assert (src.encoding, src.delimiter) == ("cp1252", ";")
    rows = list(src.rows())
    assert [n for n, _ in rows] == [2, 3, 5]  # the blank Excel row 4 is skipped, still counted
    named = CsvSource(DATA / "leads_excel_cp1252.csv", encoding="windows-1252")
    assert dict(list(named.rows())[2][1])["Full Name"] == "Seán O’Brien"
    utf8 = CsvSource(DATA / "leads_excel_utf8.csv", encoding="utf-8")
    assert utf8.headers()[0] == "E-mail"  # the BOM is not part of the first header


def test_excel_unicode_text_and_sep_line(project: Project, store: Store) -> None:
    """Excel's "Unicode Text" (UTF-16 with BOM, tabs) and a leading "sep=;" line."""
    (project.path / "unicode.txt").write_bytes(
        "Email\tName\r\nzoe@example.com\tZoë Müller\r\n".encode("utf-16")
    )
    (project.path / "sep.csv").write_text(
        "sep=;\nEmail;Name\nrenee@example.fr;Renée Dubois\nbad;X\n", encoding="utf-8"
    )
    assert project.run("leads", "import", "unicode.txt").exit_code == 0
    result = project.run("leads", "import", "sep.csv")
    assert result.exit_code == 2
    assert "sep.csv: row 4: 'bad' is not a valid email address" in result.stderr  # "sep=" is row 1
    assert project.run("leads", "import", "sep.csv", "--rejects", "r.csv").exit_code == 0
    got = leads(store)
    assert (got["zoe@example.com"]["first_name"], got["zoe@example.com"]["last_name"]) == (
        "Zoë",
        "Müller",
    )
    assert got["renee@example.fr"]["name"] == "Renée Dubois"
    assert (project.path / "r.csv").read_text(encoding="utf-8") == (
        "Email;Name;reason\nbad;X;'bad' is not a valid email address (An email address must have an @-sign.)\n"
    )


def test_wrong_encoding_named_is_a_clear_error(project: Project, store: Store) -> None:
    result = project.run(
        "leads", "import", copy(project, "leads_excel_cp1252.csv"), "--encoding", "utf-8"
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: leads_excel_cp1252.csv: cannot be decoded as utf-8 at row 2.\n"
        "Hint: Name the file's encoding with --encoding (e.g. cp1252, latin-1, utf-8), or leave it "
        "out to have it detected.\n"
    )
    (project.path / "late.csv").write_bytes(
        "Email,Name\nada@example.com,Ada\nrenee@example.fr,Ren\u00e9e\n".encode("cp1252")
    )
    result = project.run("leads", "import", "late.csv", "--encoding", "utf8")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: late.csv: cannot be decoded as utf-8 at row 3.\n")
    assert count(store) == 0
    result = project.run("leads", "import", "leads_excel_cp1252.csv", "--encoding", "klingon")
    assert result.exit_code == 2
    assert "Unknown encoding 'klingon'" in result.stderr


# --------------------------------------------------------------------------- headers


def test_loose_headers_tab_delimited(project: Project, store: Store) -> None:
    result = project.run("leads", "import", copy(project, "leads_loose_tab.csv"))
    assert result.exit_code == 0, result.stderr
    got = leads(store)
    ada, grace = got["ada@example.com"], got["grace@example.com"]
    assert (ada["name"], ada["company"], ada["title"]) == (
        "Ada Lovelace",
        "Analytical Engines",
        "CTO",
    )
    assert (ada["intent_level"], ada["intent_score"], ada["event"]) == ("hot", 92, "devcon-2026")
    assert ada["consent"] == "opt-in at booth"
    assert ada["fields"] == {"Work Phone": "+44 20 1234"}
    assert (grace["first_name"], grace["last_name"]) == ("Grace", "Hopper")  # "Hopper, Grace"
    assert (grace["intent_level"], grace["intent_score"], grace["consent"]) == ("warm", 61, None)


def test_missing_email_column_names_headers(project: Project, store: Store) -> None:
    result = project.run("leads", "import", copy(project, "leads_no_email.csv"))
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: leads_no_email.csv: no email column (headers found: Name, Company, Phone).\n"
        'Hint: Name it with --map, e.g. --map "Work Email=email".\n'
    )
    assert count(store) == 0


def test_map_option(project: Project, store: Store) -> None:
    name = copy(project, "leads_mapped.csv")
    without = project.run("leads", "import", name)
    assert without.exit_code == 2
    assert (
        "no email column (headers found: Work Email, First Name, Surname, Organization, Tags, Email Opt-In)"
        in without.stderr
    )
    assert count(store) == 0
    result = project.run(
        "leads", "import", name, "--map", "Work Email=email", "--map", "email opt-in=consent"
    )
    assert result.exit_code == 0, result.stderr
    got = leads(store)
    linus = got["linus@example.com"]
    assert (linus["name"], linus["first_name"], linus["last_name"]) == (
        "Linus Torvalds",
        "Linus",
        "Torvalds",
    )
    assert (linus["company"], linus["tags"], linus["consent"]) == (
        "Linux Foundation",
        ",kernel,oss,",
        "yes",
    )
    assert linus["fields"] == {}
    assert got["margaret@example.com"]["name"] == "Margaret"


def test_bad_map_options(project: Project, store: Store) -> None:
    name = copy(project, "leads_mapped.csv")
    r = project.run("leads", "import", name, "--map", "Work Email")
    assert (
        r.exit_code == 2 and "--map 'Work Email' must look like \"Column Name=email\"." in r.stderr
    )
    r = project.run("leads", "import", name, "--map", "Work Email=phone")
    assert r.exit_code == 2 and "'phone' is not a lead column" in r.stderr
    r = project.run("leads", "import", name, "--map", "Cell=email")
    assert (
        r.exit_code == 2
        and "--map 'Cell=email': no column 'Cell' (headers found: Work Email," in r.stderr
    )
    assert count(store) == 0


def test_two_columns_for_one_lead_column(project: Project, store: Store) -> None:
    (project.path / "two.csv").write_text(
        "Email,E-mail,Name\na@example.com,b@example.com,A\n", encoding="utf-8"
    )
    r = project.run("leads", "import", "two.csv")
    assert r.exit_code == 2
    assert "the columns 'Email' and 'E-mail' both look like email." in r.stderr
    assert count(store) == 0
    r = project.run("leads", "import", "two.csv", "--map", "E-mail=email")
    assert r.exit_code == 0
    assert leads(store)["b@example.com"]["fields"] == {"Email": "a@example.com"}


# --------------------------------------------------------------------------- rows


def test_duplicates_in_file_are_merged(project: Project, store: Store) -> None:
    result = project.run("leads", "import", copy(project, "leads_dupes.csv"))
    assert result.exit_code == 0, result.stderr
    assert "│ 2        │ 0       │ 0         │ 0        │" in result.stdout
    assert "1 repeated row merged into an earlier row with the same email." in result.stdout
    alan = leads(store)["alan@example.com"]
    assert (alan["name"], alan["company"], alan["intent_level"]) == (
        "Alan Turing",
        "Bletchley Labs",
        "warm",
    )
    assert alan["tags"] == ",research,crypto,"
    assert alan["fields"] == {"Booth": "B1"}  # a later empty cell does not erase a value
    assert count(store) == 2


def test_second_import_unchanged_then_updated(project: Project, store: Store) -> None:
    name = copy(project, "leads_audience.csv")
    assert project.run("leads", "import", name).exit_code == 0
    again = project.run("leads", "import", name, "--json")
    report = json.loads(again.stdout)
    assert {k: report[k] for k in ("inserted", "updated", "unchanged", "rejected")} == {
        "inserted": 0,
        "updated": 0,
        "unchanged": 6,
        "rejected": 0,
    }
    before = leads(store)
    # one changed value, one new lead, and no status column: statuses are kept, not reset
    (project.path / "more.csv").write_text(
        "Email,Intent Level\nH2@example.com,warm\nnew@example.com,cold\nw1@example.com,warm\n",
        encoding="utf-8",
    )
    report = json.loads(project.run("leads", "import", "more.csv", "--json").stdout)
    assert (report["inserted"], report["updated"], report["unchanged"]) == (1, 1, 1)
    after = leads(store)
    assert after["h2@example.com"]["intent_level"] == "warm"
    assert after["h2@example.com"]["follow_up_status"] == "contacted"
    assert after["h2@example.com"]["source"] == "more.csv"
    assert after["h2@example.com"]["updated_at"] > before["h2@example.com"]["updated_at"]
    assert after["w1@example.com"] == before["w1@example.com"]  # unchanged: not even touched
    assert after["new@example.com"]["follow_up_status"] == "new"


def test_repeats_in_different_chunks_are_counted_once(
    project: Project, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An email repeated far apart (another chunk) with other values: one lead, counted once,
    and a re-import of the same file is all unchanged."""
    import sponsorcast.leads.upsert as leads_module

    monkeypatch.setattr(leads_module, "CHUNK_ROWS", 2)
    (project.path / "far.csv").write_text(
        "Email,Title,Tags\na@example.com,T1,x\nb@example.com,,\nc@example.com,,\nA@example.com,T2,y\n",
        encoding="utf-8",
    )
    first = json.loads(project.run("leads", "import", "far.csv", "--json").stdout)
    assert (first["inserted"], first["updated"], first["unchanged"], first["merged"]) == (
        3,
        0,
        0,
        1,
    )
    assert (leads(store)["a@example.com"]["title"], leads(store)["a@example.com"]["tags"]) == (
        "T2",
        ",x,y,",
    )
    again = json.loads(project.run("leads", "import", "far.csv", "--json").stdout)
    assert (again["inserted"], again["updated"], again["unchanged"], again["merged"]) == (
        0,
        0,
        3,
        1,
    )
    assert leads(store)["a@example.com"]["title"] == "T2"
    (project.path / "late-change.csv").write_text(
        "Email,Title\na@example.com,T2\nb@example.com,\nc@example.com,\na@example.com,T9\n",
        encoding="utf-8",
    )
    late = json.loads(project.run("leads", "import", "late-change.csv", "--json").stdout)
    assert (late["updated"], late["unchanged"], late["merged"]) == (1, 2, 1)
    assert leads(store)["a@example.com"]["title"] == "T9"


def test_extra_tags_and_tags_in_one_cell(project: Project, store: Store) -> None:
    name = copy(project, "leads_audience.csv")
    result = project.run("leads", "import", name, "--tag", "vip", "--tag", "q4; emea")
    assert result.exit_code == 0
    got = leads(store)
    assert got["h1@example.com"]["tags"] == ",enterprise,decision_maker,vip,q4,emea,"
    assert got["c1@example.com"]["tags"] == ",vip,q4,emea,"
    # a later import with another --tag adds it, never removes the earlier ones
    report = json.loads(project.run("leads", "import", name, "--tag", "2027", "--json").stdout)
    assert report["updated"] == 6
    assert leads(store)["c1@example.com"]["tags"] == ",vip,q4,emea,2027,"


def test_dry_run_writes_nothing_and_reports_the_same(project: Project, store: Store) -> None:
    name = copy(project, "leads_dupes.csv")
    dry = project.run("leads", "import", name, "--dry-run")
    assert dry.exit_code == 0
    assert "Dry run of leads_dupes.csv for sponsor 'default': 3 rows read." in dry.stdout
    assert "│ 2        │ 0       │ 0         │ 0        │" in dry.stdout
    assert "Dry run: nothing was written to the store (and no rejects file)." in dry.stdout
    assert count(store) == 0
    real = json.loads(project.run("leads", "import", name, "--json").stdout)
    assert real["inserted"] == 2
    state = snapshot(store)
    dry2 = json.loads(
        project.run("leads", "import", name, "--dry-run", "--json", "--tag", "x").stdout
    )
    assert (dry2["dry_run"], dry2["updated"], dry2["inserted"]) == (True, 2, 0)
    assert snapshot(store) == state


BROKEN_ERROR = (
    "Error: leads_broken.csv: row 4: 'bob@' is not a valid email address (There must be something "
    "after the @-sign.) (2 more bad rows: 6, 7); nothing was imported.\n"
    "Hint: Fix the file, or import with --rejects FILE to import the valid rows and write the bad "
    "ones to FILE.\n"
)


def test_broken_row_without_rejects_changes_nothing(project: Project, store: Store) -> None:
    assert project.run("leads", "import", copy(project, "leads_audience.csv")).exit_code == 0
    (project.path / "leads_broken.csv").write_text(
        (DATA / "leads_broken.csv").read_text(encoding="utf-8") + "h1@example.com,Changed,cold,1\n",
        encoding="utf-8",
    )
    before, n = snapshot(store), count(store)
    result = project.run("leads", "import", "leads_broken.csv")
    assert result.exit_code == 2
    assert result.stderr == BROKEN_ERROR
    assert result.stdout == ""
    assert count(store) == n == 6
    assert snapshot(store) == before


def test_broken_rows_with_rejects_file(project: Project, store: Store) -> None:
    name = copy(project, "leads_broken.csv")
    result = project.run("leads", "import", name, "--rejects", "bad.csv")
    assert result.exit_code == 0, result.stderr
    assert "│ 3        │ 0       │ 0         │ 3        │" in result.stdout
    assert (
        "│ 4   │ 'bob@' is not a valid email address (There must be something after the @-sign.)"
        in result.stdout
    )
    assert "Rejected rows written to bad.csv with a 'reason' column." in result.stdout
    assert sorted(leads(store)) == ["ok1@example.com", "ok2@example.com", "ok3@example.com"]
    assert (project.path / "bad.csv").read_bytes().decode("utf-8") == (
        "Email,Name,Intent Level,Score,reason\r\n"
        "bob@,Bob,cold,30,'bob@' is not a valid email address (There must be something after the @-sign.)\r\n"
        "ok4@example.com,Ok Four,lukewarm,40,\"intent level 'lukewarm' must be hot, warm, cold or empty.\"\r\n"
        "ok5@example.com,Ok Five,cold,150,intent score '150' must be a number from 0 to 100.\r\n"
    )


def test_other_bad_rows(project: Project, store: Store) -> None:
    (project.path / "odd.csv").write_text(
        "Email,Name,Sponsor ID,Score\n"
        "a@example.com,A,default,7\n"
        "b@example.com,B,acme,\n"
        "c@example.com,C,,many\n"
        ",D,,\n"
        "e@example.com,E,,1,surplus\n"
        "Zoë <z@example.com>,Z,,\n",
        encoding="utf-8",
    )
    result = project.run("leads", "import", "odd.csv", "--rejects", "odd-bad.csv", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["inserted"] == 1
    assert report["rejects"] == [
        {
            "row": 3,
            "reason": "belongs to sponsor 'acme', not 'default' (import it with --sponsor acme).",
        },
        {"row": 4, "reason": "intent score 'many' must be a number from 0 to 100."},
        {"row": 5, "reason": "has no email address."},
        {
            "row": 6,
            "reason": "has 1 more cell than the header ('surplus'…); is a delimiter inside an unquoted value?",
        },
        {
            "row": 7,
            "reason": "'Zoë <z@example.com>' is not a valid email address (The display name "
            "contains invalid characters when not quoted: 'ë'.)",
        },
    ]
    rejected = list(csv.reader((project.path / "odd-bad.csv").open(encoding="utf-8")))
    reason = report["rejects"][3]["reason"] + " Extra cells: surplus"
    assert rejected[4] == ["e@example.com", "E", "", "1", reason]


def test_unreadable_files(project: Project, store: Store) -> None:
    r = project.run("leads", "import", "missing.csv")
    assert r.exit_code == 2
    assert r.stderr == "Error: missing.csv: cannot be read (No such file or directory).\n"
    (project.path / "leads.xlsx").write_bytes(b"PK\x03\x04\x00\x00binary\x00stuff")
    r = project.run("leads", "import", "leads.xlsx")
    assert r.exit_code == 2
    assert "leads.xlsx: is not a CSV text file (it contains NUL bytes)." in r.stderr
    (project.path / "empty.csv").write_text("", encoding="utf-8")
    r = project.run("leads", "import", "empty.csv")
    assert r.exit_code == 2 and "empty.csv: is empty: no header row found." in r.stderr
    r = project.run("leads", "import", "empty.csv", "--rejects", "./empty.csv")
    assert (
        r.exit_code == 2
        and "--rejects empty.csv is the file being imported; name another file." in r.stderr
    )
    assert (project.path / "empty.csv").exists()
    r = project.run("leads", "import", ".")
    assert r.exit_code == 2 and "cannot be read" in r.stderr
    assert count(store) == 0


def test_unknown_sponsor_and_postgres_options(project: Project, store: Store) -> None:
    name = copy(project, "leads_dupes.csv")
    r = project.run("leads", "import", name, "--sponsor", "nope")
    assert r.exit_code == 2 and "Unknown sponsor 'nope' (known: default)." in r.stderr
    r = project.run("leads", "import", name, "--table", "leads")
    assert r.exit_code == 2
    assert (
        "--table and --query are for PostgreSQL sources: SOURCE must be a postgresql:// URL"
        in r.stderr
    )
    r = project.run("leads", "list", "--sponsor", "nope")
    assert r.exit_code == 2 and "Unknown sponsor 'nope'" in r.stderr
    assert count(store) == 0


def test_library_import_report_and_errors(store: Store, tmp_path: Path) -> None:
    src = CsvSource(DATA / "leads_broken.csv")
    with pytest.raises(LeadsFileError) as err:
        import_leads(store, src)
    assert err.value.reason.startswith("row 4: 'bob@' is not a valid email address")
    with pytest.raises(NotFound):
        import_leads(store, src, sponsor_id="ghost")
    report = import_leads(
        store,
        src,
        rejects_path=tmp_path / "rejects.csv",
        sponsor_id="default",
        mapping={"Name": "name"},
    )
    assert (report.inserted, report.rejected, report.rows) == (3, 3, 6)
    assert [r for r, _ in report.rejects] == [4, 6, 7]


# --------------------------------------------------------------------------- email and names


@pytest.mark.parametrize(
    "raw",
    [
        "ada@example.com",
        " Ada.Lovelace@Example.COM ",
        "a+tag@sub.example.co.uk",
        "x@localhost",
        "x@example",
        "a..b@example.com",
        ".a@example.com",
        "a.@example.com",
        "a@-example.com",
        "a@example-.com",
        "a@exa_mple.com",
        "a@123.com",
        "a@1.2.3.4",
        "a@[1.2.3.4]",
        '"q"@example.com',
        "zoë@example.com",
        "a@bücher.de",
        "a@xn--bcher-kva.de",
        "a@b@c.com",
        "a b@example.com",
        "Ada <a@example.com>",
        "a@example.com.",
        "a@.example.com",
        "a@ex..ample.com",
        "a@" + "x" * 64 + ".com",
        "a" * 65 + "@example.com",
        "a" * 64 + "@" + "b" * 60 + "." + "c" * 60 + "." + "d" * 60 + ".com",
        "a@example.test",
        "a@example.invalid",
        "a@example.local",
        "a@example.onion",
        "postmaster@EXAMPLE.com",
        "a@example.c",
        "a@example.123",
        "a@ex%ample.com",
        "user/name=x@example.com",
        "!#$%&'*+-/=?^_`{|}~@example.org",
        "a\u0301@example.com",
        "a@e\u0301xample.com",
        "a@\uff45xample.com",
        "a\t@example.com",
        "a" * 64 + "@" + ".".join(["ü" * 20] * 4) + ".de",
        "a" * 64 + "@" + ".".join(["ü" * 25] * 4) + ".de",
        # KELVIN SIGN (3 bytes) normalises to "k" (1 byte): only the original form is too long
        "a" * 64 + "@" + ".".join(["\u212a" * 20] * 3) + ".de",
        "a" * 64 + "@" + ".".join(["\u212a" * 25] * 3) + ".de",
    ],
)
def test_fast_email_check_agrees_with_email_validator(raw: str) -> None:
    from email_validator import EmailNotValidError, validate_email

    try:
        expected: str | None = validate_email(
            raw.strip(), check_deliverability=False
        ).normalized.lower()
        reason = None
    except EmailNotValidError as exc:
        expected, reason = None, str(exc)
    for _ in range(2):  # the second call takes the cached-domain path
        if expected is None:
            with pytest.raises(ValueError) as err:
                normalise_email(raw)
            assert str(err.value) == reason
        else:
            assert normalise_email(raw) == expected


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"Booth": "B12", "Notes": ""},
        {"q": 'say "hi"'},
        {"b": "back\\slash"},
        {"Zoë": "x"},
        {"x": "Müller"},
        {"tab": "a\tb"},
        {"del": "\x7f"},
        {"n": 1, "f": 1.5, "t": True, "z": None},
        {"l": ["a", "b"]},
        {"~": "[{}]!#"},
    ],
)
def test_fields_json_is_json_dumps(fields: dict[str, Any]) -> None:
    from sponsorcast.leads import fields_json

    assert fields_json(fields) == json.dumps(fields)


def test_fast_email_check_agrees_on_random_addresses() -> None:
    """4,000 random addresses, mostly plausible, some with a hostile character, label or
    length: the fast path gives email-validator's verdict, value and message."""
    import random

    from email_validator import EmailNotValidError, validate_email

    rnd = random.Random(20261125)
    hostile = [
        "..",
        " ",
        '"',
        "\\",
        "(",
        "<",
        "@",
        "é",
        "\u0301",
        "\u212a",
        "\uff45",
        "\t",
        "-",
        "_",
        "",
    ]

    def word(chars: str, n: int) -> str:
        return "".join(rnd.choice(chars) for _ in range(n))

    def spoil(text: str) -> str:
        if rnd.random() < 0.25:
            i = rnd.randrange(len(text) + 1)
            return text[:i] + rnd.choice(hostile) + text[i:]
        return text

    valid = 0
    for _ in range(4_000):
        local = ".".join(
            word("abcXYZ09+-_!#'~=", rnd.choice([1, 3, 8, 30])) for _ in range(rnd.choice([1, 2]))
        )
        labels = [
            word("abcxyz09-\u00fc", rnd.choice([1, 4, 12, 63, 64]))
            for _ in range(rnd.choice([1, 2, 3, 4]))
        ]
        tld = rnd.choice(
            ["com", "de", "c0m", "123", "x", "test", "local", "xn--bcher-kva", "BÜCHER"]
        )
        raw = spoil(local) + "@" + spoil(".".join([*labels, tld]))
        if rnd.random() < 0.1:
            raw = "  " + raw.upper() + " "
        try:
            expected = validate_email(raw.strip(), check_deliverability=False).normalized.lower()
            valid += 1
        except EmailNotValidError as exc:
            expected = "error: " + str(exc)
        try:
            got = normalise_email(raw)
        except ValueError as exc:
            got = "error: " + str(exc)
        assert got == expected, raw
    assert valid > 400  # the generator does exercise the valid (fast) path (460 with this seed)


def test_split_name() -> None:
    assert split_name("Ada Lovelace") == ("Ada", "Lovelace")
    assert split_name("Ada King Lovelace") == ("Ada", "King Lovelace")
    assert split_name("Lovelace, Ada") == ("Ada", "Lovelace")
    assert split_name("Linus") == ("Linus", None)


# --------------------------------------------------------------------------- render --check CSV


def test_read_csv_recipients() -> None:
    rows = list(read_csv_recipients(DATA / "leads_excel_cp1252.csv"))
    assert [r["email"] for r in rows] == [
        "zoe.muller@example.com",
        "renee@example.fr",
        "sean@example.ie",
    ]
    assert rows[0] == {
        "id": None,
        "sponsor_id": None,
        "email": "zoe.muller@example.com",
        "name": "Zoë Müller",
        "first_name": "Zoë",
        "last_name": "Müller",
        "company": "Müller GmbH",
        "title": "CTO",
        "intent_level": "hot",
        "intent_score": 90,
        "follow_up_status": "new",
        "tags": ["enterprise", "decision_maker"],
        "event": None,
        "fields": {"Booth": "B12", "Notes": "Met at the booth"},
    }
    assert rows[2]["follow_up_status"] == "new" and rows[2]["company"] is None
    with pytest.raises(LeadsFileError) as err:
        list(read_csv_recipients(DATA / "leads_broken.csv"))
    assert str(err.value).endswith(
        "leads_broken.csv: row 4: 'bob@' is not a valid email address "
        "(There must be something after the @-sign.)"
    )
    mapped = list(read_csv_recipients(DATA / "leads_mapped.csv", mapping={"Work Email": "email"}))
    assert mapped[0]["tags"] == ["kernel", "oss"]


# --------------------------------------------------------------------------- list and count


@pytest.fixture
def audience_project(project: Project) -> Iterator[Project]:
    """The audience fixture imported, with fixed timestamps so outputs compare whole."""
    assert project.run("leads", "import", copy(project, "leads_audience.csv")).exit_code == 0
    s = project.store()
    with s.write() as conn:
        conn.execute(lead_t.update().values(created_at=FIXED, updated_at=FIXED))
    s.dispose()
    yield project


@pytest.mark.parametrize(
    ("args", "emails"),
    [
        ([], ["h1", "h2", "w1", "w2", "c1", "n1"]),
        (["--audience", "all"], ["h1", "h2", "w1", "w2", "c1", "n1"]),
        (["--audience", "hot"], ["h1", "h2"]),
        (["--audience", "warm"], ["w1", "w2"]),
        (["--audience", "cold"], ["c1"]),
        (["--audience", "new"], ["h1", "w1", "c1", "n1"]),
        (["--audience", "contacted"], ["h2", "w2"]),
        (["--filter", "intent_score_min=50"], ["h1", "h2", "w1"]),
        (["--audience", "custom", "--filter", "intent_score_max=40"], ["w2", "c1"]),
        (["--filter", "intent_score_min=50", "--filter", "intent_score_max=80"], ["h2", "w1"]),
        (["--filter", "tags=enterprise"], ["h1", "h2", "w2"]),
        (["--filter", "tags=enterprise,decision_maker"], ["h1"]),
        (["--filter", "tags_any=research,decision_maker"], ["h1", "w1", "w2", "n1"]),
        (["--filter", "event=summit"], ["w1", "c1"]),
        (["--filter", "intent_level=hot,cold"], ["h1", "h2", "c1"]),
        (["--filter", "follow_up_status=contacted,replied"], ["h2", "w2"]),
        (["--filter", "follow_up_status=new", "--filter", "tags=decision_maker"], ["h1", "n1"]),
    ],
)
def test_list_and_count_by_audience(
    audience_project: Project, args: list[str], emails: list[str]
) -> None:
    listed = audience_project.run("leads", "list", *args, "--json")
    assert listed.exit_code == 0, listed.stderr
    assert [d["email"].split("@")[0] for d in json.loads(listed.stdout)] == emails
    counted = audience_project.run("leads", "count", *args, "--json")
    assert counted.stdout == json.dumps({"count": len(emails)}, indent=2) + "\n"
    # the count through SQLAlchemy (render --check, PostgreSQL) agrees with the quick SQLite read
    options = dict(zip(args[::2], args[1::2], strict=False))
    filters = [v for k, v in zip(args[::2], args[1::2], strict=False) if k == "--filter"]
    selected = audience_from_options(options.get("--audience"), filters)
    s = audience_project.store()
    with s.read() as conn:
        assert conn.execute(count_recipients("default", selected)).scalar_one() == len(emails)
    s.dispose()


LIST_JSON_FIRST = {
    "id": 1,
    "email": "h1@example.com",
    "name": "Hot One",
    "first_name": "Hot",
    "last_name": "One",
    "company": None,
    "title": None,
    "intent_level": "hot",
    "intent_score": 95,
    "follow_up_status": "new",
    "tags": ["enterprise", "decision_maker"],
    "event": "devcon",
    "fields": {},
    "source": "leads_audience.csv",
    "consent": None,
    "created_at": "2026-01-02T03:04:05+00:00",
    "updated_at": "2026-01-02T03:04:05+00:00",
}


def test_list_json_whole(audience_project: Project) -> None:
    result = audience_project.run("leads", "list", "--audience", "hot", "--limit", "1", "--json")
    assert result.stdout == json.dumps([LIST_JSON_FIRST], indent=2, ensure_ascii=False) + "\n"
    empty = audience_project.run("leads", "list", "--filter", "event=nowhere", "--json")
    assert empty.stdout == "[]\n"
    everyone = json.loads(audience_project.run("leads", "list", "--json").stdout)
    assert len(everyone) == 6 and list(everyone[0]) == list(LIST_JSON_FIRST)


def test_list_csv_whole(audience_project: Project) -> None:
    result = audience_project.run("leads", "list", "--audience", "warm", "--csv")
    stamp = "2026-01-02T03:04:05+00:00"
    assert result.stdout == (
        "id,email,name,first_name,last_name,company,title,intent_level,intent_score,follow_up_status,"
        "tags,event,fields,source,consent,created_at,updated_at\n"
        f"3,w1@example.com,Warm One,Warm,One,,,warm,55,new,research,summit,{{}},leads_audience.csv,,{stamp},{stamp}\n"
        f"4,w2@example.com,Warm Two,Warm,Two,,,warm,40,replied,research;enterprise,,{{}},leads_audience.csv,,{stamp},{stamp}\n"
    )


def test_list_table_and_count_text(audience_project: Project) -> None:
    result = audience_project.run("leads", "list", "--audience", "cold")
    assert result.stdout == (
        "                               Leads of 'default'                               \n"
        "┏━━━━━━━━━━━━━━━━┳━━━━━━━━━━┳━━━━━━━━━┳━━━━━━━┳━━━━━━━━┳━━━━━━━┳━━━━━━━━┳━━━━━━┓\n"
        "┃ email          ┃ name     ┃ company ┃ title ┃ intent ┃ score ┃ status ┃ tags ┃\n"
        "┡━━━━━━━━━━━━━━━━╇━━━━━━━━━━╇━━━━━━━━━╇━━━━━━━╇━━━━━━━━╇━━━━━━━╇━━━━━━━━╇━━━━━━┩\n"
        "│ c1@example.com │ Cold One │         │       │ cold   │ 10    │ new    │      │\n"
        "└────────────────┴──────────┴─────────┴───────┴────────┴───────┴────────┴──────┘\n"
    )
    assert (
        audience_project.run("leads", "count", "--audience", "hot").stdout
        == "2 leads (hot of sponsor 'default').\n"
    )


def test_bad_audience_options(audience_project: Project) -> None:
    r = audience_project.run("leads", "list", "--audience", "lukewarm")
    assert r.exit_code == 2 and "unknown audience type 'lukewarm'" in r.stderr
    r = audience_project.run("leads", "count", "--audience", "hot", "--filter", "tags=x")
    assert r.exit_code == 2 and "audience type 'hot' takes no filter; use type: custom." in r.stderr
    r = audience_project.run("leads", "count", "--filter", "intent_score_min=lots")
    assert (
        r.exit_code == 2
        and "--filter intent_score_min must be a whole number from 0 to 100." in r.stderr
    )
    r = audience_project.run("leads", "count", "--filter", "colour=red")
    assert r.exit_code == 2 and "unknown audience filter key 'colour'" in r.stderr
    r = audience_project.run("leads", "list", "--json", "--csv")
    assert r.exit_code == 2 and "Choose one of --json and --csv." in r.stderr


def test_list_leads_streams(store: Store) -> None:
    import_leads(store, CsvSource(DATA / "leads_audience.csv"))
    it = list_leads(store, "default", parse_audience("all"), limit=2)
    assert next(it)["email"] == "h1@example.com"
    assert [r["email"] for r in it] == ["h2@example.com"]


# --------------------------------------------------------------------------- streaming


def _generate(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("Email,Name,Company,Intent Level,Score,Tags,Booth\n")
        for i in range(rows):
            fh.write(
                f"lead{i}@company{i % 50}.example.com,Lead {i},Company {i % 50},"
                f"{('hot', 'warm', 'cold')[i % 3]},{i % 101},a;b{i % 7},B{i % 90}\n"
            )


def test_failure_after_several_chunks_leaves_store_unchanged(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that breaks late (after chunks were written), and a writer that fails: rollback."""
    import threading

    import sponsorcast.leads.upsert as leads_module

    import_leads(store, CsvSource(DATA / "leads_audience.csv"))
    before = snapshot(store)
    path = tmp_path / "late.csv"
    _generate(path, 7_000)
    with path.open("ab") as fh:
        fh.write("late@example.com,Ren\u00e9e,X,hot,1,a,B1\n".encode("cp1252"))
    with pytest.raises(LeadsFileError) as err:
        import_leads(store, CsvSource(path, encoding="utf-8"))
    assert str(err.value).endswith("late.csv: cannot be decoded as utf-8 at row 7002.")
    assert snapshot(store) == before

    calls = {"n": 0}
    real_write = leads_module.Upserter._write

    def failing_write(self: Any, *chunk: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk on fire")
        real_write(self, *chunk)

    monkeypatch.setattr(leads_module.Upserter, "_write", failing_write)
    _generate(path, 9_000)
    with pytest.raises(RuntimeError, match="disk on fire"):
        import_leads(store, CsvSource(path))
    assert snapshot(store) == before
    assert not any(t.name == "sponsorcast-import-writer" for t in threading.enumerate())


def _peak_import(store: Store, path: Path) -> tuple[int, int]:
    tracemalloc.start()
    try:
        report = import_leads(store, CsvSource(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return report.inserted, peak


@pytest.mark.slow
def test_import_streams_in_flat_memory(tmp_path: Path, store: Store) -> None:
    """Peak Python memory is bounded by a few chunks in flight, not by the file: holding
    30,000 leads would take ~45 MB; the import of 30,000 stays near that of 8,000."""
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    _generate(small, 8_000)
    _generate(large, 30_000)
    import_leads(store, CsvSource(small), dry_run=True)  # warm caches and imports first
    inserted_small, peak_small = _peak_import(store, small)
    with store.write() as conn:
        conn.execute(lead_t.delete())
    inserted_large, peak_large = _peak_import(store, large)
    assert (inserted_small, inserted_large) == (8_000, 30_000)
    mb = 1024 * 1024
    assert peak_small < 14 * mb and peak_large < 14 * mb, (peak_small, peak_large)
    assert peak_large < peak_small + 6 * mb, (peak_small, peak_large)
    assert count(store) == 30_000
