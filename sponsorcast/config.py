"""Configuration: ``sponsorcast.toml`` plus the environment, validated into frozen objects.

Precedence is command-line flag > environment > file > default. Secrets (``RESEND_API_KEY``,
``SPONSORCAST_SECRET``, ``RESEND_WEBHOOK_SECRET``) come only from the environment and are
never part of ``repr``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sponsorcast.durations import parse_frequency_cap
from sponsorcast.errors import BadInput, ConfigError

CONFIG_NAME = "sponsorcast.toml"
DEFAULT_STORE_URL = "sqlite:///sponsorcast.db"
DEFAULT_BASE_URL = "https://api.resend.com"


TransportKind = Literal["resend", "outbox"]
Endpoint = Literal["batch", "single"]


@dataclass(frozen=True)
class ResendConfig:
    """The ``[resend]`` table."""

    base_url: str = DEFAULT_BASE_URL
    rate_limit: float | None = None  # None means "auto"
    batch_size: int = 100
    max_attempts: int = 3
    timeout: float = 30.0
    concurrency: int = 8
    endpoint: Endpoint = "batch"  # "batch" (/emails/batch) or "single" (/emails)
    shared_limit: bool = True  # every sender of the store draws from one budget per team


@dataclass(frozen=True)
class BrakeConfig:
    """The brakes of ``[send]``: rates past which a sending campaign pauses itself."""

    bounce_rate: float = 0.03  # SES reviews accounts from 5 %
    complaint_rate: float = 0.0005  # Gmail asks for under 0.1 %, SES reviews from 0.1 %
    min_sample: int = 500  # emails sent before either rate counts


@dataclass(frozen=True)
class TrackingConfig:
    """The ``[tracking]`` table."""

    public_url: str = ""
    open_tracking: bool = True
    click_tracking: bool = True
    unsubscribe_mailto: str = ""


@dataclass(frozen=True)
class SponsorConfig:
    """One ``[sponsors.ID]`` table: only the fields the file sets are not None."""

    id: str
    name: str | None = None
    from_address: str | None = None
    reply_to: str | None = None
    postal_address: str | None = None
    messaging_enabled: bool | None = None
    accent_color: str | None = None
    logo_url: str | None = None
    unsubscribe_mailto: str | None = None
    layout: str | None = None
    daily_cap: int | None = None  # emails a day at most, over all the sponsor's campaigns
    warmup: int | None = None  # emails on the first sending day, doubling daily to daily_cap
    frequency_cap: str | None = None  # ``1 per 3d``: emails of the sponsor one lead may get


@dataclass(frozen=True)
class Secrets:
    """Secrets read from the environment; never printed."""

    resend_api_key: str | None = field(default=None, repr=False)
    sponsorcast_secret: str | None = field(default=None, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Config:
    """Everything a command needs to know about its surroundings."""

    store_url: str = DEFAULT_STORE_URL
    transport: TransportKind = "outbox"  # safe by default: nothing leaves the machine
    resend: ResendConfig = ResendConfig()
    outbox_dir: Path = Path("outbox")
    tracking: TrackingConfig = TrackingConfig()
    sponsors: tuple[SponsorConfig, ...] = ()
    timezone: str | None = None
    language: str = "en"  # the lang of every HTML part, unless a campaign sets its own
    lease_seconds: float = 300.0
    brakes: BrakeConfig = BrakeConfig()
    path: Path | None = None
    secrets: Secrets = field(default_factory=Secrets, repr=False)

    @property
    def root(self) -> Path:
        """The project folder: where the config file is (partials/ and layouts/ live there)."""
        return self.path.parent if self.path is not None else Path.cwd()


_SCHEMA: dict[str, dict[str, type | tuple[type, ...]]] = {
    "store": {"url": str},
    "transport": {"kind": str},
    "resend": {
        "base_url": str,
        "rate_limit": (str, int, float),
        "batch_size": int,
        "max_attempts": int,
        "timeout": (int, float),
        "concurrency": int,
        "endpoint": str,
        "shared_limit": bool,
    },
    "outbox": {"dir": str},
    "tracking": {
        "public_url": str,
        "open_tracking": bool,
        "click_tracking": bool,
        "unsubscribe_mailto": str,
    },
    "send": {
        "lease_seconds": (int, float),
        "bounce_brake": (str, int, float),
        "complaint_brake": (str, int, float),
        "brake_min_sample": int,
    },
}
_SPONSOR_KEYS: dict[str, type] = {
    "name": str,
    "from": str,
    "reply_to": str,
    "postal_address": str,
    "messaging_enabled": bool,
    "accent_color": str,
    "logo_url": str,
    "unsubscribe_mailto": str,
    "layout": str,
    "daily_cap": int,
    "warmup": int,
    "frequency_cap": str,
}
_TOP_LEVEL_SCALARS: dict[str, type] = {"timezone": str, "language": str}


def find_config_path(flag: Path | None, env: Mapping[str, str]) -> Path | None:
    """Return the config file to use: the flag, then SPONSORCAST_CONFIG, then ./sponsorcast.toml."""
    if flag is not None:
        if not flag.is_file():
            raise ConfigError(f"Config file {flag} does not exist.")
        return flag
    env_path = env.get("SPONSORCAST_CONFIG")
    if env_path:
        path = Path(env_path)
        if not path.is_file():
            raise ConfigError(f"SPONSORCAST_CONFIG names {path}, which does not exist.")
        return path
    local = Path(CONFIG_NAME)
    return local if local.is_file() else None


def load_config(
    path: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    store_url: str | None = None,
) -> Config:
    """Read the config file (if any) and the environment; ``store_url`` is the flag's value."""
    environ = os.environ if env is None else env
    config_path = find_config_path(path, environ)
    data: dict[str, Any] = {}
    if config_path is not None:
        try:
            data = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path} is not valid TOML: {exc}.") from None
        except OSError as exc:
            raise ConfigError(f"Cannot read {config_path}: {exc.strerror}.") from None
    where = str(config_path) if config_path else "the configuration"
    _check_keys(data, where)
    base_dir = config_path.parent if config_path else Path(".")
    return _build(data, environ, base_dir, config_path, store_url, where)


