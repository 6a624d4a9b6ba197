"""SQL that must be written differently for SQLite and PostgreSQL, as one clause.

``PerDialect(sqlite, other)`` compiles to its first clause on SQLite and to its second
everywhere else. Audiences over the ledger use it: SQLite runs ``lead.id IN (SELECT …)``
once into a temporary index (a correlated ``EXISTS`` probes the table a million times),
while PostgreSQL turns ``EXISTS`` into a hash join and can degrade to a quadratic plan on a
large ``NOT IN``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler


class PerDialect(sa.sql.expression.ColumnElement[bool]):
    """A boolean clause with one text for SQLite and one for the other stores."""

    inherit_cache = False  # the two clauses carry the cache keys; this wrapper has none
    type = sa.Boolean()

    def __init__(self, sqlite: sa.ClauseElement, other: sa.ClauseElement) -> None:
        """``sqlite`` on SQLite, ``other`` elsewhere."""
        self.sqlite = sqlite
        self.other = other


@compiles(PerDialect)
def _other(element: PerDialect, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.other, **kw)


@compiles(PerDialect, "sqlite")
def _sqlite(element: PerDialect, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.sqlite, **kw)
