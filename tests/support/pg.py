"""PostgreSQL fixtures: a fresh, empty database per test on the server in SPONSORCAST_TEST_PG.

``scripts/test.sh`` (what CI runs) starts a throwaway server and sets SPONSORCAST_TEST_PG.
Outside CI, without it, the PostgreSQL tests skip and say why; with ``CI`` set they fail,
so that CI never passes by silently skipping them.

Fixtures: ``pg_server_url`` (the maintenance URL), ``pg_url`` (a new database, dropped after
the test), ``pg_store`` (``open_store(pg_url)``), ``pg_project`` (the ``project`` fixture with
its store on ``pg_url``), ``closed_port`` (a port that refuses connections), and
``store_url`` (parametrized: a SQLite file, then a PostgreSQL database, for tests that must
pass on both backends). ``store_backend`` chooses the ``project`` fixture's store; a module
that imports ``both_store_backends`` runs its ``project`` tests on both backends.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import pytest

if TYPE_CHECKING:
    from sponsorcast.store import Store
    from tests.support.project import Project

ENV = "SPONSORCAST_TEST_PG"


def ci_is_set() -> bool:
    """True when running in CI (the CI variable set to anything but empty, 0 or false)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def with_database(url: str, dbname: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def admin_connect(url: str):  # type: ignore[no-untyped-def]
    """An autocommit psycopg connection (CREATE/DROP DATABASE cannot run in a transaction)."""
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=10)


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """The server to create test databases on; skip (or fail in CI) when there is none."""
    url = os.environ.get(ENV, "").strip()
    if not url:
        if ci_is_set():
            pytest.fail(
                f"CI is set but {ENV} is not: the PostgreSQL tests must run in CI "
                "(scripts/test.sh starts a server; see its messages above)."
            )
        pytest.skip(
            f"{ENV} is unset: PostgreSQL tests skipped (scripts/test.sh starts a server for them)."
        )
    try:
        with admin_connect(url) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        pytest.fail(f"{ENV} is set but its server cannot be reached: {exc}")
    return url


@contextmanager
def temporary_database(server_url: str) -> Iterator[str]:
    """Create an empty database on the server; yield its URL; drop it (even if in use) after."""
    from psycopg import sql

    name = f"sc_test_{uuid.uuid4().hex[:16]}"
    with admin_connect(server_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(server_url, name)
    finally:
        with admin_connect(server_url) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, empty database for this test, dropped (connections and all) afterwards."""
    with temporary_database(pg_server_url) as url:
        yield url


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A 127.0.0.1 port that refuses connections (bound, never listening) for the test."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    """A migrated sponsorcast store on a fresh PostgreSQL database."""
    from sponsorcast.store import open_store

    store = open_store(pg_url)
    yield store
    store.dispose()


@pytest.fixture
def pg_project(project: Project, pg_url: str) -> Iterator[Project]:
    """The ``project`` fixture, its sponsorcast.toml pointing at a fresh PostgreSQL store."""
    toml = project.path / "sponsorcast.toml"
    text = toml.read_text(encoding="utf-8")
    toml.write_text(
        text.replace('url = "sqlite:///sponsorcast.db"', f'url = "{pg_url}"'), encoding="utf-8"
    )
    assert project.config.store_url == pg_url
    project.store().dispose()
    yield project


@pytest.fixture
def store_backend() -> str:
    """Which store the ``project`` fixture gets: SQLite, unless a module overrides this or
    SPONSORCAST_TEST_BACKEND=postgresql runs the whole suite's projects on PostgreSQL."""
    return os.environ.get("SPONSORCAST_TEST_BACKEND", "sqlite")


@pytest.fixture(name="store_backend", params=["sqlite", "postgresql"])
def both_store_backends(request: pytest.FixtureRequest) -> str:
    """Import this into a test module (``from .pg import both_store_backends``) to run each of
    its tests that use ``project`` twice: on SQLite, then on a fresh PostgreSQL database."""
    backend: str = request.param
    return backend


def project_store_url(request: pytest.FixtureRequest, backend: str) -> str | None:
    """The store URL the ``project`` fixture should write for a backend (None: its SQLite file)."""
    if backend == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL on each backend: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url
