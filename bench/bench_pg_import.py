"""Benchmark: `sponsorcast leads import postgresql://… --table sponsor_leads`, end to end.

Creates a fresh database on a PostgreSQL server, fills the event platform's `sponsor_leads`
table with COPY (default 1,000,000 rows: text[] tags, NULLs, a timestamp and a numeric extra
column, ~2% repeated emails, 1% internationalised addresses, as in bench_import.py), then
imports it into a fresh SQLite store with the real CLI in a
child process, twice (all new, then all stored), and prints rows/s against the 25,000 rows/s
target and the child's peak RSS against 200 MB.

The server: --pg URL, else SPONSORCAST_TEST_PG, else a throwaway one started here (initdb and
pg_ctl, as the `postgres` user when run as root) and removed at the end.

    .venv/bin/python bench/bench_pg_import.py [--rows N] [--pg URL] [--keep DIR]
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

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
    None,
]
TITLES = ["CTO", "Engineer", "Director", "Researcher", "VP Sales", None]
LEVELS = ["hot", "warm", "cold", None]
STATUSES = ["new", "new", "new", "contacted", None]
TAGS = ["enterprise", "decision_maker", "research", "startup", "emea", "apac"]
ASCII_FOLD = str.maketrans({"ë": "e", "é": "e", "ü": "ue"})
DOMAINS = [f"company{i}.example.com" for i in range(2_000)] + [
    "gmail.com",
    "outlook.com",
    "yahoo.co.uk",
]

TABLE = """
CREATE TABLE sponsor_leads (
    id bigserial PRIMARY KEY,
    sponsor_id text,
    event_id integer,
    user_email text NOT NULL,
    user_name text,
    user_company text,
    user_title text,
    intent_level text,
    intent_score integer,
    follow_up_status text,
    tags text[],
    budget numeric(12, 2),
    created_at timestamptz
)"""
COLUMNS = [
    "sponsor_id",
    "event_id",
    "user_email",
    "user_name",
    "user_company",
    "user_title",
    "intent_level",
    "intent_score",
    "follow_up_status",
    "tags",
    "budget",
    "created_at",
]


def rows(count: int, seed: int = 7) -> Iterator[tuple[object, ...]]:
    """The platform's rows, deterministic for a seed."""
    rnd = random.Random(seed)
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    for i in range(count):
        n = i if rnd.random() > 0.02 else rnd.randrange(max(1, i))  # ~2% repeats
        first, last = FIRST[n % len(FIRST)], LAST[(n // 10) % len(LAST)]
        local = f"{first}.{last}.{n}".lower()
        if n % 100:  # as in bench_import.py: 1% keep an internationalised local part
            local = local.translate(ASCII_FOLD)
        email = f"{local}@{DOMAINS[n % len(DOMAINS)]}"
        yield (
            "default",
            100 + n % 3,
            email,
            f"{first} {last}",
            rnd.choice(COMPANIES),
            rnd.choice(TITLES),
            rnd.choice(LEVELS),
            rnd.randrange(0, 101) if n % 9 else None,
            rnd.choice(STATUSES),
            rnd.sample(TAGS, rnd.randrange(0, 3)) if n % 5 else None,
            Decimal(rnd.randrange(0, 10_000_00)) / 100,
            t0 + timedelta(seconds=n),
        )


def fill(url: str, count: int) -> None:
    """Create sponsor_leads and COPY `count` rows into it."""
    with psycopg.connect(url) as conn:
        conn.execute(TABLE)
        stmt = sql.SQL("COPY sponsor_leads ({}) FROM STDIN").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)
        )
        with conn.cursor().copy(stmt) as copy:
            for row in rows(count):
                copy.write_row(row)
        conn.execute("ANALYZE sponsor_leads")


@contextmanager
def temporary_database(server_url: str) -> Iterator[str]:
    """A fresh database on the server, dropped afterwards."""
    name = f"sc_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    parts = urlsplit(server_url)
    try:
        yield urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextmanager
