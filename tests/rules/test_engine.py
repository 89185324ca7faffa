"""Evaluating rules against mail: senders, alert types, fields, outcomes, noise (R3.1, R3.2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from alertd.domain import Envelope
from alertd.mail.parse import parse_mail
from alertd.rules.engine import RuleSet
from alertd.rules.load import load_rules
from alertd.settings import bundled_rules_dir
from tests.mails import automate_monitor, automate_tagged

RULES = """
ticket_types:
  - {name: Alert, priority: 3}
  - {name: Backup, priority: 4, team: Storage}
senders:
  - name: backup
    from: ['@backup.example.net']
    ticket_type: Backup
    alert_types: [backup-tagged, backup-job]
  - name: rmm
    from_pattern: '^rmm-\\d+@example\\.org$'
    ticket_type: Alert
    noise_detection: false
alert_types:
  - name: backup-tagged
    continue: true
    extract:
      - header: {X-Job-Id: '(?P<job_id>\\d+)'}
  - name: backup-job
    match:
      all:
        - subject: 'Backup job (?P<job>\\S+)'
      none:
        - subject: '(?i)test'
    extract:
      - body: '(?m)^Host:\\s*(?P<hostname>\\S+)'
      - body: '(?m)^Result:\\s*(?P<result>\\w+)'
    recovery:
      any:
        - field: {result: '^(Success|OK)$'}
    ignore:
      any:
        - field: {result: '^Skipped$'}
    ticket:
      summary: 'Backup {job} on {hostname}: {result} (job {job_id})'
      priority: 2
    dedup_key: '{asset}|{job}'
"""


def rules(tmp_path: Path) -> RuleSet:
    (tmp_path / "rules.yaml").write_text(RULES)
    return load_rules(tmp_path)


def mail(sender: str, subject: str, body: str, headers: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: alerts@example.net\r\nSubject: {subject}\r\n{headers}"
            f"Message-ID: <x@y>\r\n\r\n{body}\r\n").encode()


def test_a_domain_sender_matches_and_fields_come_from_every_matching_type(tmp_path: Path) -> None:
    """`@domain` matches any address there; a `continue` type adds fields, the next decides."""
    decision = rules(tmp_path).evaluate(parse_mail(mail(
        "nas7@backup.example.net", "Backup job nightly failed",
        "Host: FS01\nResult: Failed", "X-Job-Id: 4711\r\n")))
    assert decision.sender_rule == "backup"
    assert decision.alert_type == "backup-job"
    assert decision.outcome == "problem"
    assert decision.fields == {"job": "nightly", "hostname": "FS01", "result": "Failed",
                               "job_id": "4711"}
    assert decision.ticket is not None
    assert decision.ticket.summary == "Backup nightly on FS01: Failed (job 4711)"
    assert (decision.ticket.type, decision.ticket.priority, decision.ticket.team) == (
        "Backup", 2, "Storage")
    assert decision.dedup_key("asset:9") == "asset:9|nightly"


def test_recovery_and_ignore_are_decided_on_extracted_fields(tmp_path: Path) -> None:
    """A field condition turns the same alert type into a recovery, or into recorded noise."""
    ruleset = rules(tmp_path)
    ok = ruleset.evaluate(parse_mail(mail(
        "a@backup.example.net", "Backup job nightly", "Host: FS01\nResult: Success")))
    skipped = ruleset.evaluate(parse_mail(mail(
        "a@backup.example.net", "Backup job nightly", "Host: FS01\nResult: Skipped")))
    assert ok.outcome == "recovery"
    assert (skipped.outcome, skipped.reason) == ("ignored", "ignored by alert type backup-job")


def test_a_known_sender_whose_mail_matches_no_type_still_makes_a_ticket(tmp_path: Path) -> None:
    """Nothing is silently dropped: the sender's own ticket type is used (R3.2)."""
    decision = rules(tmp_path).evaluate(parse_mail(mail(
        "a@backup.example.net", "Backup TEST job weekly", "hello")))
    assert decision.outcome == "problem"
    assert decision.alert_type is None
    assert decision.ticket is not None
    assert (decision.ticket.type, decision.ticket.summary) == ("Backup", "Backup TEST job weekly")
    steps = [(s.stage, s.name, s.hit) for s in decision.trace]
    assert ("alert_type", "backup-job", False) in steps
    assert ("default", "backup", True) in steps


