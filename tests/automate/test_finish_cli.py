"""`alertd automate scripts` and `alertd outbox list|retry|cancel` as admins run them: the real
command line against the local Automate, and settings mistakes in the finish section reported
with file and line.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alertd.errors import SettingsInvalid
from alertd.runtime import open_runtime
from alertd.settings import load_settings
from alertd.testing.automate_server import RunningServer
from tests.automate.conftest import automate_section
from tests.automate.test_check import alertd, write_config
from tests.helpers import deliver, process, ticket
from tests.mails import automate_tagged

T0 = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)


async def test_scripts_lists_candidates_with_ids_folders_and_parameters(
    automate: RunningServer, tmp_path: Path,
) -> None:
    """`--name` narrows the list through Automate's own condition; JSON and table agree."""
    config = write_config(tmp_path, automate_section(automate.url))
    code, out, err = await alertd(config, "automate", "scripts", "--name", "Ticket Finish",
                                  "--format", "json")
    assert code == 0, err
    listed = {s["id"]: s for s in json.loads(out)}
    assert set(listed) == {6401, 6402}
    assert listed[6402]["parameters"] == ["TicketID", "FinishBody"]
    assert listed[6402]["folder"] == "Maintenance\\Tickets"

    code, out, _ = await alertd(config, "automate", "scripts")
    assert code == 0
    assert "Ticket Finish With Comment" in out
    assert "TicketID, FinishBody" in out
    assert len(out.splitlines()) > 6, "every script, not only the finish ones"


async def test_outbox_entries_are_listed_cancelled_and_retried_from_the_command_line(
    automate: RunningServer, tmp_path: Path,
) -> None:
    """An entry queued by a recovery shows in `outbox list`; `cancel` ends it with a line in
    the ticket's history; a second `cancel` is refused with the reason; `retry` of a
    cancelled entry is refused too; an unknown id exits 1."""
    section = automate_section(automate.url, finish={"scripts": [
        {"id": 6401, "target": "computer", "parameters": {"TicketID": "{ticket_id}"}}]})
    config = write_config(tmp_path, section)
    async with open_runtime(load_settings(config)) as runtime:
        for status, minute in (("FAILED", 0), ("SUCCESS", 3)):
            await deliver(runtime, automate_tagged(status, date=T0 + timedelta(minutes=minute)))
        await process(runtime)

    code, out, err = await alertd(config, "outbox", "list", "--format", "json")
    assert code == 0, err
    (entry,) = json.loads(out)
    assert (entry["state"], entry["entity_type"], entry["entity_id"]) == (
        "pending", "Computer", 2201)

    code, out, _ = await alertd(config, "outbox", "cancel", str(entry["id"]))
    assert (code, out.strip()) == (0, f"outbox entry {entry['id']} cancelled")
    code, _, err = await alertd(config, "outbox", "cancel", str(entry["id"]))
    assert code == 1
    assert f"outbox entry {entry['id']} is cancelled" in err
    code, _, err = await alertd(config, "outbox", "retry", str(entry["id"]))
    assert code == 1
    assert "only failed, unconfirmed entries can be sent again" in err
    code, _, err = await alertd(config, "outbox", "retry", "999")
    assert (code, err.strip()) == (1, "alertd: no outbox entry 999")

    code, out, _ = await alertd(config, "outbox", "list", "--state", "cancelled")
    assert code == 0
    assert "script 6401" in out
    async with open_runtime(load_settings(config)) as runtime:
        history = (await ticket(runtime, entry["ticket_id"]))["history"]
    assert history[-1]["detail"] == "script 6401 cancelled by cli"


@pytest.mark.parametrize(("script", "message"), [
    ({"target": "ticket"}, "name a script by exactly one of name or id"),
    ({"id": 6402, "parameters": {"TicketID": "{ticket}"}},
     "parameter TicketID: unknown placeholder {ticket}"),
    ({"id": 6402, "target": "site"}, "Input should be 'ticket' or 'computer'"),
])
def test_finish_script_mistakes_are_reported_with_file_and_line(
    tmp_path: Path, script: dict[str, object], message: str,
) -> None:
    """A finish script without a script, with an unknown placeholder or target is refused
    when settings load, pointing at the line in alertd.yaml."""
    section = automate_section("https://rmm.example.net", finish={"scripts": [script]})
    config = write_config(tmp_path, section)
    with pytest.raises(SettingsInvalid) as raised:
        load_settings(config)
    (problem,) = raised.value.problems
    assert problem.file == config
    assert problem.line is not None
    assert message in problem.message
