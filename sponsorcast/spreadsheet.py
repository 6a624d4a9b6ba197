"""CSV cells that a spreadsheet will not run as formulas.

Every CSV sponsorcast writes (``leads list --csv``, ``deliveries --csv``, ``suppress list
--csv``, the ``--rejects`` file) may be opened in Excel, LibreOffice or Google Sheets, and its
cells come from outside: lead names, companies, even addresses (``=1+1@example.com`` is a
valid one). A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is
a formula to a spreadsheet, so it is written with a leading ``'`` (OWASP's rule), which a
spreadsheet shows as text. ``--raw`` on those commands writes the cells unchanged, for
programs that read the CSV.
"""

from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """A text cell a spreadsheet shows as text: a leading ``'`` before a formula character."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


__all__ = ["FORMULA_STARTS", "safe_cell"]
