"""``doctor``: check config, key, store and provider, and say what to fix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sponsorcast.config import Config, load_config
from sponsorcast.errors import SponsorcastError
from sponsorcast.sponsors import list_sponsors
from sponsorcast.store import open_from_config, open_store, redact_url
from sponsorcast.suppression import suppressed_per_sponsor
from sponsorcast.transport import api_key_problem
from sponsorcast.transport.keycheck import ask_provider
from sponsorcast.wording import count


@dataclass(frozen=True)
class Check:
    """One check's outcome; ``fix`` says what to do when it failed."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def run_checks(
    config_path: Path | None, store_url: str | None, *, timeout: float = 5.0
) -> list[Check]:
    """Run every check in order; later checks are skipped when what they need is broken."""

    checks: list[Check] = []
    try:
        config = load_config(config_path, store_url=store_url)
    except SponsorcastError as exc:
        return [
            Check(
                "config", False, exc.message, exc.hint or "Fix the file, or run 'sponsorcast init'."
            )
        ]
    where = str(config.path) if config.path else "no sponsorcast.toml (defaults)"
    checks.append(Check("config", True, where))
    checks.append(_store_check(config.store_url))
    checks.extend(_sponsor_checks(config))
    checks.extend(_tracking_check(config))
    if config.transport == "outbox":
        checks.append(
            Check("transport", True, f"outbox: .eml files in {config.outbox_dir}, nothing is sent")
        )
        return checks
    if not config.secrets.resend_api_key:
        checks.append(
            Check(
                "api key",
                False,
                "RESEND_API_KEY is not set",
                "export RESEND_API_KEY=re_… (never put it in sponsorcast.toml)",
            )
        )
        return checks

    problem = api_key_problem(config.secrets.resend_api_key)
    if problem is not None:
        checks.append(Check("api key", False, problem, "export RESEND_API_KEY=re_… again"))
        return checks
    checks.append(Check("api key", True, "RESEND_API_KEY is set"))
    checks.append(_provider_check(config.resend.base_url, config.secrets.resend_api_key, timeout))
    return checks


def _store_check(url: str) -> Check:

    try:
        store = open_store(url)
        pending = store.migration_state().pending
        store.dispose()
    except SponsorcastError as exc:
        return Check(
            "store", False, exc.message, exc.hint or "Check [store] url or SPONSORCAST_DB."
        )
    return Check("store", True, f"{_safe_url(url)} (schema up to date)" if not pending else url)


def _sponsor_checks(config: Config) -> list[Check]:
    """Every sponsor in the store (the file's are applied to it on open), as send would judge it."""
    try:
        store = open_from_config(config)
        try:
            sponsors = list_sponsors(store)
            leads = suppressed_per_sponsor(store)
        finally:
            store.dispose()
    except SponsorcastError:
        return []  # the store check above already says what is wrong
    out = []
    for sponsor in sponsors:
        name = f"sponsor {sponsor.id}"
        where = f"[sponsors.{sponsor.id}] in sponsorcast.toml (or 'sponsorcast sponsors add')"
        if not sponsor.from_address:
            out.append(Check(name, False, "no from address", f"Set 'from' under {where}."))
        elif not sponsor.postal_address:
            out.append(
                Check(
                    name,
                    False,
                    "no postal address (required in every footer)",
                    f"Set 'postal_address' under {where}.",
                )
            )
        elif not sponsor.messaging_enabled:
            out.append(Check(name, True, "messaging disabled: send refuses its campaigns"))
        else:
            out.append(Check(name, True, sponsor.from_address))
        total, suppressed = leads.get(sponsor.id, (0, 0))
        if total:
            last = out[-1]
            out[-1] = Check(
                last.name,
                last.ok,
                f"{last.detail}; {count(total, 'lead')}, {suppressed:,} of them suppressed",
                last.fix,
            )
    return out


def _tracking_check(config: Config) -> list[Check]:
    if config.tracking.public_url and not config.secrets.sponsorcast_secret:
        return [
            Check(
                "tracking",
                False,
                "tracking.public_url is set but SPONSORCAST_SECRET is not; send would refuse",
                "export SPONSORCAST_SECRET=$(openssl rand -hex 32)",
            )
        ]
    return []


def _provider_check(base_url: str, key: str, timeout: float) -> Check:
    answer = ask_provider(base_url, key, timeout)
    if answer.verdict in ("accepted", "sending-only"):
        return Check("provider", True, answer.detail)
    if answer.verdict == "refused":
        fix = (
            "Check [resend] base_url / RESEND_BASE_URL."
            if answer.status == 404
            else "Create a key with sending access in the Resend dashboard."
        )
        return Check("provider", False, answer.detail, fix)
    if answer.status is None:
        return Check(
            "provider",
            False,
            answer.detail,
            "Check the network, or [resend] base_url / RESEND_BASE_URL.",
        )
    return Check("provider", False, answer.detail, "Try again later.")


def _safe_url(url: str) -> str:

    return redact_url(url)
