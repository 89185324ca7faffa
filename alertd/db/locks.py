"""Transaction-scoped locks on names, so writers of the same tickets take turns.

On PostgreSQL these are advisory locks held until commit or rollback,
taken in one fixed order (by hash) so two transactions cannot deadlock on
them. On SQLite every write transaction already starts with
`BEGIN IMMEDIATE`, which admits one writer at a time, so nothing is needed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_LOCK = text("SELECT count(pg_advisory_xact_lock(h)) FROM unnest(CAST(:hashes AS bigint[])) AS h")


def name_hash(name: str) -> int:
    """A signed 64-bit hash of ``name``, the id of its advisory lock."""
    digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def lock_names(session: AsyncSession, names: Iterable[str]) -> None:
    """Hold a lock on each name until the transaction ends (PostgreSQL only)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    hashes = sorted({name_hash(name) for name in names})
    if hashes:
        await session.execute(_LOCK, {"hashes": hashes})