def test_an_unknown_sender_is_recorded_with_the_reason(tmp_path: Path) -> None:
    """Mail from an address no sender rule names is not an alert."""
    decision = rules(tmp_path).evaluate(parse_mail(mail("bob@example.com", "hi", "hello")))
    assert decision.outcome == "unknown_sender"
    assert decision.reason == "unknown sender bob@example.com"


def test_the_envelope_sender_stands_in_when_the_mail_has_no_from(tmp_path: Path) -> None:
    """A mail without From is judged by its envelope sender (MAIL FROM)."""
    data = b"To: a@example.net\r\nSubject: Backup job x\r\n\r\nHost: A\r\nResult: Failed\r\n"
    decision = rules(tmp_path).evaluate(
        parse_mail(data), Envelope(source="smtp:main", mail_from="job@backup.example.net"))
    assert decision.sender_rule == "backup"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ("Auto-Submitted: auto-replied\r\n", "auto-reply (Auto-Submitted: auto-replied)"),
        ("X-Autoreply: yes\r\n", "auto-reply (x-autoreply header)"),
        ("Precedence: auto_reply\r\n", "auto-reply (Precedence: auto_reply)"),
        ("X-Auto-Response-Suppress: All\r\n", "auto-reply (X-Auto-Response-Suppress: All)"),
        ("X-Alertd-Loop: 1\r\n", "loop (mail sent by alertd, X-Alertd-Loop)"),
    ],
)
def test_auto_replies_from_a_known_sender_are_ignored_even_quoting_an_alert(
    headers: str, reason: str
) -> None:
    """An out-of-office reply quoting an Automate alert is recorded as ignored, not ticketed."""
    data = automate_tagged("FAILED", date=None, extra_headers=headers)
    decision = load_rules(bundled_rules_dir()).evaluate(parse_mail(data))
    assert decision.sender_rule == "automate"
    assert (decision.outcome, decision.reason) == ("ignored", reason)


def test_auto_generated_alone_is_not_noise() -> None:
    """Every machine-made alert says `Auto-Submitted: auto-generated`; that is fine."""
    data = automate_tagged("FAILED", date=None, extra_headers="Auto-Submitted: auto-generated")
    assert load_rules(bundled_rules_dir()).evaluate(parse_mail(data)).outcome == "problem"


def test_a_bounce_is_ignored() -> None:
    """A delivery report (multipart/report, null sender) quoting an alert is not an alert."""
    data = (b"From: automate@example.invalid\r\nTo: a@example.net\r\nSubject: Undelivered\r\n"
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
            b"--b\r\nContent-Type: text/plain\r\n\r\nComputerID: 1\r\nStatus: FAILED\r\n--b--\r\n")
    decision = load_rules(bundled_rules_dir()).evaluate(parse_mail(data))
    assert (decision.outcome, decision.reason) == ("ignored", "bounce (multipart/report)")
    null_sender = load_rules(bundled_rules_dir()).evaluate(
        parse_mail(automate_tagged("FAILED", date=None)),
        Envelope(source="smtp:main", mail_from=""))
    assert null_sender.reason == "bounce (null envelope sender)"


def test_noise_detection_can_be_switched_off_per_sender(tmp_path: Path) -> None:
    """A sender rule with `noise_detection: false` takes even auto-replies as alerts."""
    decision = rules(tmp_path).evaluate(parse_mail(mail(
        "rmm-1@example.org", "x", "y", "Auto-Submitted: auto-replied\r\n")))
    assert (decision.sender_rule, decision.outcome) == ("rmm", "problem")


