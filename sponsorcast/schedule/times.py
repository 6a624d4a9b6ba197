"""Times for scheduling: the project's zone, local times, durations, how times are shown."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from sponsorcast.campaign import RELATIVE_TIME
from sponsorcast.config import Config
from sponsorcast.durations import UNITS as _UNITS
from sponsorcast.errors import (
    BadInput,
)

_TIME_TEXT = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|z|[+-]\d{2}(:?\d{2})?)?$"
)


def zone_name(config: Config) -> str:
    """The configured time zone's name, or "the system time zone"."""
    return config.timezone or "the system time zone"


def _zone(config: Config) -> tzinfo | None:
    if not config.timezone:
        return None

    return ZoneInfo(config.timezone)


def localize(naive: datetime, config: Config, *, what: str = "time") -> datetime:
    """A local wall-clock time in the configured zone (default: the system's) as aware UTC.

    A time that does not exist (clocks skip it) or exists twice (clocks go back) is refused:
    guessing would send an hour early or late.
    """
    zone = _zone(config)

    def attach(fold: int) -> datetime:
        d = naive.replace(fold=fold)
        return d.replace(tzinfo=zone) if zone is not None else d.astimezone()

    early, late = attach(0), attach(1)
    if early.utcoffset() != late.utcoffset():
        utc = early.astimezone(UTC)  # via UTC: astimezone to its own zone is a no-op
        back = utc.astimezone(zone) if zone is not None else utc.astimezone()
        shown = naive.isoformat(sep=" ", timespec="minutes")
        if back.replace(tzinfo=None) == naive:
            offsets = " or ".join(_offset_text(d) for d in (early, late))
            raise BadInput(
                f"The {what} {shown} happens twice in {zone_name(config)} (the clocks go back); "
                "it is ambiguous.",
                hint=f"Give the UTC offset, e.g. {naive.isoformat(timespec='minutes')}{offsets.split(' or ')[0]} "
                f"(possible offsets: {offsets}).",
            )
        raise BadInput(
            f"The {what} {shown} does not exist in {zone_name(config)} (the clocks skip it).",
            hint="Give another time, or a time with its UTC offset.",
        )
    return early.astimezone(UTC)


def _offset_text(d: datetime) -> str:
    offset = d.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def parse_send_time(
    text: str, config: Config, *, what: str = "time", now: datetime | None = None
) -> datetime:
    """A send time → aware UTC: ISO-8601 with an offset, a local time in the configured zone
    (``2026-12-01 09:00``), or relative to ``now``: ``now``, ``in 2h``, ``+90m``,
    ``today 17:00``, ``tomorrow 09:00`` (days in the configured zone)."""
    raw = text.strip()
    hint = (
        "Write a date and time, e.g. 2026-12-01T09:00:00+01:00, or 2026-12-01 09:00 for local "
        "time, or 'tomorrow 09:00', 'today 17:30', 'in 2h'."
    )
    if RELATIVE_TIME.match(raw):
        return _relative(raw.lower(), config, now or datetime.now(UTC), what=what)
    if not _TIME_TEXT.match(raw):
        raise BadInput(f"The {what} {text!r} is not a date and time.", hint=hint)
    try:
        value = datetime.fromisoformat(raw.replace("z", "Z").replace(" Z", "Z"))
    except ValueError:
        raise BadInput(f"The {what} {text!r} is not a valid date and time.", hint=hint) from None
    if value.tzinfo is None:
        return localize(value, config, what=what)
    return value.astimezone(UTC)


_WORD_UNITS = {"sec": "s", "min": "m", "hou": "h", "day": "d", "wee": "w"}


def _relative(raw: str, config: Config, now: datetime, *, what: str) -> datetime:
    if raw == "now":
        return now.astimezone(UTC)
    day = re.match(r"(today|tomorrow)\s+(?:at\s+)?(\d{1,2}):(\d{2})$", raw)
    if day is None:
        amounts = re.findall(r"(\d+)\s*([a-z]+)", raw)
        seconds = sum(int(n) * _UNITS[_WORD_UNITS.get(unit[:3], unit[0])] for n, unit in amounts)
        return (now + timedelta(seconds=seconds)).astimezone(UTC)
    hour, minute = int(day.group(2)), int(day.group(3))
    if hour > 23 or minute > 59:
        raise BadInput(f"The {what} {raw!r} is not a time of day (00:00 to 23:59).")
    zone = _zone(config)
    today = (now.astimezone(zone) if zone is not None else now.astimezone()).date()
    date = today + timedelta(days=1 if day.group(1) == "tomorrow" else 0)
    return localize(datetime(date.year, date.month, date.day, hour, minute), config, what=what)


def show_time(value: datetime, config: Config) -> str:
    """A time as the configured zone's wall clock with its offset (ISO-8601, to the second)."""
    zone = _zone(config)
    local = value.astimezone(zone) if zone is not None else value.astimezone()
    return local.isoformat(timespec="seconds")
