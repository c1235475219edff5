"""The handlers behind `ledger replay ...`: each opens the log read-only (WAL readers never
block a running server), calls one function of the replay package and prints its answer."""

from __future__ import annotations

import argparse
import csv
import functools
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from persistence import verify_runs
from persistence.schema import make_engine
from persistence.settings import Settings
from persistence.store import EventStore
from projections.failures import describe
from projections.present import iso
from replay import asof, audit, custom, export, log_tools, rebuild, report, verify, witness
from replay.progress import progress_bar, set_quiet
from replay.source import (
    Point,
    ReplayError,
    live_views,
    log_head,
    open_blobs,
    resolve_point,
    store_open,
)

Handler = Callable[[argparse.Namespace], int]


def _dumps(doc: Any) -> str:
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()


def tool(fn: Callable[[argparse.Namespace, Settings], int]) -> Handler:
    """Settings from the environment; a ReplayError is a clear message and exit code 2."""

    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        set_quiet(bool(getattr(args, "quiet", False)))
        try:
            return fn(args, Settings.from_env())
        except ReplayError as exc:
            print(f"ledger replay {args.replay_command}: error: {exc}", file=sys.stderr)
            return 2

    return run


def _point(store: EventStore, args: argparse.Namespace, flag: str) -> Point:
    """`--as-of`/`--until` resolved; one warning line on stderr when it lies before the first
    event (the command still runs and exits as it would)."""
    value = getattr(args, flag.removeprefix("--").replace("-", "_"))
    point = resolve_point(store, value)
    if point.warning is not None:
        print(
            f"ledger replay {args.replay_command}: warning: {flag} {point.warning}", file=sys.stderr
        )
    return point


def _as_of(point: Point) -> dict[str, Any]:
    return {"position": point.position, "time": iso(point.time)}


@tool
def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    try:
        digest = verify.parse_digest(args.from_digest) if args.from_digest else None
    except ValueError as exc:
        raise ReplayError(str(exc)) from exc
    saved = []
    if args.checkpoint:
        saved = witness.load_saved(Path(args.checkpoint), log_tools.verifier_keys(args, settings))
    with store_open(settings) as store:
        blobs = None if args.no_blobs else open_blobs(settings)
        with progress_bar(store.head_digest()[0], "verify") as bar:
            verdict = verify.verify(store, blobs, digest, saved=saved, jobs=args.jobs, progress=bar)
    print(_dumps(verdict.as_dict()) if args.json else verify.render(verdict))
    _remember(settings, verdict)
    return 0 if verdict.ok else 1


def _remember(settings: Settings, verdict: verify.Verdict) -> None:
    """Record the outcome where servers read it for their metrics (the views database,
    persistence/verify_runs.py); a views database that cannot take it is a warning only."""
    run = verify_runs.VerifyRun(
        time.time(), verdict.ok, verdict.head[0], len(verdict.findings), bool(verdict.checkpoints)
    )
    engine = make_engine(settings.views_url)
    try:
        verify_runs.record(engine, run)
    except Exception as exc:
        print(
            f"ledger replay verify: warning: outcome not recorded: {describe(exc)}", file=sys.stderr
        )
    finally:
        engine.dispose()


@tool
def cmd_digest(args: argparse.Namespace, settings: Settings) -> int:
    with store_open(settings) as store:
        d = audit.digest_record(store)
    print(_dumps(d) if args.json else d["digest"])
    return 0


@tool
def cmd_stream(args: argparse.Namespace, settings: Settings) -> int:
    with store_open(settings) as store:
        audit.write_events(audit.stream_events(store, args.id), sys.stdout, args.json)
    return 0


@tool
def cmd_log(args: argparse.Namespace, settings: Settings) -> int:
    with store_open(settings) as store:
        events = audit.log_events(store, args.after, args.limit, args.type)
        audit.write_events(events, sys.stdout, args.json)
    return 0


