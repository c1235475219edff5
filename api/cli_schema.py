"""`ledger migrate [--check]`: the event database's schema steps (persistence/migrations.py),
applied, listed, or checked before a deployment starts the new code."""

from __future__ import annotations

import argparse
from typing import Any

from projections.present import iso

DESCRIPTION = """Every `ledger` process brings the event database's schema up to its own at
start (in one transaction, one process at a time), so running this is optional: it does the
same ahead of time and lists what was applied when. With --check it applies nothing and exits
1 when steps are pending, 0 when none are (for a deployment's pre-flight). A database already
migrated by newer code is refused by every command (exit 2)."""


def migrate_command(args: argparse.Namespace) -> int:
    from persistence.migrations import applied, migrate, pending
    from persistence.schema import make_engine
    from persistence.settings import Settings
    from persistence.store import EventStore

    url = Settings.from_env().database_url
    engine = make_engine(url, immediate=True)
    try:
        if args.check:
            todo = pending(engine)
            for step in todo:
                print(f"pending  {step.number:>3}  {step.name}")
            print(f"{len(todo)} step(s) pending" if todo else "the schema is up to date")
            return 1 if todo else 0
        ran = {step.number for step in migrate(engine)}
        store = EventStore(url)
        try:
            store.catch_up_tree()  # the tree's stored nodes too (a new file, after step 7)
        finally:
            store.dispose()
        for a in applied(engine):
            fresh = "  (now)" if a.number in ran else ""
            print(f"applied  {a.number:>3}  {iso(a.applied_at)}  {a.name}{fresh}")
        return 0
    finally:
        engine.dispose()


def add_migrate_parser(sub: Any) -> None:
    p = sub.add_parser(
        "migrate",
        help="bring the event database's schema up to this code's",
        description=DESCRIPTION,
    )
    p.add_argument(
        "--check", action="store_true", help="apply nothing; exit 1 if steps are pending"
    )
    p.set_defaults(func=migrate_command)
