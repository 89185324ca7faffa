"""Storage: the engine, the tables and the migrations (SPEC R6.3)."""
