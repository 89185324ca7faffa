"""Every Prometheus metric alertd exports, defined in one place (SPEC R6.5).

Counters and histograms are updated where the work happens; the gauges
of database state (tickets by status, outbox by state) are refreshed by
the `/metrics` handler just before it renders, so they are never stale
and cost nothing between scrapes.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)
"""alertd's own registry: only what alertd defines, never a library's defaults."""

MESSAGES = Counter(
    "alertd_messages_total", "Messages processed, by source and final state.",
    ["source", "state"], registry=REGISTRY,
)
PROCESSING_SECONDS = Histogram(
    "alertd_message_processing_seconds", "Time to process one message (parse to commit).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
TICKETS = Gauge(
    "alertd_tickets", "Tickets by status.", ["status"], registry=REGISTRY,
)
OUTBOX = Gauge(
    "alertd_outbox_entries", "Outbox entries (Automate actions) by state.", ["state"],
    registry=REGISTRY,
)
OUTBOX_FAILURES = Counter(
    "alertd_outbox_failures_total",
    "Automate actions that ended failed or unconfirmed (need an admin), by action.",
    ["action", "state"], registry=REGISTRY,
)
AUTOMATE_CALLS = Counter(
    "alertd_automate_calls_total", "Automate API calls, by route and HTTP status "
    "(`error` when no answer came).", ["route", "status"], registry=REGISTRY,
)
RULE_RELOADS = Counter(
    "alertd_rule_reloads_total", "Rule reloads, by result.", ["result"], registry=REGISTRY,
)
RULES_LAST_RELOAD_SUCCESS = Gauge(
    "alertd_rules_last_reload_success", "1 if the last rule reload succeeded, else 0.",
    registry=REGISTRY,
)
