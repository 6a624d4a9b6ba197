"""A mistake gets the hint a person needs: the id or file probably meant, and a JSON error
object for a program that asked for --json; help reads as words and offers completion."""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa

from sponsorcast.store import Store
from tests.support.project import Project
from tests.support.sending import CAMPAIGN, add_leads


@pytest.fixture
def sent(project: Project, store: Store) -> Project:
    add_leads(store, 2)
    (project.path / "campaigns").mkdir()
    (project.path / "campaigns" / "spring-launch.md").write_text(CAMPAIGN, encoding="utf-8")
    assert project.run("send", "campaigns/spring-launch.md", "--yes").exit_code == 0
    return project


def _campaigns(store: Store) -> list[tuple[str, str]]:
    with store.read() as conn:
        return [tuple(r) for r in conn.execute(sa.text("SELECT id, status FROM campaign"))]


def test_a_mistyped_campaign_id_gets_did_you_mean(sent: Project, store: Store) -> None:
    before = _campaigns(store)
    for args in (("stats", "spring-lanch"), ("campaigns", "pause", "sprng-launch")):
        result = sent.run(*args)
        assert result.exit_code == 2
        assert result.stderr == (
            "Error: Unknown campaign '" + args[-1] + "'.\nHint: Did you mean 'spring-launch'?\n"
        )
    assert _campaigns(store) == before


def test_a_file_given_where_an_id_is_expected(sent: Project) -> None:
    result = sent.run("deliveries", "campaigns/spring-launch.md")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: Unknown campaign 'campaigns/spring-launch.md'.\n"
        "Hint: This command takes a campaign id, not a file: did you mean 'spring-launch'?\n"
    )
    result = sent.run("stats", "other.md")
    assert result.stderr.endswith(
        "Hint: This command takes a campaign id (the file's 'id:' key, else its name without "
        "the extension), not a file.\n"
    )


def test_an_id_given_where_a_file_is_expected(sent: Project, store: Store) -> None:
    before = _campaigns(store)
    for command in ("send", "schedule", "render"):
        result = sent.run(command, "spring-launch")
        assert result.exit_code == 2, command
        assert result.stderr == (
            "Error: spring-launch: no such file.\nHint: This command takes a campaign file, not "
            "a campaign id: did you mean campaigns/spring-launch.md?\n"
        )
    near = sent.run("send", "campaigns/spring-lunch.md")
    assert near.stderr == (
        "Error: campaigns/spring-lunch.md: no such file.\n"
        "Hint: Did you mean campaigns/spring-launch.md?\n"
    )
    assert _campaigns(store) == before


@pytest.mark.parametrize(
    "args",
    [
        ("stats", "nope", "--json"),
        ("campaigns", "show", "nope", "--json"),
        ("leads", "list", "--sponsor", "nobody", "--json"),
        ("render", "missing.md", "--check", "--format", "json"),
    ],
)
def test_json_failures_print_an_error_object_too(sent: Project, args: tuple[str, ...]) -> None:
    result = sent.run(*args)
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    first = result.stderr.splitlines()[0]
    assert first == f"Error: {error['message']}"
    assert (error["exit_code"], set(error)) == (2, {"message", "hint", "exit_code", "type"})


def test_a_failure_without_json_prints_nothing_on_stdout(sent: Project) -> None:
    result = sent.run("stats", "nope")
    assert (result.exit_code, result.stdout) == (2, "")


def test_help_reads_as_words_and_offers_completion(project: Project) -> None:
    top = project.run("--help")
    assert "--install-completion" in top.stdout and "--show-completion" in top.stdout
    for args in (
        ("render", "-h"),
        ("send", "-h"),
        ("suppress", "add", "-h"),
        ("init", "-h"),
        ("campaigns", "show", "-h"),
    ):
        text = project.run(*args).stdout
        assert not re.search(r"<[a-z\[\]|A-Z]+>|\{[A-Z_]+\}|\[\[", text), text
    usage = [
        project.run(*a).stdout.splitlines()[0]
        for a in (("render", "-h"), ("suppress", "add", "-h"))
    ]
    assert usage == [
        "Usage: sponsorcast render [OPTIONS] CAMPAIGN_FILE...",
        "Usage: sponsorcast suppress add [OPTIONS] EMAIL...",
    ]
    assert "  --limit N " in project.run("send", "-h").stdout