@pytest.mark.parametrize("status", ["FAILED", "SUCCESS"])
def test_bundled_rules_read_automate_tagged_mail(status: str) -> None:
    """The tagged template gives computer id, monitor and field, and FAILED/SUCCESS decide."""
    decision = load_rules(bundled_rules_dir()).evaluate(
        parse_mail(automate_tagged(status, date=None)))
    assert decision.alert_type == "automate-tagged"
    assert decision.outcome == ("problem" if status == "FAILED" else "recovery")
    assert decision.fields["computer_id"] == "2201"
    assert decision.fields["monitor"] == "Disk - Free Space C:"
    assert decision.fields["field"] == "C:"
    assert decision.dedup_key("asset:1") == "asset:1|Disk - Free Space C:|C:"


def test_bundled_rules_read_the_tag_from_a_subject_when_the_body_lacks_it() -> None:
    """A tagged mail whose body lost its key lines still yields the id from `[CWA:n]`."""
    data = (b"From: automate@example.invalid\r\nSubject: FAILED - Disk - Free Space C: - "
            b"Northwind Traders\\NW-FS01 [CWA:2201]\r\n\r\nsee subject\r\n")
    decision = load_rules(bundled_rules_dir()).evaluate(parse_mail(data))
    assert decision.alert_type == "automate-tagged"
    assert decision.fields["computer_id"] == "2201"
    assert decision.fields["monitor"] == "Disk - Free Space C:"
    assert decision.fields["client"] == "Northwind Traders"
    assert decision.fields["hostname"] == "NW-FS01"


def test_bundled_rules_read_the_default_monitor_text_from_the_body() -> None:
    """Default text: client and computer name from the body, even when the subject is mangled."""
    data = automate_monitor("FAILED", date=None).replace(
        b"Subject: Service", b"Subject: [EXT] Fwd: Service")
    data = data.replace(b"result Stopped.\r\nDate", b"result Sto...\r\nDate")
    decision = load_rules(bundled_rules_dir()).evaluate(parse_mail(data))
    assert decision.alert_type == "automate-monitor"
    assert decision.outcome == "problem"
    assert {k: decision.fields[k] for k in ("monitor", "client", "hostname", "site", "field")} == {
        "monitor": "Service - Print Spooler", "client": "Northwind Traders",
        "hostname": "NW-WS17", "site": "Head Office", "field": "Spooler"}


def test_html_only_mail_is_matched_as_text(tmp_path: Path) -> None:
    """An HTML-only alert is converted to readable text that `Key: value` patterns match."""
    data = (b"From: a@backup.example.net\r\nSubject: Backup job nightly\r\n"
            b"Content-Type: text/html; charset=utf-8\r\n\r\n"
            b"<html><body><table><tr><td>Host:</td><td>FS02</td></tr>"
            b"<tr><td>Result:</td><td>Failed</td></tr></table></body></html>\r\n")
    decision = rules(tmp_path).evaluate(parse_mail(data))
    assert decision.fields["hostname"] == "FS02"
    assert decision.fields["result"] == "Failed"


def test_built_in_fields_and_outcome_captures_reach_keys_and_summaries(tmp_path: Path) -> None:
    """`{message_id}` in a key and a group captured by `recovery` in a summary are filled in."""
    (tmp_path / "r.yaml").write_text(
        "ticket_types: [{name: Alert}]\n"
        "senders: [{name: s, from: ['@example.net'], ticket_type: Alert}]\n"
        "alert_types:\n"
        "  - name: t\n"
        "    match: {all: [{subject: 'job'}]}\n"
        "    recovery: {all: [{body: 'cleared by (?P<who>\\w+)'}]}\n"
        "    ticket: {summary: 'job {who}'}\n"
        "    dedup_key: '{asset}|{message_id}'\n")
    decision = load_rules(tmp_path).evaluate(parse_mail(mail(
        "a@example.net", "job", "cleared by Jane")))
    assert decision.outcome == "recovery"
    assert decision.fields["who"] == "Jane"
    assert decision.ticket is not None
    assert decision.ticket.summary == "job Jane"
    assert decision.dedup_key("asset:1") == "asset:1|<x@y>"
