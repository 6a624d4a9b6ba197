"""``suppress import`` and ``suppress export`` through the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from sponsorcast.store import Store
from sponsorcast.store.tables import suppression_t
from sponsorcast.suppression.erased import ERASED_PREFIX
from tests.support.pg import both_store_backends  # noqa: F401 - each test on SQLite and PostgreSQL
from tests.support.project import Project
from tests.support.tracking import add_sponsor, table_rows


def entries(store: Store) -> set[tuple[str, str, str]]:
    return {(r["email"], r["sponsor_id"], r["reason"]) for r in table_rows(store, suppression_t)}


def _write(project: Project, name: str, text: str) -> str:
    (project.path / name).write_text(text, encoding="utf-8")
    return name


def test_a_resend_export_and_a_plain_list_are_imported(project: Project, store: Store) -> None:
    add_sponsor(store, "acme")
    resend = _write(
        project,
        "resend.csv",
        "email,origin,created_at\n"
        "Ada@Example.com,bounce,2026-10-07T08:12:03.412Z\n"
        "bob@example.com,complaint,\n"
        "carl@example.com,manual,\n"
        "ada@example.com,bounce,\n",  # the same address again
    )
    r = project.run("suppress", "import", resend)
    assert (r.exit_code, r.stdout, r.stderr) == (
        0,
        "resend.csv: 4 rows read. Added 3 addresses to the suppression list; "
        "1 already on it or repeated.\n",
        "",
    )
    plain = _write(project, "plain.txt", "x@example.com\ny@example.com\n\nbob@example.com\n")
    r = project.run("suppress", "import", plain, "--sponsor", "acme", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout) == {
        "file": "plain.txt",
        "dry_run": False,
        "rows": 3,
        "added": 3,  # bob is suppressed for everyone, but not yet by an entry of acme's
        "already": 0,
        "rejected": 0,
        "rejects_file": None,
    }
    assert entries(store) == {
        ("ada@example.com", "*", "bounced"),
        ("bob@example.com", "*", "complained"),
        ("carl@example.com", "*", "manual"),
        ("x@example.com", "acme", "manual"),
        ("y@example.com", "acme", "manual"),
        ("bob@example.com", "acme", "manual"),
    }


def test_export_then_import_into_another_store_round_trips(
    project: Project, store: Store, tmp_path: Path
) -> None:
    add_sponsor(store, "acme")
    assert (
        project.run("suppress", "add", "--", "=cmd@example.com", "-dash@example.com").exit_code == 0
    )
    assert (
        project.run(
            "suppress", "add", "ann@example.com", "--sponsor", "acme", "--reason", "unsubscribed"
        ).exit_code
        == 0
    )
    with store.write() as conn:  # an erased person: only a hash, which another store cannot use
        conn.execute(
            suppression_t.insert().values(
                email=ERASED_PREFIX + "ab" * 20, sponsor_id="*", reason="erased"
            )
        )
    exported = project.run("suppress", "export")
    assert exported.exit_code == 0
    rows = list(csv.reader(io.StringIO(exported.stdout)))
    assert [row[:3] for row in rows] == [
        ["email", "sponsor", "reason"],
        ["'-dash@example.com", "*", "manual"],  # formula-like cells neutralised by default
        ["'=cmd@example.com", "*", "manual"],
        ["ann@example.com", "acme", "unsubscribed"],
    ]
    assert exported.stderr == (
        "Warning: Left out 1 erased person: their keyed hashes only mean something in this store.\n"
    )
    to_file = project.run("suppress", "export", "--output", "list.csv")
    assert to_file.stdout == "Wrote 3 entries to list.csv.\n"
    assert (project.path / "list.csv").read_text(encoding="utf-8") == exported.stdout

    other = tmp_path / "other"
    other.mkdir()
    (other / "sponsorcast.toml").write_text(
        '[store]\nurl = "sqlite:///other.db"\n[sponsors.acme]\nname = "Acme"\n', encoding="utf-8"
    )
    second = Project(path=other, runner=project.runner)
    r = second.run("suppress", "import", str(project.path / "list.csv"))
    assert r.exit_code == 0, r.stderr
    assert "3 rows read. Added 3 addresses" in r.stdout
    other_store = second.store()
    try:
        assert entries(other_store) == {
            ("=cmd@example.com", "*", "manual"),
            ("-dash@example.com", "*", "manual"),
            ("ann@example.com", "acme", "unsubscribed"),
        }
    finally:
        other_store.dispose()


def test_one_bad_row_refuses_the_file_and_changes_nothing(project: Project, store: Store) -> None:
    project.run("suppress", "add", "kept@example.com")
    before = table_rows(store, suppression_t)
    bad = _write(
        project,
        "bad.csv",
        "email,reason,sponsor\n"
        "ok@example.com,bounced,\n"
        "not-an-email,bounced,\n"
        "who@example.com,angry,\n"
        "elsewhere@example.com,manual,nobody\n",
    )
    r = project.run("suppress", "import", bad)
    assert (r.exit_code, r.stdout) == (2, "")
    assert r.stderr.splitlines()[0] == (
        "Error: bad.csv: row 3: 'not-an-email' is not a valid email address: An email address "
        "must have an @-sign; row 4: unknown reason 'angry' (use unsubscribed, bounced, "
        "complained, manual); row 5: no sponsor 'nobody'; nothing was imported."
    )
    assert table_rows(store, suppression_t) == before
    assert not (project.path / "rejects.csv").exists()


def test_rejects_file_takes_the_bad_rows_and_the_rest_is_imported(
    project: Project, store: Store
) -> None:
    bad = _write(
        project,
        "bad.csv",
        'email,note\nok@example.com,fine\n=HYPERLINK("http://x"),"=1+1"\n',
    )
    r = project.run("suppress", "import", bad, "--rejects", "rejects.csv")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == (
        "bad.csv: 2 rows read. Added 1 address to the suppression list; 0 already on it or "
        "repeated. 1 row rejected (in rejects.csv).\n"
    )
    assert entries(store) == {("ok@example.com", "*", "manual")}
    text = (project.path / "rejects.csv").read_text(encoding="utf-8")
    assert list(csv.reader(io.StringIO(text))) == [
        ["row", "email", "note", "reason"],
        [
            "3",
            '\'=HYPERLINK("http://x")',
            "'=1+1",
            "'=HYPERLINK(\"http://x\")' is not a valid email address: An email address must "
            "have an @-sign.",
        ],
    ]


def test_dry_run_reports_and_changes_nothing(project: Project, store: Store) -> None:
    project.run("suppress", "add", "a@example.com")
    before = table_rows(store, suppression_t)
    plain = _write(project, "list.txt", "a@example.com\nb@example.com\nc@example.com\n")
    r = project.run("suppress", "import", plain, "--dry-run")
    assert (r.exit_code, r.stdout) == (
        0,
        "list.txt: 3 rows read. Would add 2 addresses to the suppression list; 1 already on it "
        "or repeated. Dry run: nothing was changed.\n",
    )
    assert table_rows(store, suppression_t) == before


def test_bad_arguments_and_files_are_refused(project: Project, store: Store) -> None:
    before = table_rows(store, suppression_t)
    plain = _write(project, "list.txt", "a@example.com\n")
    cases = [
        (("suppress", "import", "missing.csv"), "missing.csv"),
        (("suppress", "import", plain, "--sponsor", "nobody"), "No sponsor 'nobody'"),
        (("suppress", "import", plain, "--reason", "angry"), "Unknown reason 'angry'"),
        (
            ("suppress", "import", _write(project, "cols.csv", "name,phone\nAda,1\n")),
            "no column of addresses",
        ),
        (
            ("suppress", "import", _write(project, "huge.csv", "x" * 70_000)),
            "the header row is longer than 65,536 characters",
        ),
    ]
    for args, words in cases:
        r = project.run(*args)
        assert (r.exit_code, r.stdout) == (2, ""), args
        assert r.stderr.startswith("Error: ") and words in r.stderr.splitlines()[0], r.stderr
    assert table_rows(store, suppression_t) == before


def test_doctor_counts_the_suppressed_leads_of_each_sponsor(project: Project, store: Store) -> None:
    leads = _write(project, "leads.csv", "email,name\na@x.com,A\nb@x.com,B\nc@x.com,C\n")
    assert project.run("leads", "import", leads).exit_code == 0
    assert project.run("suppress", "add", "b@x.com", "C@X.com").exit_code == 0
    r = project.run("doctor", "--json")
    checks = {c["check"]: c["detail"] for c in json.loads(r.stdout)}
    assert checks["sponsor default"].endswith("; 3 leads, 2 of them suppressed")


def test_a_huge_bad_cell_is_quoted_cut_short(project: Project, store: Store) -> None:
    bad = _write(project, "huge.csv", "email\n" + "x" * 5000 + "\n")
    r = project.run("suppress", "import", bad)
    assert (r.exit_code, r.stdout) == (2, "")
    first = r.stderr.splitlines()[0]
    assert f"row 2: '{'x' * 79}…' is not a valid email address" in first
    assert len(first) < 300
    assert table_rows(store, suppression_t) == []
