"""Shared fixtures: a temp project with a store, a CLI runner with a fixed console width."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from sponsorcast.cli import app
from sponsorcast.config import Config, load_config
from sponsorcast.store import Store, open_from_config

if TYPE_CHECKING:
    from tests.fakeresend import FakeResend

from .pg import (  # noqa: F401 - PostgreSQL fixtures
    closed_port,
    pg_project,
    pg_server_url,
    pg_store,
    pg_url,
    project_store_url,
    store_backend,
    store_url,
)

DATA = Path(__file__).parent / "data"
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


@pytest.fixture
def project(
    tmp_path: Path, store_backend: str, request: pytest.FixtureRequest
) -> Iterator[Project]:
    """A fresh project directory with an outbox config and a migrated store (SQLite; or
    PostgreSQL in a module that imports ``both_store_backends`` from tests/pg.py)."""
    toml = PROJECT_TOML
    url = project_store_url(request, store_backend)
    if url is not None:
        toml = toml.replace('url = "sqlite:///sponsorcast.db"', f'url = "{url}"')
    (tmp_path / "sponsorcast.toml").write_text(toml, encoding="utf-8")
    proj = Project(path=tmp_path, runner=CliRunner())
    proj.store().dispose()
    yield proj


@pytest.fixture
def store(project: Project) -> Iterator[Store]:
    """The project's store, opened through the library."""
    s = project.store()
    yield s
    s.dispose()


@pytest.fixture
def fake_resend() -> Iterator[FakeResend]:
    """A fresh Resend stand-in on 127.0.0.1 (see tests/fakeresend.py); ``.url``, ``.api_key``."""
    from tests.fakeresend import FakeResend

    with FakeResend() as fake:
        yield fake
