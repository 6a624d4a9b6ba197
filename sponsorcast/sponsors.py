"""Sponsors: adding, listing and showing them (the config file's own are applied on open)."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from sponsorcast.branding import branding_problem
from sponsorcast.errors import BadInput
from sponsorcast.headers import mailbox_problem
from sponsorcast.store import Store, get_sponsor
from sponsorcast.store.models import Campaign, Lead, Sponsor, utcnow

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def add_sponsor(
    store: Store,
    sponsor_id: str,
    *,
    name: str | None,
    from_address: str | None,
    reply_to: str | None,
    postal_address: str | None,
    messaging_enabled: bool | None = None,
    branding: dict[str, str | None] | None = None,
) -> tuple[Sponsor, bool]:
    """Create a sponsor, or change only the fields given (None keeps what is stored)."""
    if not _SLUG.match(sponsor_id):
        raise BadInput(
            f"Sponsor id '{sponsor_id}' must be a slug: lower-case letters, digits, '-' or '_'."
        )
    if from_address:
        check_from_address(from_address, "--from")
    if reply_to:
        check_from_address(reply_to, "--reply-to")
    given = {k: v for k, v in (branding or {}).items() if v is not None}
    for key, value in given.items():
        problem = branding_problem(key, value) if value else None
        if problem is not None:
            raise BadInput(f"--{key.replace('_', '-')} {value!r}: {problem}.")
    now = utcnow()
    with store.session() as session:
        sponsor = session.get(Sponsor, sponsor_id)
        created = sponsor is None
        if sponsor is None:
            if not name:
                raise BadInput(f"Sponsor '{sponsor_id}' is new: give it a --name.")
            sponsor = Sponsor(id=sponsor_id, name=name, messaging_enabled=True, created_at=now)
        if name is not None:
            sponsor.name = name
        if from_address is not None:
            sponsor.from_address = from_address
        if reply_to is not None:
            sponsor.reply_to = reply_to
        if postal_address is not None:
            sponsor.postal_address = postal_address
        if messaging_enabled is not None:
            sponsor.messaging_enabled = messaging_enabled
        for key, value in given.items():  # an empty value clears the setting
            setattr(sponsor, key, value or None)
        sponsor.updated_at = now
        session.add(sponsor)
        session.commit()
        session.refresh(sponsor)
        return sponsor, created


def list_sponsors(store: Store) -> list[Sponsor]:
    """Every sponsor, by id."""
    with store.session() as session:
        return list(session.scalars(sa.select(Sponsor).order_by(Sponsor.id)))


def show_sponsor(store: Store, sponsor_id: str) -> dict[str, Any]:
    """A sponsor with its lead and campaign counts."""

    sponsor = get_sponsor(store, sponsor_id)
    with store.read() as conn:
        leads = conn.execute(
            sa.select(sa.func.count()).select_from(Lead).where(Lead.sponsor_id == sponsor_id)  # type: ignore[arg-type]
        ).scalar_one()
        campaigns = conn.execute(
            sa.select(sa.func.count())
            .select_from(Campaign)
            .where(Campaign.sponsor_id == sponsor_id)  # type: ignore[arg-type]
        ).scalar_one()
    return {**sponsor_dict(sponsor), "leads": leads, "campaigns": campaigns}


def sponsor_dict(sponsor: Sponsor) -> dict[str, Any]:
    """A sponsor as stable JSON keys."""
    return {
        "id": sponsor.id,
        "name": sponsor.name,
        "from": sponsor.from_address,
        "reply_to": sponsor.reply_to,
        "postal_address": sponsor.postal_address,
        "messaging_enabled": sponsor.messaging_enabled,
        "accent_color": sponsor.accent_color,
        "logo_url": sponsor.logo_url,
        "unsubscribe_mailto": sponsor.unsubscribe_mailto,
        "layout": sponsor.layout,
    }


def check_from_address(value: str, key: str) -> None:
    """A from or reply-to address must be one ``Name <addr@domain>`` or a bare address."""

    problem = mailbox_problem(value)
    if problem is not None:
        raise BadInput(f"{key} {value!r} cannot be a sender address: {problem}.")
