"""A sponsorcast process ends without unwinding the interpreter (``cli.leave``): what exit
must still do is done, its output whole, its exit code kept, its store closed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.project import REPO, Project

ENV = {**os.environ, "PYTHONPATH": str(REPO), "SPONSORCAST_CONFIG": "", "SPONSORCAST_DB": ""}


def _sponsorcast(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sponsorcast", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_process_keeps_all_its_output_and_closes_its_store(project: Project) -> None:
    leads = project.path / "many.csv"
    leads.write_text(
        "email,name\n" + "".join(f"p{i}@example.com,P {i}\n" for i in range(3000)),
        encoding="utf-8",
    )
    imported = _sponsorcast(project.path, "leads", "import", "many.csv")
    assert (imported.returncode, imported.stderr) == (0, ""), imported.stderr
    # the last connection to close checkpoints the write-ahead log and removes it: the
    # engine was disposed before the process left
    assert not (project.path / "sponsorcast.db-wal").exists()
    listed = _sponsorcast(project.path, "leads", "list", "--csv")
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert len(lines) == 3001  # the header and every lead: buffered output was flushed
    assert lines[-1].startswith("3000,p2999@example.com,P 2999,")


def test_the_exit_code_and_message_of_bad_input_survive(project: Project) -> None:
    result = _sponsorcast(project.path, "leads", "import", "missing.csv")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ") and "missing.csv" in result.stderr


def test_leave_runs_atexit_callbacks_and_flushes(tmp_path: Path) -> None:
    script = (
        "import atexit, sys\n"
        "import sponsorcast.cli as cli\n"
        "atexit.register(lambda: sys.stdout.write('callback ran\\n'))\n"
        "sys.stdout.write('unflushed ')\n"
        "cli.leave(3)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=ENV, capture_output=True, text=True
    )
    assert (result.returncode, result.stdout) == (3, "unflushed callback ran\n")
