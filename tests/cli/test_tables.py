"""Listings a person reads: readable at 80 columns, and a sentence when there is nothing to list."""

from __future__ import annotations

import pytest

from sponsorcast.store import Store
from tests.support.project import Project

LONG = "margaret.hamilton@apollo-guidance.example.org"


def _lines(text: str) -> list[str]:
    return text.splitlines()


@pytest.fixture
def sent(project: Project, store: Store) -> Project:
    (project.path / "leads.csv").write_text(
        "email,name,company,title,intent,score,tags\n"
        f"{LONG},Margaret Hamilton,Massachusetts Institute of Technology,Director of Software "
        'Engineering,hot,97,"apollo,nasa,software"\n'
        "ada@example.com,Ada Lovelace,Analytical Engines,Countess,warm,55,math\n",
        encoding="utf-8",
    )
    assert project.run("leads", "import", "leads.csv").exit_code == 0
    (project.path / "launch.md").write_text(
        "---\nname: The spring launch of the analytical engine, second edition\n"
        'subject: "Hi {{ first_name }}"\n---\nHello {{ first_name }}.\n',
        encoding="utf-8",
    )
    assert project.run("send", "launch.md", "--yes").exit_code == 0
    return project


@pytest.mark.parametrize(
    "args",
    [("leads", "list"), ("campaigns", "list"), ("deliveries", "launch"), ("sponsors", "list")],
)
def test_tables_fit_80_columns_and_keep_addresses_whole(
    sent: Project, args: tuple[str, ...]
) -> None:
    result = sent.run(*args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stderr
    assert max(len(line) for line in _lines(result.stdout)) <= 80
    if args[0] in ("leads", "deliveries"):
        assert any(LONG in line for line in _lines(result.stdout)), result.stdout


def test_dropped_columns_are_named(sent: Project) -> None:
    narrow = sent.run("deliveries", "launch", env={"COLUMNS": "80"})
    assert " ".join(line.strip() for line in _lines(narrow.stdout)[-2:]) == (
        "Not shown at this width: first_click_at, click_count, opened_at, open_count, attempts, "
        "sent_at (--json or a wider terminal shows them)."
    )
    wide = sent.run("deliveries", "launch", env={"COLUMNS": "200"})
    assert "Not shown" not in wide.stdout and "first_click_at" in wide.stdout
    leads = sent.run("leads", "list", env={"COLUMNS": "80"})
    assert "Not shown at this width: title" in leads.stdout


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (
            ("campaigns", "list"),
            "No campaigns yet: 'sponsorcast send FILE' or 'sponsorcast schedule FILE' makes one.",
        ),
        (("leads", "list"), "No leads of sponsor 'default' in this audience (all)."),
        (
            ("leads", "list", "--audience", "hot"),
            "No leads of sponsor 'default' in this audience (hot).",
        ),
        (("suppress", "list"), "No suppressed addresses."),
        (
            ("suppress", "list", "--sponsor", "default"),
            "No suppressed addresses for sponsor 'default'.",
        ),
    ],
)
def test_an_empty_listing_says_so(
    project: Project, store: Store, args: tuple[str, ...], sentence: str
) -> None:
    result = project.run(*args)
    assert (result.exit_code, result.stdout, result.stderr) == (0, sentence + "\n", "")


def test_no_deliveries_in_a_status_says_so(sent: Project) -> None:
    result = sent.run("deliveries", "launch", "--status", "failed")
    assert result.stdout == "Campaign 'launch' has no deliveries with status 'failed'.\n"
    json_out = sent.run("deliveries", "launch", "--status", "failed", "--json")
    assert json_out.stdout == "[]\n"
