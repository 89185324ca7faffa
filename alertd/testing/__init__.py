"""Stand-ins for the outside world that tests, benchmarks and demos run for real.

`automate_server` is a local ConnectWise Automate API served over HTTP,
following `automate-api.md` and the published OpenAPI subset.
"""
