"""Every error sponsorcast raises on purpose, and the exit code each one means.

The tree (exit code in brackets)::

    SponsorcastError                 [1]  base: "the work failed"
    ├── WorkFailed                   [1]  a run ended with failed deliveries or problems found
    │   ├── CampaignPaused           [1]  quota reached or paused by a user; resumable
    │   ├── NothingToSend            [1]  the audience matches nobody (or only suppressed leads)
    │   ├── StoreBusy                [1]  another process held the store's write lock too long
    │   └── StoreFull                [1]  the disk is full; the last change was rolled back
    ├── BadInput                     [2]  bad usage or bad input; the store is unchanged
    │   ├── InputFileError           [2]  a file we read is wrong (names file and line or row)
    │   │   ├── CampaignFileError    [2]  campaign file: YAML, keys, audience, send_at, subject
    │   │   ├── TemplateError        [2]  template syntax, undefined variable
    │   │   │   └── SandboxRefused   [2]  a sandbox escape: stops the whole check at once
    │   │   │       └── TemplateLimitExceeded [2]  a render past a size, time or depth limit
    │   │   └── LeadsFileError       [2]  leads CSV: encoding, header, a broken row
    │   ├── NotFound                 [2]  unknown campaign, sponsor, lead or delivery
    │   ├── StoreError               [2]  the store cannot be opened or is not ours
    │   │   └── StoreReadOnly        [2]  a writing command on a read-only store
    │   ├── WebhookSignatureError    [2]  a webhook's signature is missing, wrong or too old
    │   └── SourceError              [2]  a leads source (PostgreSQL URL) cannot be read
    ├── ConfigError                  [3]  sponsorcast.toml or the environment is wrong
    │   └── CredentialsError         [3]  missing key, or 401/403 from the provider
    │       └── AuthError *          [3]  the provider refused key/domain/URL; nothing failed
    ├── TransportError               [1]  the provider (or the outbox) did not do the work
    │   ├── BatchRejected            [1]  non-retryable 4xx for a whole request: fail its emails
    │   ├── OutcomeUnknown           [1]  retries exhausted: maybe accepted; re-send, same key
    │   ├── AuthError *                   (also a CredentialsError, exit 3)
    │   └── QuotaExceeded *               (also a CampaignPaused, exit 1: pause, resume later)
    ├── Reported                 [any]  already shown by the command (a check's report); just the code
    └── Interrupted                [130]  Ctrl-C: whatever was in flight is safe to resume

Beside the tree, ``RowError`` is not shown to users: it carries one bad row of an import
(number and reason) to the importer, which reports it, or the first few, as a
``LeadsFileError`` or writes it to the ``--rejects`` file.

``*`` marks the two transport errors that have two parents, so that ``except TransportError``
catches everything a transport raises while the exit code follows the first parent.

Only the CLI turns these into exit codes (``exit_code_for``); domain modules raise them
with one clear sentence as the message.
"""

from __future__ import annotations

import os
from enum import IntEnum
from pathlib import Path

DEBUG_ENV = "SPONSORCAST_DEBUG"


class ExitCode(IntEnum):
    """Process exit codes (README, "Exit codes")."""

    OK = 0
    FAILED = 1
    BAD_INPUT = 2
    CONFIG = 3
    INTERRUPTED = 130


class SponsorcastError(Exception):
    """Base of every deliberate sponsorcast error; the message is shown to the user."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class RowError(Exception):
    """One row cannot be imported; ``reason`` says why (without the row number)."""

    def __init__(self, number: int, reason: str) -> None:
        super().__init__(f"row {number}: {reason}")
        self.number = number
        self.reason = reason


class WorkFailed(SponsorcastError):
    """The work ran but failed in part or in whole."""

    exit_code = ExitCode.FAILED


class CampaignPaused(WorkFailed):
    """A campaign stopped before the end and can be resumed later."""


class StoreBusy(WorkFailed):
    """Another process held the SQLite store's write lock past the busy timeout; try again."""


