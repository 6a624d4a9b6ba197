"""The version is written once (sponsorcast/__init__.py) and every place that shows it agrees."""

from __future__ import annotations

import importlib.metadata
import re

from sponsorcast import __version__
from tests.support.project import REPO, Project


def test_version_agrees_everywhere(project: Project) -> None:
    installed = importlib.metadata.version("sponsorcast")
    assert installed == __version__
    r = project.run("--version")
    assert (r.exit_code, r.stdout) == (0, f"sponsorcast {__version__}\n")
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert 'dynamic = ["version"]' in pyproject and not re.search(r'^version = "', pyproject, re.M)
    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    newest = re.search(r"^## \[?(\d+\.\d+\.\d+)", changelog, re.M)
    assert newest is not None and newest.group(1) == __version__
