"""Benchmark: `sponsorcast leads import` of a large CSV, end to end, as a subprocess.

Generates a CSV (default 1,000,000 rows: Excel-like headers, realistic values, tags in one cell,
two extra columns, ~2% repeated emails) in a temp dir, imports it into a fresh SQLite store with
the real CLI, then re-imports it (every lead already stored: the update/unchanged path), and
prints rows/s against the 25,000 rows/s target and the child's peak RSS against 200 MB.

    .venv/bin/python bench/bench_import.py [--rows N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_ROWS_PER_S = 25_000
TARGET_PEAK_MB = 200

FIRST = ["Ada", "Grace", "Alan", "Zoë", "Renée", "Linus", "Margaret", "Katherine", "José", "Ida"]
LAST = ["Lovelace", "Hopper", "Turing", "Müller", "Dubois", "Torvalds", "Hamilton", "Johnson"]
COMPANIES = [
    "Analytical Engines",
    "Compilers Inc",
    "Bletchley Labs",
    "Orbital",
    "Apollo Software",
    "",
]
TITLES = ["CTO", "Engineer", "Director", "Researcher", "VP Sales", ""]
LEVELS = ["hot", "warm", "cold", ""]
STATUSES = ["new", "new", "new", "contacted", ""]
TAGS = ["enterprise", "decision_maker", "research", "startup", "emea", "apac"]
ASCII_FOLD = str.maketrans({"ë": "e", "é": "e", "ü": "ue"})
DOMAINS = [f"company{i}.example.com" for i in range(2_000)] + [
    "gmail.com",
    "outlook.com",
    "yahoo.co.uk",
]


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """Write a leads CSV with `rows` data rows."""
    rnd = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "Email",
                "Full Name",
                "Company",
                "Job Title",
                "Intent Level",
                "Score",
                "Status",
                "Tags",
                "Booth",
                "Notes",
            ]
        )
        for i in range(rows):
            n = i if rnd.random() > 0.02 else rnd.randrange(max(1, i))  # ~2% repeats
            first, last = FIRST[n % len(FIRST)], LAST[(n // 10) % len(LAST)]
            local = f"{first}.{last}.{n}".lower()
            if n % 100:  # 1% keep an internationalised local part (the slow, full validation)
                local = local.translate(ASCII_FOLD)
            email = f"{local}@{DOMAINS[n % len(DOMAINS)]}"
            tags = ";".join(rnd.sample(TAGS, rnd.randrange(0, 3)))
            w.writerow(
                [
                    email,
                    f"{first} {last}",
                    rnd.choice(COMPANIES),
                    rnd.choice(TITLES),
                    rnd.choice(LEVELS),
                    rnd.randrange(0, 101),
                    rnd.choice(STATUSES),
                    tags,
                    f"B{rnd.randrange(1, 200)}",
                    "met at the booth" if rnd.random() < 0.1 else "",
                ]
            )


def run_import(workdir: Path, csv_path: Path) -> tuple[float, float, float, str]:
    """Run the CLI in a fresh child; returns (wall seconds, peak RSS MB, CPU seconds, output)."""
    exe = Path(sys.executable).with_name("sponsorcast")
    cmd = (
        [str(exe), "leads", "import", str(csv_path)]
        if exe.exists()
        else [sys.executable, "-m", "sponsorcast", "leads", "import", str(csv_path)]
    )
    # a wrapper child so that RUSAGE_CHILDREN measures only this import
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "dt = time.perf_counter() - t\n"
        "ru = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "cpu = ru.ru_utime + ru.ru_stime\n"
        "sys.stdout.write(f'{dt} {ru.ru_maxrss} {cpu} {p.returncode}\\n' + p.stdout + p.stderr)\n"
    )
    env = {**os.environ, "COLUMNS": "100", "TERM": "dumb", "SPONSORCAST_CONFIG": ""}
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    head, _, rest = out.partition("\n")
    seconds, rss_kb, cpu, rc = head.split()
    if rc != "0":
        raise SystemExit(f"import failed (exit {rc}):\n{rest}")
    return float(seconds), int(rss_kb) / 1024, float(cpu), rest


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--keep", type=Path, help="Work in this directory and keep it.")
    args = ap.parse_args()

    tmp = None
    if args.keep:
        workdir = args.keep
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench-import-")
        workdir = Path(tmp.name)
    (workdir / "sponsorcast.toml").write_text(
        '[store]\nurl = "sqlite:///bench.db"\n\n[transport]\nkind = "outbox"\n', encoding="utf-8"
    )
    for f in ("bench.db", "bench.db-wal", "bench.db-shm"):
        (workdir / f).unlink(missing_ok=True)
    csv_path = workdir / "leads.csv"
    t = time.perf_counter()
    generate(csv_path, args.rows)
    size_mb = csv_path.stat().st_size / 1e6
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print(f"generated {args.rows:,} rows ({size_mb:.0f} MB) in {time.perf_counter() - t:.1f} s")

    for label in ("first import (all new)", "re-import (all stored)"):
        load = os.getloadavg()[0]
        seconds, peak, cpu, out = run_import(workdir, csv_path)
        rate = args.rows / seconds
        ok_rate = "OK" if rate >= TARGET_ROWS_PER_S else "MISSED"
        ok_mem = "OK" if peak < TARGET_PEAK_MB else "MISSED"
        print(
            f"{label}: {seconds:.1f} s, {rate:,.0f} rows/s (target >= {TARGET_ROWS_PER_S:,}: {ok_rate}), "
            f"peak RSS {peak:.0f} MB (target < {TARGET_PEAK_MB}: {ok_mem}); "
            f"CPU {cpu:.1f} s over both threads; load average {load:.1f} -> {os.getloadavg()[0]:.1f}"
        )
        counts = [
            line for line in out.splitlines() if "│" in line and any(ch.isdigit() for ch in line)
        ]
        if counts:
            print(
                "   inserted/updated/unchanged/rejected:",
                " ".join(counts[0].replace("│", " ").split()),
            )
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
