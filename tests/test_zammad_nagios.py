"""The Nagios worked example of rules/README.md, replayed against Zammad's Nagios test mails.

The peer corpus `peers/zammad-monitoring/nagios/` holds the mails Zammad's own
Nagios integration is tested with, one folder per test sequence, and an
`expected.yaml` saying what Zammad does after each mail. Each sequence runs
here against a fresh database (SQLite file and PostgreSQL), with a rules
directory made of the bundled `00-ticket-types.yaml` and the example
`rules/examples/nagios/30-nagios.yaml`, and every mail is delivered to the
durable inbox and processed in order.

Zammad's outcomes map onto alertd's like this:

| Zammad                              | alertd                                                |
| ----------------------------------- | ----------------------------------------------------- |
| `new_ticket`                        | action `new_ticket`, a ticket not seen before, open   |
| `added_to_existing`, state `new`    | action `occurrence` on the same ticket, still open    |
| `added_to_existing`, state `closed` | action `resolved` on the same ticket, status resolved |
| `ignored` (recovery, nothing open)  | action `recovery_without_ticket`, no ticket           |
| `ordinary_ticket` (unknown sender)  | message `ignored`, reason `unknown sender ...`        |

Zammad's auto-close is alertd's resolve: alertd keeps the status "closed" for
a person's final word on a ticket.

Two differences are deliberate:

1. alertd is a monitoring-only daemon. A mail from a sender no rule names is
   stored and recorded as ignored ("unknown sender"), not filed as an
   ordinary ticket as a helpdesk like Zammad does.
2. In `sender-not-matching`, steps 1 and 2 are the same bytes (same
   Message-ID, same content). alertd's durable inbox stores such a mail once
   (R1.4, idempotent accept), so step 2 is a duplicate that changes nothing.
   Mails that only share a Message-ID (`host-up-closes`, `sender-matching`)
   differ in content and are stored and processed separately.

The mails are Zammad's (AGPL-3.0) test data: they are read in place from the
shared corpus and never copied into this repository; without the corpus the
tests skip and say where they looked.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from alertd.clock import SystemClock
from alertd.rules.load import check_rules
from alertd.runtime import Runtime, open_runtime
from alertd.settings import Settings
from tests.conftest import CORPUS, REPO, corpus_dir
from tests.helpers import deliver, message, message_count, process, ticket, tickets

NAGIOS = ("peers", "zammad-monitoring", "nagios")
TICKET_TYPES = REPO / "rules" / "00-ticket-types.yaml"
EXAMPLE = REPO / "rules" / "examples" / "nagios" / "30-nagios.yaml"
RULES_README = REPO / "rules" / "README.md"

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
"""Received time of step 0; step N arrives N minutes later (the mails have no Date)."""
STEP = timedelta(minutes=1)

FIELD_NAMES = {"host": "hostname", "service": "service", "state": "state"}
"""Zammad's monitoring data names and the field names the example rules extract."""

DUPLICATE_STEPS = {"sender-not-matching": {2}}
"""Steps whose mail is byte for byte one delivered earlier in the sequence."""


def _sequences() -> list[Any]:
    """The sequence folders, as test parameters named after them."""
    folder = CORPUS.joinpath(*NAGIOS)
    if not folder.is_dir():
        # One placeholder, so the test runs and skips with corpus_dir's reason.
        return [pytest.param("", id="corpus-absent")]
    return sorted(path.name for path in folder.iterdir() if path.is_dir())


@pytest.fixture
def nagios_rules(tmp_path: Path) -> Path:
    """A rules directory as an admin would set it up: ticket types plus the Nagios example."""
    target = tmp_path / "rules"
    target.mkdir()
    shutil.copy(TICKET_TYPES, target / TICKET_TYPES.name)
    shutil.copy(EXAMPLE, target / EXAMPLE.name)
    return target


@pytest.fixture
async def nagios_runtime(
    make_settings: Callable[..., Settings], nagios_rules: Path
) -> AsyncIterator[Runtime]:
    """alertd's services over this test's fresh database and the Nagios rules."""
    async with open_runtime(make_settings(rules_dir=nagios_rules), clock=SystemClock()) as opened:
        yield opened
    leftovers = [t for t in asyncio.all_tasks()
                 if t is not asyncio.current_task() and not t.done()]
    assert not leftovers, f"tasks left behind: {leftovers}"


