#!/usr/bin/env bash
# The quality gate, the same everywhere (scripts/test.sh, CI, pre-commit): ruff lint and format,
# mypy strict on the package, tests, benchmarks and scripts, the layout rules
# (scripts/check_layout.py) and the generated CLI reference (docs/cli.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh </dev/null
step() { printf 'check.sh: %s\n' "$*" >&2; }
step "ruff check";          .venv/bin/ruff check --quiet .
step "ruff format --check"; .venv/bin/ruff format --check --quiet .
step "mypy (strict)";       .venv/bin/mypy
step "layout rules";        .venv/bin/python scripts/check_layout.py
step "CLI reference";       .venv/bin/python scripts/cli_reference.py --check
step "all checks passed"
