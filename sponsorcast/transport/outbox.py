"""The outbox transport: every email becomes an RFC 5322 ``.eml`` file; nothing is sent.

Files go to ``<dir>/<campaign>/<delivery_id>-<address>.eml``, the id zero-padded to four
digits so that a listing sorts in sending order and the address there so that a person can
find one recipient's email (``0001-ada@example.com.eml``; test sends, ids <= 0, go to
``test-<n>-<address>.eml``). Only letters, digits and ``@ . _ + -`` of the address are kept,
so a name is always a plain file name. Files are written atomically (temporary file, then
rename), so a killed run leaves either the whole file or none. The file is a pure function
of the email and the idempotency key, except for its ``Date`` header, which RFC 5322
requires: it is the time of the first write and is kept when the same email is written
again, so re-writing a batch (a resumed run) produces byte-identical files. The
``Message-ID`` is derived from the idempotency key and the delivery id.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import SMTP
from email.utils import format_datetime, parseaddr
from pathlib import Path

from sponsorcast.errors import TransportError
from sponsorcast.transport.base import BatchOutcome, OutgoingEmail, check_batch

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_FILE_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]|^[.]")
ADDRESS_IN_NAME = 120  # characters of the address kept in a file name (names stay < 255 bytes)


class OutboxTransport:
    """Writes ``.eml`` files instead of sending."""

    name = "outbox"
    sends_for_real = False

    def __init__(self, dir: Path, campaign_id: str) -> None:
        """Files go to ``dir / campaign_id``, created on the first batch."""
        if not _SAFE_NAME.match(campaign_id) or ".." in campaign_id:
            raise ValueError(f"Campaign id {campaign_id!r} cannot be used as a directory name.")
        self.campaign_id = campaign_id
        self.dir = Path(dir) / campaign_id

    def path_for(self, delivery_id: int, to: str) -> Path:
        """Where the email of ``delivery_id`` to ``to`` (a mailbox) is written."""
        address = _FILE_UNSAFE.sub("_", parseaddr(to)[1] or to)[:ADDRESS_IN_NAME]
        if delivery_id > 0:
            return self.dir / f"{delivery_id:04d}-{address}.eml"
        return self.dir / f"test-{-delivery_id}-{address}.eml"

    async def send_batch(
        self, emails: Sequence[OutgoingEmail], idempotency_key: str
    ) -> BatchOutcome:
        """Write one ``.eml`` per email; a bad header rejects that email only."""
        check_batch(emails, idempotency_key)
        return await asyncio.to_thread(self._write_batch, list(emails), idempotency_key)

    def preflight(self) -> Callable[[], None]:
        """Nothing to ask: the outbox takes every batch."""
        return _nothing

    async def aclose(self) -> None:
        """Nothing to release."""

    def _write_batch(self, emails: list[OutgoingEmail], key: str) -> BatchOutcome:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TransportError(f"Cannot create the outbox {self.dir}: {exc.strerror}.") from None
        outcome = BatchOutcome()
        for email in emails:
            path = self.path_for(email.delivery_id, email.to)
            try:
                data = render_eml(email, key, date=_existing_date(path))
            except (ValueError, TypeError) as exc:  # a header the email package refuses
                outcome.rejected[email.delivery_id] = f"Cannot write this email: {exc}"
                continue
            try:
                _write_atomically(path, data)
            except OSError as exc:
                error = TransportError(f"Cannot write {path}: {exc.strerror}.")
                error.partial = outcome
                raise error from None
            outcome.accepted[email.delivery_id] = f"outbox-{email.delivery_id}"
        return outcome


def _digest(idempotency_key: str, email: OutgoingEmail) -> str:
    return hashlib.sha256(f"{idempotency_key}\0{email.delivery_id}".encode()).hexdigest()


def message_id(idempotency_key: str, email: OutgoingEmail) -> str:
    """A Message-ID that is the same every time this email is written under this key."""
    domain = parseaddr(email.from_address)[1].rpartition("@")[2] or "sponsorcast.invalid"
    return f"<{_digest(idempotency_key, email)[:32]}@{domain}>"


def render_eml(email: OutgoingEmail, idempotency_key: str, *, date: str | None = None) -> bytes:
    """The RFC 5322 bytes of ``email`` (CRLF line ends); ``date`` defaults to now."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = email.from_address
    msg["To"] = email.to
    msg["Subject"] = email.subject
    msg["Date"] = date or format_datetime(datetime.now(UTC).replace(microsecond=0))
    msg["Message-ID"] = message_id(idempotency_key, email)
    if email.reply_to:
        msg["Reply-To"] = email.reply_to
    for name in sorted(email.headers):
        msg[name] = email.headers[name]
    msg["X-Sponsorcast-Delivery"] = str(email.delivery_id)
    for tag, value in email.tags:
        msg["X-Sponsorcast-Tag"] = f"{tag}={value}"
    msg.set_content(email.text or "")
    if email.html:
        msg.add_alternative(email.html, subtype="html")
        # the email package picks a random boundary; a fixed one keeps re-writes identical
        msg.set_boundary(f"=_sponsorcast_{_digest(idempotency_key, email)[32:56]}")
    return msg.as_bytes()


def _existing_date(path: Path) -> str | None:
    """The Date header of an earlier write of this file, if there is one."""
    try:
        with path.open("rb") as handle:
            headers = BytesHeaderParser(policy=SMTP).parse(handle)
    except OSError:
        return None
    date = headers["Date"]
    return str(date) if date else None


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _nothing() -> None:
    """The outbox's question to its provider: none."""