def throwaway_server() -> Iterator[str]:
    """Start a PostgreSQL server in a temp dir on a free 127.0.0.1 port; stop and remove it after."""
    found = shutil.which("pg_ctl")
    candidates = [os.path.dirname(os.path.realpath(found))] if found else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    bindir = next((d for d in candidates if os.path.exists(os.path.join(d, "initdb"))), None)
    if bindir is None:
        raise SystemExit("no PostgreSQL found: pass --pg URL or install postgresql")
    root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if root else []
    tmp = tempfile.mkdtemp(prefix="bench-pg-", dir="/tmp")
    if root:
        shutil.chown(tmp, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = os.path.join(tmp, "data")
    run = {"check": True, "stdout": subprocess.DEVNULL, "cwd": "/"}
    try:
        subprocess.run(
            [
                *prefix,
                f"{bindir}/initdb",
                "-D",
                data,
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            **run,
        )  # type: ignore[call-overload]
        subprocess.run(
            [
                *prefix,
                f"{bindir}/pg_ctl",
                "-D",
                data,
                "-l",
                f"{tmp}/log",
                "-w",
                "-o",
                f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off",
                "start",
            ],
            **run,
        )  # type: ignore[call-overload]
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
        )
        shutil.rmtree(tmp, ignore_errors=True)


def run_import(workdir: Path, url: str) -> tuple[float, float, float, str]:
    """Run the CLI in a fresh child; returns (seconds, peak RSS MB, CPU seconds of that child, stdout)."""
    exe = Path(sys.executable).with_name("sponsorcast")
    args = ["leads", "import", url, "--table", "sponsor_leads"]
    cmd = [str(exe), *args] if exe.exists() else [sys.executable, "-m", "sponsorcast", *args]
    # a wrapper child so that RUSAGE_CHILDREN measures only this import
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "dt = time.perf_counter() - t\n"
        "ru = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "sys.stdout.write(f'{dt} {ru.ru_maxrss} {ru.ru_utime + ru.ru_stime} {p.returncode}\\n' + p.stdout + p.stderr)\n"
    )
    env = {
        **os.environ,
        "COLUMNS": "100",
        "TERM": "dumb",
        "SPONSORCAST_CONFIG": "",
        "SPONSORCAST_DB": "",
    }
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


def bench(server_url: str, count: int, workdir: Path) -> None:
    """Fill a fresh database, then time two imports of it."""
    with temporary_database(server_url) as url:
        t = time.perf_counter()
        fill(url, count)
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        )
        print(f"COPY of {count:,} rows into sponsor_leads: {time.perf_counter() - t:.1f} s")
        for label in ("first import (all new)", "re-import (all stored)"):
            seconds, peak, cpu, out = run_import(workdir, url)
            rate = count / seconds
            ok_rate = "OK" if rate >= TARGET_ROWS_PER_S else "MISSED"
            ok_mem = "OK" if peak < TARGET_PEAK_MB else "MISSED"
            print(
                f"{label}: {seconds:.1f} s, {rate:,.0f} rows/s (target >= {TARGET_ROWS_PER_S:,}: {ok_rate}), "
                f"peak RSS {peak:.0f} MB (target < {TARGET_PEAK_MB}: {ok_mem}); "
                f"CPU {cpu:.1f} s in sponsorcast = {count / cpu:,.0f} rows per CPU-second; "
                f"load average {os.getloadavg()[0]:.1f}"
            )
            counts = [
                line
                for line in out.splitlines()
                if "│" in line and any(ch.isdigit() for ch in line)
            ]
            if counts:
                print(
                    "   inserted/updated/unchanged/rejected:",
                    " ".join(counts[0].replace("│", " ").split()),
                )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--pg", help="A PostgreSQL server URL to create the bench database on.")
    ap.add_argument("--keep", type=Path, help="Put the SQLite store in this directory and keep it.")
    args = ap.parse_args()

    tmp = None
    if args.keep:
        workdir = args.keep
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench-pg-import-")
        workdir = Path(tmp.name)
    (workdir / "sponsorcast.toml").write_text(
        '[store]\nurl = "sqlite:///bench.db"\n\n[transport]\nkind = "outbox"\n', encoding="utf-8"
    )
    for f in ("bench.db", "bench.db-wal", "bench.db-shm"):
        (workdir / f).unlink(missing_ok=True)
    try:
        server = args.pg or os.environ.get("SPONSORCAST_TEST_PG")
        if server:
            bench(server, args.rows, workdir)
        else:
            with throwaway_server() as url:
                bench(url, args.rows, workdir)
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
