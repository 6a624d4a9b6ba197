"""A temp project with sponsorcast.toml and a CLI runner that runs inside it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from typer.testing import CliRunner

from sponsorcast.cli import app
from sponsorcast.config import Config, load_config
from sponsorcast.store import Store, open_from_config

if TYPE_CHECKING:
    pass
from tests.support.pg import (  # noqa: F401 - PostgreSQL fixtures
    closed_port,
    pg_project,
    pg_server_url,
    pg_store,
    pg_url,
    project_store_url,
    store_backend,
    store_url,
)

TESTS = Path(__file__).resolve().parent.parent  # the tests/ folder
REPO = TESTS.parent
DATA = TESTS / "data"


CONSOLE_WIDTH = "100"


PROJECT_TOML = """\
[store]
url = "sqlite:///sponsorcast.db"

[transport]
kind = "outbox"

[sponsors.default]
name = "Example Events"
from = "Example Events <hello@example.com>"
postal_address = "1 Example Street, Springfield"
"""


@dataclass
class Result:
    """What a CLI invocation produced."""

    exit_code: int
    stdout: str
    stderr: str


@dataclass
class Project:
    """A temp working directory with sponsorcast.toml; the CLI runs inside it."""

    path: Path
    runner: CliRunner

    @property
    def config(self) -> Config:
        """The project's config, as the CLI would load it."""
        return load_config(self.path / "sponsorcast.toml", env={})

    def config_with(self, env: dict[str, str]) -> Config:
        """The project's config as a command would load it with these environment variables."""
        return load_config(self.path / "sponsorcast.toml", env=env)

    def store(self) -> Store:
        """Open the project's store."""
        return open_from_config(self.config)

    def run(
        self, *args: str, env: dict[str, str] | None = None, input: str | None = None
    ) -> Result:
        """Invoke the CLI in the project directory, as a user would."""
        old = Path.cwd()
        os.chdir(self.path)
        try:
            full_env = {
                "COLUMNS": CONSOLE_WIDTH,
                "SPONSORCAST_CONFIG": "",
                "SPONSORCAST_DB": "",
                "RESEND_BASE_URL": "",
                "TERM": "dumb",
                **(env or {}),
            }
            result = self.runner.invoke(
                app, list(args), env=full_env, input=input, catch_exceptions=False
            )
        finally:
            os.chdir(old)
        return Result(result.exit_code, result.stdout, result.stderr)
