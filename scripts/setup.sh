#!/usr/bin/env bash
# Create .venv (if missing) and install sponsorcast with its test tools into it.
# Installs again only when pyproject.toml changed; pip's chatter goes to .venv/setup.log.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.sponsorcast-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! .venv/bin/python -c 'import sponsorcast' 2>/dev/null; then
  if ! {
    .venv/bin/python -m pip install --disable-pip-version-check --upgrade pip &&
    .venv/bin/python -m pip install --disable-pip-version-check -e '.[test]'
  } >.venv/setup.log 2>&1; then
    cat .venv/setup.log >&2
    echo "setup.sh: installing sponsorcast failed (log above)." >&2
    exit 1
  fi
  echo "$want" >"$stamp"
fi
