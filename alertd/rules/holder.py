"""The live rule set: read by workers, swapped whole by a reload (R3.6).

A message in flight keeps the snapshot it started with; a reload that fails
validation leaves the current set in place.
"""

from __future__ import annotations

from pathlib import Path

from alertd.rules.engine import RuleSet
from alertd.rules.load import load_rules


class RulesHolder:
    """Holds the current RuleSet; `reload()` replaces it only with a valid one."""

    def __init__(self, current: RuleSet) -> None:
        self.current = current

    @classmethod
    def load(cls, directory: Path) -> RulesHolder:
        """Load ``directory``; RulesInvalid when it is broken."""
        return cls(load_rules(directory))

    def reload(self, directory: Path | None = None) -> RuleSet:
        """Load the directory again and swap it in; on RulesInvalid the old set stays."""
        fresh = load_rules(directory or self.current.directory)
        self.current = fresh
        return fresh

