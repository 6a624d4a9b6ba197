"""People erased on request (``leads forget``) are kept only as a keyed hash of their address.

The hash is an entry of the suppression list for every sponsor, ``erased:<hex>``; the lead
rows of the person become tombstones with that same value as their address, so the counts
of old campaigns still add up and no audience can select them. A later import computes the
hash of each address and skips the rows of erased people: a sponsor's CRM export that still
lists them never brings them back.

The key is made once per store and kept in it (``store_setting``): a hash is only
comparable within the store that made it, and a list of hashes from one store says nothing
about the addresses in another.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import sqlalchemy as sa

from sponsorcast.store.tables import setting_t, suppression_t

ERASED_PREFIX = "erased:"
ERASED_REASON = "erased"
KEY_NAME = "erasure_key"


def erasure_key(conn: sa.Connection) -> bytes:
    """The store's key for erased people's hashes, made on first use."""
    row = conn.execute(sa.select(setting_t.c.value).where(setting_t.c.name == KEY_NAME)).first()
    if row is None:
        conn.execute(setting_t.insert().values(name=KEY_NAME, value=secrets.token_hex(32)))
        return erasure_key(conn)
    return bytes.fromhex(row.value)


def erased_token(key: bytes, email: str) -> str:
    """What stands for an erased address: ``erased:`` and a keyed hash of it, normalised."""
    digest = hmac.new(key, email.strip().lower().encode(), hashlib.sha256).hexdigest()
    return ERASED_PREFIX + digest[:40]


def erased_tokens(conn: sa.Connection) -> frozenset[str]:
    """Every erased person's token in the store (usually none, so imports pay nothing)."""
    s = suppression_t
    return frozenset(
        conn.execute(sa.select(s.c.email).where(s.c.email.like(ERASED_PREFIX + "%"))).scalars()
    )
