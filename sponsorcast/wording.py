"""How counts read in messages: ``1 row``, ``2 rows``, ``1 delivery``, ``3 deliveries``."""

from __future__ import annotations

_IRREGULAR = {"delivery": "deliveries", "batch": "batches", "address": "addresses"}


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and the noun in the number it needs: ``count(1, "row")`` → ``1 row``."""
    if n == 1:
        return f"{n:,} {noun}"
    many = (
        plural or _IRREGULAR.get(noun) or (noun[:-1] + "ies" if noun.endswith("y") else noun + "s")
    )
    return f"{n:,} {many}"


__all__ = ["count"]
