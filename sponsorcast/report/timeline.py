"""Opens and clicks over time: an hour a bucket for the first two days, then a day a bucket."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

HOURLY_FOR = timedelta(hours=48)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Bucket:
    """Recipients who first opened, and first clicked, in ``[start, start + hours)``."""

    start: datetime
    hours: int
    opened: int
    clicked: int

    @property
    def end(self) -> datetime:
        """Where the bucket stops (exclusive)."""
        return self.start + timedelta(hours=self.hours)


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def buckets(per_hour: Sequence[tuple[datetime, int, int]], start: datetime | None) -> list[Bucket]:
    """Group ``(hour, opened, clicked)`` counts into the report's buckets.

    The first bucket is the hour sending started in (or of the first open or click, if that
    is earlier); every hour up to the last one with an action gets a bucket, empty or not,
    so that a chart's axis is time.
    """
    if not per_hour:
        return []
    first = per_hour[0][0]
    origin = _hour(min(start, first) if start is not None else first)
    last = per_hour[-1][0]
    edges: list[tuple[datetime, int]] = []
    at = origin
    while at <= last:
        hours = 1 if at < origin + HOURLY_FOR else 24
        edges.append((at, hours))
        at += timedelta(hours=hours)
    counts = [[0, 0] for _ in edges]
    slot = 0
    for hour, opened, clicked in per_hour:
        while hour >= edges[slot][0] + timedelta(hours=edges[slot][1]):
            slot += 1
        counts[slot][0] += opened
        counts[slot][1] += clicked
    return [
        Bucket(at, hours, opened, clicked)
        for (at, hours), (opened, clicked) in zip(edges, counts, strict=True)
    ]


__all__ = ["Bucket", "buckets"]
