"""Store errors that tell the truth: a read-only mount, a full disk, a lock held past the timeout.

The read-only and full-disk cases mount a small tmpfs (root only; skipped elsewhere), because
root ignores file permissions and only a real file system says EROFS or ENOSPC.
"""

from __future__ import annotations

import csv
import gc
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sponsorcast.errors import StoreBusy
from sponsorcast.store import open_store
from tests.support.project import PROJECT_TOML, Project

LEADS = "email,first_name\nada@example.com,Ada\nbob@example.com,Bob\n"
CAMPAIGN = "---\nsubject: Hi\naudience:\n  type: all\n---\nHi {{ first_name }}\n"


def _mount(where: Path, *options: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(where)], capture_output=True
    )
    return done.returncode == 0


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "mnt"
    if not _mount(where, "size=2m"):
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _project(root: Path, runner_project: Project) -> Project:
    (root / "sponsorcast.toml").write_text(PROJECT_TOML, encoding="utf-8")
    return Project(path=root, runner=runner_project.runner)


def test_a_store_on_a_read_only_mount_reads_and_refuses_writes(
    project: Project, mounted: Path
) -> None:
    proj = _project(mounted, project)
    (mounted / "leads.csv").write_text(LEADS, encoding="utf-8")
    (mounted / "c.md").write_text(CAMPAIGN, encoding="utf-8")
    assert proj.run("leads", "import", "leads.csv").exit_code == 0
    assert proj.run("send", "c.md", "--yes").exit_code == 0
    gc.collect()  # the in-process commands' engines: their open files would keep the mount busy
    subprocess.run(["mount", "-o", "remount,ro", str(mounted)], check=True)
    count = proj.run("leads", "count")
    assert (count.exit_code, count.stdout) == (0, "2 leads (all of sponsor 'default').\n")
    listed = proj.run("deliveries", "c", "--csv")
    assert listed.exit_code == 0 and listed.stdout.count("@example.com") == 2
    assert proj.run("campaigns", "show", "c", "--json").exit_code == 0
    for command in (["leads", "import", "leads.csv"], ["suppress", "add", "ada@example.com"]):
        r = proj.run(*command)
        assert r.exit_code == 2, command
        assert r.stderr.startswith(
            "Error: The store sqlite:///sponsorcast.db is on a read-only file system; this command "
            "needs to write to it, so nothing was done."
        )


def test_a_full_disk_is_one_sentence_and_loses_nothing(project: Project, mounted: Path) -> None:
    proj = _project(mounted, project)
    (mounted / "leads.csv").write_text(LEADS, encoding="utf-8")
    assert proj.run("leads", "import", "leads.csv").exit_code == 0
    big = Path(project.path) / "big.csv"  # outside the small disk
    with big.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["email", "first_name", "notes"])
        writer.writerows([f"p{i}@example.com", f"P{i}", "x" * 200] for i in range(20_000))
    r = proj.run("leads", "import", str(big))
    assert r.exit_code == 1
    assert r.stderr.startswith(
        "Error: The disk holding the store sqlite:///sponsorcast.db is full; the last change was "
        "rolled back and everything recorded before it is kept."
    )
    assert "Unexpected" not in r.stderr
    count = proj.run("leads", "count")
    assert count.stdout == "2 leads (all of sponsor 'default').\n"


def test_a_busy_store_after_earlier_commits_does_not_claim_nothing_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sponsorcast.store.engine as store_module

    url = f"sqlite:///{tmp_path / 's.db'}"
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 200)
    store = open_store(url)
    with store.write() as conn:  # this command's earlier work, e.g. a recorded batch
        conn.exec_driver_sql("UPDATE sponsor SET name = 'Recorded'")
    holder = sqlite3.connect(tmp_path / "s.db", timeout=0.2, isolation_level=None)
    holder.execute("PRAGMA busy_timeout = 200")
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreBusy) as info, store.write() as conn:
            conn.exec_driver_sql("DELETE FROM sponsor")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "nothing was changed" not in info.value.message
    assert info.value.message.endswith(
        "what this command had recorded before is kept; run it again to go on."
    )
    with store.read() as conn:
        assert conn.exec_driver_sql("SELECT name FROM sponsor").scalar() == "Recorded"
