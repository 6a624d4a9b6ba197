"""What an import says about itself: the column mapping, warnings a person should read, headers
in other languages, unclosed quotes, decimal-comma scores, dry runs that write no rejects file,
and audience values matched whatever their case."""

from __future__ import annotations

import csv
import json
from typing import Any

import pytest
import sqlalchemy as sa

from sponsorcast.audience import Audience
from sponsorcast.campaign import load_campaign
from sponsorcast.leads import CsvSource, plan_columns
from sponsorcast.store import Store
from sponsorcast.store.tables import lead_t
from tests.support.project import Project


def _leads(store: Store) -> list[dict[str, Any]]:
    with store.read() as conn:
        rows = conn.execute(sa.select(lead_t).order_by(lead_t.c.id)).mappings().all()
    return [dict(r) for r in rows]


def _write(project: Project, name: str, text: str, encoding: str = "utf-8") -> str:
    (project.path / name).write_text(text, encoding=encoding, newline="")
    return name


GERMAN = (
    "Vorname;Nachname;Firma;E-Mail-Adresse;Punktzahl;Stand\n"
    "Ada;Lovelace;Analytical Engines;Ada@Example.com;55,5;B12\n"
    "Jörg;Müller;Müller GmbH;joerg@example.de;70;C3\n"
)


def test_german_export_maps_and_reports_every_column(project: Project, store: Store) -> None:
    name = _write(project, "messe.csv", GERMAN)
    result = project.run("leads", "import", name)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines()[:2] == [
        "Imported messe.csv for sponsor 'default': 2 rows read.",
        "Columns: Vorname → first_name, Nachname → last_name, Firma → company, "
        "E-Mail-Adresse → email, Punktzahl → intent_score; kept in fields: Stand.",
    ]
    got = [
        (r["email"], r["first_name"], r["last_name"], r["name"], r["company"], r["intent_score"])
        for r in _leads(store)
    ]
    assert got == [
        ("ada@example.com", "Ada", "Lovelace", "Ada Lovelace", "Analytical Engines", 56),
        ("joerg@example.de", "Jörg", "Müller", "Jörg Müller", "Müller GmbH", 70),
    ]
    assert [r["fields"] for r in _leads(store)] == [{"Stand": "B12"}, {"Stand": "C3"}]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            ["Prénom", "Nom", "Société", "Adresse e-mail", "Fonction"],
            ["first_name", "last_name", "company", "email", "title"],
        ),
        (
            ["Nombre", "Apellidos", "Empresa", "Correo electrónico", "Cargo"],
            ["first_name", "last_name", "company", "email", "title"],
        ),
        (
            ["Vorname", "Nachname", "Unternehmen", "E-Mail", "Berufsbezeichnung"],
            ["first_name", "last_name", "company", "email", "title"],
        ),
        (
            ["Nome", "Cognome", "Azienda", "Indirizzo email", "Ruolo"],
            ["first_name", "last_name", "company", "email", "title"],
        ),
        (
            ["Voornaam", "Achternaam", "Bedrijf", "E-mailadres", "Functie"],
            ["first_name", "last_name", "company", "email", "title"],
        ),
    ],
)
def test_headers_in_the_common_languages_of_event_exports(
    headers: list[str], expected: list[str]
) -> None:
    plan = plan_columns(headers, None, "x.csv")
    assert plan.mapping() == list(zip(headers, expected, strict=True))
    assert plan.warnings == ()


def test_no_name_column_is_a_warning_naming_the_fix(project: Project, store: Store) -> None:
    name = _write(project, "bare.csv", "Email,Company\nada@example.com,Engines\n")
    result = project.run("leads", "import", name)
    assert result.exit_code == 0
    assert result.stderr == (
        'Warning: no name column was found, so every email greets its reader with the fallback ("Hi '
        'there"); name one with --map "Column=name" (or first_name, last_name).\n'
    )
    assert "Columns: Email → email, Company → company; none kept in fields." in result.stdout
    assert len(_leads(store)) == 1


def test_a_second_column_for_a_mapped_field_is_named_not_dropped(
    project: Project, store: Store
) -> None:
    name = _write(
        project,
        "two.csv",
        "Work Email,Email,Name\nada@work.example,ada@home.example,Ada\n",
    )
    result = project.run("leads", "import", name, "--map", "Work Email=email", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["columns"] == [
        {"column": "Work Email", "to": "email"},
        {"column": "Email", "to": "fields.Email"},
        {"column": "Name", "to": "name"},
    ]
    warning = (
        "column 'Email' also looks like email, but 'Work Email' was chosen for it; 'Email' is "
        "kept in fields.Email."
    )
    assert report["warnings"] == [warning]
    assert result.stderr == f"Warning: {warning}\n"
    stored = _leads(store)
    assert [(r["email"], r["fields"]) for r in stored] == [
        ("ada@work.example", {"Email": "ada@home.example"})
    ]


UNCLOSED = 'email,name\nada@example.com,"Ada\nbob@example.com,Bob\ncy@example.com,Cy\n'


def test_an_unclosed_quote_is_named_and_nothing_is_imported(project: Project, store: Store) -> None:
    name = _write(project, "quote.csv", UNCLOSED)
    result = project.run("leads", "import", name)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        "Error: quote.csv: row 2: has an unclosed quote in its 'name' cell, which swallowed 2 "
        "more lines of the file (lines 3–4), 2 of them like rows; add the closing quote; "
        "nothing was imported."
    )
    assert _leads(store) == []


def test_a_real_multi_line_cell_is_not_an_unclosed_quote(project: Project, store: Store) -> None:
    name = _write(
        project, "notes.csv", 'email,name,notes\nada@example.com,Ada,"met at booth\nB12"\n'
    )
    assert project.run("leads", "import", name).exit_code == 0
    assert _leads(store)[0]["fields"] == {"notes": "met at booth\nB12"}


