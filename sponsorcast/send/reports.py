"""What a send reports: progress after each batch, and the run's report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sponsorcast.send.abtest import ABState
from sponsorcast.store.models import (
    CampaignStatus,
)


@dataclass
class Progress:
    """Counts a running send reports after each batch."""

    total: int
    sent: int = 0
    failed: int = 0
    batches: int = 0
    seconds: float = 0.0  # from the first batch claimed to the last one recorded, in this run

    @property
    def emails_per_second(self) -> float:
        """Emails accepted per second so far: the figure the summary ends with."""
        return self.sent / self.seconds if self.seconds > 0 else 0.0


@dataclass
class RunReport:
    """What one run did to one campaign."""

    campaign_id: str
    status: str
    transport: str
    sends_for_real: bool
    total: int
    sent_now: int = 0
    failed_now: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    unknown_batches: int = 0  # batches without an answer, left to re-send in a later run
    unknown_now: int = 0  # deliveries given up in this run (outcome unknown; marked failed)
    elapsed: float = 0.0  # the whole run, set-up and last claim included
    sending_seconds: float = 0.0  # from the first batch claimed to the last one recorded
    already_finished: bool = False
    stopped_reason: str | None = None
    capped: str | None = None  # the day's allowance is used up: why, and when it continues
    held: int = 0  # recipients the frequency cap skipped (a follow-up's: put back to wait)
    frequency: str | None = None  # the sponsor's frequency cap, as written (``1 per 3d``)
    follow_up: bool = False
    test: ABState | None = None  # an A/B test's state after the run

    @property
    def emails_per_second(self) -> float:
        """Emails accepted per second of sending in this run (first claim to last answer): the
        same interval ``stats`` measures over the batches, so the two figures agree."""
        return self.sent_now / self.sending_seconds if self.sending_seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        """True when nothing failed and nothing is left over."""
        return (
            self.failed_now == 0
            and self.unknown_batches == 0
            and self.status in (CampaignStatus.SENT, CampaignStatus.SENDING)
            and self.stopped_reason is None
        )


ProgressCallback = Callable[[Progress], None]