def _check_keys(data: dict[str, Any], where: str) -> None:
    for key, value in data.items():
        if key in _TOP_LEVEL_SCALARS:
            if not isinstance(value, _TOP_LEVEL_SCALARS[key]):
                raise ConfigError(f"{where}: '{key}' must be a string.")
            continue
        if key == "sponsors":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: 'sponsors' must be a table of [sponsors.ID] tables.")
            for sid, table in value.items():
                _check_table(f"sponsors.{sid}", table, _SPONSOR_KEYS, where)
            continue
        if key not in _SCHEMA:
            known = ", ".join(sorted([*_SCHEMA, "sponsors", *_TOP_LEVEL_SCALARS]))
            raise ConfigError(f"{where}: unknown key '{key}' (known: {known}).")
        _check_table(key, value, _SCHEMA[key], where)


def _check_table(
    name: str, table: Any, schema: Mapping[str, type | tuple[type, ...]], where: str
) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: '{name}' must be a table.")
    for key, value in table.items():
        if key not in schema:
            known = ", ".join(schema)
            raise ConfigError(f"{where}: unknown key '{name}.{key}' (known: {known}).")
        expected = schema[key]
        # bool is an int in Python; a number key must not accept true/false
        if isinstance(value, bool) and expected is not bool:
            raise ConfigError(f"{where}: '{name}.{key}' has the wrong type ({value!r}).")
        if not isinstance(value, expected):
            raise ConfigError(f"{where}: '{name}.{key}' has the wrong type ({value!r}).")


