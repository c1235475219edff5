"""The `ledger replay` subcommand tree (argparse); api/cli.py mounts it with
`add_replay_parser(subparsers)`. Handlers live in replay/commands.py."""

from __future__ import annotations

import argparse
from typing import Any

from projections.tables import VIEW_NAMES
from replay import commands as c
from replay import copy_log, erase, log_tools, tree_jobs
from replay.asof import CLOCKS, STATS_DIMS
from replay.export import FORMATS

AS_OF = (
    "a log position (digits, e.g. 1234) or a time (ISO-8601 such as 2024-05-01T12:00:00Z, a "
    "date, or epoch seconds with a decimal point such as 1700000000.0); default: now"
)
TIME = (
    "which clock --as-of reads: recorded (default; as the ledger stood at T, an answer that "
    "never changes) or event (everything that happened by T, as known now: imported history "
    "counts when it happened)"
)
DESCRIPTION = """Replay and audit tools. Analysts: stats and sessions as of any past point,
exports, their own projections, an HTML report. Auditors: streams, the global log, the
digest, full verification of the hash chain, and per-session evidence bundles.
Configure with LEDGER_DATABASE_URL (and LEDGER_VIEWS_URL, LEDGER_BLOB_DIR). Every tool reads
the log read-only and can run beside a live server; `rebuild` writes to the views,
`erase` appends its Erased event, and `copy` writes to its target."""
EXAMPLES = """examples:
  ledger replay verify                          # exit 0 and the head digest when intact
  ledger replay digest > digest.txt; ledger replay verify --from-digest "$(cat digest.txt)"
  ledger replay checkpoint --save witness/; ledger replay verify --checkpoint witness/
  ledger replay prove SESSION_ID > proofs.json
  ledger replay stats --as-of 2024-05-01T12:00:00Z --by day,status
  ledger replay stats --as-of 1234 --by browser --format csv
  ledger replay session SESSION_ID --version 3
  ledger replay log --after 1000 --limit 50 --type Stopped --json
  ledger replay export --what sessions --format parquet --out sessions.parquet
  ledger replay run examples/my_projection.py --until 2024-05-01
  ledger replay bundle SESSION_ID --out s.jsonl
  python3 examples/verify_bundle.py s.jsonl "$(ledger log-key show | head -1)"
  ledger replay rebuild; ledger replay report --out report.html
  ledger replay erase SESSION_ID --yes          # personal values gone, proofs still valid
  ledger replay copy --to postgresql+psycopg://ledger@db/ledger   # move up; run again to resume
"""


# What a tool's own --help says, where it says more than its line in `ledger replay --help`.
DESCRIPTIONS = {
    "verify": (
        "Recompute every link of the hash chain, each stream's versions (1..n in position "
        "order), every referenced blob's sha256, and the Merkle tree from the events "
        "themselves against the stored tree and against saved checkpoints (--checkpoint). "
        "Exit 0 and print the head digest when intact; exit 1 naming the first bad position "
        "of each kind of problem. Without a saved checkpoint it says what it cannot prove."
    ),
    "checkpoint": (
        "Sign the Merkle tree of the whole log with the log's key and print the signed note "
        "(a C2SP checkpoint, as GET /v1/log/checkpoint). With --save DIR, keep it there as "
        "<size>.checkpoint once the store's consistency proof shows it extends the largest "
        "one DIR holds: a history to keep outside the server and verify against."
    ),
    "prove": (
        "One session's events as leaves of the log, each with its RFC 6962 inclusion proof, "
        "and the signed checkpoint they lead to: the session's bundle on stdout (JSON lines, "
        "session-ledger-bundle/2; see `bundle`)."
    ),
    "stats": (
        "The stats view as it stood at a past point, computed by replaying the log "
        "through the live projection classes into a temporary database."
    ),
    "rebuild": (
        "Rebuild views from zero into fresh tables beside the live ones, then swap them "
        "in atomically (a running server keeps serving the old views until the swap). A "
        "progress bar with the ETA shows on a terminal (not with --quiet)."
    ),
    "run": (
        "Fold the log through FILE.py, which defines initial(), apply(state, event) and "
        "optionally result(state); see examples/my_projection.py. Prints JSON."
    ),
    "erase": (
        "Destroy one session's personal values (user, names, reasons, annotation texts, the "
        "tags and attributes named in LEDGER_PERSONAL_KEYS, its log and artifact blobs), "
        "append an Erased event, and bring the views past it. The events, hashes, tree, "
        "checkpoints and proofs stay valid: the log holds salted commitments to those "
        "values, not the values (docs/log-format.md). Exit 0 when all was erased, 3 when "
        "something was left behind (listed), 2 on a bad argument."
    ),
    "copy": (
        "Copy the ledger (events with their positions, times and hashes, sealed values, API "
        "key hashes, idempotency keys, blob files) to another database, e.g. from SQLite to "
        "PostgreSQL, rebuild the Merkle tree there (its root must equal the source's) and "
        "rebuild the target's views. Interrupted, it resumes after the target's last event "
        "when run again; a target holding another log is refused. `ledger replay verify` on "
        "both prints the same head digest."
    ),
    "bundle": (
        "Write one session's events as leaves of the log with their inclusion proofs and "
        "the signed checkpoint (session-ledger-bundle/2, replay/bundle.py); check it with "
        "examples/verify_bundle.py FILE VERIFIER_KEY, where the key is the log's "
        "(`ledger log-key show`), obtained by another channel than the bundle."
    ),
}


