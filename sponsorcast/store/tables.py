"""The SQLAlchemy Core tables behind the models, typed once for the modules that write SQL."""

from __future__ import annotations

import sqlalchemy as sa

from sponsorcast.store.models import (
    Campaign,
    Delivery,
    Event,
    Lead,
    RateBudget,
    SendBatch,
    Sponsor,
    StoreSetting,
    Suppression,
)

# SQLModel declares __table__ at run time only; these aliases carry the type for mypy
sponsor_t: sa.Table = Sponsor.__table__  # type: ignore[attr-defined]
lead_t: sa.Table = Lead.__table__  # type: ignore[attr-defined]
campaign_t: sa.Table = Campaign.__table__  # type: ignore[attr-defined]
delivery_t: sa.Table = Delivery.__table__  # type: ignore[attr-defined]
event_t: sa.Table = Event.__table__  # type: ignore[attr-defined]
batch_t: sa.Table = SendBatch.__table__  # type: ignore[attr-defined]
suppression_t: sa.Table = Suppression.__table__  # type: ignore[attr-defined]
budget_t: sa.Table = RateBudget.__table__  # type: ignore[attr-defined]
setting_t: sa.Table = StoreSetting.__table__  # type: ignore[attr-defined]

__all__ = [
    "batch_t",
    "budget_t",
    "campaign_t",
    "delivery_t",
    "event_t",
    "lead_t",
    "setting_t",
    "sponsor_t",
    "suppression_t",
]
