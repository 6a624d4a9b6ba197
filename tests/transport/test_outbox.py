"""The outbox transport: real RFC 5322 files, written atomically and idempotently."""

from __future__ import annotations

import asyncio
import email
import itertools
from email.message import EmailMessage, MIMEPart
from email.policy import default
from pathlib import Path
from typing import Any

import pytest

from sponsorcast.errors import TransportError
from sponsorcast.transport import OutgoingEmail
from sponsorcast.transport import outbox as outbox_module
from sponsorcast.transport.outbox import OutboxTransport


def outgoing(n: int, **changes: Any) -> OutgoingEmail:
    fields: dict[str, Any] = {
        "delivery_id": n,
        "from_address": "Example Events <hello@example.com>",
        "to": f"lead{n}@example.org",
        "subject": f"Hello {n}, see us at booth 12",
        "html": f"<p>Hi {n}</p>",
        "text": f"Hi {n}\n",
        "reply_to": "team@example.com",
        "headers": {
            "List-Unsubscribe": f"<https://t.example.com/u/tok{n}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        "tags": (("campaign", "spring"), ("delivery", str(n))),
    }
    return OutgoingEmail(**{**fields, **changes})


def write(transport: OutboxTransport, emails: list[OutgoingEmail], key: str = "spring/b1") -> Any:
    return asyncio.run(transport.send_batch(emails, key))


def content(part: MIMEPart | None) -> str:
    """A part's text with the file's CRLF line ends as LF."""
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def parse(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=default)
    assert isinstance(message, EmailMessage)
    return message


def test_each_email_is_a_parseable_eml_with_both_parts(tmp_path: Path) -> None:
    transport = OutboxTransport(tmp_path / "outbox", "spring")
    outcome = write(transport, [outgoing(1), outgoing(2)])
    assert outcome.accepted == {1: "outbox-1", 2: "outbox-2"}
    assert outcome.rejected == {}
    assert sorted(p.name for p in (tmp_path / "outbox" / "spring").iterdir()) == [
        "0001-lead1@example.org.eml",
        "0002-lead2@example.org.eml",
    ]
    message = parse(tmp_path / "outbox" / "spring" / "0001-lead1@example.org.eml")
    assert message.get_content_type() == "multipart/alternative"
    assert message["From"] == "Example Events <hello@example.com>"
    assert message["To"] == "lead1@example.org"
    assert message["Subject"] == "Hello 1, see us at booth 12"
    assert message["Reply-To"] == "team@example.com"
    assert message["List-Unsubscribe"] == "<https://t.example.com/u/tok1>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["X-Sponsorcast-Delivery"] == "1"
    assert message.get_all("X-Sponsorcast-Tag") == ["campaign=spring", "delivery=1"]
    assert message["Date"] and message["Message-ID"].endswith("@example.com>")
    assert content(message.get_body(("plain",))) == "Hi 1\n"
    assert content(message.get_body(("html",))) == "<p>Hi 1</p>\n"


def test_no_list_unsubscribe_unless_given(tmp_path: Path) -> None:
    transport = OutboxTransport(tmp_path, "spring")
    write(transport, [outgoing(1, headers={}, reply_to=None)])
    message = parse(tmp_path / "spring" / "0001-lead1@example.org.eml")
    assert message["List-Unsubscribe"] is None and message["List-Unsubscribe-Post"] is None
    assert message["Reply-To"] is None


def test_rewriting_a_batch_gives_identical_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = (f"Mon, 0{day} Dec 2026 09:00:00 +0000" for day in itertools.count(1))
    monkeypatch.setattr(outbox_module, "format_datetime", lambda _when: next(clock))
    transport = OutboxTransport(tmp_path, "spring")
    write(transport, [outgoing(1), outgoing(2)])
    first = {p.name: p.read_bytes() for p in (tmp_path / "spring").iterdir()}
    write(transport, [outgoing(1), outgoing(2)])  # a resumed run, later
    again = {p.name: p.read_bytes() for p in (tmp_path / "spring").iterdir()}
    assert again == first
    assert (
        b"Date: Tue, 01 Dec 2026 09:00:00" in first["0001-lead1@example.org.eml"]
    )  # the first write's date stays


def test_message_ids_are_derived_from_key_and_delivery(tmp_path: Path) -> None:
    write(OutboxTransport(tmp_path / "a", "spring"), [outgoing(1), outgoing(2)], key="k1")
    write(OutboxTransport(tmp_path / "b", "spring"), [outgoing(1)], key="k1")
    write(OutboxTransport(tmp_path / "c", "spring"), [outgoing(1)], key="k2")
    ids = {
        name: parse(tmp_path / name / "spring" / "0001-lead1@example.org.eml")["Message-ID"]
        for name in ("a", "b", "c")
    }
    assert ids["a"] == ids["b"] != ids["c"]
    assert parse(tmp_path / "a" / "spring" / "0002-lead2@example.org.eml")["Message-ID"] != ids["a"]


def test_non_ascii_survives_the_round_trip(tmp_path: Path) -> None:
    write(
        OutboxTransport(tmp_path, "spring"),
        [
            outgoing(
                3,
                from_address="Café Événements <hello@example.com>",
                subject="Zoë, à bientôt ☕",
                text="Grüße\n",
                html="<p>Grüße</p>",
            )
        ],
    )
    message = parse(tmp_path / "spring" / "0003-lead3@example.org.eml")
    assert message["Subject"] == "Zoë, à bientôt ☕"
    assert message["From"].addresses[0].display_name == "Café Événements"
    assert content(message.get_body(("plain",))) == "Grüße\n"
    assert content(message.get_body(("html",))) == "<p>Grüße</p>\n"


def test_a_bad_header_rejects_that_email_only(tmp_path: Path) -> None:
    transport = OutboxTransport(tmp_path, "spring")
    outcome = write(transport, [outgoing(1), outgoing(2, subject="Two\nlines"), outgoing(3)])
    assert sorted(outcome.accepted) == [1, 3]
    assert list(outcome.rejected) == [2]
    assert sorted(p.name for p in (tmp_path / "spring").iterdir()) == [
        "0001-lead1@example.org.eml",
        "0003-lead3@example.org.eml",
    ]


def test_test_sends_and_no_temporary_files_left(tmp_path: Path) -> None:
    transport = OutboxTransport(tmp_path, "spring")
    outcome = write(transport, [outgoing(0), outgoing(-1, to="me@example.org")])
    assert outcome.accepted == {0: "outbox-0", -1: "outbox--1"}
    assert sorted(p.name for p in (tmp_path / "spring").iterdir()) == [
        "test-0-lead0@example.org.eml",
        "test-1-me@example.org.eml",
    ]
    assert transport.name == "outbox" and transport.sends_for_real is False


def test_unusable_campaign_ids_and_unwritable_outboxes(tmp_path: Path) -> None:
    for bad in ("../etc", "a/b", "", ".hidden"):
        with pytest.raises(ValueError):
            OutboxTransport(tmp_path, bad)
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(TransportError, match="Cannot create the outbox"):
        write(OutboxTransport(tmp_path / "file", "spring"), [outgoing(1)])


def test_file_names_carry_the_address_in_safe_characters_only(tmp_path: Path) -> None:
    transport = OutboxTransport(tmp_path, "spring")
    emails = [
        outgoing(7, to='"Ada Lovelace" <ada+booth@example.org>'),
        outgoing(12345, to="o'brien/../x@example.org"),
        outgoing(8, to="zoë@exämple.org"),
        outgoing(9, to="." + "a" * 300 + "@example.org"),
    ]
    write(transport, emails)
    assert sorted(p.name for p in (tmp_path / "spring").iterdir()) == sorted(
        [
            "0007-ada+booth@example.org.eml",
            "12345-o_brien_.._x@example.org.eml",
            "0008-zo_@ex_mple.org.eml",
            "0009-_" + "a" * 119 + ".eml",
        ]
    )
    message = parse(tmp_path / "spring" / "0007-ada+booth@example.org.eml")
    assert message["To"].addresses[0].display_name == "Ada Lovelace"
