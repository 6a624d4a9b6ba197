"""A project's own layout file: one ``{{ content }}`` slot, read only from ``layouts/``, sandboxed,
rendered once per campaign and kept in the snapshot of a send."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from sponsorcast.store import Store
from tests.support.project import PROJECT_TOML, Project

LAYOUT = """\
<!DOCTYPE html>
<html lang="{{ language }}">
<head><meta charset="utf-8"><title>{{ subject }}</title></head>
<body style="margin:0">
<table role="presentation" width="100%"><tr><td style="font-family:Georgia,serif">
<h2 style="color:#c2410c">{{ sponsor.name }} LAYOUT-ONE</h2>
{{ content }}
<p style="font-size:12px">{{ sponsor.postal_address }} · <a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
</td></tr></table>
</body>
</html>
"""


def _setup(project: Project, *, front: str = "layout: layouts/acme.html\n", leads: int = 1) -> None:
    rows = "".join(f"p{i}@example.com,P{i}\n" for i in range(leads))
    (project.path / "leads.csv").write_text("email,first_name\n" + rows, encoding="utf-8")
    assert project.run("leads", "import", "leads.csv").exit_code == 0
    (project.path / "layouts").mkdir(exist_ok=True)
    (project.path / "layouts" / "acme.html").write_text(LAYOUT, encoding="utf-8")
    (project.path / "c.md").write_text(
        f"---\nsubject: Hi {{{{ first_name }}}}\npreheader: News\n{front}---\n"
        "Hello {{ first_name }} & co.\n",
        encoding="utf-8",
    )


def _html(project: Project) -> str:
    result = project.run("render", "c.md", "--format", "json")
    assert result.exit_code == 0, result.stderr
    import json

    html: str = json.loads(result.stdout)["html"]
    return html


def test_a_layout_file_wraps_the_body_with_its_slots_filled(project: Project, store: Store) -> None:
    _setup(project)
    html = _html(project)
    assert html.startswith(
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>Hi P0</title>'
    )
    assert '<h2 style="color:#c2410c">Example Events LAYOUT-ONE</h2>' in html
    assert '<p style="margin:0 0 16px 0;">Hello P0 &amp; co.</p>' in html
    assert '<a href="mailto:hello@example.com?subject=unsubscribe">Unsubscribe</a>' in html
    # the preheader goes first in the body although the layout has no slot for it
    assert html.index('<body style="margin:0">\n<div style="display:none') > 0


def test_a_sponsors_layout_applies_unless_the_campaign_names_its_own(
    project: Project, store: Store
) -> None:
    (project.path / "sponsorcast.toml").write_text(
        PROJECT_TOML + 'layout = "layouts/acme.html"\n', encoding="utf-8"
    )
    _setup(project, front="")
    assert "LAYOUT-ONE" in _html(project)
    (project.path / "layouts" / "other.html").write_text(
        LAYOUT.replace("LAYOUT-ONE", "LAYOUT-TWO"), encoding="utf-8"
    )
    text = (project.path / "c.md").read_text(encoding="utf-8")
    (project.path / "c.md").write_text(
        text.replace("preheader: News\n", "preheader: News\nlayout: layouts/other.html\n"),
        encoding="utf-8",
    )
    assert "LAYOUT-TWO" in _html(project)


@pytest.mark.parametrize(
    ("layout", "says"),
    [
        ("/etc/passwd", "c.md:4: '/etc/passwd' must be a path inside the project, like layouts/x"),
        ("layouts/../sponsorcast.toml", "c.md:4: 'layouts/../sponsorcast.toml' may not use '..'"),
        ("layouts/missing.html", "c.md:4: 'layouts/missing.html' does not exist"),
        (
            "layouts/link.html",
            "c.md:4: 'layouts/link.html' leads out of the project's layouts/ folder",
        ),
    ],
)
def test_layout_files_outside_layouts_are_refused_before_anything_is_written(
    project: Project, store: Store, tmp_path: Path, layout: str, says: str
) -> None:
    _setup(project, front=f"layout: {layout}\n")
    outside = tmp_path / "outside.html"
    outside.write_text(LAYOUT.replace("LAYOUT-ONE", "OUTSIDE"), encoding="utf-8")
    os.symlink(outside, project.path / "layouts" / "link.html")
    for args in (("render", "c.md"), ("send", "c.md", "--yes")):
        result = project.run(*args)
        assert result.exit_code == 2, (args, result.stdout)
        assert says in result.stderr
    with store.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM campaign")).scalar() == 0
    assert not (project.path / "outbox").exists()


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ("{{ content }}", "a layout must hold {{ content }} exactly once"),
        ('<a href="{{ unsubscribe_url }}">', "a layout must link {{ unsubscribe_url }}"),
        ("{{ sponsor.name }}", "access to '__class__' is not allowed"),
    ],
)
def test_a_broken_or_hostile_layout_is_a_template_error(
    project: Project, store: Store, change: str, says: str
) -> None:
    _setup(project)
    replacement = "{{ ''.__class__ }}" if "sponsor" in change else ""
    (project.path / "layouts" / "acme.html").write_text(
        LAYOUT.replace(change, replacement), encoding="utf-8"
    )
    result = project.run("render", "c.md", "--check")
    assert result.exit_code == 2
    assert "layouts/acme.html" in result.stdout + result.stderr
    assert says in result.stdout + result.stderr


def test_a_started_send_keeps_the_layout_it_started_with(project: Project, store: Store) -> None:
    _setup(project, leads=2)
    first = project.run("send", "c.md", "--yes", "--limit", "1")
    assert first.exit_code == 0, first.stderr
    (project.path / "layouts" / "acme.html").write_text(
        LAYOUT.replace("LAYOUT-ONE", "EDITED"), encoding="utf-8"
    )
    second = project.run("run-due")
    assert second.exit_code == 0, second.stderr
    emails = sorted((project.path / "outbox" / "c").iterdir())
    assert len(emails) == 2
    assert all(b"LAYOUT-ONE" in e.read_bytes() and b"EDITED" not in e.read_bytes() for e in emails)


def test_editing_a_layout_or_partial_is_editing_the_campaign(
    project: Project, store: Store
) -> None:
    _setup(project, leads=2)
    (project.path / "partials").mkdir()
    (project.path / "partials" / "sig.md").write_text("The Acme team\n", encoding="utf-8")
    text = (project.path / "c.md").read_text(encoding="utf-8")
    (project.path / "c.md").write_text(
        text + '\n{% include "partials/sig.md" %}\n', encoding="utf-8"
    )
    now = {"SPONSORCAST_NOW": "2030-01-01T09:00:00Z"}
    scheduled = project.run("schedule", "c.md", "--at", "2030-01-01T10:00:00Z", env=now)
    assert scheduled.exit_code == 0, scheduled.stderr
    (project.path / "partials" / "sig.md").write_text("Someone else\n", encoding="utf-8")
    due = project.run("run-due", env={"SPONSORCAST_NOW": "2030-01-01T10:01:00Z"})
    assert due.exit_code == 1
    assert "c.md (or a partial or layout it uses) changed after it was scheduled; not started" in (
        due.stderr
    )
    with store.read() as conn:
        status = conn.execute(sa.text("SELECT status FROM campaign")).scalar_one()
        assert status == "scheduled"
        assert conn.execute(sa.text("SELECT count(*) FROM delivery")).scalar() == 0
    # a started campaign refuses a resume by hand once its layout changed
    (project.path / "partials" / "sig.md").write_text("The Acme team\n", encoding="utf-8")
    first = project.run("send", "c.md", "--yes", "--limit", "1")
    assert first.exit_code == 0, first.stderr
    (project.path / "layouts" / "acme.html").write_text(
        LAYOUT.replace("LAYOUT-ONE", "EDITED"), encoding="utf-8"
    )
    again = project.run("send", "c.md", "--yes")
    assert again.exit_code == 2
    assert "(or a partial or layout it uses) changed after campaign 'c' was sending" in again.stderr
    assert len(list((project.path / "outbox" / "c").iterdir())) == 1
