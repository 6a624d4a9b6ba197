#!/usr/bin/env bash
# Set everything up, run the quality gate (scripts/check.sh), then the whole test suite (this is
# what CI runs).
#
# The browser tests need Chromium: when it is missing and we are root, apt installs it.
#
# The PostgreSQL tests need a server. When SPONSORCAST_TEST_PG is unset (or empty), this
# script starts a throwaway one: initdb + pg_ctl (as the `postgres` user when run as root)
# in a fresh temp dir, listening on 127.0.0.1 only, on a free port, with trust auth — then
# stops it and removes the temp dir at exit, whatever happened. pytest's exit code is kept.
# Set SPONSORCAST_TEST_PG=postgresql://user@host:port/db to use a server of your own instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh </dev/null
bash scripts/check.sh

PG_TMP=""
PG_BIN=""
PG_STARTED=0

note() { printf 'test.sh: %s\n' "$*" >&2; }

is_root() { [ "$(id -u)" = 0 ]; }

# Run a command as the postgres user when we are root (initdb and postgres refuse root);
# from / so that it does not complain about a working directory it may not enter.
as_pg() {
  if is_root; then
    if command -v runuser >/dev/null 2>&1; then
      (cd / && runuser -u postgres -- "$@")
    else
      (cd / && su -s /bin/bash postgres -c "$(printf '%q ' "$@")")
    fi
  else
    "$@"
  fi
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$PG_STARTED" = 1 ]; then
    as_pg "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  fi
  if [ -n "$PG_TMP" ] && [ -d "$PG_TMP" ]; then
    rm -rf -- "$PG_TMP" || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

find_pg_bin() {
  local p d
  p=$(command -v pg_ctl 2>/dev/null || true)
  if [ -n "$p" ]; then
    d=$(dirname "$(readlink -f "$p")")
    if [ -x "$d/initdb" ]; then
      printf '%s\n' "$d"
      return 0
    fi
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ]; then
      printf '%s\n' "$d"
      return 0
    fi
  done
  return 1
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start_postgres() {
  if ! PG_BIN=$(find_pg_bin); then
    if is_root && command -v apt-get >/dev/null 2>&1; then
      note "PostgreSQL not found; installing it with apt-get"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -q </dev/null >/dev/null
      apt-get install -y -q postgresql </dev/null >/dev/null
      PG_BIN=$(find_pg_bin) || { note "PostgreSQL still not found after apt-get install"; return 1; }
    else
      note "PostgreSQL (pg_ctl, initdb) not found and cannot be installed (not root or no apt-get)"
      return 1
    fi
  fi
  if is_root && ! id postgres >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /bin/sh postgres
  fi

  # /tmp rather than $TMPDIR when root: the postgres user must be able to reach it
  local base=/tmp
  if ! is_root; then base=${TMPDIR:-/tmp}; fi
  PG_TMP=$(mktemp -d "$base/sponsorcast-pg.XXXXXX")
  if is_root; then chown postgres: "$PG_TMP"; fi
  chmod 700 "$PG_TMP"

  as_pg "$PG_BIN/initdb" -D "$PG_TMP/data" -U postgres --auth=trust --encoding=UTF8 \
    --locale=C --no-sync >"$PG_TMP/initdb.log" 2>&1 \
    || { note "initdb failed:"; cat "$PG_TMP/initdb.log" >&2; return 1; }

  local port attempt
  for attempt in 1 2 3; do
    port=$(free_port)
    # test-only server: durability off for speed; more connections for multi-worker tests
    if as_pg "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 60 \
        -o "-p $port -k $PG_TMP -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null 2>&1 </dev/null; then
      PG_STARTED=1
      break
    fi
    note "PostgreSQL did not start on port $port (attempt $attempt)"
  done
  if [ "$PG_STARTED" != 1 ]; then
    cat "$PG_TMP/server.log" >&2 || true
    return 1
  fi
  as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres sponsorcast_test </dev/null \
    || { note "createdb failed"; return 1; }
  export SPONSORCAST_TEST_PG="postgresql://postgres@127.0.0.1:$port/sponsorcast_test"
  note "PostgreSQL $("$PG_BIN/pg_ctl" --version | awk '{print $3}') for the tests at $SPONSORCAST_TEST_PG"
}

if [ -z "${SPONSORCAST_TEST_PG:-}" ]; then
  unset SPONSORCAST_TEST_PG
  if ! start_postgres; then
    note "running without PostgreSQL: its tests skip (or fail when CI is set)"
  fi
fi

# The browser tests open the sample emails in headless Chromium (tests/support/browser.py).
if ! command -v chromium >/dev/null 2>&1 && [ -z "${SPONSORCAST_CHROMIUM:-}" ]; then
  if is_root && command -v apt-get >/dev/null 2>&1; then
    note "Chromium not found; installing it with apt-get (for the browser tests)"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y -q chromium </dev/null >/dev/null 2>&1 \
      || { apt-get update -q </dev/null >/dev/null && apt-get install -y -q chromium </dev/null >/dev/null; }; } \
      || note "Chromium could not be installed: the browser tests skip (or fail when CI is set)"
  else
    note "Chromium not found and cannot be installed: the browser tests skip (or fail when CI is set)"
  fi
fi

# The emails are checked with html-validate (tests/render/test_email_validator.py).
HV=.cache/html-validate
if [ ! -x "$HV/node_modules/.bin/html-validate" ]; then
  if command -v npm >/dev/null 2>&1; then
    note "installing html-validate with npm into $HV (for the email HTML check)"
    npm install --prefix "$HV" --no-audit --no-fund --silent html-validate@9 </dev/null >/dev/null 2>&1 \
      || note "html-validate could not be installed: its test skips (or fails when CI is set)"
  else
    note "npm not found: the html-validate test skips (or fails when CI is set)"
  fi
fi

set +e
.venv/bin/python -m pytest "$@" </dev/null
rc=$?
set -e
exit "$rc"
