"""Scheduled sends: ``schedule``, ``unschedule`` and the cron job ``run-due``.

Rule of this package: it decides *when* a campaign is sent, never *how*: starting and
resuming go through ``sponsorcast.send``, statuses through ``sponsorcast.store.lifecycle``.

- ``times``: the project's time zone, local times, durations
- ``scheduling``: ``schedule`` / ``unschedule``: a checked campaign stored with its time
- ``cron``: ``run-due``: start what is due, resume, mark missed, one report per run
"""

from __future__ import annotations

from sponsorcast.durations import format_duration, parse_duration
from sponsorcast.schedule.cron import (
    DEFAULT_MAX_LATENESS,
    PROGRESS_EVERY,
    QUOTA_RETRY,
    RUN_DUE_CAUSE,
    CampaignOutcome,
    Log,
    RunDueReport,
    due_campaigns,
    run_due,
)
from sponsorcast.schedule.scheduling import (
    SCHEDULABLE,
    Scheduled,
    schedule_campaign,
    unschedule_campaign,
)
from sponsorcast.schedule.times import (
    localize,
    parse_send_time,
    show_time,
    zone_name,
)

__all__ = [
    "DEFAULT_MAX_LATENESS",
    "PROGRESS_EVERY",
    "QUOTA_RETRY",
    "RUN_DUE_CAUSE",
    "SCHEDULABLE",
    "CampaignOutcome",
    "Log",
    "RunDueReport",
    "Scheduled",
    "due_campaigns",
    "format_duration",
    "localize",
    "parse_duration",
    "parse_send_time",
    "run_due",
    "schedule_campaign",
    "show_time",
    "unschedule_campaign",
    "zone_name",
]
