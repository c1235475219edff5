"""The Testmo session API (docs.testmo.com/api/reference/sessions), translated onto the ledger.

Ids: a Testmo session id is the ledger session's `number` (stable, unique in the ledger);
`project_id` is the session's `project` (compared as a string with the path parameter).

Statuses and counts: Testmo has up to 25 statuses, by default 1 Untested, 2 Passed, 3 Failed,
4 Retest, 5 Blocked, 6 Skipped, custom ones 7-25 (its run-results reference). A session counts
untested results in `untested_count` and the other 24 in `status1_count`..`status24_count`:
status id N in slot N-1, so Passed is status1, Failed status2, Retest status3, Blocked status4,
Skipped status5. The ledger's result names map onto those (`passed`, `failed`, `retest`,
`blocked`, `skipped`, `untested`), and `status1`..`status24` name a slot directly.
completed_count counts results in final slots (all but untested and retest); total_count counts
every result, whatever its name. The `statuses` expand describes the default statuses and any
custom slot a session of the answer counts.

Users: Testmo user ids are integers. created_by/updated_by/closed_by are the ledger's actor
when it is an integer string (e.g. "2"), else null; the `users` expand lists those ids, each
named by its id (the ledger records no user names). Configurations, milestones, workflow
states, templates, field values and issues are not recorded: no session references one, so
their expands are empty lists, as Testmo answers for objects that reference none.

Modules: `shape` (the session, its counts and expands, the error shape, the parameters'
checks) and `sessions` (the list and the detail), whose router is joined here.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.dialects.testmo import sessions
from api.dialects.testmo.shape import PREFIX

router = APIRouter(prefix=PREFIX, tags=["compat: Testmo"])
for part in (sessions,):
    router.include_router(part.router)

__all__ = ["router"]
