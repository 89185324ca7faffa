"""Loading rule directories: every problem at once, with file, line and plain message (R3.5)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from alertd.errors import RulesInvalid
from alertd.mail.parse import parse_mail
from alertd.rules.load import check_rules, load_rules
from alertd.settings import bundled_rules_dir
from tests.mails import automate_tagged

BAD = Path(__file__).resolve().parents[1] / "data" / "rules" / "bad"


def problems_of(case: str) -> list[str]:
    report = check_rules(BAD / case)
    assert report.ruleset is None
    return [p.render().replace(str(BAD / case) + "/", "") for p in report.problems]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("bad-yaml", "20-rules.yaml:4: invalid YAML: expected ',' or ']', but got ':' "
                     "(while parsing a flow sequence started at line 3)"),
        ("duplicate-key", "20-rules.yaml:6: duplicate key 'name'"),
        ("unknown-key", "20-rules.yaml:3: alert_types[0].matches: unknown key 'matches'"),
        ("bad-pattern", "20-rules.yaml:5: alert_types[0].match.all[0].subject: "
                        "bad pattern 'DISK (?=FULL)': invalid perl operator: (?="),
        ("unknown-ticket-type", "20-rules.yaml:4: senders[0].ticket_type: "
                                "unknown ticket type 'Incident'"),
        ("unknown-template-field", "20-rules.yaml:7: alert_types[0].ticket.summary: "
                                   "unknown template field 'host'"),
    ],
)
def test_each_bad_rule_gives_its_exact_message_with_file_and_line(case: str, expected: str) -> None:
    """One broken file per mistake an admin makes; each names file, line, place and problem."""
    assert problems_of(case) == [expected]


def test_every_problem_in_every_file_is_reported_at_once() -> None:
    """A directory with many mistakes lists them all, in file and line order, not just the first."""
    assert problems_of("many-problems") == [
        "20-rules.yaml:4: senders[0].ticket_type: unknown ticket type 'Incident'",
        "20-rules.yaml:5: senders[0].alert_types[1]: unknown alert type 'cpu'",
        "20-rules.yaml:11: alert_types[0].match.all[0].subject: "
        "bad pattern '(a)\\1': invalid escape sequence: \\1",
        "20-rules.yaml:13: alert_types[0].ticket.type: unknown ticket type 'Problem'",
        "20-rules.yaml:14: alert_types[0].ticket.summary: unknown template field 'nothing'",
        "20-rules.yaml:15: alert_types[0].colour: unknown key 'colour'",
        "30-more.yaml:2: alert_types[0].name: duplicate alert type name 'disk' "
        "(first in 20-rules.yaml:8)",
    ]


def test_load_rules_raises_with_all_problems() -> None:
    """The daemon's loader refuses a broken directory as a whole, carrying every problem."""
    with pytest.raises(RulesInvalid) as raised:
        load_rules(BAD / "many-problems")
    assert len(raised.value.problems) == 7


def test_a_missing_directory_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    """Pointing alertd at a directory that is not there is reported plainly."""
    report = check_rules(tmp_path / "nope")
    assert [p.render() for p in report.problems] == [
        f"{tmp_path / 'nope'}: rules directory does not exist"]


def test_the_bundled_rules_load() -> None:
    """The rules alertd ships with are valid and declare the Automate senders: its alert mail
    and its tickets polled through the API."""
    rules = load_rules(bundled_rules_dir())
    assert [s.name for s in rules.senders] == ["automate", "automate-api"]
    assert set(rules.alert_types) == {"automate-tagged", "automate-monitor",
                                      "automate-api-ticket"}


def test_the_version_follows_the_files(tmp_path: Path) -> None:
    """The rule-set version changes when a file changes, so decisions name the rules they used."""
    target = tmp_path / "rules"
    shutil.copytree(bundled_rules_dir(), target, ignore=shutil.ignore_patterns("examples", "*.md"))
    before = load_rules(target).version
    path = target / "00-ticket-types.yaml"
    path.write_text(path.read_text() + "\n# edited\n")
    assert load_rules(target).version != before


def test_a_pathological_pattern_on_a_long_input_returns(tmp_path: Path) -> None:
    """`(a+)+$` on a 1 MB body would hang a backtracking engine; under RE2 it just returns."""
    (tmp_path / "00.yaml").write_text(
        "ticket_types: [{name: Alert}]\n"
        "senders: [{name: s, from: ['automate@example.invalid'], ticket_type: Alert}]\n"
        "alert_types:\n"
        "  - name: evil\n"
        "    match: {all: [{body: '(a+)+$'}]}\n"
    )
    rules = load_rules(tmp_path)
    mail = parse_mail(automate_tagged("FAILED", date=None).replace(
        b"Status: FAILED", b"Status: " + b"a" * 1_000_000 + b"!"))
    outcome: list[str] = []
    worker = threading.Thread(target=lambda: outcome.append(rules.evaluate(mail).outcome))
    worker.start()
    worker.join(timeout=60)  # a hang guard, not a timing assertion
    assert outcome == ["problem"], "evaluation did not return"