def _quiet(p: Any) -> None:
    p.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar (shown only on a terminal)"
    )


def _add(sub: Any, name: str, handler: c.Handler, help_: str) -> Any:
    p = sub.add_parser(name, help=help_, description=DESCRIPTIONS.get(name, help_))
    p.set_defaults(func=handler)
    return p


def add_replay_parser(subparsers: Any) -> argparse.ArgumentParser:
    replay = subparsers.add_parser(
        "replay",
        help="analysts' and auditors' tools over the event log (stats as of, verify, export...)",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = replay.add_subparsers(dest="replay_command", required=True, metavar="TOOL")
    _auditors_tools(sub)
    _analysts_tools(sub)
    _evidence_tools(sub)
    _add_copy(sub)
    parser: argparse.ArgumentParser = replay
    return parser


def _auditors_tools(sub: Any) -> None:
    """verify, digest, stream, log: what an auditor reads and checks."""
    p = _add(sub, "verify", c.cmd_verify, "recompute the hash chain, stream versions and blobs")
    p.add_argument(
        "--from-digest",
        metavar="POSITION:HASH",
        help="also check that this earlier digest is a prefix of today's log",
    )
    p.add_argument("--no-blobs", action="store_true", help="skip checking blob files")
    p.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="processes that fold the Merkle tree beside the chain's checks, for logs of "
        f"{tree_jobs.MIN_LEAVES:,} events or more (default: the CPUs, at most "
        f"{tree_jobs.MAX_JOBS}; 1: one process does everything)",
    )
    p.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="a signed checkpoint file, or a folder of them (checkpoint --save): prove the log "
        "extends each, naming where it no longer does",
    )
    p.add_argument(
        "--key",
        action="append",
        metavar="VERIFIER",
        help="the log's verifier key (GET /v1/log/key) to check checkpoints with (repeat for "
        "retired keys); default: the keys in LEDGER_LOG_KEY's file",
    )
    p.add_argument("--json", action="store_true", help="machine-readable report")
    _quiet(p)

    p = _add(sub, "checkpoint", c.tool(log_tools.cmd_checkpoint), "sign and print the newest tree")
    p.add_argument(
        "--save",
        metavar="DIR",
        help="also keep it in DIR, after proving it extends the last one kept there",
    )

    p = _add(sub, "prove", c.tool(log_tools.cmd_prove), "a session's leaves with inclusion proofs")
    p.add_argument("id", help="session id")

    p = _add(sub, "digest", c.cmd_digest, "print the head digest POSITION:HASH (save it)")
    p.add_argument("--json", action="store_true")

    p = _add(sub, "stream", c.cmd_stream, "every event of one session's stream")
    p.add_argument("id", help="session id")
    p.add_argument("--json", action="store_true", help="one JSON object per line")

    p = _add(sub, "log", c.cmd_log, "the global log in position order")
    p.add_argument("--after", type=int, default=0, metavar="N", help="start after position N")
    p.add_argument("--limit", type=int, metavar="K", help="at most K events (default: all)")
    p.add_argument("--type", action="append", metavar="T", help="only this event type (repeat)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")


