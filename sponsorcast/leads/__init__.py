"""Leads: importing them from a source (a CSV file, or PostgreSQL) and listing them.

Rule of this package: an import is all or nothing (or, with ``--rejects``, every good row
and a file of the bad ones) and never moves a lead between sponsors; sources only read,
the column plan only maps, normalisation only judges one row, and only ``upsert`` writes.
The pieces, in the order an import runs them:

- ``sources``: a source yields raw rows ``(row_number, {column: value})``; ``CsvSource``
- ``postgres``: the same for a ``postgresql://`` table or query (imported on its own)
- ``columns``: the column plan, made once from the headers (loose matching, ``--map``)
- ``normalise``: one raw row to a clean lead, or a ``RowError`` with the reason
- ``upsert``: clean leads merged by email and written a chunk at a time, in one transaction
- ``importer``: ``import_leads``, which runs the above and writes the ``--rejects`` file
- ``report``: what an import did
- ``listing``: ``leads list``, and a CSV's leads as recipients for ``render --check``
"""

from __future__ import annotations

from sponsorcast.leads.columns import (
    SYNONYMS,
    TARGETS,
    ColumnPlan,
    normalise_header,
    parse_mapping,
    plan_columns,
    target_for,
)
from sponsorcast.leads.importer import (
    REJECTS_KEPT,
    import_leads,
)
from sponsorcast.leads.listing import (
    LIST_COLUMNS,
    RECIPIENT_KEYS,
    list_leads,
    read_csv_recipients,
)
from sponsorcast.leads.normalise import (
    DEFAULT_STATUS,
    INTENT_LEVELS,
    merge_rows,
    normalise_email,
    normalise_row,
    split_name,
    split_tags,
)
from sponsorcast.leads.report import (
    ImportReport,
)
from sponsorcast.leads.sources import (
    DELIMITERS,
    HEADER_MAX,
    CsvSource,
    LeadSource,
    display_header,
    unique_names,
)
from sponsorcast.leads.upsert import (
    CHUNK_ROWS,
    SQLITE_CACHE_KB,
    Upserter,
    fields_json,
)

__all__ = [
    "CHUNK_ROWS",
    "DEFAULT_STATUS",
    "DELIMITERS",
    "HEADER_MAX",
    "INTENT_LEVELS",
    "LIST_COLUMNS",
    "RECIPIENT_KEYS",
    "REJECTS_KEPT",
    "SQLITE_CACHE_KB",
    "SYNONYMS",
    "TARGETS",
    "ColumnPlan",
    "CsvSource",
    "ImportReport",
    "LeadSource",
    "Upserter",
    "display_header",
    "fields_json",
    "import_leads",
    "list_leads",
    "merge_rows",
    "normalise_email",
    "normalise_header",
    "normalise_row",
    "parse_mapping",
    "plan_columns",
    "read_csv_recipients",
    "split_name",
    "split_tags",
    "target_for",
    "unique_names",
]
