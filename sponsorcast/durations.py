"""Durations as people write them in config, campaign files and options: ``90s``, ``30m``,
``4h``, ``3d``, ``1w`` (and ``1h30m``, or plain seconds)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from sponsorcast.errors import BadInput

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """A duration like ``90m``, ``24h``, ``2d``, ``1h30m`` or plain seconds."""
    raw = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", raw):
        seconds = float(raw)
    elif raw and _DURATION.sub("", raw).strip() == "":
        seconds = sum(float(n) * UNITS[u] for n, u in _DURATION.findall(raw))
    else:
        raise BadInput(
            f"{text!r} is not a duration.",
            hint="Write a number with a unit: 90s, 90m, 24h, 2d (or 1h30m).",
        )
    if seconds <= 0:
        raise BadInput(f"The duration {text!r} must be longer than zero.")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """``1d 2h 5m`` style, to the minute (seconds under a minute)."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)}s"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [
        f"{days}d" if days else "",
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
    ]
    return " ".join(p for p in parts if p)


_FREQUENCY = re.compile(r"(\d+)\s*(?:per|every|/)\s*(\S.*)")


@dataclass(frozen=True)
class FrequencyCap:
    """At most ``emails`` emails of one sponsor to one lead within ``window``."""

    emails: int
    window: timedelta
    text: str  # as the config wrote it, normalised: ``1 per 3d``


def parse_frequency_cap(text: str) -> FrequencyCap:
    """A frequency cap like ``1 per 3d`` or ``2 per 1w``."""
    found = _FREQUENCY.fullmatch(text.strip().lower())
    if found is None or int(found.group(1)) <= 0:
        raise BadInput(
            f"{text!r} is not a frequency cap.",
            hint="Write how many emails per how long, like '1 per 3d' or '2 per 1w'.",
        )
    emails, window = int(found.group(1)), found.group(2).strip()
    return FrequencyCap(emails, parse_duration(window), f"{emails} per {window}")
