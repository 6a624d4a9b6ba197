"""The suppression list: addresses never to email again, per sponsor or for all.

- ``entries``: adding, removing and listing entries; the SQL condition sends honour
- ``files``: ``suppress import`` and ``suppress export``
- ``erased``: the keyed hashes that stand for people erased on request (``leads forget``)


An entry is (``email``, ``sponsor_id``, ``reason``); ``sponsor_id = '*'`` (``ALL_SPONSORS``)
means every sponsor. Addresses are kept trimmed and lower-cased, the way leads are compared.

The send engine leaves suppressed addresses out with one SQL condition, at snapshot and again
when it claims a batch::

    from sponsorcast.suppression import suppressed_condition
    # snapshot: over the lead table
    suppressed_condition(campaign.sponsor_id)                          # EXISTS(...) on lead.email
    # claim: over the delivery table
    suppressed_condition(campaign.sponsor_id, delivery_table.c.recipient)

Both give ``EXISTS (SELECT 1 FROM suppression WHERE suppression.email = lower(<email>) AND
suppression.sponsor_id IN (<sponsor>, '*'))``; ``sponsor_id`` may also be a column (e.g.
``campaign.c.sponsor_id`` in a join). It uses the index on ``suppression.email``.
"""

from __future__ import annotations

from sponsorcast.suppression.entries import (
    COLUMNS,
    REASONS,
    SuppressResult,
    add,
    insert_ignore,
    is_suppressed,
    list_suppressions,
    normalize_email,
    remove,
    suppress_conn,
    suppressed_condition,
    suppressed_per_sponsor,
    validate_emails,
)

__all__ = [
    "COLUMNS",
    "REASONS",
    "SuppressResult",
    "add",
    "insert_ignore",
    "is_suppressed",
    "list_suppressions",
    "normalize_email",
    "remove",
    "suppress_conn",
    "suppressed_condition",
    "suppressed_per_sponsor",
    "validate_emails",
]
