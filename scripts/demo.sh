#!/usr/bin/env bash
# The main job on the embedded defaults: a demo project (SQLite store, outbox transport),
# the sample leads imported and the sample campaign rendered and checked.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
SC="$PWD/.venv/bin/sponsorcast"
mkdir -p demo
cd demo
"$SC" init .
"$SC" leads import leads.csv
"$SC" leads list
"$SC" render campaigns/welcome.md --check
"$SC" render campaigns/welcome.md