class NothingToSend(WorkFailed):
    """A campaign's audience has nobody to email (no lead matches, or all are suppressed)."""


class StoreFull(WorkFailed):
    """The disk holding the store is full; the failed transaction was rolled back."""


class BadInput(SponsorcastError):
    """Bad usage or bad input: nothing in the store changed."""

    exit_code = ExitCode.BAD_INPUT


class InputFileError(BadInput):
    """A file is wrong; ``location`` names the file and, when known, the line or row."""

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.reason = message
        super().__init__(_locate(message, self.path, line), hint=hint)


def _locate(message: str, path: str | None, line: int | None) -> str:
    if path is None:
        return message
    if line is None:
        return f"{path}: {message}"
    return f"{path}:{line}: {message}"


class CampaignFileError(InputFileError):
    """The campaign file is invalid (YAML, unknown key, audience, send_at, subject)."""


class TemplateError(InputFileError):
    """A template does not compile or does not render for a recipient."""


class SandboxRefused(TemplateError):
    """Template code tried to reach Python internals; never a per-recipient problem."""


class TemplateLimitExceeded(SandboxRefused):
    """A render went past the sandbox's size, time or depth limits; stops the whole check."""


class LeadsFileError(InputFileError):
    """A leads file cannot be read or has a broken row."""


class NotFound(BadInput):
    """Something named on the command line does not exist."""


class StoreError(BadInput):
    """The store cannot be opened, or the file is not a sponsorcast database."""


class WebhookSignatureError(BadInput):
    """A webhook's signature is missing, wrong or too old."""


class StoreReadOnly(StoreError):
    """The store is on a read-only file system and the command needs to write."""


class SourceError(BadInput):
    """A leads source other than a file (a PostgreSQL URL) cannot be read."""


class ConfigError(SponsorcastError):
    """The configuration file or environment is wrong."""

    exit_code = ExitCode.CONFIG


class CredentialsError(ConfigError):
    """The API key is missing or the provider refused it."""


class TransportError(SponsorcastError):
    """A transport could not do its work; ``partial`` holds what it did before failing.

    ``partial`` is only ever set by the one-request-per-email mode: emails accepted before
    the failing one (a ``BatchOutcome``), so the sender can record them at once.
    """

    exit_code = ExitCode.FAILED
    partial: object | None = None


class BatchRejected(TransportError):
    """The provider refused a whole request for good (4xx); its emails fail with ``reason``."""

    def __init__(self, message: str, *, status: int, name: str, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.name = name
        self.reason = reason


class OutcomeUnknown(TransportError):
    """Retries ran out; the provider may or may not have accepted the request.

    ``maybe_sent`` is False only when no attempt can have reached the provider's send logic
    (connection refused, 429 rate limit); either way, re-send later under the same key.
    """

    def __init__(self, message: str, *, maybe_sent: bool = True) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


class AuthError(CredentialsError, TransportError):
    """The provider refused the key (401/403, unverified domain), a wrong base URL, or no key."""


class QuotaExceeded(CampaignPaused, TransportError):
    """The provider's daily or monthly quota is used up (``name``); pause and resume later."""

    def __init__(self, message: str, *, name: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.retry_after = retry_after


class Reported(SponsorcastError):
    """The command has already shown what went wrong (a report, a table); only its exit code
    is left to give, so nothing more is printed."""

    def __init__(self, exit_code: ExitCode) -> None:
        super().__init__("")
        self.exit_code = exit_code


class Interrupted(SponsorcastError):
    """The user pressed Ctrl-C; the run can be resumed."""

    exit_code = ExitCode.INTERRUPTED


def exit_code_for(error: BaseException) -> ExitCode:
    """Map any exception to the process exit code the CLI should return."""
    if isinstance(error, SponsorcastError):
        return error.exit_code
    if isinstance(error, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    return ExitCode.FAILED


def debug_requested() -> bool:
    """True when ``SPONSORCAST_DEBUG=1`` asks for tracebacks instead of one sentence."""
    return os.environ.get(DEBUG_ENV) == "1"
