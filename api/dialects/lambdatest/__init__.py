"""The LambdaTest session API (seed document in shared/seeds; where the seed differs, LambdaTest's
published `selenium-automation.yaml`), translated onto the ledger: `router`, and
`with_account`, which the native start and the batch start lines call so that a LambdaTest
session records the account (the key) that started it.

Modules: `shape` (constants, the error shape, the session as listed, the account, the list's
parameters, one-command routes), `sessions` (list, detail, update, stop, delete), `logs`
(screenshots, video, artifacts, logs) and `uploads` (terminal logs, exceptions), whose
routers are joined here in that order.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.dialects.lambdatest import logs, sessions, uploads
from api.dialects.lambdatest.shape import PREFIX, with_account

router = APIRouter(prefix=PREFIX, tags=["compat: LambdaTest"])
for part in (sessions, logs, uploads):
    router.include_router(part.router)

__all__ = ["router", "with_account"]