def test_rejects_keep_the_cells_in_their_columns_with_the_reason_last(
    project: Project, store: Store
) -> None:
    name = _write(
        project,
        "mixed.csv",
        "email,name,score\nok@example.com,Ok,1\nbad@,Bad,2\nlong@example.com,Long,3,x,y\n",
    )
    result = project.run("leads", "import", name, "--rejects", "rejects.csv")
    assert result.exit_code == 0, result.stderr
    with (project.path / "rejects.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["email", "name", "score", "reason"]
    assert rows[1][:3] == ["bad@", "Bad", "2"]
    assert rows[1][3].startswith("'bad@' is not a valid email address")
    assert rows[2] == [
        "long@example.com",
        "Long",
        "3",
        "has 2 more cells than the header ('x'…); is a delimiter inside an unquoted value? "
        "Extra cells: x | y",
    ]
    assert {len(r) for r in rows} == {4}
    assert [r["email"] for r in _leads(store)] == ["ok@example.com"]


def test_an_unclosed_quote_goes_to_the_rejects_file_whole(project: Project, store: Store) -> None:
    name = _write(project, "quote.csv", "email,name\nfirst@example.com,First\n" + UNCLOSED[11:])
    result = project.run("leads", "import", name, "--rejects", "r.csv", "--json")
    assert result.exit_code == 0, result.stderr
    assert [r["row"] for r in json.loads(result.stdout)["rejects"]] == [3]
    with (project.path / "r.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[1][:2] == ["ada@example.com", "Ada\nbob@example.com,Bob\ncy@example.com,Cy\n"]
    assert [r["email"] for r in _leads(store)] == ["first@example.com"]


def test_dry_run_with_rejects_counts_them_but_writes_no_file(
    project: Project, store: Store
) -> None:
    name = _write(project, "mixed.csv", "email,name\nok@example.com,Ok\nbad@,Bad\n")
    result = project.run("leads", "import", name, "--rejects", "rejects.csv", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert not (project.path / "rejects.csv").exists()
    assert "Dry run: nothing was written to the store (and no rejects file)." in result.stdout
    report = json.loads(
        project.run("leads", "import", name, "--rejects", "r.csv", "--dry-run", "--json").stdout
    )
    assert (report["inserted"], report["rejected"], report["rejects_file"]) == (1, 1, None)
    assert sorted(p.name for p in project.path.iterdir() if p.suffix == ".csv") == ["mixed.csv"]
    assert _leads(store) == []


@pytest.mark.parametrize(
    ("cell", "score"),
    [("55,5", 56), ("55.4", 55), ("0,5", 1), ("100", 100), ("99,49", 99), ("7", 7)],
)
def test_decimal_scores_round_half_up(
    project: Project, store: Store, cell: str, score: int
) -> None:
    name = _write(project, "s.csv", f"email;name;score\nada@example.com;Ada;{cell}\n")
    assert project.run("leads", "import", name).exit_code == 0
    assert _leads(store)[0]["intent_score"] == score


@pytest.mark.parametrize("cell", ["100,5", "-1", "1e2", "5,5,5", "fifty"])
def test_scores_that_are_not_0_to_100_are_rejected(
    project: Project, store: Store, cell: str
) -> None:
    name = _write(project, "s.csv", f"email;name;score\nada@example.com;Ada;{cell}\n")
    result = project.run("leads", "import", name)
    assert result.exit_code == 2
    assert f"intent score '{cell}' must be a number from 0 to 100" in result.stderr
    assert _leads(store) == []


def test_audience_values_match_whatever_their_case(project: Project, store: Store) -> None:
    name = _write(
        project,
        "levels.csv",
        "email,name,intent,status\na@example.com,A,HOT,New\nb@example.com,B,Warm,CONTACTED\n"
        "c@example.com,C,hot,contacted\n",
    )
    assert project.run("leads", "import", name).exit_code == 0

    def count(*options: str) -> int:
        result = project.run("leads", "count", *options, "--json")
        assert result.exit_code == 0, result.stderr
        n: int = json.loads(result.stdout)["count"]
        return n

    assert count("--filter", "intent_level=HOT") == 2
    assert count("--filter", "intent_level=Hot,WARM") == 3
    assert count("--audience", "HOT") == 2
    assert count("--filter", "follow_up_status=Contacted") == 2
    (project.path / "campaigns").mkdir(exist_ok=True)
    (project.path / "campaigns" / "hot.md").write_text(
        "---\nsubject: Hi\naudience:\n  type: Custom\n  filter:\n    intent_level: HOT\n---\n"
        "Hello {{ first_name }}\n",
        encoding="utf-8",
    )
    assert load_campaign(project.path / "campaigns" / "hot.md").audience == Audience(
        type="custom", filter={"intent_level": ["hot"]}
    )
    result = project.run("send", "campaigns/hot.md", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "│ recipients │ 2 " in result.stdout


def test_the_csv_source_marks_only_the_swallowing_row(tmp_path: Any) -> None:
    path = tmp_path / "q.csv"
    path.write_text(
        'email,name\na@example.com,A\nb@example.com,"B\nc@example.com,C\nd@example.com,"D"\n'
        "e@example.com,E\n",
        encoding="utf-8",
    )
    rows = list(CsvSource(path).rows())
    assert [number for number, _ in rows] == [2, 3, 4]
    problems = [("\x00problem" in raw) for _, raw in rows]
    assert problems == [False, True, False]
    assert rows[2][1] == {"email": "e@example.com", "name": "E"}
