#!/usr/bin/env bash
# The main job on the embedded defaults: a demo project (SQLite store, outbox transport),
# the sample leads imported, the sample campaign checked, "sent" to the outbox, and its stats.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
SC="$PWD/.venv/bin/sponsorcast"
mkdir -p demo
cd demo
"$SC" init .
"$SC" leads import leads.csv
"$SC" render campaigns/welcome.md --check
"$SC" send campaigns/welcome.md --yes
"$SC" stats welcome
echo
echo "The emails are in demo/outbox/welcome/ as .eml files; nothing was sent."
