"""The README's commands, run as written in a fresh project: the README cannot drift from the tool.

Every ``sponsorcast …`` line of every ``bash`` block runs, in order, in one temporary project
made by the README's own ``sponsorcast init``, and must exit 0. Lines that need what a test
must not touch are left out, each for a reason listed in ``NOT_RUN``.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

from typer.testing import CliRunner

from tests.support.project import DATA, REPO, Project

# (a piece of the line, why it is not run here)
NOT_RUN = (
    ("postgresql://", "needs a PostgreSQL server of the event platform"),
    ("SPONSORCAST_DB=", "needs a shared PostgreSQL store"),
    ("sponsorcast serve", "a server that runs until stopped (tests/tracking runs it)"),
    ("sponsorcast sync", "asks the real Resend API"),
    ("--install-completion", "would edit the shell's start-up file"),
    ("--open", "would start a browser (tests/render/test_email_layout.py tests it)"),
)

EXPORT = (
    "Email,Work Email,Full Name,Company,Score,Tags\n"
    "lin@example.org,lin@acme-customer.example,Lin Chen,Acme Customer,71,enterprise\n"
    "sam@example.org,sam@acme-customer.example,Sam Ortiz,Acme Customer,35,\n"
)


def readme_commands() -> list[str]:
    """Every ``sponsorcast`` command line of the README's bash blocks, in order."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    lines: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
        for line in block.splitlines():
            if line.startswith("sponsorcast "):
                lines.append(line)
    return lines


def test_the_readme_has_commands_to_run() -> None:
    commands = readme_commands()
    assert commands[0] == "sponsorcast init" + commands[0][len("sponsorcast init") :]
    assert len(commands) >= 30


def _prepare(project_dir: Path) -> None:
    """What the README assumes is there besides what init writes: an export and the examples."""
    (project_dir / "export.csv").write_text(EXPORT, encoding="utf-8")
    for name in ("spring-launch.md", "follow-up.yaml"):
        shutil.copy(REPO / "campaigns" / name, project_dir / "campaigns" / name)
    (project_dir / "tests").mkdir()
    shutil.copy(REPO / "tests" / "leads.csv", project_dir / "tests" / "leads.csv")
    shutil.copy(DATA / "webhooks" / "saved.jsonl", project_dir / "saved.jsonl")


def test_every_readme_command_runs_as_written(tmp_path: Path) -> None:
    project = Project(tmp_path, CliRunner())
    ran: list[str] = []
    for line in readme_commands():
        if any(piece in line for piece in (p for p, _why in NOT_RUN)):
            continue
        args = shlex.split(line, comments=True)[1:]
        result = project.run(*args)
        assert result.exit_code == 0, f"{line}\n{result.stdout}\n{result.stderr}"
        ran.append(args[0])
        if args[0] == "init":
            _prepare(tmp_path)
    assert {"init", "leads", "render", "send", "stats", "deliveries", "campaigns"} <= set(ran)
    assert {"schedule", "unschedule", "events", "suppress", "report", "links"} <= set(ran)
    # what the README says these leave behind
    assert (tmp_path / "ada.html").read_text(encoding="utf-8").startswith("<")
    report = (tmp_path / "welcome-report.html").read_text(encoding="utf-8")
    assert report.startswith("<!DOCTYPE html>") and "<svg" in report
    assert (tmp_path / "welcome-report" / "recipients.csv").exists()
    assert "@example.com" not in (tmp_path / "default.html").read_text(encoding="utf-8")
    assert any((tmp_path / "outbox" / "welcome").glob("0001-*.eml"))
    stats = json.loads(project.run("stats", "welcome", "--json").stdout)
    assert (stats["delivered"], stats["opened"]) == (1, 1)  # the saved webhooks were applied
    assert (
        (tmp_path / "suppressions.csv")
        .read_text(encoding="utf-8")
        .startswith("email,sponsor,reason,created_at\n")
    )
    assert json.loads((tmp_path / "ada.json").read_text(encoding="utf-8"))["email"] == (
        "ada@example.com"
    )
    shown = project.run("leads", "show", "ada@example.com", "--json")
    assert json.loads(shown.stdout)["erased"] is not None  # forgotten, as the README says
