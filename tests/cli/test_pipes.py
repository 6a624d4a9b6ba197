"""Output that behaves in pipes: a reader that stops early is not an error; -h is --help."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sponsorcast.leads import CsvSource, import_leads
from sponsorcast.store import Store
from tests.support.project import REPO, Project


@pytest.mark.parametrize("fmt", ["--csv", "--json"])
def test_a_listing_into_head_exits_quietly(project: Project, store: Store, fmt: str) -> None:
    many = project.path / "many.csv"
    many.write_text(
        "email\n" + "".join(f"p{i}@example.com\n" for i in range(20_000)), encoding="utf-8"
    )
    import_leads(store, CsvSource(many))
    env = {**os.environ, "PYTHONPATH": str(REPO), "SPONSORCAST_CONFIG": "", "SPONSORCAST_DB": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sponsorcast", "leads", "list", fmt],
        cwd=project.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0
    assert first and err == b""


def test_h_is_help_at_every_level(project: Project) -> None:
    for args in (["-h"], ["leads", "-h"], ["leads", "list", "-h"]):
        r = project.run(*args)
        assert r.exit_code == 0 and r.stdout.startswith("Usage: sponsorcast"), args
        assert r.stdout == project.run(*args[:-1], "--help").stdout
