"""Real-world mail from public test suites goes through the whole pipeline without a crash (R2).

Every file under the shared corpus's `wild/` folder (legacy charsets, nested
and broken MIME, uuencoded Lotus Notes mail, bounces, huge attachments) is
delivered to the inbox and processed, with a catch-all sender rule so each
mail also runs through alert types, extraction, asset resolution and
ticketing. Each must end done, ignored, or failed with a reason; none may
stay unprocessed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from alertd.runtime import open_runtime
from alertd.settings import Settings, bundled_rules_dir
from tests.conftest import corpus_dir
from tests.helpers import deliver, messages, process, tickets

CATCH_ALL = """
senders:
  - name: anyone
    from_pattern: '@'
    ticket_type: Alert
alert_types:
  - name: host-state
    match:
      all:
        - body: '(?m)^Host:\\s*(?P<hostname>\\S+)'
    extract:
      - body: '(?m)^State:\\s*(?P<state>\\w+)'
      - body: '(?m)^Service:\\s*(?P<service>[^\\r\\n]+?)\\s*$'
    recovery:
      all:
        - field: {state: '^(OK|UP)$'}
    dedup_key: '{asset}|{service}'
"""


async def test_every_wild_mail_ends_processed_ignored_or_failed_with_a_reason(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """No file of the wild corpus crashes the pipeline or is left unprocessed."""
    wild = corpus_dir("wild")
    files = sorted(p for p in wild.rglob("*") if p.is_file() and p.name != "README.md")
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(bundled_rules_dir() / "00-ticket-types.yaml", rules)
    (rules / "50-catch-all.yaml").write_text(CATCH_ALL)

    async with open_runtime(make_settings(rules_dir=rules)) as runtime:
        stored = {await deliver(runtime, path.read_bytes(), source="corpus") for path in files}
        report = await process(runtime)
        rows = await messages(runtime)
        opened = await tickets(runtime)

    assert len(rows) == len(stored)
    assert report.processed == len(rows)
    assert {row["state"] for row in rows} <= {"done", "ignored", "failed"}
    for row in rows:
        if row["state"] != "done":
            assert row["reason"], f"message {row['id']} is {row['state']} without a reason"
    by_subject = {row["subject"]: row for row in rows}
    nagios_problem = by_subject["** PROBLEM alert 1 - delphin host is DOWN **"]
    nagios_recovery = by_subject["** RECOVERY alert 2 - delphin host is UP **"]
    assert (nagios_problem["action"], nagios_recovery["action"]) == ("new_ticket", "resolved")
    assert nagios_problem["ticket_id"] == nagios_recovery["ticket_id"]
    bounce = by_subject["Returned mail: User unknown"]
    assert (bounce["state"], bounce["reason"]) == ("ignored", "bounce (multipart/report)")
    assert any(row["action"] == "new_ticket" for row in rows if row["id"] != nagios_problem["id"])
    assert opened
