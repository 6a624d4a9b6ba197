"""One owner per setting: a sponsor from sponsorcast.toml is edited there; updates change only what is given."""

from __future__ import annotations

import json

from tests.support.project import Project


def _shown(project: Project, sponsor_id: str) -> dict[str, object]:
    r = project.run("sponsors", "show", sponsor_id, "--json")
    assert r.exit_code == 0, r.stderr
    data: dict[str, object] = json.loads(r.stdout)
    return data


def test_a_file_defined_sponsor_is_not_overwritten_from_the_command_line(project: Project) -> None:
    before = _shown(project, "default")
    r = project.run("sponsors", "add", "default", "--name", "Other", "--from", "x@other.com")
    assert r.exit_code == 2
    assert " ".join(r.stderr.split()) == (
        "Error: Sponsor 'default' is defined in sponsorcast.toml; edit it there "
        "(a change made here would be overwritten the next time the file is read), so nothing "
        "was changed."
    )
    assert _shown(project, "default") == before


def test_an_update_changes_only_the_options_given(project: Project) -> None:
    assert (
        project.run(
            "sponsors",
            "add",
            "acme",
            "--name",
            "Acme",
            "--from",
            "hi@acme.com",
            "--postal-address",
            "1 Road",
            "--disabled",
        ).exit_code
        == 0
    )
    r = project.run("sponsors", "add", "acme", "--reply-to", "sales@acme.com")
    assert (r.exit_code, r.stdout) == (0, "Updated sponsor 'acme'.\n")
    shown = _shown(project, "acme")
    assert (
        shown["name"],
        shown["from"],
        shown["reply_to"],
        shown["postal_address"],
        shown["messaging_enabled"],
    ) == ("Acme", "hi@acme.com", "sales@acme.com", "1 Road", False)
    assert project.run("sponsors", "add", "acme", "--enabled").exit_code == 0
    assert _shown(project, "acme")["messaging_enabled"] is True


def test_a_new_sponsor_needs_a_name(project: Project) -> None:
    r = project.run("sponsors", "add", "zeta")
    assert r.exit_code == 2 and "Sponsor 'zeta' is new: give it a --name." in r.stderr
    assert project.run("sponsors", "show", "zeta").exit_code == 2
