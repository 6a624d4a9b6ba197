"""The one place errors become exit codes: sentences, not tracebacks."""

from __future__ import annotations

import pytest

from sponsorcast import __version__
from tests.support.project import Project


def _boom(*args: object, **kwargs: object) -> None:
    raise RuntimeError("first line of a long driver error\nUPDATE lead SET ... [parameters: ...]")


def test_unexpected_error_is_one_line_and_exit_1(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sponsorcast.sponsors.list_sponsors", _boom)
    r = project.run("sponsors", "list")
    assert r.exit_code == 1
    assert r.stderr.splitlines() == [
        "Error: Unexpected error: RuntimeError: first line of a long driver error",
        "Hint: Run again with SPONSORCAST_DEBUG=1 for the traceback, and report it.",
    ]


def test_debug_shows_the_traceback(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sponsorcast.sponsors.list_sponsors", _boom)
    r = project.run("sponsors", "list", env={"SPONSORCAST_DEBUG": "1"})
    assert r.exit_code == 1
    assert "Traceback (most recent call last)" in r.stderr


def test_unknown_command_is_usage_exit_2(project: Project) -> None:
    r = project.run("sned")
    assert r.exit_code == 2
    assert "No such command 'sned'" in r.stderr


def test_version(project: Project) -> None:
    r = project.run("--version")
    assert (r.exit_code, r.stdout) == (0, f"sponsorcast {__version__}\n")
