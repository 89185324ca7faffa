"""The HTTP endpoint: health now, the API and metrics later (SPEC R6.5, R6.7)."""
