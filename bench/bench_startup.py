"""Start-up time of the CLI (issue 2): `sponsorcast --help` and `sponsorcast leads count`.

Cron runs sponsorcast every few minutes, so what it costs to start matters. Each command runs
N times as a fresh process in a temp project with the sample store; the median wall time is
printed beside the 0.3 s target (reference: mailmerge starts in 0.14 s). Then the same count
runs on a store of --leads leads (default 100,000), with a custom audience, to show what the
query adds.

    .venv/bin/python bench/bench_startup.py [--runs 15] [--leads 100000]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPONSORCAST = Path(sys.executable).parent / "sponsorcast"


def median_wall(args: list[str], cwd: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([str(SPONSORCAST), *args], cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--leads", type=int, default=100_000)
    args = parser.parse_args()
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        subprocess.run(
            [str(SPONSORCAST), "init", "."], cwd=project, check=True, capture_output=True
        )
        subprocess.run(
            [str(SPONSORCAST), "leads", "import", "leads.csv"],
            cwd=project,
            check=True,
            capture_output=True,
        )
        baseline = median_wall(["--version"], project, args.runs)
        for label, cmd in (
            ("sponsorcast --help", ["--help"]),
            ("sponsorcast leads count", ["leads", "count"]),
        ):
            wall = median_wall(cmd, project, args.runs)
            verdict = "ok" if wall < 0.3 else "MISSED"
            print(f"{label:<28} median {wall:.3f} s   target < 0.300 s   {verdict}")
        print(f"{'sponsorcast --version':<28} median {baseline:.3f} s   (interpreter + typer)")

        big = project / "big.csv"
        levels = ("hot", "warm", "cold")
        with big.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["email", "name", "intent_level", "intent_score", "tags"])
            for i in range(args.leads):
                w.writerow(
                    [
                        f"lead{i}@example.com",
                        f"Lead {i}",
                        levels[i % 3],
                        i % 101,
                        "vip;enterprise" if i % 7 == 0 else "research",
                    ]
                )
        subprocess.run(
            [str(SPONSORCAST), "leads", "import", "big.csv"],
            cwd=project,
            check=True,
            capture_output=True,
        )
        label = f"... with {args.leads + 6:,} leads"
        for cmd in (
            ["leads", "count", "--audience", "hot"],
            [
                "leads",
                "count",
                "--filter",
                "intent_score_min=50",
                "--filter",
                "tags_any=vip,research",
            ],
        ):
            wall = median_wall(cmd, project, args.runs)
            verdict = "ok" if wall < 0.3 else "MISSED"
            print(
                f"{label:<28} median {wall:.3f} s   target < 0.300 s   {verdict}   ({' '.join(cmd[2:])})"
            )


if __name__ == "__main__":
    main()
