"""``{% include "partials/…" %}``: shared pieces of bodies, read only from the project's folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from sponsorcast.store import Store
from tests.support.project import Project

LEADS = "email,name,company\nada@example.com,Ada Lovelace,Engines\n"


def _project(project: Project, body: str) -> None:
    (project.path / "leads.csv").write_text(LEADS, encoding="utf-8")
    assert project.run("leads", "import", "leads.csv").exit_code == 0
    (project.path / "c.md").write_text(
        f"---\nsubject: Hi\npreheader: Hello\n---\n{body}", encoding="utf-8"
    )


def _partial(project: Project, name: str, text: str) -> Path:
    path = project.path / "partials" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_partial_is_markdown_with_template_values_in_both_parts(
    project: Project, store: Store
) -> None:
    _partial(
        project,
        "signature.md",
        'Cheers,\n**{{ sponsor.name }}**\n{% include "partials/address.md" %}\n',
    )
    _partial(project, "address.md", "1 Example Street")
    _project(project, 'Hi {{ first_name }},\n\n{% include "partials/signature.md" %}\n')
    result = project.run("render", "c.md")
    assert result.exit_code == 0, result.stderr
    text = result.stdout.split("----- text part -----\n")[1].split("\n-- \n")[0]
    assert text == "Hi Ada,\n\nCheers,\nExample Events\n1 Example Street\n"
    assert "<strong>Example Events</strong><br />\n1 Example Street</p>" in result.stdout
    sent = project.run("send", "c.md", "--yes")
    assert sent.exit_code == 0, sent.stderr
    with store.read() as conn:
        body = conn.execute(sa.text("SELECT body FROM campaign")).scalar_one()
    assert "include" not in body and "1 Example Street" in body  # the snapshot holds it


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("/etc/passwd", "'/etc/passwd' must be a path inside the project, like partials/x"),
        ("partials/../sponsorcast.toml", "'partials/../sponsorcast.toml' may not use '..'"),
        ("sponsorcast.toml", "'sponsorcast.toml' must be in the project's partials/ folder"),
        ("partials/missing.md", "'partials/missing.md' does not exist"),
        ("partials/link.md", "'partials/link.md' leads out of the project's partials/ folder"),
    ],
)
def test_includes_outside_the_partials_folder_are_refused_with_file_and_line(
    project: Project, store: Store, tmp_path: Path, name: str, reason: str
) -> None:
    outside = tmp_path / "secret.md"
    outside.write_text("SECRET", encoding="utf-8")
    (project.path / "partials").mkdir(exist_ok=True)
    os.symlink(outside, project.path / "partials" / "link.md")
    _project(project, f'Hello.\n\n{{% include "{name}" %}}\n')
    for args in (("render", "c.md"), ("render", "c.md", "--check"), ("send", "c.md", "--yes")):
        result = project.run(*args)
        assert result.exit_code == 2, args
        assert f"c.md:7: {reason}" in result.stderr + result.stdout, result.stderr + result.stdout
        assert "SECRET" not in result.stdout + result.stderr
    with store.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM campaign")).scalar() == 0


def test_includes_that_include_themselves_stop(project: Project, store: Store) -> None:
    _partial(project, "loop.md", '{% include "partials/loop.md" %}')
    _project(project, '{% include "partials/loop.md" %}\n')
    result = project.run("render", "c.md")
    assert result.exit_code == 2
    assert "c.md:5: includes are nested more than 5 deep." in result.stderr


def test_an_include_with_a_computed_name_is_refused(project: Project, store: Store) -> None:
    _project(project, "{% include name %}\n")
    result = project.run("render", "c.md")
    assert result.exit_code == 2
    assert 'except {% include "partials/name.md" %} with the file name written out' in result.stderr
