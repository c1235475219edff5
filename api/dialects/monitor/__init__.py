"""The pytest-monitor server API v1, as the reference server monitor-server-api 1.1.0 answers
it (where the seed text differs, the reference and its clients win), on the ledger: `router`.

Sessions are ledger sessions: id = the client's `session_h`, source "monitor", run_date ->
started_at, scm_ref -> scm_ref, description -> tags, and name = the hash too, so the prefix
lookup can use the list view's name filter. Each metric is one MetricRecorded event on its
session's stream; metric lists are read from the log, never from a table.

A context (a machine description, not a session) is one RecordContext command: a `Recorded`
event on its own stream `context:<h>`, in the hash chain like every other write. Re-posting
the same context appends nothing; other content under the same h is a 409. Context lists
and lookups read those streams from the log (store.stream_ids), never a table or a file.

Modules: `shape` (fields, checks, error shape, paths, paging), `reads` (what is read from
the log), `sessions`, `metrics`, `contexts` (one job each, each with its own router, joined
here in that order).
"""

from __future__ import annotations

from fastapi import APIRouter

from api.dialects.monitor import contexts, metrics, sessions
from api.dialects.monitor.shape import PREFIX

router = APIRouter(prefix=PREFIX, tags=["compat: pytest-monitor"])
for part in (sessions, metrics, contexts):
    router.include_router(part.router)

__all__ = ["router"]
