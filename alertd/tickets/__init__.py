"""Tickets: dedup, occurrences, reopen, resolution and history (R4.2, R4.3)."""
