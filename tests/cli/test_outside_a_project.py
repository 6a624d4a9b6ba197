"""Outside a project, a command says so and creates nothing; the built-in transport is the outbox."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sponsorcast.cli import app
from sponsorcast.config import load_config
from tests.support.project import DATA

ENV = {"COLUMNS": "100", "SPONSORCAST_CONFIG": "", "SPONSORCAST_DB": "", "TERM": "dumb"}


def _run_in(folder: Path, *args: str) -> tuple[int, str, str]:
    old = Path.cwd()
    os.chdir(folder)
    try:
        r = CliRunner().invoke(app, list(args), env=ENV, catch_exceptions=False)
    finally:
        os.chdir(old)
    return r.exit_code, r.stdout, r.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["leads", "count"],
        ["leads", "import", "leads.csv"],
        ["campaigns", "list"],
        ["send", "c.md", "--yes"],
        ["run-due"],
        ["stats", "c"],
    ],
)
def test_a_command_outside_a_project_stops_and_creates_nothing(
    tmp_path: Path, args: list[str]
) -> None:
    (tmp_path / "leads.csv").write_text("email\nada@example.com\n", encoding="utf-8")
    (tmp_path / "c.md").write_text("---\nsubject: Hi\n---\nHi\n", encoding="utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = _run_in(tmp_path, *args)
    assert (code, out) == (2, "")
    assert err == (
        f"Error: There is no sponsorcast.toml in {tmp_path}, and neither --config nor "
        "SPONSORCAST_CONFIG names one; nothing was done.\n"
        "Hint: Run 'sponsorcast init' to make a project here, or cd into one.\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no sponsorcast.db


def test_render_check_with_a_leads_file_needs_no_project(tmp_path: Path) -> None:
    (tmp_path / "c.md").write_text("---\nsubject: Hi {{ first_name }}\n---\nHi\n", encoding="utf-8")
    code, out, _err = _run_in(
        tmp_path, "render", "c.md", "--check", "--leads", str(DATA / "leads_audience.csv")
    )
    assert code == 0 and out.endswith("1 campaign file checked: no problems.\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.md"]


def test_the_built_in_transport_is_the_outbox(tmp_path: Path) -> None:
    (tmp_path / "sponsorcast.toml").write_text('[sponsors.default]\nname = "X"\n', encoding="utf-8")
    assert load_config(tmp_path / "sponsorcast.toml", env={}).transport == "outbox"
