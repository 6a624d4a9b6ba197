"""Write docs/cli.md from the ``--help`` of every command, or check that it is current.

python scripts/cli_reference.py          # rewrite docs/cli.md
python scripts/cli_reference.py --check  # exit 1 if docs/cli.md differs (CI)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "cli.md"
HEADER = """# Command reference

Generated from `--help` by `scripts/cli_reference.py`; `scripts/check.sh` fails when it is out
of date. Exit codes and the JSON keys are in the README.
"""


def _commands(group: Any, path: list[str]) -> list[list[str]]:
    """Every command path under a Typer group, depth first, in the order ``--help`` lists them."""
    found = [path]
    for name in getattr(group, "list_commands", lambda _ctx: [])(None):
        command = group.get_command(None, name)
        if command is None or getattr(command, "hidden", False):
            continue
        found += _commands(command, [*path, name])
    return found


def render() -> str:
    """The whole reference as Markdown."""
    import typer
    from typer.testing import CliRunner

    from sponsorcast.cli import app

    os.environ.update({"COLUMNS": "100", "TERM": "dumb", "NO_COLOR": "1"})
    runner = CliRunner()
    parts = [HEADER]
    for path in _commands(typer.main.get_command(app), []):
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "100", "TERM": "dumb"})
        title = " ".join(["sponsorcast", *path])
        parts.append(f"\n## `{title}`\n\n```text\n{result.stdout.rstrip()}\n```\n")
    return "".join(parts)


def main() -> int:
    """Rewrite or check docs/cli.md."""
    text = render()
    if "--check" in sys.argv:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
            print(
                "docs/cli.md is out of date: run python scripts/cli_reference.py", file=sys.stderr
            )
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