def _add_copy(sub: Any) -> None:
    """copy: move the ledger to another database (replay/copy_log.py)."""
    p = _add(sub, "copy", c.tool(copy_log.cmd_copy), "copy the ledger to another database")
    p.add_argument("--to", required=True, metavar="URL", help="the target database's URL")
    p.add_argument(
        "--from", dest="from_url", metavar="URL", help="the source (default: LEDGER_DATABASE_URL)"
    )
    p.add_argument(
        "--to-blobs",
        metavar="DIR",
        help="the target's blob folder, filled from LEDGER_BLOB_DIR (default: that folder)",
    )
    p.add_argument(
        "--to-views",
        metavar="URL",
        help="the target's views database (default: as LEDGER_VIEWS_URL would default for it)",
    )
    p.add_argument("--no-views", action="store_true", help="do not rebuild the target's views")


def _analysts_tools(sub: Any) -> None:
    """stats, session, rebuild, export, run: what an analyst computes from the log."""
    p = _add(sub, "stats", c.cmd_stats, "the stats view as it stood at any past point")
    p.add_argument("--as-of", metavar="T", help=AS_OF)
    p.add_argument("--time", choices=CLOCKS, default="recorded", help=TIME)
    p.add_argument("--from", dest="from_day", metavar="DAY", help="first start day YYYY-MM-DD")
    p.add_argument("--to", dest="to_day", metavar="DAY", help="last start day YYYY-MM-DD")
    p.add_argument(
        "--by",
        action="append",
        metavar="DIM",
        help=f"group by {'|'.join(STATS_DIMS)} (repeat or comma-separate)",
    )
    p.add_argument("--where", action="append", metavar="DIM=VALUE", help="filter (repeat)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    _quiet(p)

    p = _add(sub, "session", c.cmd_session, "one session's state at a past point or version")
    p.add_argument("id", help="session id")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--as-of", metavar="T", help=AS_OF)
    g.add_argument("--version", type=int, metavar="N", help="fold versions 1..N of its stream")
    p.add_argument("--time", choices=CLOCKS, default="recorded", help=TIME)

    p = _add(sub, "rebuild", c.cmd_rebuild, "rebuild the views from zero and swap them in")
    p.add_argument("--view", choices=VIEW_NAMES, help="swap in only this view's tables")
    _quiet(p)

    p = _add(sub, "export", c.cmd_export, "events or the session list as NDJSON, CSV or Parquet")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="ndjson",
        help="parquet needs pip install 'session-ledger[parquet]'",
    )
    p.add_argument("--what", choices=("events", "sessions"), default="events")
    p.add_argument(
        "--from-position", type=int, default=1, metavar="N", help="events from position N on"
    )
    p.add_argument("--until", metavar="T", help="up to this point; " + AS_OF)
    p.add_argument("--out", metavar="FILE", help="write here (default: stdout)")
    _quiet(p)

    p = _add(sub, "run", c.cmd_run, "fold the whole log through your own projection module")
    p.add_argument("file", help="a Python file defining initial() and apply(state, event)")
    p.add_argument("--until", metavar="T", help="stop at this point; " + AS_OF)
    p.add_argument("--out", metavar="FILE", help="write the JSON result here")


def _evidence_tools(sub: Any) -> None:
    """bundle, report: files to hand on; erase: what must not be kept."""
    p = _add(
        sub,
        "bundle",
        c.tool(log_tools.cmd_bundle),
        "an evidence bundle for one session (JSON lines)",
    )
    p.add_argument("id", help="session id")
    p.add_argument("--out", required=True, metavar="FILE")

    p = _add(sub, "erase", c.tool(erase.cmd_erase), "destroy a session's personal values")
    p.add_argument("id", help="session id")
    p.add_argument("--yes", action="store_true", help="really erase (there is no undo)")
    p.add_argument("--by", default="ledger replay erase", help="the actor the event records")

    p = _add(sub, "report", c.cmd_report, "a self-contained HTML report with charts")
    p.add_argument("--out", default="report.html", metavar="FILE")
    p.add_argument("--as-of", metavar="T", help=AS_OF)
    p.add_argument("--time", choices=CLOCKS, default="recorded", help=TIME)
    p.add_argument("--title", default="Session Ledger report")
    _quiet(p)
