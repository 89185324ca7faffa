"""Admin-written YAML rules: models, loading, evaluation (R3). Pure: no I/O but reading files."""