def _build(
    data: dict[str, Any],
    env: Mapping[str, str],
    base_dir: Path,
    config_path: Path | None,
    store_flag: str | None,
    where: str,
) -> Config:
    file_url = data.get("store", {}).get("url")
    if store_flag:
        url = store_flag
    elif env.get("SPONSORCAST_DB"):
        url = env["SPONSORCAST_DB"]
    elif file_url:
        url = _relative_sqlite(file_url, base_dir)
    else:
        url = DEFAULT_STORE_URL
    if url.startswith("postgres://"):  # the short scheme many hosting providers hand out
        url = "postgresql://" + url[len("postgres://") :]
    if not (url.startswith("sqlite:") or url.startswith("postgresql")):
        raise ConfigError(
            f"{where}: 'store.url' must start with sqlite:/// or postgresql:// (got {url!r})."
        )

    kind = data.get("transport", {}).get("kind", "outbox")
    if kind not in ("resend", "outbox"):
        raise ConfigError(
            f'{where}: \'transport.kind\' must be "resend" or "outbox" (got {kind!r}).'
        )

    resend = _build_resend(data.get("resend", {}), env, where)
    outbox = data.get("outbox", {}).get("dir", "outbox")
    outbox_dir = Path(outbox) if Path(outbox).is_absolute() else base_dir / outbox

    tracking_data = data.get("tracking", {})
    public_url = str(tracking_data.get("public_url", "")).rstrip("/")
    if public_url and not public_url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: 'tracking.public_url' must be an http(s) URL.")
    tracking = TrackingConfig(
        public_url=public_url,
        open_tracking=tracking_data.get("open_tracking", True),
        click_tracking=tracking_data.get("click_tracking", True),
        unsubscribe_mailto=tracking_data.get("unsubscribe_mailto", ""),
    )

    for sid, table in data.get("sponsors", {}).items():
        _check_sponsor_addresses(sid, table, where)
    sponsors = tuple(
        SponsorConfig(
            id=sid,
            name=table.get("name"),
            from_address=table.get("from"),
            reply_to=table.get("reply_to"),
            postal_address=table.get("postal_address"),
            messaging_enabled=table.get("messaging_enabled"),
            accent_color=table.get("accent_color"),
            logo_url=table.get("logo_url"),
            unsubscribe_mailto=table.get("unsubscribe_mailto"),
            layout=table.get("layout"),
            daily_cap=_positive(table, "daily_cap", f"sponsors.{sid}", where),
            warmup=_positive(table, "warmup", f"sponsors.{sid}", where),
            frequency_cap=_frequency_cap(table, f"sponsors.{sid}", where),
        )
        for sid, table in data.get("sponsors", {}).items()
    )

    timezone = env.get("SPONSORCAST_TIMEZONE") or data.get("timezone")
    if timezone:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # on use: keeps start-up fast

        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"{where}: 'timezone' {timezone!r} is not a known time zone."
            ) from None

    lease = float(data.get("send", {}).get("lease_seconds", 300))
    if lease <= 0:
        raise ConfigError(f"{where}: 'send.lease_seconds' must be positive.")

    return Config(
        store_url=url,
        transport=kind,
        resend=resend,
        outbox_dir=outbox_dir,
        tracking=tracking,
        sponsors=sponsors,
        timezone=timezone,
        language=_language(data.get("language"), where),
        lease_seconds=lease,
        brakes=_build_brakes(data.get("send", {}), where),
        path=config_path,
        secrets=Secrets(
            resend_api_key=env.get("RESEND_API_KEY") or None,
            sponsorcast_secret=env.get("SPONSORCAST_SECRET") or None,
            webhook_secret=env.get("RESEND_WEBHOOK_SECRET") or None,
        ),
    )


def _positive(table: dict[str, Any], key: str, name: str, where: str) -> int | None:
    value = table.get(key)
    if value is not None and (isinstance(value, bool) or value < 1):
        raise ConfigError(f"{where}: '{name}.{key}' must be a whole number of at least 1.")
    return value if value is None else int(value)


def _frequency_cap(table: dict[str, Any], name: str, where: str) -> str | None:
    value = table.get("frequency_cap")
    if value is None:
        return None
    try:
        return parse_frequency_cap(value).text
    except BadInput:
        raise ConfigError(
            f"{where}: '{name}.frequency_cap' {value!r} is not a frequency cap.",
            hint="Write how many emails per how long, like '1 per 3d' or '2 per 1w'.",
        ) from None


def _build_brakes(table: dict[str, Any], where: str) -> BrakeConfig:
    default = BrakeConfig()
    sample = table.get("brake_min_sample", default.min_sample)
    if sample < 1:
        raise ConfigError(f"{where}: 'send.brake_min_sample' must be at least 1.")
    return BrakeConfig(
        bounce_rate=_rate(table, "bounce_brake", default.bounce_rate, where),
        complaint_rate=_rate(table, "complaint_brake", default.complaint_rate, where),
        min_sample=sample,
    )


