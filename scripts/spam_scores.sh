#!/usr/bin/env bash
# SpamAssassin's score of each sample campaign's email, as a recipient's server would see it.
#
#   bash scripts/spam_scores.sh            # prints one line per campaign: score and rules hit
#
# Makes a throwaway project (sponsorcast init, the sample leads, every file of campaigns/),
# turns tracking on (signed one-click unsubscribe, open pixel, tracked links, as a real
# sender runs), sends each campaign to the outbox and runs `spamassassin -t -L` (local
# tests only: no network, no DNS blocklists) on the first recipient's .eml. SpamAssassin
# comes from Debian's package, installed with apt when missing. Figures: docs/emails.md.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
bash scripts/setup.sh </dev/null >/dev/null
if ! command -v spamassassin >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "spam_scores.sh: installing spamassassin with apt-get" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q spamassassin </dev/null >/dev/null
  else
    echo "spam_scores.sh: spamassassin is not installed (apt-get install spamassassin)" >&2
    exit 2
  fi
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
SC="$REPO/.venv/bin/sponsorcast"
"$SC" init >/dev/null
cp "$REPO"/campaigns/*.md "$REPO"/campaigns/*.yaml campaigns/
printf '\n[tracking]\npublic_url = "https://t.example.com"\n' >> sponsorcast.toml
export SPONSORCAST_SECRET=spam-score-check-secret-0123456789
"$SC" leads import leads.csv >/dev/null
printf '%-16s %6s  %s\n' campaign score rules
for file in campaigns/*; do
  id=$(basename "${file%.*}")
  "$SC" send "$file" --yes >/dev/null 2>&1 || { printf '%-16s %6s  %s\n' "$id" "-" "not sent"; continue; }
  eml=$(ls outbox/"$id"/*.eml | head -1)
  report=$(spamassassin -t -L <"$eml" 2>/dev/null)
  score=$(printf '%s\n' "$report" | sed -n 's/^X-Spam-Status: [A-Za-z]*, score=\([-0-9.]*\).*/\1/p' | head -1)
  rules=$(printf '%s\n' "$report" | awk '/^ pts rule name/{on=1; next} on && /^ *-?[0-9]+\.[0-9] [A-Z_0-9]+/{print $2}' | paste -sd, -)
  printf '%-16s %6s  %s\n' "$id" "$score" "$rules"
done
