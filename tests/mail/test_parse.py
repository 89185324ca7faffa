"""Parsing raw mail into what rules read, whatever the wild sends (R2)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import getaddresses

import pytest

from alertd.errors import ParseError
from alertd.mail.parse import parse_mail


def test_encoded_words_and_charsets_are_decoded() -> None:
    """RFC 2047 subjects and an ISO-8859-1 body become text."""
    data = (b"From: =?iso-8859-1?q?J=F6rg?= <jorg@example.net>\r\n"
            b"Subject: =?utf-8?b?U3BlaWNoZXIgdm9sbA==?= auf =?iso-8859-1?q?Pr=FCfstand?=\r\n"
            b"Date: Tue, 03 Nov 2026 10:00:00 +0100\r\n"
            b"Content-Type: text/plain; charset=iso-8859-1\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=F6=DFe\r\n")
    mail = parse_mail(data)
    assert mail.subject == "Speicher voll auf Prüfstand"
    assert mail.sender == "jorg@example.net"
    assert mail.text.strip() == "Größe"
    assert mail.date == datetime(2026, 11, 3, 9, 0, tzinfo=UTC)


def test_an_html_only_mail_becomes_readable_text() -> None:
    """Tags go, table rows stay on one line, entities are decoded."""
    data = (b"From: a@example.net\r\nSubject: x\r\nContent-Type: text/html\r\n\r\n"
            b"<html><body><p>Disk&nbsp;alert</p><table><tr><td>Host</td><td>FS01</td></tr>"
            b"</table></body></html>\r\n")
    mail = parse_mail(data)
    assert mail.html_only
    assert "Disk alert" in mail.text
    assert any(line.split() == ["Host", "FS01"] for line in mail.text.splitlines())
    assert "<td>" not in mail.text


def test_missing_date_and_from_are_none_not_errors() -> None:
    """A bare mail parses; absent parts are None."""
    mail = parse_mail(b"Subject: hello\r\n\r\nbody\r\n")
    assert (mail.sender, mail.date, mail.message_id) == (None, None, None)
    assert mail.text.strip() == "body"


def test_an_unparseable_date_is_none() -> None:
    """A Date header that means nothing does not stop the mail."""
    mail = parse_mail(b"From: a@example.net\r\nDate: yesterday-ish\r\nSubject: s\r\n\r\nb\r\n")
    assert mail.date is None


def test_relay_headers_stay_whole_for_rules() -> None:
    """Received headers (which alertd spares mail-parser from parsing) are all in the headers,
    in order, and the mail around them reads as usual."""
    data = (b"Received: from mx1.example.net (mx1 [192.0.2.1]) by relay.example.net\r\n"
            b"\twith ESMTP id 1; Mon, 07 Dec 2026 15:49:18 +0000\r\n"
            b"Received: from rmm.example.net by mx1.example.net;\r\n"
            b" Mon, 07 Dec 2026 15:49:17 +0000\r\n"
            b"From: Automate <automate@example.net>\r\nTo: alerts@example.net\r\n"
            b"Date: Mon, 07 Dec 2026 15:49:16 +0000\r\nSubject: FAILED - Disk\r\n\r\nC: full\r\n")
    mail = parse_mail(data)
    received = mail.headers["received"]
    assert len(received) == 2
    assert received[0].startswith("from mx1.example.net")
    assert "with ESMTP id 1" in received[0]
    assert received[1].startswith("from rmm.example.net")
    assert (mail.sender, mail.to, mail.subject) == (
        "automate@example.net", ("alerts@example.net",), "FAILED - Disk")
    assert mail.date == datetime(2026, 12, 7, 15, 49, 16, tzinfo=UTC)


def test_broken_mime_still_parses_with_defects_noted() -> None:
    """A multipart mail without its boundary gives what it can and names the defect."""
    data = (b"From: a@example.net\r\nSubject: broken\r\n"
            b"Content-Type: multipart/mixed; boundary=nothere\r\n\r\nplain words\r\n")
    mail = parse_mail(data)
    assert mail.subject == "broken"
    assert mail.defects


def test_empty_input_is_a_parse_error() -> None:
    """Nothing at all cannot become a mail; the reason says so."""
    with pytest.raises(ParseError, match="empty message"):
        parse_mail(b"  \r\n")


@pytest.mark.parametrize("header", [
    "automate@example.invalid",
    "Automate@Example.Invalid",
    '"ConnectWise Automate" <automate@example.invalid>',
    "Nagios 4 <nagios@mon.example.net>",
    "ops@example.net, Second Desk <desk@example.net>",
    '"Smith, John" <john.smith@example.net>',
    "J. Smith <js@example.net>",
    "=?utf-8?q?J=C3=B6rg?= <jorg@example.net>",
    "undisclosed-recipients:;",
    "a@b@c",
    "(comment) x@example.net",
])
def test_plain_addresses_read_as_the_full_address_parser_reads_them(header: str) -> None:
    """The shortcut for plain address headers gives what email.utils.getaddresses gives."""
    data = f"From: {header}\r\nTo: {header}\r\nSubject: s\r\n\r\nb\r\n".encode()
    mail = parse_mail(data)
    decoded = mail.header("from")
    full = [addr.strip().lower() for _, addr in getaddresses(list(decoded)) if "@" in addr]
    assert mail.sender == (full[0] if full else None)
    assert list(mail.to) == full
