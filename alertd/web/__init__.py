"""The HTTP endpoint: /healthz, Prometheus /metrics and the token-protected API (R6.5, R6.7)."""
