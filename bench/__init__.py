"""Benchmarks for Session Ledger: baselines measured in the same run as the service.

See `bench.baselines` for the baseline half (no-op HTTP, raw SQLite, eventsourcing library,
raw replay scans) and the reusable `http_load` / `keepalive_lua` / `uvicorn_server` helpers.
"""
