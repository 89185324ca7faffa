"""Core tables the Automate importer writes through, with bulk upserts."""

from __future__ import annotations

from alertd.db.tables import CLIENTS, Asset, Site, User, core_table

SITES = core_table(Site)
USERS = core_table(User)
ASSETS = core_table(Asset)

__all__ = ["ASSETS", "CLIENTS", "SITES", "USERS"]
