"""Sending: validate and render everything, snapshot, then claim, send and record.

Rule of this package: exactly-once lives here. Nothing below a ``Claimer`` talks to the
provider, and nothing above it writes a delivery row; a transport is reached only through
``sponsorcast.transport``'s protocol. The argument, whatever is killed where:

1. ``plan`` renders every recipient (a template error sends nothing); ``snapshot`` then, in
   ONE write transaction, inserts the campaign row, one delivery row per recipient
   (suppressed ones as ``suppressed``) with its batch number, and one ``send_batch`` row per
   batch with an idempotency key fixed from then on.
2. ``claims``: a worker claims a batch in one write transaction. A batch never attempted may
   still change (suppressions re-checked, ``--limit`` splits it); then its emails are
   rendered (``batches``) and kept in the batch row (compressed), with their hash and
   ``first_attempt_at``, all committed BEFORE the request. Every later attempt sends those
   kept emails, not a new render, so the provider sees the identical request under the same
   key and never sends twice. The kept emails are dropped once the batch is answered.
3. ``run``: the request goes out under the batch's key; the answer is recorded in one
   transaction. No answer (lost, 5xx past retries, Ctrl-C): the batch goes back to
   ``pending`` and the next run re-sends it under its key. Past the provider's 24 h key
   window it is reported (``failed``, exit 1), never re-sent.

- ``plan``: checking a campaign file and rendering every recipient before anything is written
- ``snapshot``: the audience frozen into delivery rows and batches
- ``batches``: a batch's members rendered into provider emails
- ``claims``: leases, kept payloads, recording answers
- ``run``: the workers, the end of a campaign, ``send`` itself
- ``trial``: ``send --test``
- ``reports``: progress and the run's report
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sponsorcast.send.batches import (
        BatchRenderer,
        make_renderer,
        stored_campaign,
    )
    from sponsorcast.send.claims import (
        KEY_WINDOW,
        Claim,
        ClaimAgain,
        Claimer,
        Stopped,
        payload_hash,
    )
    from sponsorcast.send.plan import (
        NOT_STARTED,
        Plan,
        campaign_hash,
        check_sponsor,
        describe_audience,
        plan_send,
        preflight,
        validate_all,
    )
    from sponsorcast.send.reports import (
        Progress,
        ProgressCallback,
        RunReport,
    )
    from sponsorcast.send.run import (
        AUTH_CAUSE,
        INTERRUPTED_CAUSE,
        QUOTA_CAUSE,
        REQUEUE_LIMIT,
        finish_if_done,
        paused_by_the_tool,
        run_batches,
        run_campaign,
        send_campaign,
    )
    from sponsorcast.send.snapshot import (
        campaign_values,
        take_snapshot,
    )
    from sponsorcast.send.trial import (
        send_test,
    )

_LAZY = {
    "AUTH_CAUSE": "run",
    "BatchRenderer": "batches",
    "Claim": "claims",
    "ClaimAgain": "claims",
    "Claimer": "claims",
    "INTERRUPTED_CAUSE": "run",
    "KEY_WINDOW": "claims",
    "NOT_STARTED": "plan",
    "Plan": "plan",
    "Progress": "reports",
    "ProgressCallback": "reports",
    "QUOTA_CAUSE": "run",
    "REQUEUE_LIMIT": "run",
    "RunReport": "reports",
    "Stopped": "claims",
    "campaign_hash": "plan",
    "campaign_values": "snapshot",
    "check_sponsor": "plan",
    "describe_audience": "plan",
    "finish_if_done": "run",
    "make_renderer": "batches",
    "paused_by_the_tool": "run",
    "payload_hash": "claims",
    "plan_send": "plan",
    "preflight": "plan",
    "run_batches": "run",
    "run_campaign": "run",
    "send_campaign": "run",
    "send_test": "trial",
    "stored_campaign": "batches",
    "take_snapshot": "snapshot",
    "validate_all": "plan",
}


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` on first use: ``send`` starts its key check
    (``keyprobe``) before it pays for the rest of this package."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sponsorcast.send' has no attribute {name!r}")
    return getattr(importlib.import_module(f"sponsorcast.send.{module}"), name)


__all__ = [
    "AUTH_CAUSE",
    "INTERRUPTED_CAUSE",
    "KEY_WINDOW",
    "NOT_STARTED",
    "QUOTA_CAUSE",
    "REQUEUE_LIMIT",
    "BatchRenderer",
    "Claim",
    "ClaimAgain",
    "Claimer",
    "Plan",
    "Progress",
    "ProgressCallback",
    "RunReport",
    "Stopped",
    "campaign_hash",
    "campaign_values",
    "check_sponsor",
    "describe_audience",
    "finish_if_done",
    "make_renderer",
    "paused_by_the_tool",
    "payload_hash",
    "plan_send",
    "preflight",
    "run_batches",
    "run_campaign",
    "send_campaign",
    "send_test",
    "stored_campaign",
    "take_snapshot",
    "validate_all",
]