def percent(raw: Any) -> float | None:
    """``"3%"`` as 0.03; None for anything that is not a number followed by ``%``."""
    if not isinstance(raw, str) or not raw.strip().endswith("%"):
        return None
    try:
        return float(raw.strip()[:-1]) / 100
    except ValueError:
        return None


def _rate(table: dict[str, Any], key: str, default: float, where: str) -> float:
    """A rate written ``"3%"`` (or ``0.03``), between 0 and 1."""
    raw = table.get(key, default)
    value = percent(raw)
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value = float(raw)
    if value is None or not 0 < value <= 1:
        raise ConfigError(
            f"{where}: 'send.{key}' must be a share such as \"3%\" (more than 0, at most 100 %)."
        )
    return value


def _build_resend(table: dict[str, Any], env: Mapping[str, str], where: str) -> ResendConfig:
    base_url = (env.get("RESEND_BASE_URL") or table.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: 'resend.base_url' must be an http(s) URL (got {base_url!r}).")
    raw_rate = table.get("rate_limit", "auto")
    rate: float | None
    if raw_rate == "auto":
        rate = None
    elif isinstance(raw_rate, (int, float)) and raw_rate > 0:
        rate = float(raw_rate)
    else:
        raise ConfigError(f"{where}: 'resend.rate_limit' must be \"auto\" or a positive number.")
    batch_size = table.get("batch_size", 100)
    if not 1 <= batch_size <= 100:
        raise ConfigError(f"{where}: 'resend.batch_size' must be between 1 and 100.")
    max_attempts = table.get("max_attempts", 3)
    if max_attempts < 1:
        raise ConfigError(f"{where}: 'resend.max_attempts' must be at least 1.")
    timeout = float(table.get("timeout", 30))
    if timeout <= 0:
        raise ConfigError(f"{where}: 'resend.timeout' must be positive.")
    concurrency = table.get("concurrency", 8)
    if not 1 <= concurrency <= 64:
        raise ConfigError(f"{where}: 'resend.concurrency' must be between 1 and 64.")
    endpoint = table.get("endpoint", "batch")
    if endpoint not in ("batch", "single"):
        raise ConfigError(f'{where}: \'resend.endpoint\' must be "batch" or "single".')
    return ResendConfig(
        base_url=base_url,
        rate_limit=rate,
        batch_size=batch_size,
        max_attempts=max_attempts,
        timeout=timeout,
        concurrency=concurrency,
        endpoint=endpoint,
        shared_limit=table.get("shared_limit", True),
    )


# A language tag as <html lang> takes it: en, de, pt-BR.
LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*\Z")


def _language(value: str | None, where: str) -> str:
    if value is None:
        return "en"
    if not LANGUAGE_TAG.match(value):
        raise ConfigError(f"{where}: 'language' {value!r} must be a language tag like en or de.")
    return value


def _check_sponsor_addresses(sponsor_id: str, table: dict[str, Any], where: str) -> None:
    from sponsorcast.branding import BRANDING_KEYS, branding_problem  # on use: start-up time
    from sponsorcast.headers import header_problem, mailbox_problem  # on use: keeps start-up fast

    for key in BRANDING_KEYS:
        value = table.get(key)
        problem = branding_problem(key, value) if isinstance(value, str) else None
        if problem is not None:
            raise ConfigError(f"{where}: 'sponsors.{sponsor_id}.{key}' {value!r}: {problem}.")
    for key in ("from", "reply_to"):
        value = table.get(key)
        problem = mailbox_problem(value) if isinstance(value, str) and value else None
        if problem is not None:
            raise ConfigError(
                f"{where}: 'sponsors.{sponsor_id}.{key}' {value!r} cannot be a sender address: "
                f"{problem}."
            )
    name = table.get("name")
    problem = header_problem(name) if isinstance(name, str) else None
    if problem is not None:
        raise ConfigError(f"{where}: 'sponsors.{sponsor_id}.name' {name!r}: {problem}.")


def _relative_sqlite(url: str, base_dir: Path) -> str:
    """A relative SQLite path in a config file is relative to that file, not the cwd."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite:///:memory:":
        return prefix + str(base_dir / url[len(prefix) :])
    return url