def _stats_table(doc: dict[str, Any], fmt: str) -> str:
    dims = doc["group_by"]
    head = [*dims, "sessions", "ended", "mean_s", "p50_s", "p95_s", "max_s"]
    rows = [
        [*(g["key"][d] for d in dims), g["count"], g["ended"]]
        + [g["duration"][k] for k in ("mean", "p50", "p95", "max")]
        for g in doc["groups"]
    ]
    if fmt == "csv":
        out: list[str] = []
        w = csv.writer(_Lines(out), lineterminator="")
        w.writerow(head)
        for r in rows:
            w.writerow(["" if v is None else v for v in r])
        return "\n".join(out)
    cells = [head] + [
        [
            "-"
            if v is None
            else (f"{v:,.3f}".rstrip("0").rstrip(".") if isinstance(v, float) else str(v))
            for v in r
        ]
        for r in rows
    ]
    widths = [max(len(str(r[i])) for r in cells) for i in range(len(head))]
    lines = ["  ".join(str(v).rjust(widths[i]) for i, v in enumerate(r)) for r in cells]
    a = doc["as_of"]
    when = f", time {a['time']}" if a["time"] else ""
    lines.append(f"active now: {doc['active_now']}   (as of log position {a['position']}{when})")
    return "\n".join(lines)


class _Lines:
    def __init__(self, out: list[str]) -> None:
        self.out = out

    def write(self, s: str) -> None:
        self.out.append(s)


@tool
def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    query = asof.stats_query(args.by, args.from_day, args.to_day, args.where)
    with store_open(settings) as store:
        point = _point(store, args, "--as-of")
        doc = {"as_of": _as_of(point), **asof.stats_as_of(store, point, query, args.time)}
    print(_dumps(doc) if args.format == "json" else _stats_table(doc, args.format))
    return 0


@tool
def cmd_session(args: argparse.Namespace, settings: Settings) -> int:
    with store_open(settings) as store:
        point = None if args.version is not None else _point(store, args, "--as-of")
        state = asof.session_state(store, args.id, point, args.version, args.time)
    if state is None:
        at = f" at {point.describe()}" if point is not None else ""
        raise ReplayError(f"no session {args.id}{at}")
    print(_dumps(asof.session_document(state)))
    return 0


@tool
def cmd_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    with store_open(settings) as store:
        # As the live worker writes the views (and as the benchmark measures this command):
        # without an fsync per batch, since views can always be rebuilt; the swap is still
        # one transaction, so a crash leaves the old views or the new ones, never a mix.
        engine = make_engine(settings.views_url, immediate=True, durable=False, cache_mb=64)
        try:
            done = rebuild.rebuild(store, engine, args.view)
        finally:
            engine.dispose()
    print(
        f"rebuilt {', '.join(done.views)} at log position {done.position}; "
        f"swapped in {', '.join(done.tables)}"
    )
    return 0


@tool
def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    with store_open(settings) as store:
        until = _point(store, args, "--until")
        views = live_views(settings)
        n = export.export(store, views, args.what, args.format, until, args.from_position, args.out)
    if args.out:
        print(f"wrote {n} {args.what} to {args.out}", file=sys.stderr)
    return 0


@tool
def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    module = custom.load_projection(args.file)
    with store_open(settings) as store:
        result = custom.run_projection(store, module, _point(store, args, "--until"))
    text = _dumps(result)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0


@tool
def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    with store_open(settings) as store:
        point = _point(store, args, "--as-of")
        head = log_head(store)
        # By event time the report reads the whole log as known now, cut at point.time.
        covered = point if args.time == "recorded" else Point(head.size, point.time)
        made = report.Provenance(_command_line(args), head, store.tree.root(covered.position))
        views = asof.views_as_of(store, live_views(settings), point, args.time)
        with views as (conn, tables):
            page = report.render_report(conn, tables, covered, args.title, made, args.time)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(page)
    print(f"wrote {args.out} (as of {covered.describe()}, {args.time} time)")
    return 0


def _command_line(args: argparse.Namespace) -> str:
    """The command as typed (api/cli.py keeps the arguments it parsed), shell-quoted."""
    argv = getattr(args, "argv", None)
    if argv is None:
        argv = sys.argv[1:]
    return shlex.join(["ledger", *argv])
