"""Real ``sponsorcast`` processes against the Resend stand-in: project setup, spawning, ledger checks."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from email.utils import parseaddr
from pathlib import Path

import sqlalchemy as sa

from sponsorcast.store import Store
from sponsorcast.store.models import utcnow
from sponsorcast.store.tables import lead_t
from tests.support.fakeresend import FakeResend
from tests.support.pg import both_store_backends  # noqa: F401 - every test here runs on SQLite and on PostgreSQL
from tests.support.project import Project

CAMPAIGN = """\
---
name: Spring
subject: "{{ first_name }}, see us at booth 12"
audience:
  type: all
---
Hi {{ first_name }}, thanks for stopping by.
"""


ROOT = Path(__file__).resolve().parent.parent.parent  # the repository


def resend_project(
    project: Project, fake: FakeResend, *, extra: str = "", rate_limit: str = "100"
) -> None:
    """Point the project at the stand-in with the resend transport (same store: SQLite or PostgreSQL)."""
    store_url = project.config.store_url
    (project.path / "sponsorcast.toml").write_text(
        f"""\
[store]
url = "{store_url}"

[transport]
kind = "resend"

[resend]
base_url = "{fake.url}"
rate_limit = {rate_limit}
max_attempts = 3
timeout = 5

[send]
lease_seconds = 3

[sponsors.default]
name = "Example Events"
from = "Example Events <hello@example.com>"
postal_address = "1 Example Street, Springfield"
{extra}""",
        encoding="utf-8",
    )
    (project.path / "spring.md").write_text(CAMPAIGN, encoding="utf-8")


def add_leads(store: Store, emails: list[str]) -> None:
    """Insert leads through Core."""
    now = utcnow()
    with store.write() as conn:
        conn.execute(
            lead_t.insert(),
            [
                {
                    "sponsor_id": "default",
                    "email": e,
                    "first_name": f"F{i}",
                    "follow_up_status": "new",
                    "tags": "",
                    "fields": {},
                    "created_at": now,
                    "updated_at": now,
                }
                for i, e in enumerate(emails)
            ],
        )


def emails(n: int) -> list[str]:
    return [f"person{i}@example.com" for i in range(n)]


def spawn(
    project: Project, fake: FakeResend, *args: str, key: str | None = None
) -> subprocess.Popen[bytes]:
    """Start ``sponsorcast`` as a real process in the project directory."""
    env = {
        **os.environ,
        "RESEND_API_KEY": key or fake.api_key,
        "PYTHONPATH": str(ROOT),
        "SPONSORCAST_CONFIG": "",
        "SPONSORCAST_DB": "",
        "RESEND_BASE_URL": "",
        "COLUMNS": "100",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "sponsorcast", *args],
        cwd=project.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )


def run(
    project: Project, fake: FakeResend, *args: str, key: str | None = None
) -> tuple[int, str, str]:
    proc = spawn(project, fake, *args, key=key)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out.decode(), err.decode()


def ledger(store: Store) -> dict[str, tuple[str, str | None]]:
    with store.read() as conn:
        rows = conn.execute(
            sa.text("SELECT recipient, status, provider_message_id FROM delivery")
        ).all()
    return {r[0]: (r[1], r[2]) for r in rows}


def received(fake: FakeResend) -> Counter[str]:
    return Counter(parseaddr(to)[1] for a in fake.accepted for to in a.to)


def assert_exactly_once(fake: FakeResend, store: Store, expected: list[str]) -> None:
    counts = received(fake)
    assert sorted(counts) == sorted(expected), "someone was not emailed"
    assert max(counts.values()) == 1, f"duplicates: {[e for e, n in counts.items() if n > 1][:5]}"
    book = ledger(store)
    assert {s for s, _ in book.values()} == {"sent"}
    by_to = {parseaddr(a.to[0])[1]: a.id for a in fake.accepted}
    assert {e: m for e, (_, m) in book.items()} == by_to, "the ledger disagrees with the provider"


def summary(out: str) -> dict[str, str]:
    """The key/value rows of the "Send summary" table a ``send`` printed."""
    rows: dict[str, str] = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 2 and cells[0]:
            rows[cells[0]] = cells[1]
    return rows
