"""Shared fixtures: a temp project with a store, a CLI runner with a fixed console width."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from sponsorcast.store import Store

if TYPE_CHECKING:
    from tests.support.fakeresend import FakeResend
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
from tests.support.project import PROJECT_TOML, Project


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
    from tests.support.fakeresend import FakeResend

    with FakeResend() as fake:
        yield fake
