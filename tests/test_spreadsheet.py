"""Formula injection: every CSV the tool writes shows formula-like cells as text; --raw does not."""

from __future__ import annotations

import csv
import io

import sqlalchemy as sa

from sponsorcast.spreadsheet import safe_cell
from sponsorcast.store import Store
from tests.support.project import Project

LEADS = (
    "email,first_name,company,title\n"
    '=1+1@example.com,Eve,"=HYPERLINK(""https://evil.example"",""click"")",-CEO\n'
    "ada@example.com,Ada,@SUM(A1),+boss\n"
    "bob@example.com,Bob,-5 Ltd,Plain\n"
)


def _import(project: Project, text: str = LEADS, *extra: str) -> str:
    (project.path / "leads.csv").write_text(text, encoding="utf-8")
    r = project.run("leads", "import", "leads.csv", *extra)
    assert r.exit_code == 0, r.stderr
    return r.stdout


def _cells(text: str, column: str) -> list[str]:
    return [row[column] for row in csv.DictReader(io.StringIO(text))]


def test_safe_cell_follows_the_owasp_rule() -> None:
    assert [safe_cell(v) for v in ["=1", "+1", "-1", "@a", "\tx", "\rx", "a=1", "", 5, None]] == [
        "'=1",
        "'+1",
        "'-1",
        "'@a",
        "'\tx",
        "'\rx",
        "a=1",
        "",
        5,
        None,
    ]


def test_leads_list_csv_neutralises_and_raw_does_not(project: Project) -> None:
    _import(project)
    r = project.run("leads", "list", "--csv")
    assert r.exit_code == 0
    assert _cells(r.stdout, "email") == ["'=1+1@example.com", "ada@example.com", "bob@example.com"]
    assert _cells(r.stdout, "company") == [
        '\'=HYPERLINK("https://evil.example","click")',
        "'@SUM(A1)",
        "'-5 Ltd",
    ]
    assert _cells(r.stdout, "title") == ["'-CEO", "'+boss", "Plain"]
    raw = project.run("leads", "list", "--csv", "--raw")
    assert _cells(raw.stdout, "email") == ["=1+1@example.com", "ada@example.com", "bob@example.com"]
    assert _cells(raw.stdout, "company")[1] == "@SUM(A1)"


def test_deliveries_csv_neutralises(project: Project) -> None:
    _import(project)
    (project.path / "c.md").write_text(
        "---\nsubject: Hi\naudience:\n  type: all\n---\nHi {{ first_name }}\n"
    )
    assert project.run("send", "c.md", "--yes").exit_code == 0
    r = project.run("deliveries", "c", "--csv")
    assert r.exit_code == 0
    assert sorted(_cells(r.stdout, "recipient")) == [
        "'=1+1@example.com",
        "ada@example.com",
        "bob@example.com",
    ]
    raw = project.run("deliveries", "c", "--csv", "--raw")
    assert sorted(_cells(raw.stdout, "recipient"))[0] == "=1+1@example.com"


def test_suppress_list_csv_neutralises(project: Project) -> None:
    assert project.run("suppress", "add", "=1+1@example.com").exit_code == 0
    r = project.run("suppress", "list", "--csv")
    assert _cells(r.stdout, "email") == ["'=1+1@example.com"]


def test_rejects_file_neutralises_unless_raw(project: Project) -> None:
    text = "email,first_name\nnot-an-address,=cmd|' /C calc'!A0\nada@example.com,Ada\n"
    _import(project, text, "--rejects", "bad.csv")
    rows = list(csv.reader(io.StringIO((project.path / "bad.csv").read_text(encoding="utf-8"))))
    assert rows[0] == ["email", "first_name", "reason"]
    assert rows[1][:2] == ["not-an-address", "'=cmd|' /C calc'!A0"]
    _import(project, text, "--rejects", "bad.csv", "--raw")
    rows = list(csv.reader(io.StringIO((project.path / "bad.csv").read_text(encoding="utf-8"))))
    assert rows[1][:2] == ["not-an-address", "=cmd|' /C calc'!A0"]


def test_deliveries_of_an_unknown_campaign_prints_no_csv_header(
    project: Project, store: Store
) -> None:
    r = project.run("deliveries", "ghost", "--csv")
    assert (r.exit_code, r.stdout) == (2, "")
    assert r.stderr.startswith("Error: Unknown campaign 'ghost'")
    with store.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM campaign")).scalar() == 0


def test_an_empty_result_still_has_its_header(project: Project) -> None:
    r = project.run("suppress", "list", "--csv")
    assert (r.exit_code, r.stdout) == (0, "email,sponsor,reason,created_at\n")
