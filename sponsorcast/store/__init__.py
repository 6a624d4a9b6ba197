"""The store: the ledger's tables, their migrations, and the transactions everything else uses.

Rule of this package: it knows tables and transactions, not campaigns' meaning beyond their
lifecycle; it imports nothing from the domain packages (render, leads, send, tracking,
schedule). ``fastread`` imports neither SQLAlchemy nor the models, so that ``leads count``
starts fast; for the same reason this ``__init__`` imports its submodules only when one of
its names is first used.

- ``engine``: ``Store``, opening SQLite/PostgreSQL, errors that tell the truth, sponsors rows
- ``models``: the SQLModel classes and status vocabularies
- ``tables``: the Core tables behind the models, typed once
- ``migrations``: numbered migrations, run on open
- ``lifecycle``: a campaign's statuses, events, listing and deliveries
- ``fastread``: the SQLAlchemy-free read of an up-to-date SQLite store
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sponsorcast.store.engine import (
        DEFAULT_SPONSOR,
        Store,
        apply_sponsors,
        get_sponsor,
        open_from_config,
        open_store,
        parsed_password,
        redact_url,
    )

_LAZY = {
    "DEFAULT_SPONSOR": "engine",
    "Store": "engine",
    "apply_sponsors": "engine",
    "get_sponsor": "engine",
    "open_from_config": "engine",
    "open_store": "engine",
    "parsed_password": "engine",
    "redact_url": "engine",
}


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` on first use (see the module docstring)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sponsorcast.store' has no attribute {name!r}")
    return getattr(importlib.import_module(f"sponsorcast.store.{module}"), name)


__all__ = [
    "DEFAULT_SPONSOR",
    "Store",
    "apply_sponsors",
    "get_sponsor",
    "open_from_config",
    "open_store",
    "parsed_password",
    "redact_url",
]