@pytest.mark.parametrize("sequence", _sequences())
async def test_zammad_nagios_sequence(nagios_runtime: Runtime, sequence: str) -> None:
    """The example rules reach Zammad's outcome after every mail of the sequence.

    New tickets, repeats added to the open ticket, recoveries resolving it,
    recoveries with nothing open, and unknown senders all land where the
    mapping in the module docstring says; the host, service and state read
    from the body match what Zammad extracts, and the ticket keeps the
    opening mail's values as Zammad's ticket does.
    """
    folder = corpus_dir(*NAGIOS) / sequence
    spec = YAML(typ="safe").load((folder / "expected.yaml").read_text(encoding="utf-8"))
    runtime = nagios_runtime
    labels: dict[str, int] = {}  # Zammad's ticket labels (T1, T2...) -> alertd ticket ids
    delivered: dict[str, int] = {}  # sha256 of each mail delivered so far -> inbox id
    rows: dict[int, dict[str, Any]] = {}  # inbox id -> the message row after processing
    duplicates: set[int] = set()

    for step in spec["steps"]:
        data = (folder / step["mail"]).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        assert digest == step["sha256"], f"{step['mail']} differs from the corpus"
        # Zammad's sender tests change the nagios_sender setting between mails
        # (settings_changed_before_this_mail: to icinga2@..., to the same
        # value again, to the regex (nagios2|abc123)@...). No rule change is
        # needed here: under every one of those settings, the mails Zammad
        # treats as Nagios mail come from nagios2@monitoring.example.com, which
        # the from_pattern matches, and the others come from
        # nagios_not_matching@monitoring.example.com or have no From at all,
        # which it never matches.
        where = f"{sequence} step {step['step']} ({step['mail']})"
        count_before = await message_count(runtime)
        tickets_before = await tickets(runtime)

        message_id = await deliver(runtime, data, received_at=T0 + step["step"] * STEP)
        report = await process(runtime)

        if digest in delivered:
            # Deliberate difference 2: the same bytes again are the same
            # message to the durable inbox (R1.4). Zammad files a second
            # ordinary ticket; alertd stores nothing new and does nothing.
            duplicates.add(step["step"])
            assert message_id == delivered[digest], where
            assert await message_count(runtime) == count_before, where
            assert report.processed == 0, where
            assert await tickets(runtime) == tickets_before, where
            assert await message(runtime, message_id) == rows[message_id], where
            continue
        delivered[digest] = message_id
        assert await message_count(runtime) == count_before + 1, where
        assert report.processed == 1, where

        row = rows[message_id] = await message(runtime, message_id)
        await _check_step(runtime, step, row, labels, where)

    assert duplicates == DUPLICATE_STEPS.get(sequence, set())
    opened = {step["expected"]["ticket"] for step in spec["steps"]
              if step["expected"]["outcome"] == "new_ticket"}
    assert set(labels) == opened
    assert len(await tickets(runtime)) == len(opened)


async def _check_step(
    runtime: Runtime, step: dict[str, Any], row: dict[str, Any], labels: dict[str, int],
    where: str,
) -> None:
    """Compare what alertd did with one mail against the step's expected block."""
    expected = step["expected"]
    outcome = expected["outcome"]

    if outcome == "ordinary_ticket":
        # Deliberate difference 1: an unknown sender is recorded, not ticketed.
        assert row["state"] == "ignored", where
        assert row["reason"].startswith("unknown sender"), where
        assert row["sender_rule"] is None, where
        assert row["ticket_id"] is None, where
        assert not row["fields"], where  # no host/service/state, as in Zammad
        return

    assert row["state"] == "done", where
    assert row["sender_rule"] == "nagios", where
    extracted = expected["extracted"]
    want_fields = {FIELD_NAMES[name]: value for name, value in extracted.items()
                   if value is not None}
    assert row["fields"] == want_fields, where
    kind = "nagios-service" if extracted["service"] is not None else "nagios-host"
    assert row["alert_type"] == kind, where

    if outcome == "ignored":
        # A recovery with nothing open: recorded on the message, no ticket.
        assert expected["ignored"] is True, where
        assert row["outcome"] == "recovery", where
        assert row["action"] == "recovery_without_ticket", where
        assert row["ticket_id"] is None, where
        assert await tickets(runtime) == [], where
        return

    label = expected["ticket"]
    if outcome == "new_ticket":
        assert row["outcome"] == "problem", where
        assert row["action"] == "new_ticket", where
        assert row["ticket_id"] not in labels.values(), where
        labels[label] = row["ticket_id"]
    else:
        assert outcome == "added_to_existing", where
        assert row["ticket_id"] == labels[label], where
        if expected["ticket_state"] == "closed":
            assert row["outcome"] == "recovery", where
            assert row["action"] == "resolved", where
        else:
            assert row["outcome"] == "problem", where
            assert row["action"] == "occurrence", where

    shown = await ticket(runtime, row["ticket_id"])
    status = {"new": "open", "closed": "resolved"}[expected["ticket_state"]]
    assert shown["status"] == status, where
    assert shown["alert_type"] == kind, where
    _check_stored_fields(step["asserted_by_spec"], shown["fields"], where)


def _check_stored_fields(asserted: dict[str, Any], stored: dict[str, str], where: str) -> None:
    """The ticket's fields hold what Zammad's spec asserts about its monitoring data.

    Like Zammad's ticket preferences, they are the opening mail's values: a
    ticket resolved by `State: OK` still says `state: WARNING`.
    """
    preferences = asserted.get("preferences")
    if preferences is not None:
        assert preferences["match"] == "subset", where
        want = {FIELD_NAMES[name]: value for name, value in preferences["nagios"].items()}
        assert {name: stored.get(name) for name in want} == want, where
    if asserted.get("service_absent"):
        assert "service" not in stored, where


def test_readme_shows_the_example_file_exactly() -> None:
    """The worked example in rules/README.md is the whole of 30-nagios.yaml, unchanged."""
    blocks = re.findall(r"^```yaml\n(.*?)^```$", RULES_README.read_text(encoding="utf-8"),
                        flags=re.MULTILINE | re.DOTALL)
    assert EXAMPLE.read_text(encoding="utf-8") in blocks


def test_the_example_loads_with_the_bundled_ticket_types(nagios_rules: Path) -> None:
    """`alertd rules check` finds no problem in ticket types plus the Nagios example."""
    report = check_rules(nagios_rules)
    assert [problem.render() for problem in report.problems] == []
    assert report.ruleset is not None
    [sender] = report.ruleset.senders
    assert [a.name for a in sender.alert_types] == ["nagios-service", "nagios-host"]
    assert sender.matches("nagios2@monitoring.example.com")
    assert sender.matches("nagios@monitoring.example.com")
    assert not sender.matches("nagios_not_matching@monitoring.example.com")
    assert not sender.matches("icinga2@monitoring.example.com")
