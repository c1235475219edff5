"""The HTTP layer (FastAPI) and the `ledger` CLI: parse, call one command or query, shape
the answer. Native API under /v1; the seed systems' dialects under /compat."""
