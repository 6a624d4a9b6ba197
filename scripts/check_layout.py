"""The layout rules that ruff and mypy cannot see; exit 1 with one line per breach.

- no import cycle between sponsorcast modules, counting imports inside functions;
- only ``sponsorcast/cli/`` and ``sponsorcast/console.py`` import typer or rich; nothing imports click;
- no module over 500 lines;
- package code cites no document outside the repository (no "SPEC §", no "issue N").

    python scripts/check_layout.py
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "sponsorcast"
MAX_LINES = 500
UI_ALLOWED = ("sponsorcast/cli/", "sponsorcast/console.py")
OUTSIDE_REFS = re.compile(r"SPEC §|\bissue \d+\b|\bissues? #\d+")


def module_name(path: Path) -> str:
    """``sponsorcast/render/check.py`` → ``sponsorcast.render.check`` (a package is its __init__)."""
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def imports(tree: ast.Module, known: set[str]) -> set[str]:
    """Every sponsorcast module this one imports, anywhere but under ``if TYPE_CHECKING``."""
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    found.add(full if full in known else node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    visit([child])
            for field in ("body", "orelse", "finalbody", "handlers"):
                value = getattr(node, field, None)
                if isinstance(value, list):
                    visit([n for n in value if isinstance(n, ast.stmt)])

    visit(tree.body)
    return {name for name in found if name in known}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(10_000)

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            strong(v)
    return found


def main() -> int:
    """Check every rule; print each breach; 1 if any."""
    files = sorted(PACKAGE.rglob("*.py"))
    known = {module_name(p) for p in files}
    problems: list[str] = []
    graph: dict[str, set[str]] = {}
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        name = module_name(path)
        graph[name] = imports(tree, known) - {name}
        lines = text.count("\n")
        if lines > MAX_LINES:
            problems.append(f"{rel}: {lines} lines, over {MAX_LINES}")
        top = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in (
                node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")]
            )
        }
        if "click" in top:
            problems.append(f"{rel}: imports click (use typer.*)")
        if top & {"typer", "rich"} and not rel.startswith(UI_ALLOWED):
            problems.append(
                f"{rel}: imports {', '.join(sorted(top & {'typer', 'rich'}))} outside cli/ and console.py"
            )
        for number, line in enumerate(text.splitlines(), start=1):
            if OUTSIDE_REFS.search(line):
                problems.append(f"{rel}:{number}: cites a document outside the repository")
    for component in cycles(graph):
        problems.append("import cycle: " + " -> ".join(component))
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
